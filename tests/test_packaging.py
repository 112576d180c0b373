"""Packaging: one top-level package, ``minidiff``, and one spelling of every module in it.

``models/`` and ``inference/`` sit at the top of the repository and install as
``minidiff.models`` and ``minidiff.inference`` (``setup.py`` maps them and computes the package
list). What is checked:

* the package list ``setup.py`` computes holds every folder with an ``__init__.py`` (offline);
* no file of the repository imports ``models`` or ``inference`` as top-level names (an AST scan,
  offline): from the repository root both spellings would import, as two module objects of one
  file;
* a wheel built from a copy of the sources (``pip wheel --no-deps``) has ``minidiff`` as its only
  top-level package and holds exactly the repository's modules, and installed in a fresh venv it
  gives ``import minidiff.models`` but not ``import models``. These tests are marked
  ``packaging`` (about 5 s together, most of it building the wheel in an isolated environment);
  they need setuptools and wheel from the package index, and skip with the reason where pip
  cannot fetch them (offline: or deselect them with ``-m "not packaging"``).
"""

from __future__ import annotations

import ast
import runpy
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy

ROOT = Path(__file__).resolve().parent.parent
# import name -> folder, as setup.py maps them
PACKAGE_ROOTS = {"minidiff": "minidiff", "minidiff.models": "models",
                 "minidiff.inference": "inference"}
SCANNED = ("minidiff", "models", "inference", "tests", "bench")
BUILD_FILES = ("setup.py", "setup.cfg", "pyproject.toml", "README.md")


def _source_files() -> dict[str, Path]:
    """Installed path (``minidiff/models/cont.py``) -> source file, for every module."""
    files = {}
    for name, folder in PACKAGE_ROOTS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "__pycache__" not in path.parts:
                files["/".join([*name.split("."), *path.relative_to(ROOT / folder).parts])] = path
    return files


def _packages() -> set[str]:
    """Dotted names of every folder with an ``__init__.py`` under the mapped folders."""
    found = set()
    for name, folder in PACKAGE_ROOTS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join([name, *parts]))
    return found


# ---------------------------------------------------------------------------------------------
# offline
# ---------------------------------------------------------------------------------------------


def test_setup_py_lists_every_package_and_maps_the_folders(monkeypatch):
    captured = {}
    monkeypatch.setattr("setuptools.setup", lambda **kwargs: captured.update(kwargs))
    monkeypatch.chdir(ROOT)
    runpy.run_path(str(ROOT / "setup.py"), run_name="__main__")
    assert set(captured["packages"]) == _packages()
    assert {"minidiff.models", "minidiff.inference"} <= set(captured["packages"])
    assert captured["package_dir"] == PACKAGE_ROOTS


def top_level_imports_of_models_or_inference(source: str, filename: str) -> list[str]:
    """``import models``, ``from inference.x import y``, ``import_module("models.sir")``, ...:
    every absolute import whose first name is ``models`` or ``inference``, with its line."""
    banned = {"models", "inference"}
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            found += [f"{a.name} (line {node.lineno})" for a in node.names
                      if a.name.split(".")[0] in banned]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] in banned:
            found.append(f"{node.module} (line {node.lineno})")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            value = node.args[0].value
            if called in ("import_module", "__import__") and isinstance(value, str) \
                    and value.split(".")[0] in banned:
                found.append(f"{value} (line {node.lineno})")
    return found


def test_no_file_imports_models_or_inference_as_top_level_names():
    sources = [p for folder in SCANNED for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(sources) > 40
    offenders = {}
    for path in sources:
        found = top_level_imports_of_models_or_inference(path.read_text(encoding="utf-8"),
                                                         str(path))
        if found:
            offenders[str(path.relative_to(ROOT))] = found
    assert offenders == {}


def test_the_import_scan_finds_each_spelling():
    source = ("import models\nfrom inference.gvi import fit\nimport importlib\n"
              "importlib.import_module('models.sir')\nfrom minidiff.models import sir\n"
              "from .models import cont\n")
    assert top_level_imports_of_models_or_inference(source, "<test>") == [
        "models (line 1)", "inference.gvi (line 2)", "models.sir (line 4)"]


# ---------------------------------------------------------------------------------------------
# the wheel (needs setuptools and wheel from the package index)
# ---------------------------------------------------------------------------------------------

OFFLINE_SIGNS = ("No matching distribution found", "Could not find a version",
                 "Failed to establish a new connection", "Network is unreachable")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built by ``pip wheel --no-deps`` from a fresh copy of the sources (an in-tree
    build would reuse ``build/``, where a deleted module can linger)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    for name in BUILD_FILES:
        shutil.copy2(ROOT / name, source / name if source.exists() else _mkdir(source) / name)
    for folder in PACKAGE_ROOTS.values():
        shutil.copytree(ROOT / folder, source / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = work / "dist"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           "--disable-pip-version-check", "-w", str(out), str(source)],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        if any(sign in proc.stderr for sign in OFFLINE_SIGNS):
            pytest.skip("pip could not fetch the build requirements (setuptools, wheel): "
                        "offline? " + proc.stderr.strip().splitlines()[-1])
        pytest.fail(f"pip wheel failed:\n{proc.stdout}\n{proc.stderr}")
    (built,) = out.glob("minidiff-*.whl")
    return built


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


@pytest.mark.packaging
def test_the_wheel_has_one_top_level_package_holding_every_module(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        declared = archive.read(top_level).decode().split()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"minidiff"}
    assert declared == ["minidiff"]
    modules = {n for n in names if n.endswith(".py")}
    assert modules == set(_source_files())  # nothing left out, nothing stale
    for package in _packages():
        assert "/".join(package.split(".")) + "/__init__.py" in modules
    assert {"minidiff/models/cont.py", "minidiff/models/sir.py",
            "minidiff/inference/__init__.py"} <= modules


@pytest.mark.packaging
def test_installed_in_a_fresh_venv_import_models_fails_and_minidiff_models_works(wheel,
                                                                                 tmp_path):
    """The venv gets the wheel alone (``--no-deps``, no index); NumPy and SciPy are borrowed
    from this interpreter by a .pth line (which adds their folder to sys.path but runs no .pth
    file of it, so this checkout's editable install does not leak in)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", "--disable-pip-version-check", str(wheel)],
                   check=True, capture_output=True, timeout=120)
    purelib = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    borrowed = {str(Path(np.__file__).parent.parent), str(Path(scipy.__file__).parent.parent)}
    (purelib / "borrowed_numpy_scipy.pth").write_text("\n".join(sorted(borrowed)) + "\n")
    assert sysconfig.get_paths()["purelib"] != str(purelib)

    def run(code: str) -> subprocess.CompletedProcess:
        # cwd: an empty folder, so the checkout's own models/ is not on the path
        empty = tmp_path / "elsewhere"
        empty.mkdir(exist_ok=True)
        return subprocess.run([str(python), "-c", code], cwd=empty, capture_output=True,
                              text=True, timeout=120)

    for name in ("models", "inference"):
        proc = run(f"import {name}")
        assert proc.returncode != 0 and f"No module named '{name}'" in proc.stderr, proc.stderr
    proc = run("import minidiff, minidiff.models.cont, minidiff.inference\n"
               "print(minidiff.__file__)\n"
               "print(minidiff.models.cont.simulate((-2.8, 0.8, 0.01, 0.5), n_timesteps=3, "
               "n_agents=10, rng=0).shape)")
    assert proc.returncode == 0, proc.stderr
    location, shape = proc.stdout.split()[:2]
    assert Path(location).is_relative_to(purelib) and shape == "(3,)"
