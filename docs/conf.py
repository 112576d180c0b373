"""Sphinx configuration of minidiff's documentation site (built by ``python docs/build.py
--html``; needs the ``docs`` extra)."""

from __future__ import annotations

import minidiff

project = "minidiff"
author = "the minidiff developers"
copyright = "the minidiff developers"  # noqa: A001 (Sphinx's name)
release = minidiff.__version__

extensions = [
    "myst_nb",               # Markdown pages and the tutorials' .ipynb files
    "sphinx.ext.autodoc",    # the API reference, from the docstrings
    "sphinx.ext.napoleon",   # docstrings with "Args:" / "Returns:" sections
    "sphinx.ext.mathjax",
]

# The tutorials are rendered from their committed outputs (python docs/build.py refreshes them);
# the site build never runs them. Their percent-format .py sources are not pages.
nb_execution_mode = "off"
exclude_patterns = ["_build", "tutorials/*.py", "build.py", "realdata.py", "tutorials/figures"]
myst_enable_extensions = ["dollarmath", "amsmath"]
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
# minidiff's docstrings are written for help() and the source: mostly reStructuredText-clean,
# but some module notes are plain text (equations with |x|, indented formulas without "::",
# tables with text in the margins). A docstring that docutils parses cleanly is rendered as
# reStructuredText; one that does not, after escaping "|" (never a substitution here), is shown
# exactly as written, in a literal block, instead of being mangled (or failing the -W build).

import io  # noqa: E402

import docutils.core  # noqa: E402
import docutils.utils  # noqa: E402

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
    if not _problems(escaped, app.env):
        lines[:] = escaped.splitlines()
        return
    lines[:] = ["::", ""] + [f"    {line}" if line else "" for line in lines] + [""]


def setup(app):
    app.connect("autodoc-process-docstring", _as_written, priority=600)  # after napoleon
