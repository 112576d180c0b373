"""A toy herding market: the whole of what a model needs to be calibrated, in one file.

N agents each submit a demand every step: the average demand of the step before, scaled by a
herding weight h, plus their own news,

    d_{i,t} = h · m_{t−1} + s · ε_{i,t},    ε_{i,t} ~ N(0, 1),    m_t = (1/N) Σ_i d_{i,t},

and the observed series is the mean demand m_t, shape (T,), from m_{−1} = 0. h ∈ (0, 1) sets
how long a swing lasts (m is an AR(1) with coefficient h), s > 0 how large the news is (the
stationary sd of m is s / √(N (1 − h²))).

The calibration block at the end is what ``minidiff calibrate`` reads: the parameters' names
and true values, the prior on the unconstrained space, the map to natural units, the loss and
the run's defaults. Use it as ``minidiff calibrate --model toy_model:simulate`` from this
folder, or list it in ``minidiff.models.registry.MODELS`` (see ``docs/models.md``).
"""

from __future__ import annotations

from typing import Any

import minidiff as md
from minidiff.distributions import Coordinatewise, Exp, Independent, Normal, Sigmoid
from minidiff.models.registry import Calibration


def simulate(params: Any, *, n_timesteps: int, n_agents: int = 200, rng: Any) -> Any:
    """The mean demands m_0, ..., m_{T−1}, shape (T,); ``params`` = (h, s), possibly traced."""
    h, s = md.getitem(md.asarray(params), 0), md.getitem(md.asarray(params), 1)
    run = md.random.default_rng(rng).child()  # this run's own keyed streams
    m, series = md.zeros(()), []
    for t in range(n_timesteps):
        news = run.stream(("news", t)).normal(size=(n_agents,))
        m = md.mean(h * m + s * news)
        series.append(m)
    return md.stack(series)


def summary(series: Any) -> Any:
    """(log sd, lag-1 autocorrelation) of a series: what s and h set."""
    centred = series - md.mean(series)
    variance = md.mean(centred * centred)
    lag1 = md.mean(md.getitem(centred, slice(1, None)) * md.getitem(centred, slice(None, -1)))
    return md.stack([0.5 * md.log(variance), lag1 / variance])


def loss(simulated: Any, observed: Any) -> Any:
    """Σ (summary(simulated) − summary(observed))²."""
    return md.sum(md.square(summary(simulated) - summary(observed)))


# --- calibration: what ``minidiff calibrate`` and the registry read -------------------------

PARAM_NAMES = ("h", "s")
DEFAULT_PARAMS = (0.7, 1.0)
NATURAL = Coordinatewise(Sigmoid(), Exp())  # h = sigmoid(x_0) in (0, 1), s = exp(x_1) > 0


def prior() -> Independent:
    """x ~ N(0, I): h around 1/2, s within a factor e or so of 1."""
    return Independent(Normal([0.0, 0.0], [1.0, 1.0]))


CALIBRATION = Calibration({"n_timesteps": 60, "n_agents": 200}, loss="model", w=0.1,
                          samples=4, steps=60, lr=0.05, screen=0)
