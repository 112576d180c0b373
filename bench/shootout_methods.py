"""The shoot-out's methods: each calibrates one task on one dataset within a simulation budget.

A method is ``run(task, observed, budget, seed) -> Fit``. The Fit holds the posterior draws
(or, for a point estimate, one row) in the task's box coordinates, the simulations used and
the wall time. Every method's simulations go through :class:`Counter`, which counts the calls
of the task's simulator itself rather than trusting a library's own count; a GVI step through
a simulation (forward mode carrying the tangents) counts as one simulation per sample.

* ``prior``: the reference, the uniform prior on the box itself (no simulation): a method
  whose error is not below it has learnt nothing from the data.
* ``gvi-pathwise``, ``gvi-score``: :func:`minidiff.inference.calibrate` with a diagonal Gaussian
  q on x = logit((θ − low)/(high − low)), whose prior is the standard logistic (that is, θ
  uniform on the box), and the model's own defaults from the model registry (its
  ``CALIBRATION`` in ``minidiff.models.registry``: the loss, w, samples per step, Adam's
  learning rate with a cosine decay), for budget/samples steps. Posterior: 4000 draws of q.
* ``black-it``: its default sampler trio (Halton, random forest, best batch; batch size 8,
  round robin), the method-of-simulated-moments loss on the series, an ensemble of 3
  simulations per point, 10⁻⁴ of the box as the grid precision; batches until the budget is
  spent. A point estimate (the best point), so no interval.
* ``sbi-npe``: sbi's NPE (its default masked autoregressive flow and training) on the task's
  summary statistics of ``budget`` prior simulations. Posterior: 4000 draws at the data.
* ``pyabc``: ABC-SMC with an adaptive 2-norm distance on the same statistics, a population of
  100·√(budget/1000), single core, until the budget is spent (pyabc checks the budget between
  generations, so it can run over it: the count says so). Posterior: the last population's
  weighted particles.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from shootout_tasks import Task

import minidiff as md
from minidiff import inference as inf
from minidiff.models.registry import model_spec

__all__ = ["Fit", "METHODS", "Counter", "PEERS"]

N_DRAWS = 4000


@dataclass
class Fit:
    """What a method returns: draws (n, d) in box coordinates, with weights for pyabc."""

    draws: np.ndarray
    weights: np.ndarray | None
    point: bool               # a point estimate: no interval
    simulations: int
    seconds: float


class Counter:
    """The task's simulator with a count of its calls."""

    def __init__(self, task: Task, seed: int) -> None:
        self.task, self.count = task, 0
        self._seeds = np.random.default_rng(seed)

    def seed(self) -> int:
        return int(self._seeds.integers(2_000_000, 2**31 - 1))

    def simulate(self, theta: Any, seed: int | None = None) -> np.ndarray:
        self.count += 1
        return self.task.simulate(theta, self.seed() if seed is None else seed)

    def traced(self, theta: Any, rng: Any) -> Any:
        self.count += 1
        return self.task.simulate_traced(theta, rng)


# ---------------------------------------------------------------------------------------------
# minidiff GVI
# ---------------------------------------------------------------------------------------------


class StandardLogistic:
    """The standard logistic on ℝ^d, the law of x = logit(u) for u uniform on (0, 1)^d:
    log p(x) = Σ_j −softplus(x_j) − softplus(−x_j)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def log_prob(self, x: Any) -> Any:
        x = md.asarray(x)
        return md.sum(-(md.softplus(x) + md.softplus(md.negative(x))), axis=-1)

    def sample(self, rng: Any, n: int) -> Any:
        u = md.clip(rng.random((n, self.dim)), 1e-12, 1.0 - 1e-12)
        return md.log(u) - md.log1p(md.negative(u))


def _gvi(gradient: str) -> Callable[[Task, np.ndarray, int, int], Fit]:
    def run(task: Task, observed: np.ndarray, budget: int, seed: int) -> Fit:
        start = time.perf_counter()
        model = model_spec(task.model)
        setup = model.calibration
        counter = Counter(task, seed)
        low, width = md.asarray(list(task.low)), md.asarray(
            list(np.subtract(task.high, task.low)))
        target = md.asarray(observed)
        if setup.loss == "model":
            def distance(simulated: Any) -> Any:
                return model.loss(simulated, target)
        elif setup.loss in ("mmd", "energy", "mse"):
            distance = {"mmd": inf.mmd, "energy": inf.energy_distance,
                        "mse": inf.mse}[setup.loss](target)
        else:
            raise ValueError(f"shootout: {task.model}'s default loss {setup.loss!r} is not "
                             f"wired into the bench")

        def loss(x: Any, rng: Any) -> Any:
            return distance(counter.traced(low + width * md.sigmoid(x), rng))

        n_steps = max(1, budget // setup.samples)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            result = inf.calibrate(loss, StandardLogistic(task.dim), inf.DiagonalGaussian(task.dim),
                                   n_samples=setup.samples, n_steps=n_steps,
                                   optimizer=inf.adam(inf.cosine(setup.lr, n_steps)), seed=seed,
                                   options=inf.RunOptions(w=setup.w, gradient=gradient,
                                                          on_nan="skip", progress=False))
        x = np.asarray(md.get_backend().to_host(result.sample(N_DRAWS, seed=seed + 1)))
        draws = np.asarray(task.low) + np.subtract(task.high, task.low) / (1 + np.exp(-x))
        return Fit(draws, None, False, counter.count, time.perf_counter() - start)

    return run


# ---------------------------------------------------------------------------------------------
# peers (imported when run, so a missing one is skipped)
# ---------------------------------------------------------------------------------------------


def _black_it(task: Task, observed: np.ndarray, budget: int, seed: int) -> Fit:
    from black_it.calibrator import Calibrator
    from black_it.loss_functions.msm import MethodOfMomentsLoss
    from black_it.samplers.best_batch import BestBatchSampler
    from black_it.samplers.halton import HaltonSampler
    from black_it.samplers.random_forest import RandomForestSampler

    start = time.perf_counter()
    counter = Counter(task, seed)
    batch, ensemble = 8, 3

    def model(theta: np.ndarray, length: int, model_seed: int) -> np.ndarray:
        series = counter.simulate(theta, int(model_seed) % (2**31 - 1))
        return series.reshape(len(series), -1)[:length]

    real = observed.reshape(len(observed), -1)
    low, high = np.asarray(task.low), np.asarray(task.high)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # black-it prints every batch; numpy's pin warns
        calibrator = Calibrator(
            loss_function=MethodOfMomentsLoss(), real_data=real, model=model,
            parameters_bounds=[list(low), list(high)],
            parameters_precision=list((high - low) * 1e-4), ensemble_size=ensemble,
            samplers=[HaltonSampler(batch_size=batch), RandomForestSampler(batch_size=batch),
                      BestBatchSampler(batch_size=batch)],
            verbose=False, random_state=seed, n_jobs=1)
        params, _ = calibrator.calibrate(max(1, budget // (batch * ensemble)))
    return Fit(np.asarray(params[:1], dtype=float), None, True, counter.count,
               time.perf_counter() - start)


def _sbi(task: Task, observed: np.ndarray, budget: int, seed: int) -> Fit:
    import torch
    from sbi.inference import NPE
    from sbi.utils import BoxUniform
    from sbi.utils.tracking import TensorBoardTracker
    from torch.utils.tensorboard import SummaryWriter

    start = time.perf_counter()
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    counter = Counter(task, seed)
    prior = BoxUniform(low=torch.tensor(task.low, dtype=torch.float32),
                       high=torch.tensor(task.high, dtype=torch.float32))
    theta = prior.sample((budget,))
    x = np.stack([task.summaries(counter.simulate(t.numpy().astype(float))) for t in theta])
    logs = tempfile.TemporaryDirectory()  # sbi's TensorBoard logs, else ./sbi-logs
    npe = NPE(prior=prior, show_progress_bars=False,
              tracker=TensorBoardTracker(SummaryWriter(log_dir=logs.name)))
    with logs, contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        npe.append_simulations(theta, torch.tensor(x, dtype=torch.float32)).train()
        posterior = npe.build_posterior()
        draws = posterior.sample((N_DRAWS,), x=torch.tensor(task.summaries(observed),
                                                            dtype=torch.float32),
                                 show_progress_bars=False)
    return Fit(draws.numpy().astype(float), None, False, counter.count,
               time.perf_counter() - start)


def _pyabc(task: Task, observed: np.ndarray, budget: int, seed: int) -> Fit:
    import logging

    import pyabc

    logging.getLogger("ABC").setLevel(logging.ERROR)
    logging.getLogger("pyabc").setLevel(logging.ERROR)
    start = time.perf_counter()
    np.random.seed(seed)  # pyabc draws from NumPy's global generator
    counter = Counter(task, seed)
    names = [f"p{j}" for j in range(task.dim)]
    prior = pyabc.Distribution(**{n: pyabc.RV("uniform", lo, hi - lo)
                                  for n, lo, hi in zip(names, task.low, task.high)})

    def as_dict(stats: np.ndarray) -> dict:
        return {f"s{k}": float(v) for k, v in enumerate(stats)}

    def model(parameter: dict) -> dict:
        return as_dict(task.summaries(counter.simulate([parameter[n] for n in names])))

    population = int(round(100 * math.sqrt(budget / 1000)))
    abc = pyabc.ABCSMC(model, prior, pyabc.AdaptivePNormDistance(p=2),
                       population_size=population,
                       sampler=pyabc.sampler.SingleCoreSampler())
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        abc.new("sqlite:///" + str(Path(folder) / "abc.db"), as_dict(task.summaries(observed)))
        history = abc.run(minimum_epsilon=0.0, max_total_nr_simulations=budget)
        frame, weights = history.get_distribution(m=0, t=history.max_t)
        draws = frame[names].to_numpy(dtype=float)
    return Fit(draws, np.asarray(weights, dtype=float), False, counter.count,
               time.perf_counter() - start)


def _prior(task: Task, observed: np.ndarray, budget: int, seed: int) -> Fit:
    """The reference every method must beat: the box's uniform prior, no simulation."""
    draws = np.random.default_rng(seed).uniform(task.low, task.high, size=(N_DRAWS, task.dim))
    return Fit(draws, None, False, 0, 0.0)


METHODS: dict[str, Callable[[Task, np.ndarray, int, int], Fit]] = {
    "prior": _prior, "gvi-pathwise": _gvi("pathwise"), "gvi-score": _gvi("score"),
    "black-it": _black_it, "sbi-npe": _sbi, "pyabc": _pyabc}
PEERS = {"black-it": "black_it", "sbi-npe": "sbi", "pyabc": "pyabc"}  # method → module
