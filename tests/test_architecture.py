"""The layering of docs/architecture.md, enforced.

minidiff is a stack of layers, each importing only from the layers above it (earlier in the
list below), never from a layer below it. Inside ``ops/`` the same rule orders the modules.
Modules import each other at the top of the file only: a function-level import of a minidiff
module is how a cycle hides, so it is refused (optional dependencies such as matplotlib, tqdm,
cupy and dask may be imported where they are used).

The layer list is read from ``docs/architecture.md`` (the block under "## Layers"), so the
picture and the code cannot drift apart: a new module must be given a place there.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
# import name of each source folder (models/ and inference/ install inside minidiff)
FOLDERS = {"minidiff": ROOT / "minidiff", "minidiff.models": ROOT / "models",
           "minidiff.inference": ROOT / "inference"}
ARRAY_LIBRARIES = {"numpy", "cupy", "cupyx", "scipy"}


def read_layers() -> list[list[str]]:
    """The layers of docs/architecture.md, top first: each a list of module patterns.

    The block is a fenced list of lines ``NAME  modules: a, b, c/  ...description``; a pattern
    ending in ``/`` is a package (every module inside), ``ops/linear`` a module path.
    """
    text = DOC.read_text(encoding="utf-8")
    block = text.split("## Layers", 1)[1].split("```", 2)[1]
    return [[p.strip() for p in m.group(1).split(",") if p.strip()]
            for m in re.finditer(r"^\w+\s+\[(.*?)\]", block, re.S | re.M)]


def module_name(path: Path, folders: dict[str, Path] = FOLDERS) -> str:
    for package, folder in folders.items():
        if folder in path.parents or path.parent == folder:
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            return ".".join([package, *parts])
    raise AssertionError(path)


def sources() -> list[Path]:
    found = []
    for folder in FOLDERS.values():
        found += sorted(p for p in folder.rglob("*.py") if ".venv" not in p.parts)
    return found


def layer_of(module: str, layers: list[list[str]]) -> tuple[int, int] | None:
    """(layer, position inside the layer) of ``module``; the most specific pattern wins."""
    best = None
    for i, patterns in enumerate(layers):
        for j, pattern in enumerate(patterns):
            name = "minidiff." + pattern.rstrip("/").replace("/", ".")
            if pattern.endswith("/"):
                hit = module == name or module.startswith(name + ".")
            else:
                hit = module == name
            if hit and (best is None or len(name) > best[2]):
                best = (i, j, len(name))
    return None if best is None else best[:2]


def resolve(node: ast.ImportFrom | ast.Import, module: str, is_package: bool,
            folders: dict[str, Path] = FOLDERS) -> list[str]:
    """The absolute names an import statement imports (minidiff ones only)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "minidiff"]
    if node.level == 0:
        base = node.module or ""
        if base.split(".")[0] != "minidiff":
            return []
    else:
        parts = module.split(".")
        keep = len(parts) - node.level + (1 if is_package else 0)
        base = ".".join(parts[:keep] + ([node.module] if node.module else []))
    # `from pkg import mod, other` imports submodules when every name is one; otherwise it
    # imports from the module `pkg` itself
    subs = [f"{base}.{a.name}" for a in node.names]
    return subs if all(known(s, folders) for s in subs) else [base]


def minidiff_imports(path: Path, folders: dict[str, Path] = FOLDERS):
    """(statement, names, top_level) for each import of a minidiff module in ``path`` (a file
    of the source folders ``folders``)."""
    module = module_name(path, folders)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = resolve(node, module, path.name == "__init__.py", folders)
            if names:
                yield node, names, id(node) in top


def known(name: str, folders: dict[str, Path] = FOLDERS) -> bool:
    """True when ``name`` is a module (not a function imported from one)."""
    for package, folder in folders.items():
        if name == package:
            return True
        if name.startswith(package + "."):
            rel = Path(folder, *name[len(package) + 1:].split("."))
            if rel.with_suffix(".py").exists() or (rel / "__init__.py").exists():
                return True
    return False


LAYERS = read_layers()
FACADES = {"minidiff", "minidiff.__main__"}  # the package's front door imports everything


def test_the_layer_list_is_read_from_the_docs():
    assert len(LAYERS) >= 8
    flat = [p for layer in LAYERS for p in layer]
    assert "backend/" in flat and "core" in flat and "models/" in flat


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_has_a_layer(path):
    module = module_name(path)
    if module in FACADES:
        return
    assert layer_of(module, LAYERS) is not None, (
        f"{module} has no place in docs/architecture.md's layer list; add it there")


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_from_a_layer_below_it(path):
    module = module_name(path)
    if module in FACADES:
        return
    mine = layer_of(module, LAYERS)
    bad = []
    for node, names, _ in minidiff_imports(path):
        for name in names:
            if not known(name) or name == module:
                continue
            if name == "minidiff":  # the façade: only for what is built on the library
                if mine[0] < layer_of("minidiff.models", LAYERS)[0]:
                    bad.append(f"line {node.lineno}: imports the minidiff package itself")
                continue
            theirs = layer_of(name, LAYERS)
            if theirs is None:
                continue  # reported by test_every_module_has_a_layer
            if theirs > mine and not module.startswith(name + "."):
                bad.append(f"line {node.lineno}: {name} (layer {theirs}) is below {module} "
                           f"(layer {mine})")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_level_imports_of_minidiff_modules(path):
    inner = [f"line {node.lineno}: {', '.join(sorted(set(names)))}"
             for node, names, top in minidiff_imports(path) if not top]
    assert not inner, "import these at the top of the module:\n" + "\n".join(inner)


def array_library_imports(path: Path) -> list[str]:
    """Every import of an array library in ``path``: import statements anywhere in the file,
    and ``import_module("x")`` / ``__import__("x")`` with a literal name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0]
            if called in ("import_module", "__import__") and isinstance(first, ast.Constant) \
                    and isinstance(first.value, str):
                names = [first.value]
        found += [f"{n} (line {node.lineno})" for n in names
                  if n.split(".")[0] in ARRAY_LIBRARIES]
    return found


BACKEND = ROOT / "minidiff" / "backend"


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_backend_package_imports_an_array_library(path):
    if BACKEND in path.parents:
        return
    found = array_library_imports(path)
    assert not found, f"only the minidiff/backend/ package may import an array library: {found}"


def test_the_array_library_scan_sees_the_backend_package_import_them():
    found = {entry.split()[0] for path in BACKEND.glob("*.py")
             for entry in array_library_imports(path)}
    assert {"numpy", "scipy.special", "cupy"} <= found
    assert not (ROOT / "minidiff" / "backend.py").exists()  # the rule's exception is the package


def test_the_scans_catch_what_they_should(tmp_path):
    """The checks above are only as good as the scan: try it on a file planted in a temporary
    copy of the package (the source tree is never written to)."""
    copy = tmp_path / "minidiff"
    shutil.copytree(ROOT / "minidiff", copy, ignore=shutil.ignore_patterns("__pycache__"))
    folders = {**FOLDERS, "minidiff": copy}
    planted = copy / "ops" / "_planted_for_test.py"
    planted.write_text("from ..transforms import grad\n\ndef f():\n    from . import linear\n")
    imports = list(minidiff_imports(planted, folders))
    assert [top for _, _, top in imports] == [True, False]
    names = imports[0][1]
    assert "minidiff.transforms" in names
    assert layer_of("minidiff.transforms", LAYERS) > layer_of("minidiff.ops.linear", LAYERS)


def test_the_model_registry_is_the_one_list_of_models():
    """A model is listed once, in models/registry.py: no other module of the library imports
    two or more model modules (a second table of models would drift from the registry)."""
    registry_text = (ROOT / "models" / "registry.py").read_text(encoding="utf-8")
    listed = set(re.findall(r'"minidiff\.models\.(\w+)"', registry_text))
    assert {"random_walk", "sir", "cont", "brock_hommes", "lob", "housing"} <= listed
    for path in sources():
        imported = {name.rsplit(".", 1)[-1] for _, names, _ in minidiff_imports(path)
                    for name in names if name.startswith("minidiff.models.")}
        assert len(imported & listed) <= 1, (
            f"{module_name(path)} imports the models {sorted(imported & listed)}: read "
            f"minidiff.models.registry instead")
