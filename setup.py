"""Packaging: one top-level package, ``minidiff``.

The folders ``models/`` and ``inference/`` sit at the top of the repository (where the design
puts them) and install as ``minidiff.models`` and ``minidiff.inference``. The package list is
computed, so a new subpackage can never be silently left out of the wheel.
"""

from setuptools import find_packages, setup

# import name -> folder in this repository
ROOTS = {"minidiff": "minidiff", "minidiff.models": "models", "minidiff.inference": "inference"}


def _packages() -> list[str]:
    found = []
    for name, folder in ROOTS.items():
        found.append(name)
        found += [f"{name}.{sub}" for sub in find_packages(folder)]
    return found


setup(packages=_packages(), package_dir={name: folder for name, folder in ROOTS.items()})
