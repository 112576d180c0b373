"""The per-sample work of a GVI step, a chunk of samples at a time, as one batched simulation.

A pathwise step needs, for the samples i of a chunk (all n of them on one machine, or the
share of one worker),

    ℓ_i = ℓ(θ_i),   J_i = ∂ℓ/∂θ (θ_i),      θ (m, d) → values (m,), Jacobians (m, d),

each ℓ run on the stream keyed (step, i) of the run's seed (:func:`sample_rng`).

**Batched** (the default): the chunk is one ``md.vmap`` of the loss over the rows of θ, each
row with its own stream (the list of the m keyed generators batches as one), so the batched
run draws exactly what the loop over samples draws. Mixed mode is one ``jacfwd`` of the
batched loss at a shared shift δ (d,) of every row,

    J = ∂/∂δ [ℓ(θ_i + δ)]_{i}  at δ = 0,    shape (m, d),

one forward pass carrying d tangents for the whole chunk: row i depends on δ only through
θ_i + δ, so row i of that Jacobian is J_i.

Stochastic triples (``how = "triples"``) batch with
:func:`minidiff.stochastic.triples.batched_derivative_estimate`: one pass with d directions and
one alternative world per direction and sample, whose jumps compete only within sample i and
are pruned by sample i's own generator, so each row is what sample i's own
``derivative_estimate`` gives.

**Loop**: a loss that cannot run under ``vmap`` (Python control flow on a traced value, a model
that computes on raw arrays, an op whose batching fails) runs as the loop, and says so once
(:class:`ChunkResult` carries the reason); if the loop fails as well, its error is raised,
since it is the loss's own. The loop is :func:`evaluate_sample`, sample by sample.

Both give the same numbers: elementwise work is the same arithmetic on a stacked array, and
every reduction runs within one sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import minidiff as md
from minidiff.batching import BatchingError
from minidiff.random import default_rng
from minidiff.stochastic import derivative_estimate
from minidiff.stochastic.triples import batched_derivative_estimate

__all__ = ["ChunkResult", "evaluate_chunk", "evaluate_sample", "run_chunk", "sample_rng"]


def sample_rng(seed: int, step: int, i: int) -> Any:
    """The generator of sample i at step ``step``: the stream keyed (step, i) of the seed."""
    return default_rng(seed).stream((step, i))


def _scalar(value: Any, where: str) -> Any:
    value = md.asarray(value)
    if tuple(value.shape) != ():
        raise TypeError(f"{where}: the loss must return a scalar, got shape "
                        f"{tuple(value.shape)}")
    return value


def evaluate_sample(loss: Callable[[Any, Any], Any], theta: Any, step: int, i: int, seed: int,
                    how: str) -> tuple[Any, Any]:
    """The per-sample work: ``(ℓ(θ_i), J_i)`` with ℓ run on the stream keyed (step, i).

    ``how`` is ``"value"`` (J is None), ``"forward"`` (J = ∂ℓ/∂θ by ``jacfwd``, one pass) or
    ``"triples"`` (J by stochastic triples). θ_i has shape (d,); J has shape (d,). A pure
    function of its arguments, so samples can be evaluated in any order or place."""
    try:
        return _evaluate(loss, theta, step, i, seed, how)
    except Exception as exc:  # say where, keep the error (Python ≥ 3.11 shows the note)
        if hasattr(exc, "add_note") and not isinstance(exc, FloatingPointError):
            exc.add_note(f"(in the loss at step {step}, sample {i}, θ = "
                         f"{md.to_host(md.stop_gradient(theta)).tolist()})")
        raise


def _evaluate(loss: Callable[[Any, Any], Any], theta: Any, step: int, i: int, seed: int,
              how: str) -> tuple[Any, Any]:
    where = f"step {step}, sample {i}"
    rng = sample_rng(seed, step, i)
    if how == "value":
        return _scalar(loss(theta, rng), where), None
    kept: dict[str, Any] = {}

    def traced(th: Any) -> Any:
        out = _scalar(loss(th, rng), where)
        kept["value"] = md.stop_gradient(out)  # the primal, without its tangents
        return out

    if how == "forward":
        jac = md.jacfwd(traced)(theta)
    elif how == "triples":
        jac = derivative_estimate(traced, theta, seed=_pruning_seed(seed, step, i))
    else:
        raise ValueError(f"evaluate_sample: how must be 'value', 'forward' or 'triples', "
                         f"got {how!r}")
    return md.asarray(kept["value"]), md.asarray(jac)


@dataclass
class ChunkResult:
    """``values`` (m,) and ``jacobians`` (m, d) (None for ``how="value"``) of a chunk's
    samples; ``fallback`` is why the chunk ran as a loop when it was asked to batch (None
    otherwise)."""

    values: Any
    jacobians: Any
    fallback: str | None = None


def _loop(loss: Callable, theta: Any, step: int, indices: Sequence[int], seed: int,
          how: str) -> ChunkResult:
    rows = [evaluate_sample(loss, md.getitem(theta, k), step, i, seed, how)
            for k, i in enumerate(indices)]
    values = md.stack([md.stop_gradient(v) for v, _ in rows])
    jacobians = None if how == "value" else md.stack([j for _, j in rows])
    return ChunkResult(values, jacobians)


def _batched(loss: Callable, theta: Any, step: int, indices: Sequence[int], seed: int,
             how: str) -> ChunkResult:
    where = f"step {step}, samples {indices[0]}..{indices[-1]}"
    rngs = [sample_rng(seed, step, i) for i in indices]
    batched_loss = md.vmap(lambda th, rng: _scalar(loss(th, rng), where))
    if how == "value":
        return ChunkResult(md.stop_gradient(batched_loss(theta, rngs)), None)
    kept: dict[str, Any] = {}

    if how == "triples":
        def rows(th: Any) -> Any:
            out = batched_loss(th, rngs)
            kept["values"] = md.stop_gradient(out)
            return out

        seeds = [_pruning_seed(seed, step, i) for i in indices]
        jacobians = batched_derivative_estimate(rows, theta, seeds)
        return ChunkResult(md.asarray(kept["values"]), md.asarray(jacobians))

    def shifted(delta: Any) -> Any:  # every row moved by the same δ (d,)
        out = batched_loss(md.add(theta, delta), rngs)
        kept["values"] = md.stop_gradient(out)
        return out

    jacobians = md.jacfwd(shifted)(md.zeros((int(theta.shape[1]),)))
    return ChunkResult(md.asarray(kept["values"]), md.asarray(jacobians))


def _pruning_seed(seed: int, step: int, i: int) -> int:
    """The seed of sample i's pruning decisions under stochastic triples at step ``step``."""
    return int(md.to_host(default_rng(seed).stream(("triples", step, i)).random()) * 2.0**62)


def evaluate_chunk(loss: Callable[[Any, Any], Any], theta: Any, step: int,
                   indices: Sequence[int], seed: int, how: str,
                   batched: bool = True) -> ChunkResult:
    """ℓ_i (and J_i) for the samples ``indices`` whose θ_i are the rows of ``theta`` (m, d).

    ``how`` is ``"value"``, ``"forward"`` or ``"triples"`` (as :func:`evaluate_sample`);
    ``batched=False`` runs the loop."""
    if how not in ("value", "forward", "triples"):
        raise ValueError(f"evaluate_chunk: how must be 'value', 'forward' or 'triples', got "
                         f"{how!r}")
    if not batched or len(indices) == 1:
        return _loop(loss, theta, step, indices, seed, how)
    try:
        return _batched(loss, theta, step, indices, seed, how)
    except Exception as exc:  # the loop says whether the loss itself fails (then it raises)
        kind = "" if isinstance(exc, BatchingError) else f"{type(exc).__name__}: "
        reason = kind + str(exc).split("\n")[0]
        result = _loop(loss, theta, step, indices, seed, how)
        result.fallback = (f"the loss cannot run under minidiff.vmap ({reason}); its samples "
                           f"run one after another")
        return result


def run_chunk(loss: Callable[[Any, Any], Any], theta: Any, step: int, indices: Sequence[int],
              seed: int, how: str, batched: bool, backend: str) -> tuple[Any, Any, str | None]:
    """:func:`evaluate_chunk` on a worker: θ arrives as a host (NumPy) array (m, d) and the
    results go back as host arrays, with the fallback reason."""
    if md.get_backend().name != backend:
        md.set_backend(backend)
    b = md.get_backend()
    result = evaluate_chunk(loss, b.from_host(theta), step, list(indices), seed, how, batched)
    jac = result.jacobians
    return (b.to_host(md.stop_gradient(result.values)),
            None if jac is None else b.to_host(jac), result.fallback)
