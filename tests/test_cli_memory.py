"""``minidiff memory``: the sweep over T runs end to end, prints a row per T and the lesson,
draws its figure, takes new workloads, and turns bad options into usage errors."""

from __future__ import annotations

import sys

import pytest

import minidiff as md
from minidiff.cli import main
from minidiff.cli import memory as memory_command
from minidiff.cli.memory import MODES, WORKLOADS, Problem, Workload, run_sweep

TINY = ["memory", "--agents", "200", "--steps", "5,20", "--no-progress"]


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def table_rows(out: str) -> dict[int, list[str]]:
    """The table's data lines by T (first column)."""
    rows = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 12 and fields[0].isdigit():
            rows[int(fields[0])] = fields
    return rows


def test_a_tiny_sweep_prints_a_row_per_t_and_the_lesson(capsys):
    code, out, _ = run(capsys, *TINY)
    assert code == 0
    assert "N = 200 agents" in out and "peak memory (MiB)" in out and "wall time (s)" in out
    rows = table_rows(out)
    assert sorted(rows) == [5, 20]
    assert rows[5][1] == "3" and rows[20][1] == "5"          # ⌈√T⌉ snapshots
    assert 8 <= float(rows[20][10]) <= 40                    # tape bytes per agent per step
    assert float(rows[20][11]) < float(rows[20][10])         # the checkpointed tape keeps less
    assert "From T = 5 to T = 20 (4x the steps)" in out
    for label in ("forward (jacfwd)", "reverse (grad)", "checkpointed grad"):
        assert label in out
    assert "bytes per agent per step" in out
    assert "gradients agree" in out


def test_snapshots_option_and_a_single_t(capsys):
    code, out, _ = run(capsys, "memory", "--agents", "50", "--steps", "12", "--snapshots", "2",
                       "--no-progress")
    assert code == 0
    assert table_rows(out)[12][1] == "2"
    assert "Give two or more --steps values" in out


def test_plot_writes_a_png(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "memory.png"
    code, out, _ = run(capsys, *TINY, "--plot", str(path))
    assert code == 0
    assert f"figure written to {path}" in out
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_a_clear_usage_error(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # import matplotlib fails
    with pytest.raises(SystemExit) as exc:
        main([*TINY, "--plot", str(tmp_path / "m.png")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--plot needs matplotlib" in err and "pip install matplotlib" in err
    assert not (tmp_path / "m.png").exists()


@pytest.mark.parametrize("steps, message", [
    ("10,abc", "expected comma-separated integers"),
    ("0,5", "expected a step count ≥ 1, got 0"),
    (",", "comma-separated list"),
])
def test_bad_steps_is_a_usage_error(capsys, steps, message):
    with pytest.raises(SystemExit) as exc:
        main(["memory", "--steps", steps])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--steps" in err and message in err


@pytest.mark.parametrize("argv", [["--agents", "0"], ["--agents", "x"], ["--snapshots", "0"],
                                  ["--workload", "nope"]])
def test_other_bad_options_are_usage_errors(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(["memory", *argv])
    assert exc.value.code == 2


def _toy_build(n_agents: int, n_steps: int, seed: int) -> Problem:
    """x ← sin(x)·a + b over n_steps, loss Σx²: a workload in a few lines."""
    start = md.asarray([0.1 * (i % 7) for i in range(n_agents)])

    def loss(theta, checkpointed, snapshots):
        def step(x, t):
            return md.sin(x) * theta[0] + theta[1]

        if checkpointed:
            x = md.checkpointed_loop(step, start, n_steps, snapshots)
        else:
            x = start
            for t in range(n_steps):
                x = step(x, t)
        return md.sum(x * x)

    return Problem(md.asarray([0.9, 0.1]), loss, ("a", "b"))


def test_a_registered_workload_can_be_swept(capsys, monkeypatch):
    monkeypatch.setitem(WORKLOADS, "toy", Workload("toy", "a toy recurrence", _toy_build))
    code, out, _ = run(capsys, "memory", "--workload", "toy", "--agents", "100", "--steps",
                       "4,16", "--no-progress")
    assert code == 0
    assert "a toy recurrence" in out
    assert sorted(table_rows(out)) == [4, 16]
    assert "(2 here" in out                                   # two parameters, two tangents


def test_run_sweep_measures_every_mode_and_shows_progress_on_request(capsys):
    pytest.importorskip("tqdm")
    rows = run_sweep(WORKLOADS["cont"], 100, [3, 9], progress=True)
    assert [r.n_steps for r in rows] == [3, 9]
    for r in rows:
        assert set(r.peak) == set(MODES) == set(r.seconds)
        assert all(r.peak[m] > 0 and r.seconds[m] > 0 for m in MODES)
        assert r.checkpointed_tape_peak < r.tape_peak
        assert r.gradient_difference <= 1e-12
    assert rows[1].peak["reverse"] > rows[0].peak["reverse"]
    assert "T=9" in capsys.readouterr().err                   # the bar's description


def test_run_sweep_works_without_tqdm(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    rows = run_sweep(WORKLOADS["cont"], 50, [2, 4], progress=True)
    assert len(rows) == 2
    assert capsys.readouterr().err == ""


def test_growth_exponent_reads_a_power_law():
    rows = []
    for t in (10, 100, 1000):
        row = memory_command.Row(1, t, 1)
        row.peak = {"reverse": 50 * t, "forward": 7, "checkpointed": int(3 * t ** 0.5 * 1000)}
        rows.append(row)
    assert memory_command.growth_exponent(rows, "reverse") == pytest.approx(1.0)
    assert memory_command.growth_exponent(rows, "forward") == pytest.approx(0.0)
    assert memory_command.growth_exponent(rows, "checkpointed") == pytest.approx(0.5, abs=1e-3)


def test_widened_loss_is_the_workload_at_zero_and_its_gradient_sums_back():
    from minidiff.cli.memory_figure import widen

    problem = WORKLOADS["cont"].build(50, 8, 0)
    loss, phi = widen(problem, 8)                    # 8 parameters onto Cont's 4: two each
    assert float(loss(phi)) == float(problem.loss(problem.theta, False, None))
    g_phi = md.to_host(md.grad(loss)(phi)).tolist()
    g_theta = md.to_host(md.grad(lambda t: problem.loss(t, False, None))(problem.theta)).tolist()
    theta0 = md.to_host(problem.theta).tolist()
    for j, g in enumerate(g_phi):                    # dθ_i/dφ_j = θ0_i / 2 for i = j mod 4
        i = j % 4
        assert abs(g - theta0[i] * g_theta[i] / 2) <= 1e-9 * max(1.0, abs(g))


def test_forward_memory_grows_with_the_number_of_parameters_and_reverse_does_not():
    from minidiff.cli.memory_figure import run_parameter_sweep

    rows = run_parameter_sweep(WORKLOADS["cont"], 100, 20, [1, 16])
    assert [r.n_params for r in rows] == [1, 16]
    # forward mode holds 16 tangents of every live value on top of a fixed cost; allocation is
    # deterministic, so the bands are margins for that fixed cost, not for noise
    assert rows[1].peak["forward"] > 2 * rows[0].peak["forward"]
    assert rows[1].peak["reverse"] < 1.1 * rows[0].peak["reverse"]
