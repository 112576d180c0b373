"""The links from the walkthrough and the reading order into minidiff's source point at the code
they name.

``docs/tutorials/00-minidiff-from-scratch.py`` and ``docs/reading-order.md`` link to lines of the
source (``../../minidiff/core.py#L475``, GitHub style). Code moves, so each link is checked:
the file exists, the lines exist, a link whose text is a name in backticks lands on the line
that defines it, and every name a reading-order item lists in backticks that its file defines
is defined inside the item's line range.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "docs" / "tutorials" / "00-minidiff-from-scratch.py",
        ROOT / "docs" / "reading-order.md"]
LINK = re.compile(r"\[([^\]]*)\]\(((?:\.\./)+[\w./-]+?\.py)(?:#L(\d+)(?:-L(\d+))?)?\)")


def _links(doc: Path) -> list[tuple[str, Path, int | None, int | None]]:
    text = doc.read_text(encoding="utf-8")
    return [(label, (doc.parent / path).resolve(), int(a) if a else None, int(b) if b else None)
            for label, path, a, b in LINK.findall(text)]


def _defines(line: str, name: str) -> bool:
    return re.match(rf"\s*(def|class)\s+{re.escape(name)}\b|{re.escape(name)}\s*[:=]", line) \
        is not None


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_source_link_lands_on_what_it_names(doc):
    links = _links(doc)
    assert len(links) >= 10, f"{doc.name} should link into the source"
    for label, path, start, end in links:
        assert path.is_file(), f"{doc.name}: {label!r} links to a missing file {path}"
        if start is None:
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        last = start if end is None else end
        assert 1 <= start <= last <= len(lines), (
            f"{doc.name}: {label!r} points at lines {start}-{last} of {path.name}, which has "
            f"{len(lines)}")
        name = re.fullmatch(r"`([\w.]+)`", label)
        if name and end is None:
            short = name.group(1).split(".")[-1]
            assert _defines(lines[start - 1], short), (
                f"{doc.name}: {label} points at {path.name} line {start}, which reads "
                f"{lines[start - 1].strip()!r}; update the line number")
        ranged = re.search(r"L(\d+)–L(\d+)", label)
        if ranged:
            assert (int(ranged.group(1)), int(ranged.group(2))) == (start, last), (
                f"{doc.name}: the text {label!r} and its anchor disagree")


def test_reading_order_ranges_hold_the_names_each_item_lists():
    doc = ROOT / "docs" / "reading-order.md"
    items = re.split(r"\n\s*(?:- |\d+\. )", doc.read_text(encoding="utf-8"))
    checked = 0
    for item in items:
        links = [(p, a, b) for _, p, a, b in LINK.findall(item) if a and b]
        if len(links) != 1:
            continue
        path, start, end = links[0]
        lines = (doc.parent / path).resolve().read_text(encoding="utf-8").splitlines()
        for name in re.findall(r"`([A-Za-z_][\w.]*)`", item):
            short = name.split(".")[-1]
            where = [i + 1 for i, line in enumerate(lines) if _defines(line, short)
                     and not line.startswith((" " * 8, "\t"))]
            if not where:
                continue  # not defined in this file (a parameter, a transform's name)
            assert any(int(start) <= i <= int(end) for i in where), (
                f"reading-order.md: {name} is defined at line(s) {where} of {path}, outside "
                f"L{start}–L{end}; update the range")
            checked += 1
    assert checked >= 15
