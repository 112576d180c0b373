"""Sphinx configuration of minidiff's documentation site (built by ``python docs/build.py
--html``; needs the ``docs`` extra)."""

from __future__ import annotations

import sys
from pathlib import Path

import minidiff

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for source_pages, beside this file

project = "minidiff"
author = "the minidiff developers"
copyright = "the minidiff developers"  # noqa: A001 (Sphinx's name)
release = minidiff.__version__

extensions = [
    "myst_nb",               # Markdown pages and the tutorials' .ipynb files
    "sphinx.ext.autodoc",    # the API reference, from the docstrings
    "sphinx.ext.napoleon",   # docstrings with "Args:" / "Returns:" sections
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 copied into _static/mathjax: no CDN, works offline
    "source_pages",          # links into the code go to line-anchored pages (source_pages.py)
]

# The bundled copy (the package sphinx-mathjax-offline, in the docs extra), never a CDN, so the
# pages typeset their maths with no network.
mathjax_path = "mathjax/tex-chtml.js"

# The tutorials are rendered from their committed outputs (python docs/build.py refreshes them);
# the site build never runs them. Their percent-format .py sources are not pages.
nb_execution_mode = "off"
exclude_patterns = ["_build", "tutorials/*.py", "build.py", "source_pages.py", "realdata.py",
                    "toy_model.py", "tutorials/figures"]
myst_enable_extensions = ["dollarmath", "amsmath"]
# source_pages rewrites links into the code to this scheme (a link relative to the page)
myst_url_schemes = {"http": None, "https": None, "mailto": None,
                    "minidiff-source": "{{path}}.html#{{fragment}}"}
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "furo"
html_title = f"minidiff {release}"


# ---------------------------------------------------------------------------------------------
# Docstrings written as plain text
# ---------------------------------------------------------------------------------------------
# minidiff's docstrings are written for help() and the source, in plain text that is also
# reStructuredText (formulas and code after "::", simple tables). A docstring that docutils parses
# cleanly is rendered as reStructuredText; one with "|x|" is rendered after escaping "|" (never a
# substitution here). One that still does not parse is shown exactly as written, in a literal
# block, and named in a warning (which fails the -W build): fix its markup rather than let the
# reference show it as a raw block.

import io  # noqa: E402

import docutils.core  # noqa: E402
import docutils.utils  # noqa: E402
from sphinx.util import logging as _sphinx_logging  # noqa: E402

_logger = _sphinx_logging.getLogger(__name__)

_SPHINX_ONLY = ("Unknown interpreted text role", "Unknown directive type",
                'No role entry for', 'No directive entry for', "Trying")


def _problems(text: str, env) -> list[str]:
    """docutils' complaints about ``text`` (Sphinx's own roles and directives allowed)."""
    stream = io.StringIO()
    docutils.core.publish_doctree(text, settings_overrides={
        "warning_stream": stream, "report_level": 2, "halt_level": 5, "env": env,
        "file_insertion_enabled": False, "raw_enabled": False})
    return [line for line in stream.getvalue().splitlines()
            if ("(WARNING" in line or "(ERROR" in line or "(SEVERE" in line)
            and not any(s in line for s in _SPHINX_ONLY)]


def _as_written(app, what, name, obj, options, lines):  # noqa: ARG001 (Sphinx's signature)
    text = "\n".join(lines)
    if not text.strip() or not _problems(text, app.env):
        return
    escaped = text.replace("\\|", "|").replace("|", "\\|")
    problems = _problems(escaped, app.env)
    if not problems:
        lines[:] = escaped.splitlines()
        return
    _logger.warning("the docstring of %s %s is not valid reStructuredText (%s), so it shows as a "
                    "raw block: put formulas and code after '::' and keep table text inside its "
                    "columns", what, name, "; ".join(problems[:2]), type="minidiff",
                    subtype="docstring")
    lines[:] = ["::", ""] + [f"    {line}" if line else "" for line in lines] + [""]


# ---------------------------------------------------------------------------------------------
# Tutorial pages open with their content, not their setup
# ---------------------------------------------------------------------------------------------
# The first code cell of every tutorial is its setup (imports, the quick-mode switch, helpers).
# The site removes it (myst-nb's "remove-cell" tag, added as the page is read); the notebooks
# themselves keep it visible, since a reader running them needs it.

import json  # noqa: E402

SETUP_TAG = "remove-cell"


def _hide_setup_cell(app, docname, source):  # noqa: ARG001 (Sphinx's signature)
    if not docname.startswith("tutorials/") or not source[0].lstrip().startswith("{"):
        return
    notebook = json.loads(source[0])
    first = next((c for c in notebook["cells"] if c["cell_type"] == "code"), None)
    if first is None:
        return
    tags = first.setdefault("metadata", {}).setdefault("tags", [])
    if SETUP_TAG not in tags:
        tags.append(SETUP_TAG)
    source[0] = json.dumps(notebook)


def setup(app):
    app.connect("autodoc-process-docstring", _as_written, priority=600)  # after napoleon
    app.connect("source-read", _hide_setup_cell)
