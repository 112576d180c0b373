"""The ``minidiff`` command: ``minidiff trace --example NAME``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from minidiff.cli import main
from minidiff.cli.trace import EXAMPLES


def run(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_square3_prints_both_sweeps_and_prefers_forward_for_memory(capsys):
    code, out = run(capsys, "trace", "--example", "square3")
    assert code == 0
    assert "Forward sweep 1 of 1" in out and "Reverse sweep 1 of 1" in out
    assert "v3 = v2 · v2" in out                  # each row's rule, in both sweeps
    # v̄2 += v̄3·v2, once per factor
    assert "v\u03042 += v\u03043 · v2; v\u03042 += v\u03043 · v2" in out
    assert "v\u03042 = 16 (v3) + 16 (v3) = 32" in out  # v2's two uses, summed
    assert "[[1024]]" in out                      # d(x⁸)/dx = 8·2⁷ by either mode
    assert "24 bytes" in out                      # 3 products x·x, each keeping x once
    assert "Cheaper: forward mode, on memory" in out
    forward_part = out.split("Reverse sweep")[0]
    assert "tape bytes" not in forward_part and "tangent" in forward_part


def test_f1_needs_one_forward_sweep_and_three_reverse(capsys):
    code, out = run(capsys, "trace", "--example", "f1")
    assert code == 0
    assert "Forward sweep 1 of 1" in out and "Reverse sweep 1 of 3" in out
    assert "y1, y2, y3" in out
    assert "[[32], [32], [32]]" in out
    assert "Cheaper: forward mode." in out
    assert "16 bytes" in out


def test_f2_needs_three_forward_sweeps_and_one_reverse(capsys):
    code, out = run(capsys, "trace", "--example", "f2")
    assert code == 0
    assert "Forward sweep 1 of 3" in out and "Reverse sweep 1 of 1" in out
    assert "v3 = v2^2" in out
    assert out.count("[[72, 36, 24]]") == 2       # both modes assemble the same gradient
    assert "Cheaper: reverse mode." in out
    assert "40 bytes" in out


def test_x_overrides_the_inputs(capsys):
    code, out = run(capsys, "trace", "--example", "square3", "--x", "3")
    assert code == 0
    assert "at x = (3)" in out and "6561" in out and "[[17496]]" in out   # 3⁸, 8·3⁷


def test_wrong_number_of_inputs_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["trace", "--example", "f2", "--x", "1", "2"])
    assert exc.value.code == 2
    assert "f2 takes 3 input value(s)" in capsys.readouterr().err


def test_unknown_example_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        main(["trace", "--example", "nope"])
    assert "invalid choice" in capsys.readouterr().err


def test_list_and_help_name_every_example(capsys):
    code, out = run(capsys, "trace", "--list")
    assert code == 0
    for name in EXAMPLES:
        assert name in out
    with pytest.raises(SystemExit):
        main(["trace", "--help"])
    help_text = capsys.readouterr().out
    assert all(name in help_text for name in EXAMPLES)


def test_no_command_prints_help(capsys):
    code, out = run(capsys)
    assert code == 1 and "trace" in out


def test_python_dash_m_minidiff_runs_the_f2_example():
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    result = subprocess.run([sys.executable, "-m", "minidiff", "trace", "--example", "f2"],
                            capture_output=True, text=True, encoding="utf-8", env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Cheaper: reverse mode." in result.stdout
    assert "[[72, 36, 24]]" in result.stdout
