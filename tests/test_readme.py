"""The README's examples run as written (so they stay true)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_python_examples():
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_example_runs(index, capsys):
    namespace: dict = {}
    for block in BLOCKS[: index + 1]:  # later examples may use names from earlier ones
        exec(compile(block, f"README.md[python block {index}]", "exec"), namespace)
    assert capsys.readouterr().out.strip()


def test_readme_main_job_command_names_a_real_example():
    from minidiff.cli import main

    text = README.read_text(encoding="utf-8")
    command = re.search(r"minidiff (trace --example \w+)", text)
    assert command is not None
    assert main(command.group(1).split()) == 0


def _readme_main_job() -> tuple[list[str], list[str]]:
    """(the README's first command's ``minidiff calibrate`` argv, the lines of the text block
    that shows what it prints)."""
    text = README.read_text(encoding="utf-8")
    first_block = re.search(r"```bash\n(.*?)```", text, re.S)
    command = re.search(r"\.venv/bin/minidiff (calibrate[^\n&]*)", first_block.group(1))
    assert command is not None, "the README's first command must run minidiff calibrate"
    shown = re.search(r"```text\n(.*?)```", text[first_block.end():], re.S)
    assert shown is not None, "the README must show what its first command prints"
    return command.group(1).split(), shown.group(1).rstrip("\n").splitlines()


def _without_seconds(line: str) -> str:
    return re.sub(r"steps in \d+(\.\d+)? s;", "steps in (time) s;", line)


def test_readme_first_command_prints_what_the_readme_shows(tmp_path):
    """The main job exactly as the README's first command runs it: the installed console
    script, no options added, in a fresh folder. Every line it prints is the README's (the
    run time aside): the settings, the last step's estimates, the posterior table; every true
    value lies in its 90% interval; the figure is a PNG. The numbers are read from the README,
    so this stays right when the README's block is regenerated. One run, about 15 s."""
    argv, shown = _readme_main_job()
    script = Path(sys.executable).with_name("minidiff")
    assert script.exists(), f"the console script {script} is not installed (pip install -e .)"
    env = {k: v for k, v in os.environ.items() if k != "MINIDIFF_BACKEND"}  # the default
    done = subprocess.run([str(script), *argv], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.rstrip("\n").splitlines()
    assert [_without_seconds(x) for x in printed] == [_without_seconds(x) for x in shown]
    header = printed.index(next(x for x in printed if x.startswith("parameter ")))
    for row in printed[header + 2:]:
        if not row.strip():
            break
        true, low, high = re.fullmatch(r"\S+\s+(\S+)\s+.*\[(\S+), (\S+)\]\s+\S+",
                                       row).groups()
        assert float(low) <= float(true) <= float(high), row
    assert (tmp_path / "calibrate.png").read_bytes()[:4] == b"\x89PNG"
