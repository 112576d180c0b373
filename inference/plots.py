"""Plots of a calibration, with matplotlib (the ``plot`` extra).

* :func:`plot_history`: the loss estimate E_q[ℓ], w·KL(q‖π) and their sum, the total L, by step;
* :func:`plot_pairs`: a corner plot of q against the prior in the model's natural units (each
  parameter's marginal density on the diagonal, pairs below it), with the true values where
  they are known;
* :func:`plot_predictive`: posterior-predictive bands: the 5–95% and 25–75% ranges and the
  median over series simulated at θ ~ q, against the observed series (one panel per column);
* :func:`calibration_figure`: the three side by side, saved to a file;
* :func:`rank_figure`: the rank histograms of simulation-based calibration (:mod:`.coverage`).

Inputs are backend arrays (any backend; they are copied to the host to draw). The figure is a
``matplotlib.figure.Figure`` drawn without pyplot, so no global state or display is touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import minidiff as md

from .extras import require

__all__ = ["plot_history", "plot_pairs", "plot_predictive", "calibration_figure", "quantiles",
           "rank_figure"]

BANDS = ((0.05, 0.95), (0.25, 0.75))


def _figure_class() -> Any:
    return require("matplotlib.figure", "Figure", "plots need", "plot")


def quantiles(x: Any, qs: tuple[float, ...], axis: int = 0) -> list[Any]:
    """The q-quantiles of x along ``axis`` (linear interpolation between order statistics, as
    NumPy's default), one array per q."""
    xp = md.get_backend().xp
    s = xp.sort(md.stop_gradient(md.asarray(x)), axis=axis)
    n = s.shape[axis]
    out = []
    for q in qs:
        pos = q * (n - 1)
        lo = int(pos)
        hi = min(lo + 1, n - 1)
        frac = pos - lo
        a = xp.take(s, xp.asarray([lo]), axis=axis)
        b = xp.take(s, xp.asarray([hi]), axis=axis)
        out.append(xp.squeeze(a + frac * (b - a), axis=axis))
    return out


def _host(x: Any) -> Any:
    return md.to_host(md.stop_gradient(md.asarray(x)))


def plot_history(ax: Any, history: Any, w: float) -> None:
    """Loss, w·KL and the total L = loss + w·KL by step."""
    steps = list(range(len(history.total)))
    ax.plot(steps, history.loss, label="loss  E_q[ℓ]", lw=1)
    ax.plot(steps, [w * k for k in history.kl], label=f"w·KL  (w = {w:g})", lw=1)
    ax.plot(steps, history.total, label="total  L", lw=1.5, color="black")
    values = [v for v in history.total + history.loss if v == v]
    if values and min(values) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("estimate (units of ℓ)")
    ax.set_title("objective by step")
    ax.legend(fontsize="small")


def _range(q_col: Any, prior_col: Any, truth: float | None) -> tuple[float, float]:
    q_lo, q_hi = (float(v) for v in quantiles(q_col, (0.005, 0.995)))
    p_lo, p_hi = (float(v) for v in quantiles(prior_col, (0.05, 0.95)))
    lo, hi = min(q_lo, p_lo), max(q_hi, p_hi)
    if truth is not None:
        lo, hi = min(lo, truth), max(hi, truth)
    pad = 0.05 * (hi - lo or 1.0)
    return lo - pad, hi + pad


def plot_pairs(fig: Any, q: Any, prior: Any, names: list[str],
               truth: list[float] | None = None) -> None:
    """A corner plot on ``fig``: q (n, d) against prior draws (m, d), natural units."""
    d = len(names)
    axes = fig.subplots(d, d, squeeze=False)
    ranges = [_range(md.getitem(q, (slice(None), j)), md.getitem(prior, (slice(None), j)),
                     None if truth is None else truth[j]) for j in range(d)]
    qh, ph = _host(q), _host(prior)
    for i in range(d):
        for j in range(d):
            ax = axes[i][j]
            if j > i:
                ax.set_axis_off()
                continue
            if i == j:
                ax.hist(ph[:, j], bins=40, range=ranges[j], density=True, histtype="step",
                        color="grey", label="prior")
                ax.hist(qh[:, j], bins=40, range=ranges[j], density=True, alpha=0.6,
                        color="tab:blue", label="q")
                if truth is not None:
                    ax.axvline(truth[j], color="tab:red", lw=1.5, label="true")
                ax.set_yticks([])
                ax.set_ylabel("density", fontsize="small")
            else:
                ax.scatter(ph[:2000, j], ph[:2000, i], s=1, color="grey", alpha=0.15)
                ax.scatter(qh[:2000, j], qh[:2000, i], s=1, color="tab:blue", alpha=0.3)
                if truth is not None:
                    ax.plot([truth[j]], [truth[i]], marker="x", color="tab:red", ms=8)
                ax.set_ylim(ranges[i])
            ax.set_xlim(ranges[j])
            if i == d - 1:
                ax.set_xlabel(names[j])
            if j == 0 and i > 0:
                ax.set_ylabel(names[i])
            elif i == j and i > 0:  # the diagonal's density label, inside: the pairs are left
                ax.yaxis.set_label_position("right")
    axes[0][0].legend(fontsize="small", loc="upper right")
    fig.suptitle("q (blue) against the prior (grey), natural units")


def plot_predictive(axes: list[Any], observed: Any, simulated: Any,
                    labels: list[str] | None = None) -> None:
    """Bands over ``simulated`` (m, T) or (m, T, k) against ``observed`` (T,) or (T, k), one
    axis per column."""
    obs = md.asarray(observed)
    sims = md.asarray(simulated)
    if obs.ndim == 1:
        obs = md.reshape(obs, (obs.shape[0], 1))
        sims = md.reshape(sims, (sims.shape[0], sims.shape[1], 1))
    t = list(range(obs.shape[0]))
    for k, ax in enumerate(axes):
        column = md.getitem(sims, (slice(None), slice(None), k))
        for (lo_q, hi_q), alpha in zip(BANDS, (0.2, 0.4)):
            lo, hi = quantiles(column, (lo_q, hi_q))
            ax.fill_between(t, _host(lo), _host(hi), color="tab:blue", alpha=alpha, lw=0,
                            label=f"{100 * lo_q:g}–{100 * hi_q:g}% of q's predictive")
        (median,) = quantiles(column, (0.5,))
        ax.plot(t, _host(median), color="tab:blue", lw=1, label="median")
        ax.plot(t, _host(md.getitem(obs, (slice(None), k))), color="black", lw=1.2,
                label="observed")
        ax.set_xlabel("time step t")
        ax.set_ylabel(labels[k] if labels else "observed and simulated value")
        ax.set_title(labels[k] if labels else "posterior predictive")
    axes[0].legend(fontsize="small")


def calibration_figure(path: str | Path, *, history: Any, w: float, q: Any, prior: Any,
                       names: list[str], truth: list[float] | None, observed: Any,
                       simulated: Any, title: str = "", column_labels: list[str] | None = None,
                       ) -> Path:
    """The history, the predictive bands and the corner plot in one image at ``path``."""
    figure = _figure_class()
    obs = md.asarray(observed)
    n_columns = 1 if obs.ndim == 1 else int(obs.shape[1])
    d = len(names)
    fig = figure(figsize=(6 + 2.6 * max(d, 2), 2.8 * (1 + n_columns)), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1.0, 0.45 * max(d, 2)])
    axes = left.subplots(1 + n_columns, 1, squeeze=False)[:, 0]
    plot_history(axes[0], history, w)
    plot_predictive(list(axes[1:]), observed, simulated, column_labels)
    plot_pairs(right, q, prior, names, truth)
    if title:
        left.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def rank_figure(path: str | Path, ranks: list[list[int]], n_draws: int, names: list[str],
                title: str = "") -> Path:
    """Rank histograms of simulation-based calibration, one panel per parameter, saved at
    ``path``: ranks (R, d) in {0..L} in bins of equal width, with the count a uniform rank
    would give (R / bins) and its 90% binomial band (normal approximation)."""
    figure = _figure_class()
    d = len(names)
    r = len(ranks)
    bins = max(2, min(20, r // 5))
    expected = r / bins
    half = 1.645 * (r * (1 / bins) * (1 - 1 / bins)) ** 0.5
    fig = figure(figsize=(3.2 * d, 2.8), layout="constrained")
    axes = fig.subplots(1, d, squeeze=False)[0]
    for j, ax in enumerate(axes):
        column = [row[j] for row in ranks]
        ax.hist(column, bins=bins, range=(0, n_draws + 1), color="tab:blue", alpha=0.7)
        ax.axhspan(max(expected - half, 0.0), expected + half, color="grey", alpha=0.25,
                   lw=0, label="uniform, 90% band")
        ax.axhline(expected, color="black", lw=1)
        ax.set_xlabel(f"rank of the true {names[j]} among {n_draws} draws of q")
        ax.set_yticks([])
    axes[0].legend(fontsize="small")
    fig.suptitle(title or f"simulation-based calibration: rank histograms over {r} data sets")
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
