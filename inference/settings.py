"""Checks of calibration settings at the call, so a bad one fails there, in one line.

A setting that is wrong but accepted fails far away, or not at all: ``w = inf`` makes every
total infinite, a non-JSON ``config`` fails at the first checkpoint, a prior whose support is
narrower than the family's makes KL(q‖π) infinite. Each check here names the function, the
setting, what is allowed and what it got:

* ``real``: a finite real number in an interval (bools, strings, NaN and ±∞ refused), and
  :func:`count`: an integer ≥ a least value (the settings checks of :mod:`minidiff.validation`);
* :func:`json_config`: a value made only of what JSON holds exactly (dicts with string keys,
  lists, tuples, strings, finite or non-finite floats, ints, booleans, None), with the path of
  the first entry that is not;
* :func:`support`: the prior must put density wherever the family can put its draws.

Why the support matters: KL(q‖π) = E_q[log q − log π] is +∞ as soon as q gives mass to a set
where π has none. A Gaussian family (or a flow) lives on all of ℝ^d, so a prior on (0, 1)
(Beta), (0, ∞) (Gamma, LogNormal) or [a, b] (Uniform) makes the objective infinite at every φ.
Write such a prior on the unconstrained space instead (``Transformed(Beta(a, b),
Sigmoid().inverted())``), or use a family on the same support (``BetaFamily`` for a Beta
prior).
"""

from __future__ import annotations

import math
from typing import Any

import minidiff as md
from minidiff.distributions import Beta, Gamma, Independent, LogNormal, Normal, Uniform
from minidiff.random import default_rng
from minidiff.validation import check_int
from minidiff.validation import check_real as real

from .beta_family import BetaFamily
from .families import DiagonalGaussian, FullRankGaussian
from .flows import RealNVP

__all__ = ["real", "count", "json_config", "support"]

_REAL_LINE = (-math.inf, math.inf)
SUPPORT_PROBES = 256  # draws of q at its initial params whose prior density must be > 0


def count(where: str, name: str, value: Any, least: int = 1) -> int:
    """``value`` as an int, refused unless it is an integer ≥ ``least`` (not a bool)."""
    return check_int(where, name, value, least)


def _first_non_json(value: Any, path: str, open_: tuple[int, ...] = ()) -> str | None:
    """The path of the first entry JSON cannot hold exactly, or None (``open_``: the ids of
    the containers being walked, so a container inside itself is found, not recursed into)."""
    if value is None or isinstance(value, str | bool | int | float):
        return None
    if isinstance(value, dict | list | tuple) and id(value) in open_:
        return f"{path} (a {type(value).__name__} that contains itself)"
    inner = (*open_, id(value))
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}[{key!r}] (a {type(key).__name__} key: JSON keys are strings)"
            found = _first_non_json(item, f"{path}[{key!r}]", inner)
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = _first_non_json(item, f"{path}[{i}]", inner)
            if found:
                return found
        return None
    return f"{path} (a {type(value).__name__})"


def json_config(where: str, config: Any) -> dict | None:
    """``config`` unchanged if it is None or a dict that JSON holds exactly (see the module
    notes); else a TypeError naming the first entry that is not."""
    if config is None:
        return None
    if not isinstance(config, dict):
        raise TypeError(f"{where}: config must be a dict (or None), got "
                        f"{type(config).__name__}")
    bad = _first_non_json(config, "config")
    if bad is not None:
        raise TypeError(f"{where}: config must hold only JSON values (dicts with string keys, "
                        f"lists, strings, numbers, booleans, None); {bad} is not. Convert it "
                        f"(arrays with .tolist(), objects with str())")
    return config


def _family_support(family: Any) -> tuple[float, float] | None:
    if isinstance(family, DiagonalGaussian | FullRankGaussian | RealNVP):
        return _REAL_LINE
    if isinstance(family, BetaFamily):
        return (0.0, 1.0)
    return None  # a family of the user's: the draws' check below still applies


def _prior_supports(prior: Any) -> list[tuple[str, tuple[float, float]]] | None:
    """(component's name, (low, high)) per coordinate, or None where unknown."""
    if not isinstance(prior, Independent):
        return None
    out = []
    for c in prior.components:
        k = c.batch_shape[0] if c.batch_shape else 1
        if isinstance(c, Normal):
            lows, highs = [-math.inf] * k, [math.inf] * k
        elif isinstance(c, LogNormal | Gamma):
            lows, highs = [0.0] * k, [math.inf] * k
        elif isinstance(c, Beta):
            lows, highs = [0.0] * k, [1.0] * k
        elif isinstance(c, Uniform):
            b = md.get_backend()
            lows = [float(v) for v in b.to_host(md.broadcast_to(c.low, c.batch_shape)
                                                ).reshape(-1).tolist()]
            highs = [float(v) for v in b.to_host(md.broadcast_to(c.high, c.batch_shape)
                                                 ).reshape(-1).tolist()]
        else:
            return None
        out += [(type(c).__name__, (lo, hi)) for lo, hi in zip(lows, highs)]
    return out


def support(where: str, prior: Any, family: Any, params: Any, seed: int) -> None:
    """Refuse a prior whose support is narrower than the family's (module notes): by the
    declared supports where both are known, and by the prior's density at
    ``SUPPORT_PROBES`` draws of q at ``params`` in every case."""
    fix = ("KL(q‖π) is infinite wherever q has mass and π none. Write the prior on the "
           "family's space (e.g. Transformed(Beta(a, b), Sigmoid().inverted()) for a "
           "Gaussian q on logit θ), or use a family on the prior's support (BetaFamily for a "
           "Beta prior)")
    fam, coords = _family_support(family), _prior_supports(prior)
    if fam is not None and coords is not None:
        for j, (name, (lo, hi)) in enumerate(coords):
            if lo > fam[0] or hi < fam[1]:
                raise ValueError(f"{where}: the prior's coordinate {j} ({name}) has support "
                                 f"({lo:g}, {hi:g}) but {family!r} puts draws on "
                                 f"({fam[0]:g}, {fam[1]:g}). {fix}")
    theta, _ = family.sample(params, SUPPORT_PROBES, default_rng(seed).stream("support"))
    log_p = md.get_backend().to_host(md.stop_gradient(prior.log_prob(theta)))
    bad = [i for i, v in enumerate(log_p.reshape(-1).tolist()) if not v > -math.inf]
    if bad:
        at = md.get_backend().to_host(md.stop_gradient(md.getitem(theta, bad[0]))).tolist()
        raise ValueError(f"{where}: the prior has no density (log π = {log_p.reshape(-1)[bad[0]]})"
                         f" at {len(bad)} of {SUPPORT_PROBES} draws of the family at its "
                         f"initial params, e.g. θ = {at}: its support is narrower than the "
                         f"family's. {fix}")
