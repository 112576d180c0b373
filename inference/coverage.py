"""Simulation-based calibration (Talts et al. 2018): does q's 90% interval hold the truth 90% of
the time?

For r = 1..R: draw θ*_r ~ π, simulate data y_r at θ*_r, calibrate q_r on y_r, draw L samples
θ_r^(1..L) ~ q_r and record

* the rank of each true coordinate among q_r's draws, rank_rj = #{l : θ_rj^(l) < θ*_rj} ∈
  {0, ..., L}. If q_r is the exact posterior, (θ*_r, y_r) is a draw from the joint π(θ)p(y|θ),
  so θ*_r is itself a posterior draw given y_r and each rank is uniform on {0..L} (the rank
  histogram is flat; ∪-shaped when q is too narrow, ∩-shaped when too wide, tilted when
  biased);
* whether θ*_rj lies in q_r's central interval of level a (between its (1−a)/2 and (1+a)/2
  sample quantiles), for a = 0.5 and 0.9: over the R datasets the shares estimate the
  coverage, nominal a for an exact posterior, with binomial sd √(a(1−a)/R).

Ranks and intervals are those of the calibration space (the family's θ); any monotone map to
natural units keeps them.

Batching: ``batch=True`` fits the R datasets as one calibration of dimension R·d, with the
loss Σ_r ℓ_r(θ_r) and the prior π^R. For a diagonal Gaussian q and a product prior the
objective is a sum of R independent objectives, and Adam updates each coordinate on its own,
so this is the R separate fits run side by side (the draws differ from the unbatched run, the
distribution does not). With ``batch_loss_for`` (the same loss written once over the stacked
data sets) a step is a few array operations instead of R loss calls. Only DiagonalGaussian
families with a Normal prior are batched; anything else is refused rather than coupled
silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import minidiff as md
from minidiff.distributions import Independent, Normal, as_vector
from minidiff.random import default_rng
from minidiff.validation import check_int, check_positive_int

from .calibrate import calibrate
from .families import DiagonalGaussian

__all__ = ["coverage", "CoverageResult", "LEVELS"]

LEVELS = (0.5, 0.9)


@dataclass
class CoverageResult:
    """What :func:`coverage` returns: per dataset r and coordinate j, the truth (R, d), the rank
    (R, d) among ``n_draws`` draws of q_r, q_r's mean and sd (R, d) and whether the truth was
    inside the central 50% and 90% intervals (``inside[level]``, (R, d) booleans)."""

    truths: list[list[float]]
    ranks: list[list[int]]
    means: list[list[float]]
    sds: list[list[float]]
    inside: dict[float, list[list[bool]]]
    n_draws: int
    names: list[str] = field(default_factory=list)

    @property
    def n_datasets(self) -> int:
        return len(self.truths)

    def coverage(self, level: float) -> list[float]:
        """The share of datasets whose truth lies in q's central ``level`` interval, per
        coordinate."""
        rows = self.inside[level]
        return [sum(r[j] for r in rows) / len(rows) for j in range(len(rows[0]))]

    def summary(self) -> str:
        """A table: per parameter, the coverage of the 50% and 90% intervals (± binomial sd of
        the nominal coverage over R datasets) and the mean rank over L (0.5 when unbiased)."""
        r = self.n_datasets
        d = len(self.truths[0])
        names = self.names or [f"p{j}" for j in range(d)]
        sd = {a: (a * (1 - a) / r) ** 0.5 for a in LEVELS}
        head = (f"{'parameter':<18s} {'50% coverage':>14s} {'90% coverage':>14s} "
                f"{'mean rank / L':>14s}")
        lines = [f"simulation-based calibration: {r} datasets, ranks among {self.n_draws} "
                 f"draws of q (nominal ± binomial sd: 0.50 ± {sd[0.5]:.2f}, 0.90 ± "
                 f"{sd[0.9]:.2f})", head, "-" * len(head)]
        c50, c90 = self.coverage(0.5), self.coverage(0.9)
        for j, name in enumerate(names):
            mean_rank = sum(row[j] for row in self.ranks) / r / self.n_draws
            lines.append(f"{name:<18s} {c50[j]:>14.2f} {c90[j]:>14.2f} {mean_rank:>14.2f}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"n_datasets": self.n_datasets, "n_draws": self.n_draws, "names": self.names,
                "coverage": {str(a): self.coverage(a) for a in LEVELS},
                "truths": self.truths, "ranks": self.ranks, "means": self.means,
                "sds": self.sds}


def _check_count(n_datasets: Any, n_draws: Any) -> None:
    check_int("coverage", "n_datasets", n_datasets, 2,
              why="coverage is a share over datasets; one dataset says nothing about it")
    check_positive_int("coverage", "n_draws", n_draws)


def _rows(x: Any) -> list[list[float]]:
    return md.to_host(md.stop_gradient(md.asarray(x))).tolist()


def _score(truth: list[float], draws: Any) -> tuple[list[int], list[float], list[float],
                                                    dict[float, list[bool]]]:
    """Ranks, means, sds and interval membership of one dataset's truth (d,) among draws
    (L, d)."""
    xp = md.get_backend().xp
    s = xp.sort(md.stop_gradient(md.asarray(draws)), axis=0)
    n = s.shape[0]
    t = xp.asarray(truth, dtype=s.dtype)
    ranks = [int(v) for v in md.to_host(xp.sum(s < t, axis=0)).tolist()]
    means = _rows(xp.mean(s, axis=0))
    sds = _rows(xp.std(s, axis=0))
    inside = {}
    for a in LEVELS:
        lo = _quantile_row(s, (1 - a) / 2, n)
        hi = _quantile_row(s, (1 + a) / 2, n)
        inside[a] = [bool(v) for v in md.to_host((lo <= t) & (t <= hi)).tolist()]
    return ranks, means, sds, inside


def _quantile_row(sorted_draws: Any, q: float, n: int) -> Any:
    """The q-quantile of each column of sorted draws (linear interpolation, NumPy's default)."""
    pos = q * (n - 1)
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    return sorted_draws[lo] + (pos - lo) * (sorted_draws[hi] - sorted_draws[lo])


def coverage(simulate: Callable[[Any, Any], Any], loss_for: Callable[[Any], Callable],
             prior: Any, family: Any, *, n_datasets: int, n_draws: int = 1000, seed: int = 0,
             batch: bool = False, batch_loss_for: Callable[[Any], Callable] | None = None,
             names: list[str] | None = None,
             on_dataset: Callable[[int, int], None] | None = None,
             **calibrate_args: Any) -> CoverageResult:
    """Simulation-based calibration of ``calibrate`` on ``n_datasets`` prior draws.

    Args:
        simulate: ``simulate(theta, rng) -> data``, θ of shape (d,) in the calibration space
            (the prior's and family's), ``rng`` a :class:`minidiff.random.Generator`.
        loss_for: ``loss_for(data) -> loss(theta, rng)``, the loss ``calibrate`` minimises on
            that data set (a negative log-likelihood with w = 1 gives Bayes' posterior).
        prior: π over θ, the prior the truths are drawn from *and* calibrated against.
        family: the variational family of dimension d (one fresh fit per data set, each from
            ``family.init``).
        n_datasets: R ≥ 2 data sets (≥ 100 for coverage to within a few percent: its binomial
            sd is √(a(1−a)/R)).
        n_draws: L, the draws of each q_r that ranks and intervals are computed from.
        seed: truths come from the stream "coverage-truths" of ``default_rng(seed)``, data set r
            from the stream ("coverage-data", r), and fit r runs with seed ``seed + r``.
        batch: fit all R at once (see the module notes; DiagonalGaussian with a Normal prior).
        batch_loss_for: with ``batch``, optionally ``batch_loss_for(stacked) -> loss(theta,
            rng)`` with ``stacked`` the R data sets stacked on a new first axis and θ of shape
            (R·d,) (data set r's coordinates at r·d..r·d + d − 1): Σ_r ℓ_r(θ_r) in one
            vectorised call. Without it the batched loss loops over the R losses.
        names: parameter names for :meth:`CoverageResult.summary`.
        on_dataset: called as ``on_dataset(r, R)`` after each fit (unbatched).
        **calibrate_args: passed to :func:`~.calibrate.calibrate` (``n_steps`` and
            ``optimizer`` at least).
    """
    _check_count(n_datasets, n_draws)
    prior = as_vector(prior)
    if prior.dim != family.dim:
        raise ValueError(f"coverage: the prior has dimension {prior.dim} but the family has "
                         f"{family.dim}")
    d = family.dim
    truths = prior.sample(default_rng(seed).stream("coverage-truths"), n_datasets)
    data = [simulate(md.getitem(truths, r), default_rng(seed).stream(("coverage-data", r)))
            for r in range(n_datasets)]
    losses = [loss_for(y) for y in data]
    truth_rows = _rows(truths)
    if batch_loss_for is not None and not batch:
        raise ValueError("coverage: batch_loss_for is the loss of the batched fit; pass "
                         "batch=True with it")
    if batch:
        joint = None if batch_loss_for is None else batch_loss_for(md.stack(data))
        draws = _batched(losses, joint, prior, family, n_datasets, n_draws, seed,
                         calibrate_args)
    else:
        draws = []
        for r in range(n_datasets):
            result = calibrate(losses[r], prior, family, seed=seed + r, **calibrate_args)
            draws.append(result.sample(n_draws, seed=seed + r))
            if on_dataset is not None:
                on_dataset(r + 1, n_datasets)
    out = CoverageResult([], [], [], [], {a: [] for a in LEVELS}, n_draws,
                         list(names) if names else [f"p{j}" for j in range(d)])
    for r in range(n_datasets):
        ranks, means, sds, inside = _score(truth_rows[r], draws[r])
        out.truths.append(truth_rows[r])
        out.ranks.append(ranks)
        out.means.append(means)
        out.sds.append(sds)
        for a in LEVELS:
            out.inside[a].append(inside[a])
    return out


def _batched(losses: list[Callable], joint: Callable | None, prior: Any, family: Any, n: int,
             n_draws: int, seed: int, calibrate_args: dict) -> list[Any]:
    """The R fits as one calibration over θ of shape (R·d,) (see the module notes)."""
    gaussian = prior.gaussian() if hasattr(prior, "gaussian") else None
    if not isinstance(family, DiagonalGaussian) or gaussian is None:
        raise ValueError("coverage: batch=True fits R data sets as one calibration, which is "
                         "exact only for a DiagonalGaussian family and a Normal prior (the "
                         f"objective then separates); got {type(family).__name__} and "
                         f"{type(prior).__name__}; pass batch=False")
    d = family.dim
    params = family.init(seed)
    xp = md.get_backend().xp
    loc, scale = gaussian
    big_prior = Independent(Normal(xp.tile(md.stop_gradient(loc), n),
                                   xp.tile(md.stop_gradient(scale), n)))
    big_family = DiagonalGaussian(n * d, loc=xp.tile(params["loc"], n),
                                  scale=xp.tile(md.exp(params["log_scale"]), n))

    def loss(theta: Any, rng: Any) -> Any:
        total = None
        for r in range(n):
            term = losses[r](md.getitem(theta, slice(r * d, (r + 1) * d)), rng.stream(r))
            total = term if total is None else total + term
        return total

    result = calibrate(loss if joint is None else joint, big_prior, big_family, seed=seed,
                       **calibrate_args)
    theta = result.sample(n_draws, seed=seed)
    return [md.getitem(theta, (slice(None), slice(r * d, (r + 1) * d))) for r in range(n)]
