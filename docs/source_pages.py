"""Source pages for the site, so links into the code keep their line anchors.

The walkthrough and the reading order link to lines of the source GitHub-style,
``[`bind`](../../minidiff/core.py#L475)``, which works on GitHub and in a checkout. Sphinx
would turn such a link into a download of the file and drop the ``#L475``. This extension
rewrites each one, as a page is read, into a link to ``_code/minidiff/core.py.html#L475``:
a page of the highlighted file whose every line ``n`` has the anchor ``Ln`` and is highlighted
when it is the target. The pages are written when the build ends, one per linked file.
"""

from __future__ import annotations

import html
import posixpath
import re
from pathlib import Path

SCHEME = "minidiff-source"
FOLDER = "_code"
LINK = re.compile(r"\]\(((?:\.\./)+)([\w./-]+?\.py)(#L\d+(?:-L\d+)?)?\)")

_STYLE = """
body { margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
       font-size: 13px; background: #fff; color: #222; }
header { padding: 8px 16px; background: #f4f5f7; border-bottom: 1px solid #ddd;
         font-family: system-ui, sans-serif; font-size: 15px; }
pre { margin: 0; padding: 8px 0; }
.line { display: block; padding-right: 16px; }
.line > a { display: inline-block; width: 4.5em; padding-right: 1em; text-align: right;
            color: #999; text-decoration: none; user-select: none; }
.line:target { background: #fff4c2; }
"""


def _rewrite(app, docname: str, source: list[str]) -> None:
    """Point this page's links into the source at the source pages, keeping the anchors."""
    srcdir = Path(app.srcdir)
    page_dir = (srcdir / docname).parent
    root = srcdir.parent
    linked: set[str] = app.env.__dict__.setdefault("minidiff_source_files", set())

    def replace(match: re.Match) -> str:
        target = (page_dir / (match.group(1) + match.group(2))).resolve()
        try:
            relative = target.relative_to(root).as_posix()
        except ValueError:
            return match.group(0)  # outside the repository: leave it to Sphinx
        if not target.is_file():
            return match.group(0)  # Sphinx reports the missing file
        linked.add(relative)
        up = posixpath.relpath(FOLDER, posixpath.dirname(docname) or ".")
        anchor = (match.group(3) or "#").split("-")[0]  # a range lands on its first line
        return f"]({SCHEME}:{up}/{relative}{anchor})"

    source[0] = LINK.sub(replace, source[0])


def _page(relative: str, code: str) -> str:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    formatter = HtmlFormatter(nowrap=True)
    lines = highlight(code, PythonLexer(), formatter).splitlines()
    body = "".join(f'<span class="line" id="L{n}"><a href="#L{n}">{n}</a>{line}</span>'
                   for n, line in enumerate(lines, start=1))
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(relative)}</title>"
            f"<style>{_STYLE}{formatter.get_style_defs('pre')}</style></head>"
            f"<body><header>{html.escape(relative)}</header><pre>{body}</pre></body></html>\n")


def _write_pages(app, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    root = Path(app.srcdir).parent
    for relative in sorted(getattr(app.env, "minidiff_source_files", ())):
        out = Path(app.outdir) / FOLDER / f"{relative}.html"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(_page(relative, (root / relative).read_text(encoding="utf-8")),
                       encoding="utf-8")


def _merge(app, env, docnames, other) -> None:  # noqa: ARG001 (Sphinx's signature)
    env.__dict__.setdefault("minidiff_source_files", set()).update(
        getattr(other, "minidiff_source_files", set()))


def setup(app) -> dict:
    app.connect("source-read", _rewrite)
    app.connect("env-merge-info", _merge)
    app.connect("build-finished", _write_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
