"""The generic Cont loop through ``md.scan`` against the jitted step in a Python loop.

The workload is ``bench/cont_gradient.py``'s generic step (straight-through sigmoid surrogates,
hard Gumbel reset), written by a user three ways, timed side by side in one run and divided by
the plain-NumPy primal:

* ``jit step loop``: ``md.jit(generic_step)`` called from a Python loop (T calls; under ``grad``
  T tape nodes, under ``jacfwd`` T runs of the compiled JVP);
* ``scan replay``: ``md.scan`` over the step, the draws passed as ``xs`` (one primitive: under
  ``grad`` a scan of the VJP's forward part and one reverse scan of its backward part, under
  ``jacfwd`` a scan of the JVP);
* ``jit(scan)``: the scan loss under ``md.jit``: one program in which the scan is one equation
  (its body a sub-program, so the program does not grow with T), traced once (not timed);
  ``grad`` and ``jacfwd`` run the jitted loss's derived programs, which scan in turn;
* ``scan xL ckpt``: the loop cut in segments of L ≈ √T steps, each one scan, run by
  ``md.checkpointed_loop`` (revolve: memory for recomputation);
* ``eager``: the Python loop over the plain step, for reference.

Then the peak memory one call of ``grad`` and ``jacfwd`` allocates, for each.

Each ``md.scan`` call traces its body (twice, to refuse hidden state) and derives the JVP or VJP
bodies for that call, so those costs are inside the scan rows' times; the jitted step traces
once (first call, not timed). The checks: the scan's loss, gradient and Jacobian equal the
eager loop's to 1e-12 relative (the cotangents of σ and η are summed over the steps in the
scan's carry, a regrouping of the loop's sums).

``scan numba`` is the scan with ``executor="numba"``: where the body's arrays are small (at
most 4096 elements, ``minidiff.jit.loop_kernel.MAX_ELEMENTS``) the whole loop is one compiled
kernel, otherwise each step runs ``md.jit``'s fused numba kernels. Its first call compiles
(not timed). Then the peers (``bench/_peers.py``): JAX's ``lax.scan`` under ``jit`` and PyTorch
on the same step, timed in the same run where installed, else their reference figures.

Run: ``python bench/scan.py`` (N = 1e3, T = 1000); ``--agents N --steps T``; ``--quick``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from _common import best_of, print_header
from _peers import peer_lines
from cont_gradient import S_UPDATE, THETA, generic_step, loss_numpy, make_loss

import minidiff as md
from minidiff.models import cont


def make_scan_loss(noise: cont.Noise, n_steps: int, executor: str = "replay",
                   segment: int | None = None) -> Any:
    """Σ r² of the generic Cont loop as one ``md.scan``; with ``segment``, the scan cut in
    segments of that many steps, each segment one scan, run by ``md.checkpointed_loop``
    (revolve keeps √(T/segment) states; a segment's scan runs again in the backward pass)."""
    steps = [noise.step(t) for t in range(n_steps)]
    zetas = md.asarray(np.array([float(md.to_host(z)) for z, _ in steps]))
    updates = md.stack([u for _, u in steps])

    def loss(theta: Any) -> Any:
        mu, sigma_nu, sigma, eta = theta[0], theta[1], theta[2], theta[3]
        nu = md.exp(mu + sigma_nu * noise.z)
        depth = eta * float(noise.n_agents)

        def body(carry: Any, x: Any) -> Any:
            nu, total = carry
            zeta, update = x
            return generic_step(nu, total, sigma, depth, zeta, update), None

        if segment is None:
            (_, total), _ = md.scan(body, (nu, md.zeros(())), (zetas, updates),
                                    executor=executor)
            return total

        def run_segment(carry: Any, k: int) -> Any:
            rows = slice(k * segment, (k + 1) * segment)
            return md.scan(body, carry, (zetas[rows], updates[rows]), executor=executor)[0]

        _, total = md.checkpointed_loop(run_segment, (nu, md.zeros(())), n_steps // segment)
        return total

    return loss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="T = 100")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing, best kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peers", help="the peer programs' folder (JAX, PyTorch); see _peers")
    args = parser.parse_args(argv)
    n, n_steps = args.agents, (100 if args.quick else args.steps)
    print_header("default (glibc, untuned)")
    started = time.perf_counter()
    noise = cont.Noise(args.seed, n, s=S_UPDATE).predraw(n_steps)
    theta = md.asarray(list(THETA))
    segment = next(s for s in range(int(n_steps ** 0.5), 0, -1) if n_steps % s == 0)
    variants = [("eager", make_loss(generic_step, noise, n_steps)),
                ("jit step loop", make_loss(md.jit(generic_step), noise, n_steps)),
                ("scan replay", make_scan_loss(noise, n_steps)),
                ("jit(scan)", md.jit(make_scan_loss(noise, n_steps))),
                ("scan numba", make_scan_loss(noise, n_steps, "numba")),
                (f"scan x{segment} ckpt", make_scan_loss(noise, n_steps, segment=segment))]
    for _, loss in variants:  # first calls: tracing, compiling, fresh memory
        loss(theta), md.grad(loss)(theta), md.jacfwd(loss)(theta)
    t_np, value_np = best_of(lambda: loss_numpy(noise, n_steps), max(args.repeat, 3))
    best = {name: [float("inf")] * 3 for name, _ in variants}
    results: dict[str, list[Any]] = {name: [None] * 3 for name, _ in variants}
    for _ in range(args.repeat):  # round all the variants, so a busy spell hits each once
        for name, loss in variants:
            for m, call in enumerate((lambda: loss(theta), lambda: md.grad(loss)(theta),
                                      lambda: md.jacfwd(loss)(theta))):
                seconds, results[name][m] = best_of(call, 1)
                best[name][m] = min(best[name][m], seconds)
    t_after, _ = best_of(lambda: loss_numpy(noise, n_steps), max(args.repeat, 3))
    t_np = min(t_np, t_after)
    print(f"\n== generic Cont, N = {n}, T = {n_steps}: numpy primal {t_np:.4f}s, best of "
          f"{args.repeat}; ratios to it (targets: grad and jacfwd <= 10x for scan replay at "
          f"N = 1e3, <= 4x for scan numba) ==")
    print(f"{'run':<16} {'primal':>8} {'grad':>8} {'jacfwd(4)':>10}")
    for name, _ in variants:
        t_p, t_g, t_f = best[name]
        print(f"{name:<16} {t_p / t_np:>7.2f}x {t_g / t_np:>7.2f}x {t_f / t_np:>9.2f}x")
    jitted = dict(variants)["jit(scan)"]
    print(f"jit(scan): one program of {jitted.lower(theta).n_equations} equations (the scan one "
          f"of them, whatever T), traced and compiled in "
          f"{jitted.cache_info().trace_seconds + jitted.cache_info().compile_seconds:.3f}s")
    s_g, s_f = best["scan replay"][1:]
    j_g, j_f = best["jit step loop"][1:]
    print(f"jit step loop / scan replay: grad {j_g / s_g:.2f}x, jacfwd {j_f / s_f:.2f}x")
    n_g, n_f = best["scan numba"][1:]
    print(f"seconds, to compare with the peers' (their primals differ): scan numba grad "
          f"{n_g:.4f}, jacfwd {n_f:.4f}; scan replay grad {s_g:.4f}, jacfwd {s_f:.4f}")
    for line in peer_lines(n, n_steps, args.repeat, args.peers):
        print(line)
    print("\npeak memory allocated by one call (tracemalloc, md.memory.measure), MiB:")
    print(f"{'run':<16} {'grad':>8} {'jacfwd(4)':>10}")
    for name, loss in variants:
        peaks = [md.memory.measure(t(loss), theta).peak_mib for t in (md.grad, md.jacfwd)]
        print(f"{name:<16} {peaks[0]:>8.1f} {peaks[1]:>10.1f}")
    ok = True
    ref = [np.asarray(md.to_host(r)) for r in results["eager"]]
    for name, _ in variants[1:]:
        for what, got, want in zip(("loss", "grad", "jacfwd"), results[name], ref):
            got = np.asarray(md.to_host(got))
            if not np.allclose(got, want, rtol=1e-12, atol=0.0):
                print(f"  {name} {what}: {got} differs from eager {want}")
                ok = False
    rel = abs(float(ref[0]) - value_np) / abs(value_np)
    ok &= rel <= 1e-12
    print(f"checks {'passed' if ok else 'FAILED'} (scan and jit vs eager at 1e-12, eager loss "
          f"vs numpy {rel:.1e}); took {time.perf_counter() - started:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
