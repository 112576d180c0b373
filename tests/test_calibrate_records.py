"""What a run records: the progress bar, the JSON-lines history and the NaN-policy summary."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import minidiff as md
from minidiff import inference as inf

Y = np.random.default_rng(3).normal(1.0, 1.0, size=10)


def nll_loss(bad=()):
    """A Normal–Normal NLL that is NaN for the (step, sample) pairs in ``bad`` (recognised by
    the stream: the loss draws one number and compares it with the ones those pairs draw)."""
    nll = inf.gaussian_nll(md.asarray(Y))
    poisoned = {float(inf.objective.sample_rng(0, s, i).normal()) for s, i in bad}

    def loss(theta, rng):
        value = nll(md.getitem(theta, 0))
        return value * math.nan if float(rng.normal()) in poisoned else value

    return loss


def fit(steps=6, **kwargs):
    return inf.calibrate(kwargs.pop("loss", nll_loss()), inf.Normal(0.0, 2.0),
                         inf.DiagonalGaussian(1), n_samples=4, n_steps=steps,
                         optimizer=inf.adam(0.05), options=inf.RunOptions(**kwargs))


def test_the_progress_bar_shows_step_loss_kl_total_and_best(capsys):
    pytest.importorskip("tqdm")
    result = fit(progress=True)
    err = capsys.readouterr().err
    assert "calibrate" in err and "6/6" in err
    last = result.history
    assert f"loss {last.loss[-1]:.4g}" in err and f"KL {last.kl[-1]:.4g}" in err
    assert f"total {last.total[-1]:.4g}" in err and f"best {min(last.total):.4g}" in err


def test_no_bar_with_progress_false(capsys):
    fit(progress=False)
    assert capsys.readouterr().err == ""


def test_progress_true_without_tqdm_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pytest.raises(ImportError, match=r"'progress' extra"):
        fit(progress=True)


def test_the_history_is_written_as_json_lines_as_the_run_goes(tmp_path):
    path = tmp_path / "h.jsonl"
    seen = []

    def callback(step, est, params):  # the line of step s is there when step s + 1 runs
        seen.append(len(path.read_text().splitlines()) if path.exists() else 0)

    result = fit(history_path=path, callback=callback)
    assert seen == [0, 1, 2, 3, 4, 5]
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(6))
    assert [r["total"] for r in records] == result.history.total
    assert all(r["dropped"] == [] and r["skipped"] is None for r in records)


def test_the_nan_summary_says_how_many_samples_were_dropped_and_where(tmp_path):
    bad = [(1, 2), (4, 0), (4, 3)]
    path = tmp_path / "h.jsonl"
    with pytest.warns(RuntimeWarning) as warned:
        result = fit(loss=nll_loss(bad), on_nan="skip", history_path=path)
    assert result.history.dropped_samples == [[], [2], [], [], [0, 3], []]
    summary = result.nan_summary()
    assert summary == "3 of 24 samples dropped as non-finite, at steps 1 (1), 4 (2)"
    # the loss branches in Python, so its samples also run as a loop, with a warning of its own
    assert any(summary in str(w.message) for w in warned)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records[4]["dropped"] == [0, 3]
    assert fit().nan_summary() == "non-finite values: none in 6 steps"
