"""Memory by mode on the Cont model's realised variance (models/cont.py; noise drawn per step
from keyed streams, so the noise itself is flat in T):
forward mode's peak does not grow with T, reverse mode's grows linearly, and checkpointed
reverse mode keeps a small fraction of the plain tape. Peaks come from ``minidiff.memory``
(tracemalloc on NumPy), which is deterministic for a given program."""

from __future__ import annotations

import numpy as np
import pytest

import minidiff as md
from minidiff import memory, reverse, transforms
from minidiff.memory import Measurement, measure, tape_memory
from minidiff.models.cont import BENCHMARK_PARAMS, BENCHMARK_SETTINGS, Noise, realised_variance

N_AGENTS = 2000


@pytest.fixture(autouse=True)
def numpy_backend():
    with md.use_backend("numpy"):
        yield


def cont(n_steps: int, checkpointed: bool = False, n_agents: int = N_AGENTS):
    noise = Noise(3, n_agents, s=BENCHMARK_SETTINGS["s"])
    return lambda theta: realised_variance(theta, n_timesteps=n_steps, n_agents=n_agents,
                                           rng=noise, checkpointed=checkpointed,
                                           **BENCHMARK_SETTINGS)


def theta():
    return md.asarray(list(BENCHMARK_PARAMS))


def test_measure_returns_the_result_a_peak_and_a_positive_time():
    m = measure(lambda a, b=1.0: md.sum(md.exp(a) * b), md.asarray(np.ones(10_000).tolist()),
                b=2.0)
    assert isinstance(m, Measurement)
    assert float(md.to_host(m.result)) == pytest.approx(2 * np.e * 10_000)
    assert m.seconds > 0
    assert 80_000 <= m.peak_bytes < 1_000_000          # exp(a) and its product: 80 kB each
    assert m.peak_mib == m.peak_bytes / 2**20


def test_forward_mode_peak_memory_does_not_grow_with_the_number_of_steps():
    # N = 10000 here: the interpreter's free lists fill up over a long run (about 0.15 MB
    # whatever N is), a third of the peak at N = 2000 but a few percent at N = 10000.
    n_agents = 10_000
    md.jacfwd(cont(10, n_agents=n_agents))(theta())   # first-call caches, charged to no one
    short = measure(md.jacfwd(cont(100, n_agents=n_agents)), theta())
    long = measure(md.jacfwd(cont(1000, n_agents=n_agents)), theta())
    assert long.peak_bytes <= 1.1 * short.peak_bytes
    assert (long.peak_bytes - short.peak_bytes) / n_agents <= 20   # reverse mode: 17 per step
    assert long.peak_bytes >= 4 * 8 * n_agents       # it does carry 4 tangents of N agents


def test_reverse_mode_peak_memory_grows_linearly_with_the_number_of_steps():
    peaks = {t: measure(md.grad(cont(t)), theta()).peak_bytes for t in (100, 200, 400)}
    assert 3.0 <= peaks[400] / peaks[100] <= 5.0
    assert 1.6 <= peaks[200] / peaks[100] <= 2.4
    per_step = (peaks[400] - peaks[100]) / 300 / N_AGENTS
    assert 8 <= per_step <= 40                          # bytes per agent per step


def test_the_tape_keeps_a_fixed_number_of_bytes_per_agent_per_step():
    for t in (50, 200):
        per_step = tape_memory(cont(t), theta())["bytes_peak"] / (t * N_AGENTS)
        assert 8 <= per_step <= 40


def test_checkpointed_reverse_mode_keeps_under_a_tenth_of_the_plain_tape():
    n_steps = 1000                                      # ⌈√T⌉ = 32 snapshots by default
    plain = measure(tape_memory, cont(n_steps), theta())
    ckpt = measure(tape_memory, cont(n_steps, checkpointed=True), theta())
    assert ckpt.result["bytes_peak"] <= 0.10 * plain.result["bytes_peak"]
    assert ckpt.peak_bytes <= 0.10 * plain.peak_bytes
    # about 33 states (32 snapshots and the last but one) of N thresholds and the loss so far
    assert ckpt.result["bytes_peak"] <= 34 * (8 * N_AGENTS + 8)
    assert ckpt.result["bytes_now"] == 0


def test_checkpointed_and_plain_gradients_agree_on_the_workload():
    plain = md.grad(cont(60))(theta())
    ckpt = md.grad(cont(60, checkpointed=True))(theta())
    want = np.asarray(md.to_host(plain))
    assert np.max(np.abs(np.asarray(md.to_host(ckpt)) - want)) <= 1e-12 * np.max(np.abs(want))


def test_tape_memory_holds_nothing_after_the_backward_pass_on_the_workload():
    # The last step's new thresholds feed nothing the loss reads; their residuals must be
    # dropped too. (Fails while Tape.backward frees only the nodes a cotangent reaches.)
    assert tape_memory(cont(5), theta())["bytes_now"] == 0


def test_tape_memory_frees_the_residuals_of_a_branch_the_output_does_not_use():
    # Minimal form of the test above: exp(x) is recorded (keeping 40 bytes) but unused.
    x = md.asarray([1.0, 2.0, 3.0, 4.0, 5.0])
    account = tape_memory(lambda v: (md.exp(v), md.sum(v * v))[1], x)
    assert account["bytes_now"] == 0, account["bytes_by_primitive"]


def test_tape_memory_holds_nothing_after_the_backward_pass_when_every_node_is_used():
    x = md.asarray([1.0, 2.0, 3.0])
    account = tape_memory(lambda v: md.sum(md.exp(v) * md.sin(v)), x)
    assert account["bytes_peak"] > 0 and account["bytes_now"] == 0


# ---------------------------------------------------------------------------------------------
# Only the metered tape counts
# ---------------------------------------------------------------------------------------------


def test_a_plain_grad_records_on_a_plain_tape_and_walks_no_residuals(monkeypatch):
    tapes, walks = [], [0]

    class Spy(reverse.ReverseEngine):
        def __init__(self, tape=None):
            super().__init__(tape)
            tapes.append(self.tape)

    real_residual_buffers = memory.residual_buffers

    def counting_residual_buffers(x):
        walks[0] += 1
        return real_residual_buffers(x)

    monkeypatch.setattr(transforms, "ReverseEngine", Spy)
    monkeypatch.setattr(memory, "residual_buffers", counting_residual_buffers)
    x = md.asarray([0.3, -1.2, 0.7])
    f = lambda v: md.sum(md.exp(v) * md.sin(v))             # noqa: E731
    md.grad(f)(x)
    assert type(tapes[-1]) is reverse.Tape and walks[0] == 0
    account = tape_memory(f, x)                               # the same program, metered
    assert isinstance(tapes[-1], memory.MeteredTape) and walks[0] == len(tapes[-1]) - 1
    assert account["bytes_peak"] == 3 * 24      # exp(v), v (for sin), sin(v): 24 bytes each


def test_metered_and_plain_tapes_give_the_same_gradient_bit_for_bit():
    x = md.asarray(np.linspace(-1.0, 1.0, 7).tolist())
    f = lambda v: md.sum(md.tanh(md.exp(v) * v) + md.sin(v) ** 2)  # noqa: E731
    plain = transforms.record_on_tape(f, (x,), (0,), "test")
    metered = transforms.record_on_tape(f, (x,), (0,), "test", tape=memory.MeteredTape())
    assert type(plain[0].tape) is reverse.Tape and type(metered[0].tape) is memory.MeteredTape
    grads = [transforms._backward(engine, level, out, inputs, seed=None, retain=False)[0]
             for engine, level, out, inputs in (plain, metered)]
    np.testing.assert_array_equal(md.to_host(grads[0]), md.to_host(grads[1]))
    assert metered[0].tape.memory()["bytes_now"] == 0
