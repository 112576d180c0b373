"""The tutorials run, their checks pass, and the documentation site builds.

* Every tutorial (``docs/tutorials/NN-*.py``, jupytext percent format) is executed top to
  bottom in quick mode (``MINIDIFF_TUTORIAL_QUICK=1``: fewer samples and steps) on a Python
  kernel of this interpreter. Each tutorial's check cells ``assert`` its results within
  tolerances set by their Monte Carlo error, so a wrong derivative fails here.
* The committed ``.ipynb`` files (the full run's outputs, refreshed by ``python docs/build.py``)
  hold the same cells as their sources, and carry outputs.
* The stored outputs come from the current code: each tutorial prints a ``key numbers`` line
  of numbers its quick and full runs compute alike, and the fresh quick run's must equal the
  committed notebook's to ``build.KEY_NUMBERS_RTOL`` (relative).
* The Sphinx site builds from them without executing anything, with warnings as errors, and
  its tutorial pages show their figures.

All of it needs the ``docs`` extra (``pip install -e '.[docs]'``); without it these tests are
skipped, saying so.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS_EXTRA = ("jupytext", "nbclient", "nbformat", "ipykernel", "matplotlib", "sphinx", "myst_nb",
              "furo")
MISSING = [name for name in DOCS_EXTRA if importlib.util.find_spec(name) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"the tutorials need the docs extra (missing: {', '.join(MISSING)}); "
                          f"pip install -e '.[docs]'")


def _load_build():
    spec = importlib.util.spec_from_file_location("docs_build", ROOT / "docs" / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("docs_build", module)
    spec.loader.exec_module(module)
    return module


build = _load_build()
SOURCES = build.sources()
TUTORIALS = [p.stem for p in SOURCES]


def test_there_are_tutorials():
    assert len(SOURCES) >= 4
    # 00 is the engine walkthrough, then the tutorial's notebooks 01, 02, ...
    assert [p.stem[:2] for p in SOURCES] == [f"{i:02d}" for i in range(len(SOURCES))]


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_runs_in_quick_mode_and_its_checks_pass(name):
    notebook = build.execute(build.TUTORIALS / f"{name}.py", quick=True, cell_timeout=300)
    printed = "".join(out.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for out in cell.get("outputs", []))
    assert "quick mode" in printed
    assert "checks passed" in printed  # the check cells ran (a failed assert raises above)
    exercises = re.findall(r"\*\*Exercise (\d+)", "".join(
        c.source for c in notebook.cells if c.cell_type == "markdown"))
    for n in exercises:  # every exercise's check cell ran and passed on the shipped solution
        assert f"exercise {n}: checks passed" in printed, f"{name}: exercise {n} was not checked"
    if name.startswith("00"):
        assert len(exercises) >= 3
    import nbformat

    ipynb = build.TUTORIALS / f"{name}.ipynb"
    assert ipynb.exists(), f"{ipynb.name} is missing: run python docs/build.py {name[:2]}"
    problems = build.compare_key_numbers(build.key_numbers(notebook),
                                         build.key_numbers(nbformat.read(ipynb, as_version=4)))
    assert not problems, (f"{ipynb.name}'s stored outputs do not come from the current code "
                          f"(run python docs/build.py {name[:2]} and commit them): "
                          + "; ".join(problems))


def test_key_numbers_are_read_when_one_print_arrives_in_two_outputs():
    """On a busy machine the kernel can flush a print's words as separate stream outputs."""
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    split = [new_output("stream", name="stdout", text="quick mode\nkey numbers:"),
             new_output("stream", name="stderr", text="a warning\n"),
             new_output("stream", name="stdout", text=' {"x": [1.5, 2]}\n')]
    notebook = new_notebook(cells=[new_code_cell("print(...)", outputs=split)])
    assert build.key_numbers(notebook) == {"x": [1.5, 2]}
    twice = new_notebook(cells=[new_code_cell("print(...)", outputs=split),
                                new_code_cell("print(...)", outputs=split[:1] + split[2:])])
    with pytest.raises(ValueError, match="found 2"):
        build.key_numbers(twice)


@pytest.mark.parametrize("name", TUTORIALS)
def test_committed_notebook_matches_its_source_and_has_outputs(name):
    import jupytext
    import nbformat

    ipynb = build.TUTORIALS / f"{name}.ipynb"
    assert ipynb.exists(), f"{ipynb.name} is missing: run python docs/build.py {name[:2]}"
    committed = nbformat.read(ipynb, as_version=4)
    source = jupytext.read(build.TUTORIALS / f"{name}.py")
    assert [(c.cell_type, c.source) for c in committed.cells] == \
        [(c.cell_type, c.source) for c in source.cells], (
        f"{ipynb.name} is out of date with {name}.py: run python docs/build.py {name[:2]}")
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert all(c.get("outputs") is not None for c in code)
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in code for o in c.outputs), f"{ipynb.name} has no figures"
    assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)
    printed = "".join(o.get("text", "") for c in code for o in c.outputs)
    assert "full run" in printed, f"{ipynb.name} holds a quick run's outputs"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built once for the tests below, with warnings as errors (its exit status)."""
    import warnings

    out = tmp_path_factory.mktemp("site") / "html"
    with warnings.catch_warnings():
        # Sphinx's own napoleon uses an autodoc interface that Sphinx 9 deprecates (not ours)
        warnings.filterwarnings("ignore", "The mapping interface for autodoc options")
        status = build.build_site(out, warnings_as_errors=True)
    return out, status


def test_site_builds_with_warnings_as_errors(site):
    out, status = site
    assert status == 0
    for name in TUTORIALS:
        page = (out / "tutorials" / f"{name}.html").read_text(encoding="utf-8")
        assert "<img" in page, f"the page of {name} shows no figure"
    api = (out / "api" / "minidiff.html").read_text(encoding="utf-8")
    assert "minidiff.grad" in api and "minidiff.jacfwd" in api
    assert 'id="minidiff.make_program"' in api and 'id="minidiff.jit.api.jit"' in api
    for module in ("random", "stochastic", "models"):
        assert (out / "api" / f"{module}.html").exists()
    models = (out / "api" / "models.html").read_text(encoding="utf-8")
    for model in ("random_walk", "sir", "cont", "brock_hommes", "lob", "housing"):
        assert f'id="minidiff.models.{model}.simulate"' in models, f"{model} is not in the API"


def test_site_typesets_maths_from_its_own_copy_and_hides_setup_cells(site):
    out, status = site
    assert status == 0
    assert (out / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert (out / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    for page in out.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        scripts = re.findall(r"<script[^>]*src=\"([^\"]*)\"", html)
        assert not [s for s in scripts if "://" in s or s.startswith("//")], (
            f"{page.name} loads a script from the network")
    for name in TUTORIALS:
        page = (out / "tutorials" / f"{name}.html").read_text(encoding="utf-8")
        assert "_static/mathjax/tex-chtml.js" in page
        assert "QUICK = os.environ" not in page, f"the setup cell of {name} is shown"
    # links into the code land on line-anchored pages of the code, not downloads
    source = (build.TUTORIALS / "00-minidiff-from-scratch.py").read_text(encoding="utf-8")
    n = re.search(r"\[`bind`\]\(\.\./\.\./minidiff/core\.py#L(\d+)\)", source).group(1)
    walkthrough = (out / "tutorials" / "00-minidiff-from-scratch.html").read_text("utf-8")
    assert f'href="../_code/minidiff/core.py.html#L{n}"' in walkthrough
    assert "_downloads" not in walkthrough
    code = (out / "_code" / "minidiff" / "core.py.html").read_text(encoding="utf-8")
    line = re.search(rf'<span class="line" id="L{n}">(.*?)(?=<span class="line")', code)
    assert line and re.sub(r"<[^>]+>", "", line.group(1)).startswith(f"{n}def bind(")


def test_a_docstring_that_would_show_as_a_raw_block_is_named_in_a_warning(caplog):
    """docs/conf.py renders docstrings as reStructuredText; one that does not parse falls back
    to a raw block and says so in a warning (which fails the -W site build)."""
    spec = importlib.util.spec_from_file_location("docs_conf", ROOT / "docs" / "conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)

    class App:
        env = None

    good = ["One line.", "", "A formula::", "", "    y = |x|", ""]
    conf._as_written(App(), "module", "good", None, {}, lines := list(good))
    assert lines == good
    bad = ["One line.", "", "    an indented formula, no '::' before it", "  then less", ""]
    # Sphinx's loggers stop propagating to the root logger once a site build has run in this
    # process, so listen on Sphinx's own logger as well
    sphinx_logger = logging.getLogger("sphinx")
    sphinx_logger.addHandler(caplog.handler)
    try:
        with caplog.at_level("WARNING"):
            conf._as_written(App(), "module", "bad.module", None, {}, lines := list(bad))
    finally:
        sphinx_logger.removeHandler(caplog.handler)
    assert lines[0] == "::"
    assert "bad.module" in caplog.text and "not valid reStructuredText" in caplog.text
