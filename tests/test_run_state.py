"""CrashError-safe run state: a resumed run ends exactly where an uninterrupted one does (params and
history compared with ==, no tolerance: the state is saved bit for bit and the randomness is
keyed by step), and a checkpoint that is corrupted, foreign or of another configuration is
refused with a message that says which."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import minidiff as md
from minidiff import inference as inf

Y = np.random.default_rng(11).normal(0.5, 1.0, size=15)
N_STEPS = 12


def problem(lr=0.05):
    nll = inf.gaussian_nll(md.asarray(Y))

    def loss(theta, rng):  # a touch of simulation noise, so the keyed streams matter
        return nll(md.getitem(theta, 0) + 0.01 * rng.normal())

    return dict(loss=loss, prior=inf.Normal(0.0, 2.0), family=inf.DiagonalGaussian(1),
                optimizer=inf.adam(inf.cosine(lr, N_STEPS)))


def run(folder=None, *, resume=False, lr=0.05, w=1.0, every=4, config=None, callback=None):
    p = problem(lr)
    return inf.calibrate(p["loss"], p["prior"], p["family"], optimizer=p["optimizer"], n_samples=3,
                         n_steps=N_STEPS, seed=4,
                         options=inf.RunOptions(w=w, checkpoint=folder, checkpoint_every=every,
                                                resume=resume, config=config, callback=callback,
                                                patience=50))


def state_of(result):
    leaves = [np.asarray(md.to_host(x)) for x in inf.tree_leaves(
        [result.params, result.best_params, result.optimizer_state]) if hasattr(x, "shape")]
    h = result.history
    return leaves, (h.total, h.loss, h.kl, h.grad_norm, h.dropped, h.skipped), result.best_step


def assert_same_run(a, b):
    (la, ha, sa), (lb, hb, sb) = state_of(a), state_of(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(x, y)
    assert ha == hb and sa == sb


class CrashError(Exception):
    pass


def crash_after(k):
    def callback(step, est, params):
        if step == k:
            raise CrashError

    return callback


def test_an_interrupted_run_resumed_ends_bit_identical(tmp_path):
    expected = run()
    with pytest.raises(CrashError):
        run(tmp_path, callback=crash_after(6))  # checkpoint at 4, crash in step 6
    resumed = run(tmp_path, resume=True)
    assert resumed.resumed_from == 4
    assert_same_run(resumed, expected)
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(N_STEPS))
    assert json.loads(lines[3])["total"] == expected.history.total[3]


def test_resuming_a_finished_run_changes_nothing(tmp_path):
    first = run(tmp_path)
    again = run(tmp_path, resume=True)
    assert again.resumed_from == N_STEPS
    assert_same_run(again, first)


SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_run_state import run
    # the callback only waits (it changes nothing), so a step lasts long enough to be hit
    result = run({folder!r}, resume=sys.argv[1] == "resume", every=1,
                 callback=lambda *a: time.sleep(0.01))
    print("resumed_from", result.resumed_from, flush=True)
""")


def test_runs_killed_with_sigkill_and_resumed_end_bit_identical(tmp_path):
    """SIGKILL (no cleanup, no flush) at several moments, each a random fraction of a step
    after the run has logged a given step, so a kill lands anywhere in a step's cycle: the
    simulations, the update, the log line or the checkpoint's writes."""
    folder = tmp_path / "ckpt"
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), folder=str(folder)))
    log = folder / "history.jsonl"
    jitter = random.Random(0)
    resumed_from = []
    for target in (2, 4, 6):  # steps logged before the kill (of 12)
        mode = "resume" if (folder / "manifest.json").exists() else "fresh"
        proc = subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if log.exists() and len(log.read_text().splitlines()) >= target:
                break
            time.sleep(0.001)
        time.sleep(jitter.uniform(0.0, 0.015))  # about one step: anywhere in its cycle
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    done = subprocess.run([sys.executable, str(script), "resume"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    resumed_from.append(int(done.stdout.split()[-1]))
    assert resumed_from[0] > 0
    assert_same_run(run(folder, resume=True), run())


# ---------------------------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path):
    run(tmp_path)
    return tmp_path


def state_file(folder, ext):
    (path,) = folder.glob(f"state-*.{ext}")
    return path


def rewrite_manifest_for(folder, path):
    """Update the manifest's size and hash of ``path``, as a forger would."""
    manifest = json.loads((folder / "manifest.json").read_text())
    data = path.read_bytes()
    manifest["files"][path.name] = {"bytes": len(data),
                                    "sha256": hashlib.sha256(data).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def refused(folder, match, **kwargs):
    with pytest.raises(inf.CheckpointError, match=match):
        run(folder, resume=True, **kwargs)


def test_a_changed_configuration_is_refused_naming_what_changed(checkpoint):
    refused(checkpoint, r"another configuration \(calibrate\.w: 1\.0 -> 2\.0\)", w=2.0)
    refused(checkpoint, r"fingerprints\.optimizer", lr=0.1)  # caught with no config given
    refused(checkpoint, r"user\.data: \(absent\) -> 'b'", config={"data": "b"})


def test_a_truncated_state_file_is_refused(checkpoint):
    path = state_file(checkpoint, "npz")
    path.write_bytes(path.read_bytes()[:100])
    refused(checkpoint, r"has 100 bytes, the manifest recorded \d+: truncated")


def test_an_edited_state_file_is_refused(checkpoint):
    path = state_file(checkpoint, "json")
    path.write_text(path.read_text().replace('"stopped_early": false', '"stopped_early": true '))
    refused(checkpoint, r"does not match the SHA-256 in the manifest: edited")


def test_missing_or_truncated_manifests_and_missing_files_are_refused(tmp_path, checkpoint):
    refused(tmp_path / "nowhere", "there is no checkpoint folder")
    state_file(checkpoint, "json").unlink()
    refused(checkpoint, r"state-000012\.json is missing")
    manifest = checkpoint / "manifest.json"
    manifest.write_text(manifest.read_text()[:40])
    refused(checkpoint, "is not valid JSON")
    manifest.unlink()
    refused(checkpoint, "has no manifest.json, so no checkpoint was completed there")


def test_an_edited_manifest_configuration_is_refused(checkpoint):
    manifest = checkpoint / "manifest.json"
    data = json.loads(manifest.read_text())
    data["config"]["calibrate"]["w"] = 2.0  # edited, hash left as it was
    manifest.write_text(json.dumps(data))
    refused(checkpoint, "does not match its recorded hash: the manifest was edited", w=2.0)


class Payload:
    def __reduce__(self):
        return (os.system, ("echo planted pickle ran",))


def test_a_planted_pickle_is_refused_and_never_unpickled(checkpoint, capfd):
    (checkpoint / "best_estimator.pt").write_bytes(pickle.dumps(Payload()))
    refused(checkpoint, r"files this run did not write: best_estimator\.pt")
    (checkpoint / "best_estimator.pt").unlink()

    path = state_file(checkpoint, "npz")  # a pickle in place of the arrays, hashes forged
    path.write_bytes(pickle.dumps(Payload()))
    rewrite_manifest_for(checkpoint, path)
    refused(checkpoint, r"(?s)is not a plain .npz of arrays.*ever unpickled")

    arrays = {"params/0": np.array([Payload()], dtype=object)}
    with open(path, "wb") as f:  # an .npz whose entry is an object array (a pickle inside)
        np.savez(f, **arrays)
    rewrite_manifest_for(checkpoint, path)
    refused(checkpoint, r"(?s)not a plain .npz of arrays.*allow_pickle=False")
    assert "planted pickle ran" not in capfd.readouterr().out


def test_a_fresh_run_will_not_overwrite_a_checkpoint(checkpoint):
    with pytest.raises(inf.CheckpointError, match="already holds a checkpoint; pass resume=True"):
        run(checkpoint)


def test_resume_without_a_folder_is_refused():
    with pytest.raises(ValueError, match="resume=True needs checkpoint=DIR"):
        run(None, resume=True)
