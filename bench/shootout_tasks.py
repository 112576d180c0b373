"""The shoot-out's tasks: a simulator, a prior box, a truth and summary statistics each.

Every method sees a task the same way: θ lives in a box [low, high] (the prior is uniform on
it), ``simulate(θ, seed)`` runs the minidiff model on plain arrays and returns the observed
series as a NumPy array, and ``summaries(series)`` maps a series to the fixed-length vector that
the summary-based methods (sbi's NPE, pyabc's ABC-SMC) compare. minidiff's GVI uses the model's
own default loss and weight w (its ``CALIBRATION``, ``minidiff.models.registry``), and black-it
its method of simulated moments on the series, so each method is run the way its users would
run it.

Tasks (θ in natural units, the box per coordinate):

* ``bh100``, ``bh500``: Brock–Hommes with four belief types, parameter set 1 of Platt (2020) and
  Dyer et al. (2024): (g2, g3, b2, b3) = (0.9, 0.9, 0.2, −0.2) (``brock_hommes.DEFAULT_PARAMS``),
  T = 100 and 500; g ∈ [0, 1.5], b ∈ [−1, 1].
* ``sir``: the well-mixed SIR with N = 1000 agents and T = 50 days, (β, γ, i₀) =
  (0.3, 0.1, 0.01) (``sir.DEFAULT_PARAMS``); β ∈ [0.05, 1], γ ∈ [0.02, 0.5], i₀ ∈ [0.002, 0.05].
* ``cont``: the tutorial's Cont (N = 1000, T = 100, s = 0.1, k = 5), θ = log₁₀ (μ, σ_ν, σ, η)
  with truth log₁₀ (1, 0.5, 1, 0.7) and each coordinate in [−2, 2] (the tutorial's prior
  N(0, 1) on each, widened to a box of sd 2/√3 ≈ 1.15).

A uniform box has sd (high − low)/√12 per coordinate; errors are reported in those units.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import minidiff as md
from minidiff.models import brock_hommes, cont, sir
from minidiff.random import default_rng

__all__ = ["Task", "TASKS", "acf"]

_CLIP = 1e3  # an exploding Brock–Hommes path is clipped here before its statistics


@dataclass(frozen=True)
class Task:
    """One calibration problem, as every method sees it."""

    name: str
    model: str                          # the key of the model in minidiff calibrate's registry
    param_names: tuple[str, ...]
    truth: tuple[float, ...]            # natural units, inside the box
    low: tuple[float, ...]
    high: tuple[float, ...]
    settings: dict = field(default_factory=dict)   # keywords of the model's simulate
    to_model: Callable[[Any], Any] = lambda theta: theta   # box coordinates → model params
    summaries: Callable[[np.ndarray], np.ndarray] = None  # type: ignore[assignment]

    @property
    def dim(self) -> int:
        return len(self.truth)

    @property
    def prior_sd(self) -> np.ndarray:
        """The uniform box's sd per coordinate, (high − low)/√12."""
        return (np.asarray(self.high) - np.asarray(self.low)) / math.sqrt(12.0)

    def simulate_traced(self, theta: Any, rng: Any) -> Any:
        """The model's series at box coordinates θ (traced or not), as minidiff computes it."""
        module = {"brock_hommes": brock_hommes, "sir": sir, "cont": cont}[self.model]
        return module.simulate(self.to_model(theta), rng=rng, **self.settings)

    def simulate(self, theta: Any, seed: int) -> np.ndarray:
        """The series at θ (d,) for the int ``seed``, as a NumPy array."""
        theta = md.asarray(np.asarray(theta, dtype=float))
        return np.asarray(md.get_backend().to_host(self.simulate_traced(theta,
                                                                         default_rng(seed))))

    def observed(self, dataset: int) -> np.ndarray:
        """Synthetic dataset number ``dataset`` at the truth (seeds 10⁶ + r: never a method's)."""
        return self.simulate(self.truth, 1_000_000 + dataset)


def acf(x: np.ndarray, lags: range) -> np.ndarray:
    """Sample autocorrelation Σ_t a_t a_{t+k} / Σ_t a_t² of a = x − mean x, at each lag
    (0 for a constant series)."""
    a = x - x.mean()
    denominator = float(np.sum(a * a))
    if denominator <= 0.0:
        return np.zeros(len(lags))
    return np.array([float(np.sum(a[:-k] * a[k:])) / denominator for k in lags])


def _moments(x: np.ndarray) -> np.ndarray:
    """(mean, log sd, skewness, excess kurtosis) of a series (0s where the sd is 0)."""
    sd = float(x.std())
    if sd <= 0.0:
        return np.array([float(x.mean()), math.log(1e-12), 0.0, 0.0])
    z = (x - x.mean()) / sd
    return np.array([float(x.mean()), math.log(sd), float(np.mean(z ** 3)),
                     float(np.mean(z ** 4)) - 3.0])


def bh_summaries(x: np.ndarray) -> np.ndarray:
    """17 statistics of a Brock–Hommes path x (T,), clipped to ±10³ (non-finite values too):
    the four moments, the acf of x at lags 1–5 and of x² at lags 1–3, and the 5, 25, 50, 75
    and 95% quantiles."""
    x = np.clip(np.nan_to_num(x, nan=_CLIP, posinf=_CLIP, neginf=-_CLIP), -_CLIP, _CLIP)
    return np.concatenate([_moments(x), acf(x, range(1, 6)), acf(x * x, range(1, 4)),
                           np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95])])


def sir_summaries(y: np.ndarray) -> np.ndarray:
    """20 statistics of an SIR series y (T, 2): new infections and new recoveries (fractions
    of N) summed over ten consecutive blocks of T/10 days."""
    blocks = np.array_split(np.asarray(y), 10, axis=0)
    return np.concatenate([b.sum(axis=0) for b in blocks])


def cont_summaries(r: np.ndarray) -> np.ndarray:
    """11 statistics of a return series r (T,): log sd, excess kurtosis, the acf of |r| at lags
    1–5 and of r at lags 1–2, the share of zero returns and the median of |r| over its sd."""
    sd = float(r.std())
    moments = _moments(r)
    return np.concatenate([moments[1:2], moments[3:4], acf(np.abs(r), range(1, 6)),
                           acf(r, range(1, 3)),
                           [float(np.mean(np.abs(r) < 1e-12)),
                            float(np.median(np.abs(r))) / sd if sd > 0 else 0.0]])


def _bh(n_timesteps: int) -> Task:
    return Task(f"bh{n_timesteps}", "brock_hommes", brock_hommes.PARAM_NAMES,
                tuple(brock_hommes.DEFAULT_PARAMS), (0.0, 0.0, -1.0, -1.0),
                (1.5, 1.5, 1.0, 1.0), {"n_timesteps": n_timesteps}, summaries=bh_summaries)


TASKS = {
    "bh100": _bh(100),
    "bh500": _bh(500),
    "sir": Task("sir", "sir", sir.PARAM_NAMES, tuple(sir.DEFAULT_PARAMS), (0.05, 0.02, 0.002),
                (1.0, 0.5, 0.05), {"n_timesteps": 50, "n_agents": 1000},
                summaries=sir_summaries),
    "cont": Task("cont", "cont", tuple(f"log10_{n}" for n in cont.PARAM_NAMES),
                 tuple(float(v) for v in np.log10([1.0, 0.5, 1.0, 0.7])), (-2.0,) * 4,
                 (2.0,) * 4, {"n_timesteps": 100, "n_agents": 1000, "s": 0.1, "k": 5.0},
                 to_model=lambda theta: md.power(10.0, theta), summaries=cont_summaries),
}
