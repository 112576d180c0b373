"""Thread safety: the open transforms (levels) and the current backend are per thread.

Several threads run ``grad``, ``jacfwd`` and a checkpointed ``grad`` at once, each on its own
backend (NumPy or array_api_strict), many times, with the interpreter switching threads every
10 µs; every result must equal the single-threaded one bit for bit. Events then force the
interleavings the issue found broken: a plain ``checkpointed_loop`` while another thread is
inside ``grad``, and two threads inside ``use_backend`` blocks of different backends."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

import minidiff as md
from minidiff import random as mr
from minidiff.checkpointing import ReplayError
from minidiff.core import Box, active_levels, close_level, open_level

BACKENDS = ("numpy", "array_api_strict")
N_THREADS = 4
ITERATIONS = 60


@pytest.fixture(autouse=True)
def frequent_switches():
    """Switch threads every 10 µs (the default is 5 ms), so that the threads interleave
    inside the transforms rather than between them."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def host(x):
    return np.asarray(md.to_host(x), dtype=np.float64)


def loss(x):
    return md.sum(md.sin(x) * x * x) + md.prod(md.exp(-x))


def vector(x):
    return md.sin(x) * md.exp(x) + md.cumsum(x * x)


def checkpointed(x):
    def step(state, t):  # ops, not operators: a raw strict array cannot lead a traced one
        return md.tanh(md.add(md.multiply(state, x), 0.1 * t))

    return md.sum(md.checkpointed_loop(step, md.ones((3,)), 12, snapshots=3))


def noisy(theta):
    # keyed draws inside the step: the same numbers in every run of it, in every thread
    rng = mr.default_rng(5)

    def step(state, t):
        return md.add(state, md.multiply(theta, rng.stream(("step", t)).normal(size=(3,))))

    return md.sum(md.square(md.checkpointed_loop(step, md.zeros((3,)), 10)))


JOBS = {
    "grad": lambda x: md.grad(loss)(x),
    "jacfwd": lambda x: md.jacfwd(vector)(x),
    "checkpointed grad": lambda x: md.grad(checkpointed)(x),
    "checkpointed grad with draws": lambda x: md.grad(noisy)(x),
    "hessian": lambda x: md.hessian(loss)(x),
}
POINT = [0.3, -1.2, 0.7]


def reference(name, backend):
    with md.use_backend(backend) as b:
        return host(JOBS[name](b.asarray(POINT)))


def test_many_threads_differentiate_at_once_each_with_its_own_backend():
    expected = {(name, backend): reference(name, backend) for name in JOBS for backend in BACKENDS}
    errors, results = [], []
    start = threading.Barrier(N_THREADS)

    def worker(index):
        backend = BACKENDS[index % 2]
        names = list(JOBS)
        try:
            with md.use_backend(backend) as b:
                x = b.asarray(POINT)
                start.wait()
                for i in range(ITERATIONS):
                    name = names[(i + index) % len(names)]
                    if md.get_backend() is not b:
                        errors.append(f"thread {index}: the backend changed to "
                                      f"{md.get_backend().name}")
                    results.append((name, backend, host(JOBS[name](x))))
            if active_levels():
                errors.append(f"thread {index} ended with open levels {active_levels()}")
        except Exception as exc:  # collected, so the main thread reports every failure
            errors.append(f"thread {index}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:5]
    assert len(results) == N_THREADS * ITERATIONS
    for name, backend, got in results:
        np.testing.assert_array_equal(got, expected[name, backend], err_msg=f"{name} on "
                                                                               f"{backend}")


def test_a_plain_checkpointed_loop_returns_a_plain_array_while_another_thread_is_in_grad():
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def differentiating():
        def f(x):
            inside.set()
            assert done.wait(10)  # stay inside grad until the other thread has run
            seen["levels inside grad"] = len(active_levels())
            return md.sum(x * x)

        seen["grad"] = host(md.grad(f)(md.asarray([1.0, 2.0])))

    def plain():
        assert inside.wait(10)
        try:
            seen["levels in the other thread"] = len(active_levels())
            seen["loop"] = md.checkpointed_loop(lambda s, t: s * 2.0, md.asarray([1.0]), 3)
        finally:
            done.set()

    threads = [threading.Thread(target=differentiating), threading.Thread(target=plain)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen["levels in the other thread"] == 0 and seen["levels inside grad"] == 1
    assert not isinstance(seen["loop"], Box) and md.get_backend().is_array(seen["loop"])
    np.testing.assert_array_equal(host(seen["loop"]), [8.0])
    np.testing.assert_array_equal(seen["grad"], [2.0, 4.0])


def test_use_backend_in_one_thread_leaves_the_others_on_theirs():
    entered, checked = threading.Event(), threading.Event()
    seen = {}

    def strict():
        with md.use_backend("array_api_strict") as b:
            entered.set()
            assert checked.wait(10)
            seen["strict thread"] = md.get_backend().name
            seen["strict value"] = type(md.exp(b.asarray(1.0))).__module__
        seen["strict thread after"] = md.get_backend().name

    def default():
        assert entered.wait(10)
        try:
            seen["default thread"] = md.get_backend().name
            seen["default value"] = type(md.exp(md.asarray(1.0))).__module__
        finally:
            checked.set()

    threads = [threading.Thread(target=strict), threading.Thread(target=default)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen["strict thread"] == "array_api_strict"
    assert seen["strict value"].startswith("array_api_strict")
    assert seen["default thread"] == md.get_backend().name == "numpy"
    assert seen["default value"].startswith("numpy")
    assert seen["strict thread after"] == "numpy"


def test_set_backend_sets_the_default_of_new_threads_but_not_of_a_use_backend_block():
    previous = md.get_backend()
    seen = {}
    try:
        with md.use_backend("numpy"):
            md.set_backend("array_api_strict")  # replaces this block's backend only
            seen["block"] = md.get_backend().name
        seen["after block"] = md.get_backend().name
        md.set_backend("array_api_strict")  # the process default
        thread = threading.Thread(target=lambda: seen.update(thread=md.get_backend().name))
        thread.start()
        thread.join()
    finally:
        md.set_backend(previous)
    assert seen == {"block": "array_api_strict", "after block": previous.name,
                    "thread": "array_api_strict"}


def test_closing_a_level_of_another_thread_is_refused():
    from minidiff.core import Engine

    opened = {}
    thread = threading.Thread(target=lambda: opened.update(level=open_level(Engine())))
    thread.start()
    thread.join()
    with pytest.raises(RuntimeError, match="close_level: .* not this thread's deepest open "
                                           "level"):
        close_level(opened["level"])


def test_threads_sharing_a_generator_get_distinct_children():
    rng = mr.default_rng(0)
    children = []
    start = threading.Barrier(N_THREADS)

    def worker():
        start.wait()
        children.extend(repr(rng.child()) for _ in range(200))

    threads = [threading.Thread(target=worker) for _ in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(children)) == len(children) == N_THREADS * 200


def test_a_generator_made_by_another_thread_during_a_step_is_outside_the_step():
    # made after the step began, but not by the step: the step's recomputation would not
    # make it again, so drawing from it is refused like any generator made outside
    in_step, made = threading.Event(), threading.Event()
    shared, seen = {}, {}

    def maker():
        assert in_step.wait(10)
        shared["rng"] = mr.default_rng(3)
        made.set()

    def step(state, t):
        if t == 0 and "rng" not in shared:
            in_step.set()
            assert made.wait(10)
        return md.add(state, shared["rng"].normal())

    def differentiate():
        try:
            md.grad(lambda x: md.checkpointed_loop(step, x, 3))(md.asarray(1.0))
        except Exception as exc:
            seen["error"] = exc
        finally:
            in_step.set()

    threads = [threading.Thread(target=maker), threading.Thread(target=differentiate)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert isinstance(seen.get("error"), ReplayError), seen
    assert "normal: a checkpointed_loop step drew from a random generator made outside" in str(
        seen["error"])
