"""Diagnostics of a finished calibration that a user sees without a plot.

* :func:`predictive_share`: the share of observed points inside q's central 90%
  posterior-predictive band. The band at each point (t, c) runs between the 5% and 95%
  quantiles over m series simulated at θ ~ q; a q that reproduces the data puts about 90% of
  the observed points inside it (fewer when q is too narrow or the model misses the data,
  all when the band is too wide);
* :func:`data_share`: how much of the loss's variation over parameter draws comes from the
  data. Over M prior-predictive series x_m, the loss ℓ(x_m, y) varies with θ, and that
  variation is what the gradient follows. Swap the observed y for a pseudo-observation y′ (one
  of the x_k, left out) and the part of ℓ that does not depend on the data stays; the part
  that does changes. The share is sd_m[ℓ(x_m, y) − ℓ(x_m, y′)] / sd_m[ℓ(x_m, y)], the median
  over a few y′ and capped at 1. A loss dominated by the simulator's own growth (ℓ ≈ Σ x² for
  exploding paths) has a share near 0: whatever the data, the fit goes the same way;
* :func:`diagnose`: the warnings, each with what to try: q stayed at the prior (every sd/prior
  sd ≥ ``STAYED``), the fit is poor (predictive share < ``POOR_FIT``), the data's share is
  negligible (< ``NEGLIGIBLE``), or the gradient steps ended worse than they started: the mean
  loss of the last steps is above ``WORSE`` times the screening elite's worst loss (the
  elite's best losses are partly luck, its worst much less so), or the loss check's p-value
  is below ``MISFIT``;
* :func:`loss_check`: a predictive check with the loss itself as the discrepancy. Over m
  series x_1..x_m simulated at θ_i ~ q, the loss of x_i against the data, ℓ(x_i, y), is
  compared with its loss against a replicate x′_i, simulated at the same θ_i with other random
  numbers: p = the share of i with ℓ(x_i, x′_i) ≥ ℓ(x_i, y). Where the data look like a
  simulation at the θ_i that q proposes, the two losses have nearly the same law and p is near
  ½ (a little below it, since y also differs from x_i by q's spread in θ); without replicates
  the pairs are (x_i, x_k), k ≠ i, which also charge that spread to the simulations. A p
  near 0 says the data are further from q's simulations than those are from each other, by
  the measure the fit minimised: a poor fit
  even where a wide band holds most points (a loss on summary statistics sees the timing and
  size of an epidemic that a pointwise band blurs).
* the checks at q's mean: the share of observed points inside the 90% band of series
  simulated at q's mean (the table's posterior means), all at that one point, and the loss
  check with every θ_i at that point (the replicates reruns there). On a curved ridge of
  equally good parameters (an epidemic's β and γ, which the data fix mostly through one
  combination) q can fit while its mean, off the ridge, does not: a user who takes the
  posterior means as the answer needs to hear it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import minidiff as md

__all__ = ["Diagnostics", "predictive_share", "data_share", "loss_check", "diagnose", "STAYED",
           "POOR_FIT", "NEGLIGIBLE", "WORSE", "MISFIT"]

STAYED = 0.9       # sd/prior sd at or above this for every parameter: q did not move
POOR_FIT = 0.5     # fewer observed points than this inside the 90% band: a poor fit
NEGLIGIBLE = 0.05  # a data share below this: the data barely steer the loss
WORSE = 2.0        # last steps' loss above this times the screening elite's worst: worse
MISFIT = 0.05      # the loss check's share below this: the data are unlike q's simulations


def predictive_share(observed: Any, simulated: Any, level: float = 0.9) -> float:
    """The share of the points of ``observed`` (shape S) inside the central ``level`` band of
    ``simulated`` (m, *S), quantiles taken pointwise over the m series."""
    xp = md.get_backend().xp
    y = md.stop_gradient(md.asarray(observed))
    sims = xp.sort(md.stop_gradient(md.asarray(simulated)), axis=0)
    if tuple(sims.shape[1:]) != tuple(y.shape):
        raise ValueError(f"predictive_share: simulated series have shape {tuple(sims.shape[1:])}"
                         f" but the observed {tuple(y.shape)}")
    m = sims.shape[0]

    def quantile(q: float) -> Any:
        pos = q * (m - 1)
        lo, frac = int(pos), pos - int(pos)
        return sims[lo] + frac * (sims[min(lo + 1, m - 1)] - sims[lo])

    inside = (quantile((1 - level) / 2) <= y) & (y <= quantile((1 + level) / 2))
    return float(xp.mean(xp.astype(inside, md.get_backend().float_dtype)))


def data_share(simulations: list[Any], distance_for: Callable[[Any], Callable[[Any], Any]],
               observed: Any, n_pseudo: int = 5) -> float | None:
    """The data's share of the loss's variation over parameter draws (see the module notes).

    ``simulations``: prior-predictive series x_m; ``distance_for(y)`` the loss x ↦ ℓ(x, y).
    None when fewer than n_pseudo + 3 series are finite."""
    xp = md.get_backend().xp
    finite = [x for x in simulations if bool(xp.all(xp.isfinite(md.stop_gradient(
        md.asarray(x)))))]
    if len(finite) < n_pseudo + 3:
        return None
    base = distance_for(observed)
    rest = finite[n_pseudo:]
    dtype = md.get_backend().float_dtype
    against_y = xp.asarray([float(base(x)) for x in rest], dtype=dtype)
    spread = float(xp.std(against_y))
    if not math.isfinite(spread) or spread == 0.0:
        return None
    shares = []
    for k in range(n_pseudo):
        other = distance_for(finite[k])
        against_k = xp.asarray([float(other(x)) for x in rest], dtype=dtype)
        value = float(xp.std(against_y - against_k)) / spread
        if math.isfinite(value):
            shares.append(min(value, 1.0))
    return statistics.median(shares) if shares else None


def loss_check(simulations: Any, distance_for: Callable[[Any], Callable[[Any], Any]],
               observed: Any, replicates: Any = None, n_pairs: int = 5) -> float | None:
    """The predictive p-value of the loss (see the module notes).

    ``simulations``: series x_i simulated at θ_i ~ q, shape (m, *S) or a list;
    ``replicates``: x′_i at the same θ_i (same shape), or None: then each x_i is paired with
    the ``n_pairs`` series after it (cyclically); ``distance_for(y)`` the loss x ↦ ℓ(x, y).
    None when fewer than 3 pairs are finite."""
    xp = md.get_backend().xp

    def plain(x: Any) -> Any:
        return md.stop_gradient(md.asarray(x))

    def ok(x: Any) -> bool:
        return bool(xp.all(xp.isfinite(x)))

    series = [plain(simulations[i]) for i in range(len(simulations))]
    if replicates is None:
        finite = [x for x in series if ok(x)]
        m = len(finite)
        k_max = min(n_pairs, m - 1)
        pairs = [(x, finite[(i + k) % m]) for i, x in enumerate(finite)
                 for k in range(1, k_max + 1)]
    else:
        pairs = [(x, plain(replicates[i])) for i, x in enumerate(series)]
        pairs = [(x, r) for x, r in pairs if ok(x) and ok(r)]
    if len(pairs) < 3:
        return None
    against_y = distance_for(plain(observed))
    at_least = 0
    for x, other in pairs:
        score = float(against_y(x))
        if math.isfinite(score):  # a non-finite loss at the data: the data are no such draw
            at_least += float(distance_for(other)(x)) >= score
    return at_least / len(pairs)


@dataclass
class Diagnostics:
    """The figures and the warnings (see the module notes)."""

    sd_ratios: list[float]
    inside_90: float | None = None
    data_share: float | None = None
    loss_p: float | None = None
    warnings: list[str] = field(default_factory=list)
    inside_at_mean: float | None = None
    mean_p: float | None = None

    def lines(self) -> list[str]:
        """The report: figures first, then one line per warning (the band at q's mean shows
        only in its warning and in :meth:`to_json`)."""
        out = []
        if self.inside_90 is not None:
            out.append(f"observed points inside q's 90% posterior-predictive band: "
                       f"{100 * self.inside_90:.0f}% (about 90% when q reproduces the data)")
        if self.data_share is not None:
            out.append(f"the data's share of the loss's variation over prior draws: "
                       f"{self.data_share:.2f} (near 0: the loss ignores the data)")
        if self.loss_p is not None:
            out.append(f"share of q's simulations that a rerun at the same parameters is as "
                       f"far from as the data, by the loss: {self.loss_p:.2f} (near 0: q does "
                       f"not reproduce the data)")
        out += [f"warning: {w}" for w in self.warnings]
        return out

    def to_json(self) -> dict:
        return {"inside_90": self.inside_90, "data_share": self.data_share,
                "loss_p": self.loss_p, "inside_at_mean": self.inside_at_mean,
                "mean_p": self.mean_p,
                "sd_ratios": self.sd_ratios, "warnings": self.warnings}


def diagnose(sd_ratios: list[float], *, inside_90: float | None = None,
             share: float | None = None, w: float | None = None,
             fit_loss: float | None = None, start_loss: float | None = None,
             loss_p: float | None = None,
             inside_at_mean: float | None = None,
             mean_p: float | None = None) -> Diagnostics:
    """The warnings for a fit with these sd/prior sd ratios, predictive share and data share;
    ``fit_loss`` is the mean loss of the last steps, ``start_loss`` the screening elite's
    worst loss, ``loss_p`` the p-value of :func:`loss_check`, and ``inside_at_mean`` and
    ``mean_p`` the predictive share and the loss check's p-value of series simulated at q's
    mean."""
    out = Diagnostics(list(sd_ratios), inside_90, share, loss_p,
                      inside_at_mean=inside_at_mean, mean_p=mean_p)
    weight = "" if w is None else f" (now {w:g})"
    if sd_ratios and all(r >= STAYED for r in sd_ratios):
        out.warnings.append(
            f"q stayed at the prior: every posterior sd is at least {STAYED:g} of the prior's, "
            f"so the data moved nothing. Try a loss on the scale of a log-likelihood summed "
            f"over the observations (the built-in models' default), a smaller --w{weight}, "
            f"more --steps, or a larger --lr; check that the model's output responds to its "
            f"parameters at the data's scale")
    if inside_90 is not None and inside_90 < POOR_FIT:
        out.warnings.append(
            f"poor fit: only {100 * inside_90:.0f}% of the observed points lie inside q's 90% "
            f"posterior-predictive band. Try more --screen draws (a global search before the "
            f"gradient steps), more --steps or --samples, another --loss, or a wider prior; "
            f"check that the data's units and time step are the model's (--timesteps, the "
            f"step length)")
    if loss_p is not None and loss_p < MISFIT and not (inside_90 is not None
                                                       and inside_90 < POOR_FIT):
        out.warnings.append(
            f"poor fit: by the loss, the data are further from q's simulations than reruns at "
            f"the same parameters are (share {loss_p:.3f}, below {MISFIT:g}): q does not "
            f"reproduce what the loss measures (an epidemic's size and timing, say), however "
            f"many points its pointwise band holds. Try "
            f"more --screen draws, more --samples or --steps, --gradient score (when the "
            f"pathwise gradient is biased, as through smoothed Bernoulli draws), a model whose "
            f"own noise is not far above the data's (more --agents), or a wider prior")
    band_low = inside_at_mean is not None and inside_at_mean < POOR_FIT
    if band_low or (mean_p is not None and mean_p < MISFIT):
        why = (f"only {100 * inside_at_mean:.0f}% of the observed points lie inside their "
               f"90% band" if band_low else
               f"by the loss, reruns at that point are closer to each other than to the data "
               f"(share {mean_p:.3f}, below {MISFIT:g})")
        out.warnings.append(
            f"the simulations at q's mean (the posterior means in the table) do not reproduce "
            f"the data: {why}. Do not use the posterior means as a point estimate: q may lie "
            f"along a curved ridge of parameters that fit equally well (judge the fit by the "
            f"posterior-predictive band), or the fit is poor: try more --screen draws, more "
            f"--samples or --steps, --family fullrank, or parameters that the data pin one "
            f"by one")
    if share is not None and share < NEGLIGIBLE:
        out.warnings.append(
            f"the data barely steer the loss: its variation over prior draws changes by "
            f"{share:.3f} of itself when the observed series is swapped for a simulated one, "
            f"so the fit follows the simulator, not the data. Use a loss on summary statistics "
            f"or a scaled likelihood (the built-in models' default), or narrow the prior away "
            f"from where the simulator explodes")
    if fit_loss is not None and start_loss is not None and start_loss > 0 and (
            fit_loss > WORSE * start_loss):
        out.warnings.append(
            f"the gradient steps made the fit worse: the last steps' mean loss {fit_loss:.4g} "
            f"is above {WORSE:g} times the loss of the screened start ({start_loss:.4g}). "
            f"The loss's gradient estimate may be biased for this model (try --gradient "
            f"score, or --mode triples for discrete draws), or too noisy (more --samples, a "
            f"smaller --lr)")
    return out
