"""What a run records as it goes: the history, its JSON-lines log, the progress bar and the
summary of what the NaN policy dropped.

* :class:`History`: one entry per step of the total L = loss + w·KL, the loss and KL estimates,
  the gradient's global norm, the samples dropped as non-finite and why a step was skipped;
* :class:`HistoryLog`: the same records written to a file, one JSON object per line, as each
  step ends (flushed, so ``tail -f`` follows a run), with non-finite numbers as ``null`` so
  the file stays strict JSON;
* :class:`ProgressBar`: a tqdm bar (the ``progress`` extra) showing the step, loss, KL, total
  and the best total so far;
* :func:`nan_summary`: how many samples ``on_nan="skip"`` dropped, and at which steps.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .extras import require
from .optimizers import global_norm

__all__ = ["History", "HistoryLog", "ProgressBar", "nan_summary", "record_of"]


@dataclass
class History:
    """Per-step records: ``total`` = ``loss`` + w·``kl`` (estimates at the step's params),
    ``dropped`` (how many samples were dropped as non-finite) and ``dropped_samples`` (which),
    ``skipped`` (the reason a step made no update, or None) and ``grad_norm`` (the global norm
    of the raw gradient estimate)."""

    total: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    skipped: list[str | None] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    dropped_samples: list[list[int]] = field(default_factory=list)

    def append(self, est: Any) -> None:
        """Add one step's :class:`~.objective.StepEstimate`."""
        self.total.append(est.total)
        self.loss.append(est.loss)
        self.kl.append(est.kl)
        self.dropped.append(len(est.dropped))
        self.dropped_samples.append(list(est.dropped))
        self.skipped.append(est.skipped)
        self.grad_norm.append(math.nan if est.grad is None else global_norm(est.grad))

    def __len__(self) -> int:
        return len(self.total)

    @property
    def n_dropped(self) -> int:
        """Samples dropped over the whole run."""
        return sum(self.dropped)

    @property
    def n_skipped(self) -> int:
        """Steps that made no update."""
        return sum(s is not None for s in self.skipped)


def _number(x: float) -> float | None:
    return x if math.isfinite(x) else None


def record_of(history: History, step: int) -> dict[str, Any]:
    """Step ``step`` of the history as a JSON-ready dict (non-finite numbers as None)."""
    return {"step": step, "total": _number(history.total[step]),
            "loss": _number(history.loss[step]), "kl": _number(history.kl[step]),
            "grad_norm": _number(history.grad_norm[step]),
            "dropped": history.dropped_samples[step], "skipped": history.skipped[step]}


class HistoryLog:
    """The history as JSON lines at ``path``: :meth:`restart` writes the records of the steps
    so far (a fresh run: none; a resumed one: those of its checkpoint, dropping any lines a
    killed run wrote after it), then :meth:`append` adds one line per step."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: Any = None

    def restart(self, history: History) -> None:
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps(record_of(history, s)) + "\n" for s in range(len(history)))
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(lines, encoding="utf-8")
        tmp.replace(self.path)
        self._file = self.path.open("a", encoding="utf-8")

    def append(self, history: History, step: int) -> None:
        self._file.write(json.dumps(record_of(history, step)) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _tqdm() -> Any:
    return require("tqdm", "tqdm", "progress=True needs", "progress",
                   " (or pass progress=False)")


class ProgressBar:
    """A tqdm bar over the steps with the latest loss, KL, total and the best total.

    ``enabled``: True (tqdm required), False, or None: on when tqdm is installed and standard
    error is a terminal."""

    def __init__(self, n_steps: int, enabled: bool | None, initial: int = 0) -> None:
        if enabled is None:
            try:
                tqdm = _tqdm()
            except ImportError:
                tqdm = None
            enabled = tqdm is not None and sys.stderr.isatty()
        self.bar = None
        if enabled:
            self.bar = _tqdm()(total=n_steps, initial=initial, desc="calibrate", unit="step",
                               dynamic_ncols=True, file=sys.stderr)

    def update(self, step: int, est: Any, best_total: float) -> None:
        if self.bar is None:
            return
        self.bar.set_postfix_str(f"step {step}, loss {est.loss:.4g}, KL {est.kl:.4g}, "
                                 f"total {est.total:.4g}, best {best_total:.4g}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def nan_summary(history: History, n_samples: int | None = None) -> str:
    """One line on what the NaN policy did: samples dropped (how many, at which steps) and
    steps skipped (which, and why)."""
    steps = [s for s, k in enumerate(history.dropped) if k]
    skipped = [(s, why) for s, why in enumerate(history.skipped) if why is not None]
    if not steps and not skipped:
        return f"non-finite values: none in {len(history)} steps"
    of = f" of {n_samples * len(history)}" if n_samples else ""
    parts = [f"{history.n_dropped}{of} samples dropped as non-finite"]
    if steps:
        shown = ", ".join(f"{s} ({history.dropped[s]})" for s in steps[:10])
        more = f" and {len(steps) - 10} more" if len(steps) > 10 else ""
        parts[0] += f", at steps {shown}{more}"
    if skipped:
        shown = "; ".join(f"{s}: {why}" for s, why in skipped[:5])
        more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        parts.append(f"{len(skipped)} step(s) skipped ({shown}{more})")
    return "; ".join(parts)
