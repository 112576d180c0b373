"""Crash-safe run state: checkpoints that a killed run resumes from, exactly.

A run's state after s steps is everything the next step reads: the family's params φ, the
optimiser's state (its step count and moments), the best params so far with their total and
step, the early-stopping counter, and the history. The randomness needs no state: step s
draws from streams keyed by (seed, s) (:mod:`.objective`). So a run restored at step s and
continued computes what the uninterrupted run computed, bit for bit.

A checkpoint folder ``DIR`` holds

====================  ======================================================================
``manifest.json``     the commit point: format version, package version, the run's
                      configuration and its SHA-256, the step, and the size and SHA-256 of
                      each state file
``state-NNNNNN.npz``  the arrays (params, optimiser state, best params, history columns), as
                      NumPy's .npz, read back with ``allow_pickle=False``
``state-NNNNNN.json`` the rest: tree structures, scalar leaves, best total and step, the
                      reasons steps were skipped and the samples dropped
``history.jsonl``     one JSON line per step, appended as the run goes (:mod:`.records`); not
                      part of the checkpoint: a resumed run rewrites it from the checkpoint
``run.lock``          the lock a run holds on the folder while it runs, with the holder's pid,
                      host and start time (:mod:`.run_lock`); not part of the checkpoint
====================  ======================================================================

Writing: every file is written atomically (to a temporary file in ``DIR``, flushed and
fsync'ed, renamed over the target, then the folder fsync'ed), the state files first and the
manifest last. A crash at any moment leaves either the previous manifest and the files it
names, or the new ones: never a manifest that names a half-written file. Files the new
manifest no longer names are removed after it is in place.

Reading (``resume``) refuses, with a :class:`CheckpointError` that says what and what to do,

* a missing folder or manifest, a manifest that is not JSON, of another format version or
  package version, or whose configuration does not match its own hash (edited);
* a configuration other than the run's (each differing entry is named);
* a state file that is missing, shorter or longer than recorded (truncated), or whose
  SHA-256 differs (edited);
* any file in ``DIR`` that the run did not write (a planted pickle, say), and any .npz entry
  that would need unpickling: nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import minidiff as md
from minidiff.backend import host_load_npz, host_save_npz
from minidiff.pytree import LEAF, PyTreeDef, tree_leaves, tree_structure, tree_unflatten

from .records import History

__all__ = ["RunState", "CheckpointError", "save_checkpoint", "load_checkpoint",
           "prepare_folder", "config_hash", "FORMAT_VERSION", "MANIFEST", "HISTORY_LOG",
           "LOCK_FILE"]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
HISTORY_LOG = "history.jsonl"
LOCK_FILE = "run.lock"
_STATE = re.compile(r"state-\d{6}\.(npz|json)")
_TEMPORARY = re.compile(r"\..+\.tmp(-\d+)?")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed from (missing, corrupted, foreign or of another
    configuration), or a folder a fresh run will not write into."""


@dataclass
class RunState:
    """The state of a run after ``step`` steps (see the module notes)."""

    step: int
    params: Any
    optimizer_state: Any
    best_params: Any
    best_total: float
    best_step: int
    since_best: int
    stopped_early: bool
    history: History


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


def _canonical(config: Any) -> bytes:
    return json.dumps(config, sort_keys=True, separators=(",", ":"),
                      allow_nan=True).encode("utf-8")


def config_hash(config: dict) -> str:
    """SHA-256 of the configuration's canonical JSON (sorted keys, no spaces)."""
    return hashlib.sha256(_canonical(config)).hexdigest()


def _differences(old: Any, new: Any, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            where = f"{path}.{key}" if path else str(key)
            if key not in old:
                out.append(f"{where}: (absent) -> {new[key]!r}")
            elif key not in new:
                out.append(f"{where}: {old[key]!r} -> (absent)")
            else:
                out += _differences(old[key], new[key], where)
        return out
    return [] if _canonical(old) == _canonical(new) else [f"{path}: {old!r} -> {new!r}"]


# ---------------------------------------------------------------------------------------------
# Pytrees <-> (arrays, JSON)
# ---------------------------------------------------------------------------------------------


_KINDS = {dict: "dict", list: "list", tuple: "tuple"}


def _structure_to_json(s: PyTreeDef) -> Any:
    """A pytree structure as JSON: ``"*"`` for a leaf, else ``[kind, keys, children]``."""
    if s.is_leaf:
        return "*"
    if s.node not in _KINDS:
        raise TypeError(f"checkpoint: cannot store a {s.node.__name__} in a run state; use "
                        f"dicts, lists and tuples of arrays")
    return [_KINDS[s.node], list(s.keys), [_structure_to_json(c) for c in s.children]]


def _structure_from_json(s: Any) -> PyTreeDef:
    if s == "*":
        return LEAF
    kind, keys, subs = s
    node = {v: k for k, v in _KINDS.items()}[kind]
    return PyTreeDef(node, tuple(keys), tuple(_structure_from_json(c) for c in subs))


def _encode_tree(tree: Any, prefix: str, arrays: dict[str, Any]) -> dict:
    leaves = []
    b = md.get_backend()
    for k, leaf in enumerate(tree_leaves(tree)):
        if isinstance(leaf, bool):
            leaves.append({"bool": leaf})
        elif isinstance(leaf, int):
            leaves.append({"int": leaf})
        elif isinstance(leaf, float):
            leaves.append({"float": leaf})
        elif hasattr(leaf, "shape"):
            name = f"{prefix}/{k}"
            arrays[name] = b.to_host(md.stop_gradient(leaf))
            leaves.append({"array": name})
        else:
            raise TypeError(f"run state: cannot save a leaf of type {type(leaf).__name__} in "
                            f"{prefix} (arrays and Python numbers only)")
    return {"structure": _structure_to_json(tree_structure(tree)), "leaves": leaves}


def _decode_tree(spec: dict, arrays: dict[str, Any]) -> Any:
    b = md.get_backend()
    leaves = []
    for leaf in spec["leaves"]:
        (kind, value), = leaf.items()
        if kind == "array":
            leaves.append(b.from_host(arrays[value]))
        elif kind in ("bool", "int", "float"):
            leaves.append({"bool": bool, "int": int, "float": float}[kind](value))
        else:
            raise CheckpointError(f"run state: unknown leaf kind {kind!r}")
    return tree_unflatten(_structure_from_json(spec["structure"]), leaves)


_COLUMNS = ("total", "loss", "kl", "grad_norm")


def _encode(state: RunState) -> tuple[dict[str, Any], dict]:
    arrays: dict[str, Any] = {}
    b = md.get_backend()
    h = state.history
    for name in _COLUMNS:
        arrays[f"history/{name}"] = b.to_host(b.xp.asarray(getattr(h, name),
                                                            dtype=b.xp.float64))
    arrays["history/dropped"] = b.to_host(b.xp.asarray(h.dropped, dtype=b.xp.int64))
    meta = {
        "step": state.step,
        "params": _encode_tree(state.params, "params", arrays),
        "optimizer_state": _encode_tree(state.optimizer_state, "optimizer", arrays),
        "best_params": _encode_tree(state.best_params, "best", arrays),
        "best_total": state.best_total, "best_step": state.best_step,
        "since_best": state.since_best, "stopped_early": state.stopped_early,
        "history": {"skipped": h.skipped, "dropped_samples": h.dropped_samples},
    }
    return arrays, meta


def _decode(arrays: dict[str, Any], meta: dict) -> RunState:
    h = History()
    for name in _COLUMNS:
        setattr(h, name, [float(v) for v in arrays[f"history/{name}"].tolist()])
    h.dropped = [int(v) for v in arrays["history/dropped"].tolist()]
    h.skipped = list(meta["history"]["skipped"])
    h.dropped_samples = [list(v) for v in meta["history"]["dropped_samples"]]
    if not (len(h.total) == len(h.loss) == len(h.kl) == len(h.grad_norm) == len(h.dropped)
            == len(h.skipped) == len(h.dropped_samples) == meta["step"]):
        raise CheckpointError("run state: the history's columns disagree in length with the "
                              "step recorded")
    return RunState(step=int(meta["step"]), params=_decode_tree(meta["params"], arrays),
                    optimizer_state=_decode_tree(meta["optimizer_state"], arrays),
                    best_params=_decode_tree(meta["best_params"], arrays),
                    best_total=float(meta["best_total"]), best_step=int(meta["best_step"]),
                    since_best=int(meta["since_best"]),
                    stopped_early=bool(meta["stopped_early"]), history=h)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform without directory handles (Windows)
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one: a
    temporary file in the same folder, flushed and fsync'ed, renamed over ``path``, and the
    folder fsync'ed so the rename itself is durable."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_folder(path.parent)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _foreign_files(folder: Path) -> list[str]:
    ours = {MANIFEST, HISTORY_LOG, f".{HISTORY_LOG}.tmp", LOCK_FILE}
    return sorted(p.name for p in folder.iterdir()
                  if p.name not in ours and not _STATE.fullmatch(p.name)
                  and not _TEMPORARY.fullmatch(p.name))


def _refuse_foreign(folder: Path) -> None:
    foreign = _foreign_files(folder)
    if foreign:
        raise CheckpointError(f"checkpoint folder {folder} holds files this run did not write: "
                              f"{', '.join(foreign)}; refusing to use it (nothing in a "
                              f"checkpoint is ever unpickled). Remove them or choose another "
                              f"folder")


def prepare_folder(directory: str | Path) -> Path:
    """The folder for a fresh run's checkpoints: created if absent; refused if it holds a
    checkpoint (resume it, or choose another folder) or files the run did not write."""
    folder = Path(directory)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"checkpoint path {folder} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / MANIFEST).exists():
        raise CheckpointError(f"checkpoint folder {folder} already holds a checkpoint; pass "
                              f"resume=True (--resume) to continue it, or choose another "
                              f"folder")
    _refuse_foreign(folder)
    for p in folder.iterdir():  # leftovers of a run killed before its first checkpoint
        if p.name != LOCK_FILE:  # the lock this run holds (run_lock.py)
            p.unlink()
    return folder


def save_checkpoint(directory: str | Path, state: RunState, config: dict) -> None:
    """Write ``state`` to ``directory`` atomically (see the module notes)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    arrays, meta = _encode(state)
    buffer = io.BytesIO()
    host_save_npz(buffer, arrays)
    stem = f"state-{state.step:06d}"
    payloads = {f"{stem}.npz": buffer.getvalue(),
                f"{stem}.json": json.dumps(meta, allow_nan=True).encode("utf-8")}
    for name, data in payloads.items():
        write_atomic(folder / name, data)
    manifest = {"format": FORMAT_VERSION, "package": "minidiff", "version": md.__version__,
                "config": config, "config_hash": config_hash(config), "step": state.step,
                "files": {name: {"bytes": len(data), "sha256": _digest(data)}
                          for name, data in payloads.items()}}
    write_atomic(folder / MANIFEST,
                 json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8"))
    for p in folder.iterdir():  # the previous checkpoint's files, and stray temporaries
        if (_STATE.fullmatch(p.name) and p.name not in payloads) or (
                _TEMPORARY.fullmatch(p.name) and not p.name.startswith(f".{HISTORY_LOG}")):
            p.unlink(missing_ok=True)


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not folder.is_dir():
        raise CheckpointError(f"cannot resume: there is no checkpoint folder {folder}")
    if not path.exists():
        raise CheckpointError(f"cannot resume: {folder} has no {MANIFEST}, so no checkpoint "
                              f"was completed there (a run killed before its first checkpoint "
                              f"leaves none); start afresh without resume")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"cannot resume: {path} is not valid JSON ({exc}): truncated or "
                              f"edited") from exc
    if not isinstance(manifest, dict) or manifest.get("package") != "minidiff":
        raise CheckpointError(f"cannot resume: {path} is not a minidiff checkpoint manifest")
    if manifest.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"cannot resume: {path} has format version "
                              f"{manifest.get('format')!r}; this minidiff reads version "
                              f"{FORMAT_VERSION}")
    if manifest.get("version") != md.__version__:
        raise CheckpointError(f"cannot resume: the checkpoint was written by minidiff "
                              f"{manifest.get('version')}, this is {md.__version__}; a run "
                              f"resumes exactly only with the code that started it")
    for key in ("config", "config_hash", "step", "files"):
        if key not in manifest:
            raise CheckpointError(f"cannot resume: {path} lacks {key!r}: edited")
    step, files = manifest["step"], manifest["files"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"cannot resume: {path} records step {step!r}, not an integer "
                              f"≥ 0: edited")
    if not isinstance(files, dict) or not all(
            isinstance(e, dict) and isinstance(e.get("bytes"), int)
            and isinstance(e.get("sha256"), str) for e in files.values()):
        raise CheckpointError(f"cannot resume: {path} lists its state files in a form this "
                              f"minidiff did not write (each needs bytes and sha256): edited")
    if config_hash(manifest["config"]) != manifest["config_hash"]:
        raise CheckpointError(f"cannot resume: the configuration in {path} does not match its "
                              f"recorded hash: the manifest was edited")
    return manifest


def load_checkpoint(directory: str | Path, config: dict) -> RunState:
    """The run state of the checkpoint in ``directory``, after checking it (see the module
    notes) against this run's ``config``; :class:`CheckpointError` otherwise."""
    folder = Path(directory)
    manifest = _read_manifest(folder)
    if manifest["config"] != config and _canonical(manifest["config"]) != _canonical(config):
        changes = _differences(manifest["config"], config)
        raise CheckpointError(f"cannot resume: the checkpoint in {folder} was written by a run "
                              f"with another configuration ({'; '.join(changes[:6])}"
                              f"{'; ...' if len(changes) > 6 else ''}); resume with the same "
                              f"settings, or start afresh in another folder")
    _refuse_foreign(folder)
    data: dict[str, bytes] = {}
    for name, entry in sorted(manifest["files"].items()):
        path = folder / name
        if not _STATE.fullmatch(name) or not path.exists():
            raise CheckpointError(f"cannot resume: {path} is missing")
        raw = path.read_bytes()
        if len(raw) != entry["bytes"]:
            raise CheckpointError(f"cannot resume: {path} has {len(raw)} bytes, the manifest "
                                  f"recorded {entry['bytes']}: truncated or edited")
        if _digest(raw) != entry["sha256"]:
            raise CheckpointError(f"cannot resume: {path} does not match the SHA-256 in the "
                                  f"manifest: edited or corrupted")
        data[name] = raw
    stem = f"state-{manifest['step']:06d}"
    if set(data) != {f"{stem}.npz", f"{stem}.json"}:
        raise CheckpointError(f"cannot resume: the manifest of {folder} names "
                              f"{sorted(data)}, not the state files of step {manifest['step']}")
    try:
        arrays = host_load_npz(io.BytesIO(data[f"{stem}.npz"]))
    except ValueError as exc:  # allow_pickle=False refused a pickle, or not an .npz at all
        raise CheckpointError(f"cannot resume: {folder / (stem + '.npz')} is not a plain .npz "
                              f"of arrays ({exc}); nothing in a checkpoint is ever "
                              f"unpickled") from exc
    except Exception as exc:  # zipfile.BadZipFile, EOFError, OSError
        raise CheckpointError(f"cannot resume: {folder / (stem + '.npz')} cannot be read "
                              f"({type(exc).__name__}: {exc})") from exc
    try:
        meta = json.loads(data[f"{stem}.json"].decode("utf-8"))
        state = _decode(arrays, meta)
    except CheckpointError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"cannot resume: the state of step {manifest['step']} in "
                              f"{folder} is inconsistent ({type(exc).__name__}: {exc})") from exc
    if state.step != manifest["step"] or (math.isnan(state.best_total)):
        raise CheckpointError(f"cannot resume: the state files of {folder} disagree with its "
                              f"manifest")
    return state
