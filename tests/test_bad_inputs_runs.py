"""The catalogue of bad inputs to runs: shared run folders, data files, settings, the command
line's paths and numbers, security and the models' edge regions. Each case asserts the right
value, or an error whose message names the setting (or file, line and column) and the fix.

Classes: one run per checkpoint folder (an OS lock, tested with real processes); CSV data read
cell by cell (a BOM, headers, empty and non-numeric cells); a bounded wait for a Dask
scheduler; settings refused at the call (non-finite numbers, a prior narrower than the family,
a run that skips every step, a non-JSON config, Brock–Hommes's R); the current folder on the
import path only while a user's model is imported; the limit-order book where its mid-price
never moves. Cases where arrays are involved run on NumPy and array_api_strict (``backend``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import minidiff as md
from minidiff import inference as inf
from minidiff.cli import main
from minidiff.cli.calibrate_setup import UsageError, load_model, read_csv
from minidiff.inference.run_lock import FolderInUseError, FolderLock
from minidiff.models import brock_hommes, lob

SCRIPT = Path(sys.executable).with_name("minidiff")  # the installed console script


def host(x):
    return np.asarray(md.to_host(x), dtype=np.float64)


def fails(capsys, *argv):
    """The one-line error of ``minidiff calibrate argv`` (argparse exits with status 2)."""
    with pytest.raises(SystemExit) as exc:
        main(["calibrate", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1]


def square(theta, rng):
    return md.sum(theta * theta)


# ---------------------------------------------------------------------------------------------
# one run per checkpoint folder: an exclusive OS lock, released however the run ends
# ---------------------------------------------------------------------------------------------

SLOW_MODEL = textwrap.dedent('''
    """A one-parameter model for the lock tests: SLOW_MODEL_SLEEP seconds per simulation."""
    import os
    import time

    import minidiff as md


    def simulate(params, *, rng):
        time.sleep(float(os.environ.get("SLOW_MODEL_SLEEP", "0")))
        noise = rng.normal(size=(8,))
        return md.add(md.getitem(md.asarray(params), 0), md.multiply(0.1, noise))
''')
RUN = ["--model", "slowmodel:simulate", "--true-params", "0.3", "--steps", "12", "--samples",
       "2", "--screen", "0", "--checkpoint", "run", "--checkpoint-every", "1", "--no-plot",
       "--quiet"]


def _wait_for(path: Path, process: subprocess.Popen, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_a_second_run_into_a_held_folder_is_refused_and_a_killed_holder_never_blocks_resume(
        tmp_path, monkeypatch, capsys):
    assert SCRIPT.exists(), f"the console script {SCRIPT} is not installed (pip install -e .)"
    (tmp_path / "slowmodel.py").write_text(SLOW_MODEL)
    env = {k: v for k, v in os.environ.items() if k != "MINIDIFF_BACKEND"}
    slow = {**env, "SLOW_MODEL_SLEEP": "1.0"}  # 2 s a step: killed long before its end
    holder = subprocess.Popen([str(SCRIPT), "calibrate", *RUN], cwd=tmp_path, env=slow,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(tmp_path / "run" / "manifest.json", holder)  # it holds the lock and saved
        second = subprocess.run([str(SCRIPT), "calibrate", *RUN], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=300)
        assert second.returncode == 2, second.stdout
        assert (f"checkpoint folder run is in use by another run (pid {holder.pid} on host "
                f"{socket.gethostname()}, started ") in second.stderr
        assert "Wait for that run to end, or choose another folder" in second.stderr
        assert holder.poll() is None  # the refused run left the holder alone
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate()
    lock = tmp_path / "run" / "run.lock"
    assert json.loads(lock.read_text())["pid"] == holder.pid  # stale: nobody holds it now
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SLOW_MODEL_SLEEP", raising=False)
    assert main(["calibrate", *RUN, "--resume"]) == 0
    out = capsys.readouterr().out
    assert "resumed from the checkpoint at step" in out and "12 steps in" in out
    assert lock.read_text() == ""  # released at the end
    sys.modules.pop("slowmodel", None)


def test_two_locks_on_one_folder_in_one_process_exclude_each_other(tmp_path):
    with FolderLock(tmp_path / "run") as first:
        assert first.held
        with pytest.raises(FolderInUseError, match=rf"in use by another run \(pid "
                           rf"{os.getpid()} on host .*started .*choose another folder"):
            FolderLock(tmp_path / "run").acquire()
    with FolderLock(tmp_path / "run") as again:  # released on leaving the block
        assert again.held


def test_calibrate_refuses_a_folder_another_calibrate_holds(tmp_path):
    args = (square, inf.Normal(0.0, 1.0), inf.DiagonalGaussian(1))
    with FolderLock(tmp_path):
        with pytest.raises(FolderInUseError, match="in use by another run"):
            inf.calibrate(*args, n_steps=2, optimizer=inf.adam(0.1),
                          options=inf.RunOptions(checkpoint=tmp_path))
    assert not (tmp_path / "manifest.json").exists()  # nothing was written
    inf.calibrate(*args, n_steps=2, optimizer=inf.adam(0.1),
                  options=inf.RunOptions(checkpoint=tmp_path))
    assert (tmp_path / "manifest.json").exists()


def test_a_run_that_raises_releases_its_folder(tmp_path):
    def broken(theta, rng):  # raises in the first step, after the folder was locked
        raise RuntimeError("the simulator broke")

    with pytest.raises(RuntimeError, match="the simulator broke"):
        inf.calibrate(broken, inf.Normal(0.0, 1.0), inf.DiagonalGaussian(1), n_steps=3, n_samples=1,
                      optimizer=inf.adam(0.1), options=inf.RunOptions(checkpoint=tmp_path))
    assert (tmp_path / "run.lock").exists()  # it was taken ...
    with FolderLock(tmp_path) as again:       # ... and released
        assert again.held


def test_a_lock_whose_details_are_unreadable_still_refuses_and_says_so(tmp_path):
    with FolderLock(tmp_path) as held:
        held.path.write_text("not json")  # as if read between the holder's open and write
        with pytest.raises(FolderInUseError, match="a run that has not yet written its pid"):
            FolderLock(tmp_path).acquire()


def test_resume_into_a_missing_folder_names_it_and_a_file_is_not_a_folder(tmp_path):
    args = (square, inf.Normal(0.0, 1.0), inf.DiagonalGaussian(1))
    with pytest.raises(inf.CheckpointError, match="there is no checkpoint folder"):
        inf.calibrate(*args, n_steps=2, optimizer=inf.adam(0.1),
                      options=inf.RunOptions(checkpoint=tmp_path / "x", resume=True))
    assert not (tmp_path / "x").exists()  # resume creates nothing
    (tmp_path / "f").write_text("")
    with pytest.raises(inf.CheckpointError, match="exists and is not a folder"):
        inf.calibrate(*args, n_steps=2, optimizer=inf.adam(0.1),
                      options=inf.RunOptions(checkpoint=tmp_path / "f"))


@pytest.mark.parametrize("edit, says", [
    (lambda m: m.update(step="3"), r"records step '3', not an integer ≥ 0"),
    (lambda m: m.update(step=-1), r"records step -1"),
    (lambda m: m.update(files={"state-000002.npz": "x"}), r"each needs bytes and sha256"),
], ids=["step-string", "step-negative", "files-malformed"])
def test_an_edited_manifest_is_a_checkpoint_error_not_a_crash(tmp_path, edit, says):
    args = (square, inf.Normal(0.0, 1.0), inf.DiagonalGaussian(1))
    kw = dict(n_steps=2, optimizer=inf.adam(0.1))
    inf.calibrate(*args, **kw, options=inf.RunOptions(checkpoint=tmp_path))
    path = tmp_path / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(inf.CheckpointError, match=says):
        inf.calibrate(*args, **kw, options=inf.RunOptions(checkpoint=tmp_path, resume=True))


def test_a_manifest_with_a_byte_order_mark_is_refused_as_edited(tmp_path):
    args = (square, inf.Normal(0.0, 1.0), inf.DiagonalGaussian(1))
    kw = dict(n_steps=2, optimizer=inf.adam(0.1))
    inf.calibrate(*args, **kw, options=inf.RunOptions(checkpoint=tmp_path))
    path = tmp_path / "manifest.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    with pytest.raises(inf.CheckpointError, match="is not valid JSON"):
        inf.calibrate(*args, **kw, options=inf.RunOptions(checkpoint=tmp_path, resume=True))


# ---------------------------------------------------------------------------------------------
# CSV data: a real CSV reader; nothing dropped or shifted
# ---------------------------------------------------------------------------------------------


def write(tmp_path, content, name="obs.csv"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


@pytest.mark.parametrize("content, expected", [
    ("\ufeff1,2\n3,4\n", [[1.0, 2.0], [3.0, 4.0]]),           # a BOM is not a header
    ("\ufeffa,b\n1,2\n3,4\n", [[1.0, 2.0], [3.0, 4.0]]),     # BOM before a header
    ("x,y\n1,2\n3,4\n", [[1.0, 2.0], [3.0, 4.0]]),           # a non-numeric header
    ("1\r\n2\r\n3\r\n", [1.0, 2.0, 3.0]),                    # CRLF
    ('"1.5","-2e-3"\n"3",".5"\n', [[1.5, -2e-3], [3.0, 0.5]]),  # quoted numbers
    (" 1 , 2 \n3,4\n\n\n", [[1.0, 2.0], [3.0, 4.0]]),        # spaces; blank lines at the end
    ("2020,2021\n1,2\n", [[2020.0, 2021.0], [1.0, 2.0]]),    # numeric first line: data
], ids=["bom", "bom-header", "header", "crlf", "quoted", "spaces", "numeric-first-line"])
def test_csv_files_are_read_exactly(backend, tmp_path, content, expected):
    np.testing.assert_array_equal(host(read_csv(write(tmp_path, content))), expected)


@pytest.mark.parametrize("content, says", [
    ("1,2\n3,\n5,6\n", "line 2, column 2 is empty"),
    ("a,b\n1,2\n,4\n", "line 3, column 1 ('a') is empty"),
    ("1,2,\n3,4,\n", "line 1, column 3 is empty"),             # a trailing comma
    ("1\n \n2\n", "line 2 is blank but data follow it"),
    ("1\n2\nNaN\n", "line 3, column 1 holds 'NaN', not a finite decimal number"),
    ("1\n-inf\n", "line 2, column 1 holds '-inf'"),
    ("1\n1e999\n", "line 2, column 1 holds '1e999', which overflows a float64"),
    ("1\n1_000\n", "line 2, column 1 holds '1_000'"),         # float() would take it
    ("1\n0x1f\n", "line 2, column 1 holds '0x1f'"),
    ("1\n\u22121\n", "line 2, column 1 holds '\u22121'"),      # a Unicode minus
    ("date,2020\n1,2\n", "line 1 mixes numbers and text (column 1 is 'date')"),
    ("1;2\n3;4\n", "line 2, column 1 ('1;2') holds '3;4'"),    # another delimiter
    ("x\n1\n2,3\n", "line 3 has 2 cells, the header 1"),
    ('1\n"2\n', "line 2 is not valid CSV"),                    # an unclosed quote
    ("x\n1\n", "needs at least two rows of numbers, found 1"),
    (b"1\n\xe9\n", "not UTF-8 text (byte 2"),
], ids=["empty-cell", "empty-cell-header", "trailing-comma", "blank-line", "nan", "inf",
        "overflow", "underscore", "hex", "unicode-minus", "mixed-header", "semicolons",
        "ragged", "unclosed-quote", "header-only", "latin-1"])
def test_bad_csv_cells_are_refused_naming_line_and_column(tmp_path, content, says):
    with pytest.raises(UsageError, match=None) as info:
        read_csv(write(tmp_path, content))
    assert says in str(info.value)


def test_the_data_hash_is_of_the_bytes_that_were_parsed(capsys, tmp_path):
    path = write(tmp_path, "\ufeffx\n" + "".join(f"{0.01 * t}\n" for t in range(10)))
    out = tmp_path / "out.json"
    assert main(["calibrate", "--model", "brock_hommes", "--data", path, "--timesteps", "10",
                 "--steps", "1", "--samples", "2", "--no-plot", "--quiet", "--json",
                 str(out)]) == 0
    import hashlib
    recorded = json.loads(out.read_text())["config"]["data_sha256"]
    assert recorded == hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# a Dask scheduler that does not answer: a bounded wait and a clear message
# ---------------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed on leaving the block: nothing listens there


def test_a_scheduler_that_does_not_answer_fails_within_the_connect_timeout(capsys):
    pytest.importorskip("dask.distributed")
    port = _closed_port()
    start = time.monotonic()
    line = fails(capsys, "--executor", "dask", "--scheduler", f"tcp://127.0.0.1:{port}",
                 "--connect-timeout", "1", "--steps", "1", "--samples", "2", "--no-plot",
                 "--quiet")
    elapsed = time.monotonic() - start
    assert f"no Dask scheduler answered at 'tcp://127.0.0.1:{port}' within 1 s" in line
    assert "--connect-timeout" in line
    # not a timing benchmark: Dask's own default wait is 30 s, so a run that ignored the
    # setting would take 30 s; 1 s plus start-up stays far below 20 s on a loaded machine
    assert elapsed < 20.0


@pytest.mark.parametrize("argv, says", [
    (["--connect-timeout", "5"], "--connect-timeout is how long to wait for the scheduler"),
    (["--executor", "dask", "--scheduler", "tcp://127.0.0.1:1", "--connect-timeout", "0"],
     "expected a finite number > 0, got 0"),
    (["--executor", "dask", "--scheduler", "tcp://127.0.0.1:1", "--connect-timeout", "nan"],
     "expected a finite number > 0, got nan"),
    (["--executor", "dask", "--scheduler", "tcp://127.0.0.1:1", "--connect-timeout", "-1"],
     "expected a finite number > 0, got -1"),
    (["--executor", "dask", "--scheduler", "tcp://127.0.0.1:1", "--connect-timeout", "soon"],
     "expected a number, got 'soon'"),
    (["--w", "inf"], "--w: expected a finite number > 0, got inf"),
    (["--lr", "nan"], "--lr: expected a finite number > 0, got nan"),
    (["--checkpoint-every", "0"], "expected an integer ≥ 1, got 0"),
    (["--timesteps", "2.5"], "expected an integer ≥ 1, got '2.5'"),
    (["--true-params", "nan"], "--true-params: values must be finite"),
    (["--seed", "-1"], "argument --seed: expected an integer seed ≥ 0, got -1"),
    (["--data-seed", "-2"], "argument --data-seed: expected an integer seed ≥ 0, got -2"),
    (["--json", "no_such_folder_here/out.json"], "--json no_such_folder_here/out.json: the "
     "folder 'no_such_folder_here' does not exist; create it first"),
    (["--plot", "."], "--plot . is a folder; give a file name"),
    (["--data", "."], "--data: no such file '.'"),
], ids=["timeout-without-scheduler", "timeout-0", "timeout-nan", "timeout-negative",
        "timeout-text", "w-inf", "lr-nan", "checkpoint-every-0", "timesteps-float",
        "true-params-nan", "seed-negative", "data-seed-negative", "json-missing-folder",
        "plot-folder", "data-folder"])
def test_numeric_flags_are_refused_in_one_line(capsys, argv, says):
    assert says in fails(capsys, *argv)


def test_a_checkpoint_path_that_is_a_file_is_refused_before_the_run(capsys, tmp_path):
    (tmp_path / "state").write_text("mine")
    assert f"checkpoint path {tmp_path / 'state'} exists and is not a folder" in fails(
        capsys, "--checkpoint", str(tmp_path / "state"), "--steps", "1", "--no-plot")
    assert (tmp_path / "state").read_text() == "mine"


def test_make_executor_refuses_a_bad_connect_timeout():
    for bad in (0, -1.0, math.inf, math.nan, "10", True):
        with pytest.raises(ValueError, match="connect_timeout must be a finite number of "
                           "seconds > 0"):
            inf.make_executor("dask", scheduler="tcp://127.0.0.1:1", connect_timeout=bad)


# ---------------------------------------------------------------------------------------------
# settings refused at the call
# ---------------------------------------------------------------------------------------------


RUN_OPTIONS = {f.name for f in dataclasses.fields(inf.RunOptions)}


def calls_counted():
    calls = []

    def loss(theta, rng):
        calls.append(1)
        return md.sum(theta * theta)

    return loss, calls


@pytest.mark.parametrize("kwargs, error, says", [
    ({"w": math.inf}, ValueError, r"w \(the weight of the KL\) must be a finite number in "
     r"\[0, inf\), got inf"),
    ({"w": math.nan}, ValueError, r"w \(the weight of the KL\) must be a finite number"),
    ({"w": -1.0}, ValueError, r"w \(the weight of the KL\) must be a finite number"),
    ({"w": "1"}, TypeError, r"w \(the weight of the KL\) must be a real number, got '1'"),
    ({"w": True}, TypeError, r"w \(the weight of the KL\) must be a real number"),
    ({"n_samples": 0}, ValueError, "n_samples must be an integer ≥ 1, got 0"),
    ({"n_samples": 2.0}, TypeError, "n_samples must be an integer ≥ 1, got 2.0"),
    ({"kl_samples": 0}, ValueError, "kl_samples must be an integer ≥ 1"),
    ({"seed": -1}, ValueError, "seed must be an integer ≥ 0, got -1"),
    ({"seed": 1.5}, TypeError, "seed must be an integer ≥ 0"),
    ({"min_delta": math.nan}, ValueError, "min_delta must be a finite number"),
    ({"min_delta": -0.1}, ValueError, "min_delta must be a finite number in"),
    ({"patience": 0}, ValueError, "patience must be an integer ≥ 1"),
    ({"checkpoint_every": 0}, ValueError, "checkpoint_every must be an integer ≥ 1"),
    ({"n_steps": 0}, ValueError, "n_steps must be an integer ≥ 1"),
    ({"optimizer": 0.1}, TypeError, r"optimizer must be an Optimizer \(adam\(1e-2\)"),
    ({"config": {"data": np.zeros(3)}}, TypeError,
     r"config must hold only JSON values .*config\['data'\] \(a ndarray\) is not.*tolist"),
    ({"config": {"names": {"a", "b"}}}, TypeError, r"config\['names'\] \(a set\)"),
    ({"config": {"run": {1: "x"}}}, TypeError, r"config\['run'\]\[1\] \(a int key"),
    ({"config": {"f": square}}, TypeError, r"config\['f'\] \(a function\)"),
    ({"config": [1, 2]}, TypeError, "config must be a dict"),
    ({"config": (loop := {"a": []}, loop["a"].append(loop))[0]}, TypeError,
     r"config\['a'\]\[0\] \(a dict that contains itself\)"),
], ids=["w-inf", "w-nan", "w-negative", "w-str", "w-bool", "n_samples-0", "n_samples-float",
        "kl_samples-0", "seed-negative", "seed-float", "min_delta-nan", "min_delta-negative",
        "patience-0", "checkpoint_every-0", "n_steps-0", "optimizer-number", "config-array",
        "config-set", "config-int-key", "config-function", "config-list",
        "config-circular"])
def test_bad_calibrate_settings_are_refused_before_any_step(backend, kwargs, error, says):
    loss, calls = calls_counted()
    options = {k: v for k, v in kwargs.items() if k in RUN_OPTIONS}
    settings = {"n_steps": 2, "optimizer": inf.adam(0.1),
                **{k: v for k, v in kwargs.items() if k not in RUN_OPTIONS}}
    with pytest.raises(error, match=says):
        inf.calibrate(loss, inf.Normal(0.0, 1.0), inf.DiagonalGaussian(1), **settings,
                      options=inf.RunOptions(**options))
    assert calls == []  # refused at the call: the loss never ran


@pytest.mark.parametrize("options, error, says", [
    ({"gradient": "magic"}, ValueError, r"RunOptions: gradient must be one of \('pathwise', "
     r"'score'\), got 'magic'"),
    ({"kl": "exact"}, ValueError, r"RunOptions: kl must be one of \('auto', 'analytic', 'mc'\)"),
    ({"baseline": None}, ValueError, r"RunOptions: baseline must be one of \('loo', 'none'\)"),
    ({"executor": "threads"}, ValueError, r"executor must be one of \('serial', 'processes', "
     r"'dask'\) or an Executor, got 'threads'"),
    ({"workers": 4}, ValueError, r"executor='serial' runs in this process.*workers=4 needs "
     r"executor='processes' or 'dask'"),
    ({"workers": 0, "executor": "processes"}, ValueError, "workers must be an integer ≥ 1"),
    ({"scheduler": "tcp://h:1"}, ValueError, "a scheduler address is for executor='dask'"),
    ({"connect_timeout": 0.0}, ValueError, "connect_timeout must be a finite number of "
     "seconds > 0"),
    ({"resume": True}, ValueError, "RunOptions: resume=True needs checkpoint=DIR"),
    ({"resume": "yes"}, TypeError, "RunOptions: resume must be True or False, got 'yes'"),
    ({"checkpoint": 3}, TypeError, r"RunOptions: checkpoint must be a folder or file path"),
    ({"history_path": ["a"]}, TypeError, r"RunOptions: history_path must be"),
    ({"progress": "auto"}, TypeError, r"RunOptions: progress must be True, False or None"),
    ({"callback": 1}, TypeError, r"RunOptions: callback must be a function callback\(step"),
], ids=["gradient", "kl", "baseline", "executor", "serial-workers", "workers-0",
        "scheduler-without-dask", "connect-timeout-0", "resume-no-folder", "resume-str",
        "checkpoint-int", "history-path-list", "progress-str", "callback-int"])
def test_bad_run_options_are_refused_where_they_are_written(options, error, says):
    with pytest.raises(error, match=says):
        inf.RunOptions(**options)


def test_an_old_keyword_call_is_refused_showing_the_run_options_to_write():
    args = (square, inf.Normal(0.0, 1.0), inf.DiagonalGaussian(1))
    with pytest.raises(TypeError, match=r"calibrate: w, on_nan are run options: pass "
                       r"options=RunOptions\(w=0.5, on_nan='skip'\)"):
        inf.calibrate(*args, n_steps=1, optimizer=inf.adam(0.1), w=0.5, on_nan="skip")
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) n_stepz; it takes "
                       r"n_steps, optimizer, n_samples, seed and options=RunOptions"):
        inf.calibrate(*args, n_stepz=1, n_steps=1, optimizer=inf.adam(0.1))
    with pytest.raises(TypeError, match="options must be a RunOptions"):
        inf.calibrate(*args, n_steps=1, optimizer=inf.adam(0.1), options={"w": 0.5})


def test_calibrate_is_short_and_every_run_option_is_documented():
    import inspect

    from minidiff.inference import run_options

    assert len(inspect.signature(inf.calibrate).parameters) <= 10
    undocumented = [name for name in RUN_OPTIONS if f"``{name}``" not in run_options.__doc__]
    assert not undocumented, f"RunOptions fields missing from the module notes: {undocumented}"


def test_run_options_are_frozen_and_replaced_one_at_a_time(tmp_path):
    options = inf.RunOptions(w=2, checkpoint=tmp_path)
    assert options.w == 2.0 and isinstance(options.w, float)  # stored as checked
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.w = 1.0
    resumed = dataclasses.replace(options, resume=True)
    assert resumed.resume and resumed.checkpoint == tmp_path and not options.resume
    with pytest.raises(ValueError, match="resume=True needs checkpoint=DIR"):
        dataclasses.replace(options, checkpoint=None, resume=True)  # checked again


def test_a_json_config_is_accepted_with_tuples_and_non_finite_floats(backend, tmp_path):
    config = {"grid": (1, 2.5), "bound": math.inf, "name": "x", "flag": None, "ok": True}
    result = inf.calibrate(square, inf.Normal(0.0, 1.0), inf.DiagonalGaussian(1), n_steps=2,
                           optimizer=inf.adam(0.1),
                           options=inf.RunOptions(config=config, checkpoint=tmp_path))
    assert len(result.history) == 2
    again = inf.calibrate(square, inf.Normal(0.0, 1.0), inf.DiagonalGaussian(1), n_steps=2,
                          optimizer=inf.adam(0.1),
                          options=inf.RunOptions(config=config, checkpoint=tmp_path, resume=True))
    assert again.resumed_from == 2


@pytest.mark.parametrize("make, says", [
    (lambda: inf.adam(math.inf), r"adam|constant: lr must be a number > 0, finite, got inf"),
    (lambda: inf.adam(math.nan), "lr must be a number > 0, finite, got nan"),
    (lambda: inf.sgd("0.1"), "lr must be a number > 0, finite, got '0.1'"),
    (lambda: inf.cosine(0.1, 10, final=-1e-3), r"cosine: final \(the last rate\) must be a "
     r"number in \[0, lr\] = \[0, 0.1\], got -0.001; a negative rate would climb"),
    (lambda: inf.cosine(0.1, 10, final=0.2), r"final \(the last rate\) must be a number in "
     r"\[0, lr\]"),
    (lambda: inf.cosine(0.1, 10, final=math.nan), r"final \(the last rate\)"),
    (lambda: inf.cosine(math.inf, 10), "cosine: lr must be a number > 0, finite"),
    (lambda: inf.cosine(0.1, 0), "cosine: n_steps must be an integer ≥ 1"),
    (lambda: inf.adam(0.1, b1=math.nan), r"adam: b1 must lie in \[0, 1\)"),
    (lambda: inf.adam(0.1, b2="0.9"), r"adam: b2 must lie in \[0, 1\), got '0.9'"),
    (lambda: inf.adam(0.1, eps=0.0), "adam: eps must be a number > 0, finite, got 0.0"),
    (lambda: inf.adam(0.1, eps=-1e-8), "adam: eps must be a number > 0"),
    (lambda: inf.adamw(0.1, weight_decay=math.inf), "adamw: weight_decay must be a finite "
     "number ≥ 0, got inf"),
    (lambda: inf.sgd(0.1, momentum=math.nan), r"sgd: momentum must lie in \[0, 1\)"),
    (lambda: inf.clip_by_global_norm(math.inf), "clip_by_global_norm: max_norm must be a "
     "number > 0, finite"),
    (lambda: inf.constant(-0.1), "constant: lr must be a number > 0"),
], ids=["adam-inf", "adam-nan", "sgd-str", "cosine-negative-final", "cosine-final-above-lr",
        "cosine-final-nan", "cosine-lr-inf", "cosine-steps-0", "adam-b1-nan", "adam-b2-str",
        "adam-eps-0", "adam-eps-negative", "adamw-decay-inf", "sgd-momentum-nan",
        "clip-inf", "constant-negative"])
def test_bad_optimizer_settings_are_refused_at_the_call(make, says):
    with pytest.raises(ValueError, match=says):
        make()


def test_a_cosine_schedule_ends_at_its_final_rate():
    schedule = inf.cosine(0.1, 10, final=0.01)
    assert schedule(0) == pytest.approx(0.1, rel=1e-15)
    assert schedule(10) == 0.01 and schedule(5) == pytest.approx(0.055, rel=1e-15)


@pytest.mark.parametrize("prior, family, says", [
    (lambda: inf.Beta(2.0, 2.0), lambda: inf.DiagonalGaussian(1),
     r"coordinate 0 \(Beta\) has support \(0, 1\) but DiagonalGaussian\(dim=1\) puts draws on "
     r"\(-inf, inf\).*Transformed\(Beta\(a, b\), Sigmoid\(\)\.inverted\(\)\).*BetaFamily"),
    (lambda: inf.Independent(inf.Normal(0.0, 1.0), inf.Gamma(2.0, 1.0)),
     lambda: inf.FullRankGaussian(2), r"coordinate 1 \(Gamma\) has support \(0, inf\)"),
    (lambda: inf.LogNormal(0.0, 1.0), lambda: inf.DiagonalGaussian(1),
     r"coordinate 0 \(LogNormal\) has support \(0, inf\)"),
    (lambda: inf.Uniform(0.0, 1.0), lambda: inf.BetaFamily(1), None),  # same support: fine
    (lambda: inf.Uniform(0.2, 1.0), lambda: inf.BetaFamily(1),
     r"coordinate 0 \(Uniform\) has support \(0.2, 1\) but BetaFamily"),
    (lambda: inf.Transformed(inf.Beta(2.0, 2.0), inf.Sigmoid().inverted()),
     lambda: inf.DiagonalGaussian(1), None),  # a Beta prior on the logit scale: fine
    (lambda: inf.Transformed(inf.Beta(2.0, 2.0), inf.Sigmoid()),
     lambda: inf.DiagonalGaussian(1), r"the prior has no density \(log π = (-inf|nan)\) at \d+ of "
     r"256 draws of the family"),  # a prior of unknown support: found by its density
], ids=["beta-gaussian", "gamma-fullrank", "lognormal-gaussian", "uniform01-beta-family",
        "uniform-narrow-beta-family", "logit-beta-gaussian", "transformed-narrow"])
@pytest.mark.filterwarnings("ignore:invalid value")  # the logit of draws outside (0, 1)
def test_a_prior_narrower_than_the_family_is_refused_at_the_call(backend, prior, family, says):
    loss, calls = calls_counted()
    run = dict(n_steps=1, n_samples=2, optimizer=inf.adam(0.01),
               options=inf.RunOptions(on_nan="skip"))
    if says is None:
        assert len(inf.calibrate(loss, prior(), family(), **run).history) == 1
        return
    with pytest.raises(ValueError, match=says):
        inf.calibrate(loss, prior(), family(), **run)
    assert calls == []


@pytest.mark.filterwarnings("ignore:divide by zero", "ignore:invalid value")
@pytest.mark.parametrize("mode, says", [
    # reverse mode sees only the step's total gradient: every step is skipped, and the run
    # refuses to end with the initial params
    ("reverse", r"every one of the 4 steps was skipped as non-finite .*on_nan='skip' cannot "
     r"make such a run succeed"),
    # mixed mode sees each sample's Jacobian: every sample is dropped, and the step raises
    ("forward", r"step 0: every one of the 2 samples was dropped as non-finite"),
])
def test_skip_never_succeeds_having_skipped_every_step(backend, mode, says):
    def nan_gradient(theta, rng):  # finite value, NaN derivative (√|0·x| at 0)
        x = md.getitem(theta, 0)
        return x * x + md.sqrt(md.abs(x) * 0.0)

    with pytest.raises(inf.NonFiniteError, match=says):
        inf.calibrate(nan_gradient, inf.Normal(0.0, 1.0), inf.DiagonalGaussian(1), n_steps=4,
                      n_samples=2, optimizer=inf.adam(0.1),
                      options=inf.RunOptions(mode=mode, on_nan="skip"))


@pytest.mark.parametrize("R, says", [
    (0.0, r"must lie in \(1, inf\), got 0.0"),
    (-1.01, r"must lie in \(1, inf\), got -1.01"),
    (1e-12, r"must lie in \(1, inf\), got 1e-12"),
    (1.0, r"must lie in \(1, inf\), got 1.0"),
    (math.nan, "must be finite"),
    ("1.01", "must be a number"),
], ids=["zero", "negative", "tiny", "one", "nan", "str"])
def test_brock_hommes_refuses_a_gross_return_that_is_not_above_one(backend, R, says):  # noqa: N803
    with pytest.raises((ValueError, TypeError), match=r"brock_hommes\.simulate: R \(gross "
                       r"risk-free return 1 \+ r, with the rate r > 0\) " + says):
        brock_hommes.simulate(brock_hommes.DEFAULT_PARAMS, n_timesteps=5, rng=0, R=R)


def test_brock_hommes_just_above_one_is_finite(backend):
    x = brock_hommes.simulate(brock_hommes.DEFAULT_PARAMS, n_timesteps=200, rng=0, R=1.0001)
    assert np.all(np.isfinite(host(x)))


# ---------------------------------------------------------------------------------------------
# --model module:function: the current folder is on the import path only for that import
# ---------------------------------------------------------------------------------------------

PLANTED = textwrap.dedent('''
    from pathlib import Path
    Path(__file__).with_name("PLANTED_RAN").write_text("the stray matplotlib.py ran")
    raise SystemExit("the stray matplotlib.py ran")
''')


def test_a_stray_matplotlib_in_the_current_folder_never_runs(tmp_path):
    assert SCRIPT.exists(), f"the console script {SCRIPT} is not installed (pip install -e .)"
    pytest.importorskip("matplotlib")
    (tmp_path / "matplotlib.py").write_text(PLANTED)
    (tmp_path / "slowmodel.py").write_text(SLOW_MODEL)
    env = {k: v for k, v in os.environ.items() if k != "MINIDIFF_BACKEND"}
    done = subprocess.run([str(SCRIPT), "calibrate", "--model", "slowmodel:simulate",
                           "--true-params", "0.3", "--steps", "1", "--samples", "2", "--plot",
                           "fig.png", "--quiet"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "PLANTED_RAN").exists()
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"  # the installed matplotlib


def test_the_current_folder_leaves_the_import_path_after_the_import(tmp_path, monkeypatch):
    (tmp_path / "usermodel_for_path_test.py").write_text(SLOW_MODEL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    model = load_model("usermodel_for_path_test:simulate")
    assert callable(model.simulate)
    assert str(tmp_path) not in sys.path
    with pytest.raises(UsageError, match=r"--model nowhere_module:f: cannot import module "
                       r"'nowhere_module'"):
        load_model("nowhere_module:f")
    with pytest.raises(UsageError, match=r"has no function 'missing'"):
        load_model("usermodel_for_path_test:missing")
    assert str(tmp_path) not in sys.path
    sys.modules.pop("usermodel_for_path_test", None)


def test_an_installed_module_wins_over_a_local_file_of_the_same_name(tmp_path, monkeypatch):
    (tmp_path / "colorsys.py").write_text(PLANTED)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    sys.modules.pop("colorsys", None)
    model = load_model("colorsys:rgb_to_hsv")  # the standard library's, not ./colorsys.py
    assert model.simulate.__module__ == "colorsys"
    assert not (tmp_path / "PLANTED_RAN").exists()


# ---------------------------------------------------------------------------------------------
# the limit-order book where its mid-price never moves
# ---------------------------------------------------------------------------------------------

DEEP_BOOK = (6.85, 0.58, 0.139, 0.27)  # λ₀/θ ≈ 49 orders a level, μ = 0.27 market orders a step


def test_a_book_whose_mid_never_moves_has_a_finite_loss_and_gradient(backend, to_array):
    # the region where `minidiff calibrate --model lob` dropped samples: r ≡ 0 made
    # ½ log mean r² = −∞, an infinite loss with a NaN gradient
    theta = to_array(DEEP_BOOK)
    still = lob.simulate(theta, n_timesteps=20, n_agents=5, rng=0)
    assert np.all(host(still)[:, :, 0] == 0.0)  # the region is real: no return at all
    m = host(lob.summary_statistics(still))
    assert m[0] == 0.5 * math.log(lob.RETURN_FLOOR**2)  # the floor, exactly
    observed = lob.simulate(to_array(lob.DEFAULT_PARAMS), n_timesteps=20, n_agents=5, rng=1)
    assert np.any(host(observed)[:, :, 0] != 0.0)

    def loss(p):
        return lob.loss(lob.simulate(p, n_timesteps=20, n_agents=5, rng=0), observed)

    assert np.isfinite(host(loss(theta)))
    assert np.all(np.isfinite(host(md.jacfwd(loss)(theta))))


def test_the_volatility_statistic_with_its_floor_is_half_log_of_floor_plus_mean_square(
        backend, to_array):
    series = np.zeros((3, 2, 6))
    series[:, :, 0] = [[0.5, -1.0], [0.0, 1.5], [0.5, 0.0]]
    series[:, :, 1] = 1.0
    m = host(lob.summary_statistics(to_array(series)))
    mean_r2 = np.mean(series[:, :, 0] ** 2)
    assert m[0] == pytest.approx(0.5 * math.log(0.25 + mean_r2), rel=1e-15)
    assert m[1] == 0.0  # log of a one-tick spread
