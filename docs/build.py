"""Build the tutorials and the documentation site.

    python docs/build.py                 # run every tutorial in full: refresh the .ipynb
                                         # outputs and docs/tutorials/figures/
    python docs/build.py 02 03           # only the tutorials whose names contain 02 or 03
    python docs/build.py --quick         # quick mode (MINIDIFF_TUTORIAL_QUICK=1), as the CI test
    python docs/build.py --html          # also build the HTML site into docs/_build/html
    python docs/build.py --html-only     # only the site, from the committed .ipynb outputs

The tutorials' sources are the jupytext percent-format files ``docs/tutorials/NN-*.py`` (text,
so diffs are readable). Running one means: read it with jupytext, execute it with nbclient on a
Python kernel of *this* interpreter (so the kernel sees the same minidiff), and, in a full run,
write ``NN-*.ipynb`` next to it with its outputs (for reading on GitHub and for the site). The
tutorials save the figures the README shows when ``MINIDIFF_TUTORIAL_FIGURES`` names a folder,
which a full run sets to ``docs/tutorials/figures``.

Each tutorial ends by printing one line, ``key numbers: {...}`` (JSON), of numbers that its
quick and full runs compute alike (a first gradient, a first loss, a seeded draw's derivative).
``tests/test_tutorials.py`` compares the line of a fresh quick run with the one stored in the
committed ``.ipynb`` (:func:`key_numbers`, :func:`compare_key_numbers`), so stored outputs made
by older code fail the test: rerun ``python docs/build.py`` and commit the outputs with the
change that moved them.

The site is Sphinx with myst-nb: the tutorials from the .ipynb files (never executed while the
site builds) and an API reference generated from the docstrings. ``tests/test_tutorials.py``
uses the functions here: :func:`execute` in quick mode, :func:`build_site` with warnings as
errors. Everything needs the ``docs`` extra: ``pip install -e '.[docs]'``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
TUTORIALS = DOCS / "tutorials"
FIGURES = TUTORIALS / "figures"
QUICK_VARIABLE = "MINIDIFF_TUTORIAL_QUICK"
FIGURES_VARIABLE = "MINIDIFF_TUTORIAL_FIGURES"
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
KEY_NUMBERS = "key numbers: "
KEY_NUMBERS_RTOL = 1e-6


def sources(names: Sequence[str] = ()) -> list[Path]:
    """The tutorials' percent-format sources, in order; ``names`` filters by substring."""
    found = sorted(TUTORIALS.glob("[0-9][0-9]-*.py"))
    if names:
        found = [p for p in found if any(n in p.stem for n in names)]
    return found


@contextlib.contextmanager
def _environment(**values: str | None) -> Iterator[None]:
    """Set (or, for None, remove) environment variables for the kernel, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _kernel_manager_class() -> type:
    """A kernel manager whose kernel is ``sys.executable -m ipykernel_launcher``: the notebooks
    run on this interpreter (and its minidiff), whatever kernelspecs the machine has."""
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import KernelManager

    class ThisInterpreter(KernelManager):
        @property
        def kernel_spec(self) -> KernelSpec:
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f",
                                    "{connection_file}"],
                              display_name="Python 3", language="python", env={})

    return ThisInterpreter


def execute(source: Path, *, quick: bool, figures: Path | None = None,
            cell_timeout: int = 600) -> Any:
    """Read a percent-format tutorial, execute it top to bottom and return the notebook
    (an ``nbformat.NotebookNode`` with outputs). A failing cell (a check's ``assert``)
    raises ``nbclient.exceptions.CellExecutionError`` naming the cell."""
    import jupytext
    from nbclient import NotebookClient

    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                       "name": "python3"}
    client = NotebookClient(notebook, timeout=cell_timeout, kernel_name="python3",
                            kernel_manager_class=_kernel_manager_class(),
                            record_timing=False,
                            resources={"metadata": {"path": str(source.parent)}})
    with _environment(**{QUICK_VARIABLE: "1" if quick else None,
                         FIGURES_VARIABLE: None if figures is None else str(figures),
                         "MPLBACKEND": INLINE_BACKEND}):
        client.execute()
    return notebook


def key_numbers(notebook: Any) -> dict[str, Any]:
    """The ``key numbers: {...}`` line a notebook printed, parsed (JSON). Raises ``ValueError``
    naming what is wrong when there is none, or more than one.

    A cell's printed text is joined per stream before it is split into lines: the kernel sends
    stdout in pieces as its flush timer fires, and on a busy machine one ``print`` can arrive
    as two outputs (``"key numbers:"`` and ``" {...}"``)."""
    texts = ["".join(out.get("text", "") for out in cell.get("outputs", [])
                     if out.get("output_type") == "stream" and out.get("name") == stream)
             for cell in notebook.cells if cell.cell_type == "code"
             for stream in ("stdout", "stderr")]
    lines = [line[len(KEY_NUMBERS):] for text in texts for line in text.splitlines()
             if line.startswith(KEY_NUMBERS)]
    if len(lines) != 1:
        raise ValueError(f"expected one printed line starting {KEY_NUMBERS!r}, found "
                         f"{len(lines)}: each tutorial prints its key numbers once, as JSON")
    return json.loads(lines[0])


def compare_key_numbers(fresh: dict[str, Any], stored: dict[str, Any],
                        rtol: float = KEY_NUMBERS_RTOL) -> list[str]:
    """What differs between two key-number dicts: keys missing on either side, and numbers
    (nested lists compared entry by entry) that differ by more than ``rtol`` relative (a change
    of code moves them in the leading digits; another CPU's rounding, in the last)."""
    problems = [f"{k}: only in the fresh run" for k in fresh.keys() - stored.keys()]
    problems += [f"{k}: only in the stored outputs" for k in stored.keys() - fresh.keys()]

    def close(a: Any, b: Any) -> bool:
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
        if isinstance(a, int | float) and isinstance(b, int | float):
            return math.isclose(a, b, rel_tol=rtol, abs_tol=1e-300)
        return a == b

    for k in sorted(fresh.keys() & stored.keys()):
        if not close(fresh[k], stored[k]):
            problems.append(f"{k}: fresh {fresh[k]!r}, stored {stored[k]!r}")
    return problems


def run_tutorials(names: Sequence[str] = (), *, quick: bool = False) -> dict[str, float]:
    """Execute the tutorials; a full run writes each .ipynb and the figures. Returns the
    seconds each took."""
    import nbformat

    timings = {}
    for source in sources(names):
        start = time.perf_counter()
        if not quick:
            FIGURES.mkdir(exist_ok=True)
        notebook = execute(source, quick=quick, figures=None if quick else FIGURES)
        timings[source.stem] = time.perf_counter() - start
        if not quick:
            nbformat.write(notebook, source.with_suffix(".ipynb"))
        print(f"{source.stem}: {timings[source.stem]:.1f} s"
              + ("" if quick else f" -> {source.with_suffix('.ipynb').name}"), flush=True)
    return timings


def build_site(out: Path, *, warnings_as_errors: bool = True, quiet: bool = True) -> int:
    """Build the HTML site into ``out`` (tutorials from their committed outputs, nothing
    executed); returns Sphinx's exit status (non-zero on any warning when
    ``warnings_as_errors``)."""
    from sphinx.cmd.build import build_main

    args = ["-b", "html", "-E", "-d", str(Path(out) / ".doctrees")]
    if warnings_as_errors:
        args += ["-W", "--keep-going"]
    if quiet:
        args += ["-q"]
    return build_main([*args, str(DOCS), str(out)])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="run only tutorials whose names contain these")
    parser.add_argument("--quick", action="store_true",
                        help=f"quick mode ({QUICK_VARIABLE}=1): run and check, write nothing")
    parser.add_argument("--html", action="store_true", help="also build the HTML site")
    parser.add_argument("--html-only", action="store_true", help="only build the HTML site")
    parser.add_argument("--out", type=Path, default=DOCS / "_build" / "html",
                        help="where the site goes (default docs/_build/html)")
    args = parser.parse_args(argv)
    if not args.html_only:
        timings = run_tutorials(args.names, quick=args.quick)
        print(f"{len(timings)} tutorial(s) in {sum(timings.values()):.1f} s")
    if args.html or args.html_only:
        status = build_site(args.out, quiet=False)
        if status:
            return status
        print(f"site written to {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
