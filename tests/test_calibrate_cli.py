"""``minidiff calibrate``: the table, the JSON, the figure, resume, and one-line errors.

The runs here are tiny (a few steps of a few samples on short series): they check the command's
plumbing, not the quality of the fit (tests/test_readme.py runs the full default and checks
that the truth lies in its 90% interval)."""

from __future__ import annotations

import json
import textwrap

import pytest

import minidiff as md
from minidiff.cli import main

TINY = ["--steps", "3", "--samples", "2", "--timesteps", "10", "--screen", "10", "--quiet",
        "--no-plot"]


def run(capsys, *argv):
    code = main(["calibrate", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fails(capsys, *argv):
    """Run a command that must be refused: exit status 2, one error line, no traceback."""
    with pytest.raises(SystemExit) as exc:
        main(["calibrate", *argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and err.splitlines()[-1] == errors[0], err
    return errors[0]


def test_the_table_names_each_parameter_with_its_truth_and_interval(capsys, tmp_path):
    out_json = tmp_path / "out.json"
    code, out, _ = run(capsys, "--model", "sir", "--agents", "200", "--json", str(out_json),
                       *TINY)
    assert code == 0
    assert "posterior mean ± sd" in out and "90% interval" in out
    for name, true in (("beta", "0.3"), ("gamma", "0.1"), ("initial_infected", "0.01")):
        (row,) = [line for line in out.splitlines() if line.startswith(name + " ")]
        assert row.split()[1] == true
    data = json.loads(out_json.read_text())
    params = data["parameters"]
    assert [p["name"] for p in params] == ["beta", "gamma", "initial_infected"]
    assert all(p["q05"] <= p["mean"] <= p["q95"] and p["sd"] > 0 for p in params)
    assert len(data["history"]["total"]) == 3
    assert data["config"]["settings"] == {"n_timesteps": 10, "n_agents": 200}


def test_the_plot_is_a_png(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "fit.png"
    code, out, _ = run(capsys, "--model", "brock_hommes", *TINY[:-1], "--plot", str(path))
    assert code == 0 and f"figure written to {path}" in out
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_data_from_a_csv_file_has_no_true_values(capsys, tmp_path):
    csv = tmp_path / "returns.csv"
    csv.write_text("x\n" + "\n".join(f"{0.1 * ((-1) ** t) * (t % 5)}" for t in range(10)))
    code, out, _ = run(capsys, "--model", "brock_hommes", "--data", str(csv), *TINY)
    assert code == 0 and f"data {csv}" in out
    (row,) = [line for line in out.splitlines() if line.startswith("g2 ")]
    assert "[" in row and len(row.split()) == 7  # no true value: name, m ± sd, [lo, hi], ratio


def test_checkpoint_and_resume_continue_the_same_run(capsys, tmp_path):
    folder = tmp_path / "run"
    args = ["--checkpoint", str(folder), "--checkpoint-every", "2", *TINY]
    code, first, _ = run(capsys, *args)
    assert code == 0 and (folder / "manifest.json").exists()
    assert len((folder / "history.jsonl").read_text().splitlines()) == 3
    code, again, _ = run(capsys, *args, "--resume")
    assert code == 0 and "resumed from the checkpoint at step 3" in again
    table = first.split("\n\n", 1)[1].split("\n\n")[0]
    assert table in again
    message = fails(capsys, *args, "--resume", "--w", "0.5")
    assert "another configuration" in message and "calibrate.w" in message


def test_processes_print_the_same_table_as_serial(capsys):
    """The command's loss is a closure: it reaches spawned workers by cloudpickle."""
    pytest.importorskip("cloudpickle")
    argv = ["--model", "sir", "--agents", "100", "--mode", "forward", *TINY]
    _, serial, _ = run(capsys, *argv)
    _, pooled, _ = run(capsys, *argv, "--executor", "processes", "--workers", "2")
    table = serial.split("\n\n", 1)[1]
    assert table in pooled and "executor processes x 2" in pooled


USER_MODEL = textwrap.dedent("""
    import minidiff as md

    PARAM_NAMES = ("drift",)
    DEFAULT_PARAMS = (0.3,)

    def simulate(params, *, rng, n_timesteps=12):
        drift = md.getitem(md.asarray(params), 0)
        return md.cumsum(drift + 0.1 * rng.normal(size=(n_timesteps,)))
""")


def test_a_users_module_function_is_a_model(capsys, tmp_path, monkeypatch):
    (tmp_path / "my_abm.py").write_text(USER_MODEL)
    (tmp_path / "bare_abm.py").write_text(USER_MODEL.replace("PARAM_NAMES", "_NAMES")
                                          .replace("DEFAULT_PARAMS", "_DEFAULTS"))
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "--model", "my_abm:simulate", *TINY)
    assert code == 0
    assert any(line.startswith("drift ") and line.split()[1] == "0.3"
               for line in out.splitlines())
    code, out, _ = run(capsys, "--model", "bare_abm:simulate", "--true-params", "0.2,1", *TINY)
    assert code == 0 and any(line.startswith("p1 ") for line in out.splitlines())
    assert "PARAM_NAMES" in fails(capsys, "--model", "bare_abm:simulate", *TINY)


@pytest.mark.parametrize("argv,says", [
    (["--model", "nope"], "unknown model 'nope'"),
    (["--model", "no_such_module:simulate"], "cannot import module 'no_such_module'"),
    (["--model", "minidiff.models.sir:nothing"], "has no function 'nothing'"),
    (["--data", "missing.csv"], "no such file 'missing.csv'"),
    (["--true-params", "0.1,0.2"], "has 1 parameter(s) (theta), got 2 value(s)"),
    (["--true-params", "half"], "expected comma-separated numbers"),
    (["--true-params", "1.5"], "theta (probability of a step up) must lie in [0, 1]"),
    (["--resume"], "--resume needs --checkpoint DIR"),
    (["--scheduler", "tcp://127.0.0.1:8786"], "add --executor dask"),
    (["--workers", "2"], "--workers needs --executor processes or dask"),
    (["--steps", "0"], "expected an integer ≥ 1, got 0"),
    (["--lr", "-1"], "expected a finite number > 0"),
    (["--family", "mixture"], "invalid choice: 'mixture'"),
    (["--coverage", "1"], "--coverage R: coverage is a share over data sets, so R must be ≥ 2"),
    (["--coverage", "3", "--data", "x.csv"], "it takes neither --data nor --checkpoint"),
    (["--screen", "1"], "--screen M: M must be 0 (no screening) or ≥ 2"),
])
def test_bad_flags_are_one_line_errors(capsys, argv, says):
    assert says in fails(capsys, *TINY, *argv)


@pytest.mark.parametrize("content,says", [
    ("1\n2\nnan\n4\n", "line 3, column 1 holds 'nan', not a finite decimal number"),
    ("1,2\n3\n", "line 2 has 1 cells, the first line 2"),
    ("1\n2\n3\n", "the data have shape (3,) but brock_hommes simulates (10,)"),
    ("a\nb\n", "line 2, column 1 ('a') holds 'b', not a finite decimal number"),
    ("", "needs at least two rows of numbers"),
])
def test_bad_data_files_are_one_line_errors(capsys, tmp_path, content, says):
    path = tmp_path / "obs.csv"
    path.write_text(content)
    assert says in fails(capsys, "--model", "brock_hommes", "--data", str(path), *TINY)


def test_a_non_empty_checkpoint_folder_is_not_overwritten(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    assert "files this run did not write: notes.txt" in fails(
        capsys, "--checkpoint", str(tmp_path), *TINY)


@pytest.mark.parametrize("model", ["lob", "housing"])
def test_the_finance_models_are_registered_and_run(capsys, model):
    """lob and housing declare a prior and a map to natural units the command can use: a tiny
    run prints one finite row per parameter, with the truth (their DEFAULT_PARAMS)."""
    from minidiff.models.registry import model_spec

    spec = model_spec(model)
    assert len(spec.natural) == len(spec.param_names)
    prior = spec.prior()
    assert prior.dim == len(spec.param_names) and float(md.min(prior.std)) > 0
    code, out, _ = run(capsys, "--model", model, *TINY)
    assert code == 0
    for name, true in zip(spec.param_names, spec.default_params):
        (row,) = [line for line in out.splitlines() if line.startswith(name + " ")]
        assert float(row.split()[1]) == pytest.approx(true)
        assert "nan" not in row


def test_diagnostics_follow_the_table_and_go_to_the_json(capsys, tmp_path):
    out_json = tmp_path / "out.json"
    code, out, _ = run(capsys, "--model", "brock_hommes", "--json", str(out_json), *TINY)
    assert code == 0
    after_table = out.split("sd/prior sd", 1)[1]
    assert "observed points inside q's 90% posterior-predictive band" in after_table
    assert "the data's share of the loss's variation" in after_table
    checks = json.loads(out_json.read_text())["diagnostics"]
    assert 0.0 <= checks["inside_90"] <= 1.0 and len(checks["sd_ratios"]) == 4
    assert 0.0 <= checks["loss_p"] <= 1.0
    assert isinstance(checks["warnings"], list)


def test_a_loss_that_leaves_q_at_the_prior_is_a_warning(capsys):
    """Three steps of two samples at w = 1e6: the KL term holds q at the prior."""
    code, out, _ = run(capsys, "--model", "brock_hommes", *TINY, "--w", "1e6", "--screen",
                       "0")
    assert code == 0 and "warning: q stayed at the prior" in out


def test_coverage_prints_the_coverage_table(capsys, tmp_path):
    out_json = tmp_path / "cov.json"
    code, out, _ = run(capsys, "--model", "brock_hommes", "--coverage", "2", "--json",
                       str(out_json), *TINY)
    assert code == 0
    assert "simulation-based calibration: 2 datasets" in out and "90% coverage" in out
    data = json.loads(out_json.read_text())["coverage"]
    assert data["n_datasets"] == 2 and len(data["ranks"]) == 2
