"""The README's examples run as written (so they stay true)."""

from __future__ import annotations

import re
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


def test_readme_first_command_is_minidiff_calibrate_and_its_truth_lies_in_the_interval(
        tmp_path, capsys):
    """The main job exactly as the README's first command runs it (the embedded default; the
    figure and JSON go to a temporary folder): every true value inside its 90% interval."""
    import json

    from minidiff.cli import main

    first_block = re.search(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    command = re.search(r"\.venv/bin/minidiff (calibrate[^\n&]*)", first_block.group(1))
    assert command is not None, "the README's first command must run minidiff calibrate"
    out = tmp_path / "out.json"
    figure = tmp_path / "calibrate.png"
    argv = [*command.group(1).split(), "--plot", str(figure), "--json", str(out), "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for p in json.loads(out.read_text())["parameters"]:
        assert p["q05"] <= p["true"] <= p["q95"], p
        assert any(line.split()[:2] == [p["name"], f"{p['true']:.4g}"]
                   for line in printed.splitlines())
    assert figure.read_bytes()[:4] == b"\x89PNG"
