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
