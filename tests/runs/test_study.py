"""`activegen compare`: cells as ordinary runs, skip/resume on re-run, the report, statistics.

In-process studies use the stub agent (pendulum: 100 decisions per episode); the worker,
kill-and-resume and Ray studies spawn fresh processes, so they use real SB3 SAC on a budget
of a few seconds per cell.
"""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from stub_agent import StubAgent  # tests/runs is put on sys.path by conftest

import agents
from runs import cli
from runs.study_report import RESAMPLES, bootstrap_ci, iqm

STUB = ["compare", "--envs", "pendulum", "--agents", "stub,stub:preference", "--seeds", "2",
        "--steps", "200", "--eval-every", "100", "--eval-episodes", "1", "--quiet"]  # fmt: skip
SAC = ["compare", "--envs", "pendulum", "--agents", "sac", "--eval-episodes", "1",
       "--quiet", "--set", "sac.batch_size=32"]  # fmt: skip


@pytest.fixture
def stub(monkeypatch):
    monkeypatch.setitem(agents.AGENTS, "stub", ("stub_agent:StubAgent", "a stub agent"))
    monkeypatch.setattr(StubAgent, "calls", {})
    return StubAgent


def _rows(study):
    with (study / "report" / "results.csv").open() as f:
        return list(csv.DictReader(f))


def test_bootstrap_interval_of_a_constant_sample_is_the_point():
    assert bootstrap_ci([3.5, 3.5, 3.5, 3.5]) == (3.5, 3.5)
    assert bootstrap_ci([7.0]) == (7.0, 7.0)


def test_bootstrap_interval_matches_scipy():
    sample = [1.0, 4.0, 2.5, 8.0, 3.0, 5.5]
    expected = stats.bootstrap(
        (np.array(sample),),
        np.mean,
        confidence_level=0.95,
        n_resamples=RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(0),
    ).confidence_interval
    low, high = bootstrap_ci(sample)
    assert (low, high) == pytest.approx((expected.low, expected.high))
    assert low < np.mean(sample) < high


def test_interquartile_mean_drops_the_outer_quarters():
    assert iqm([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0]) == pytest.approx(3.5)


def test_study_writes_report_and_second_run_does_nothing(stub, out_dir, capsys):
    assert cli.main([*STUB, "--out", str(out_dir), "--name", "s"]) == 0
    study = out_dir / "study" / "s"
    cells = sorted(p.relative_to(study).as_posix() for p in study.glob("cells/*/*/s*"))
    assert cells == [
        "cells/pendulum/stub-preference/s0",
        "cells/pendulum/stub-preference/s1",
        "cells/pendulum/stub/s0",
        "cells/pendulum/stub/s1",
    ]
    assert all((study / c / "summary.json").is_file() for c in cells)
    rows = _rows(study)
    assert len(rows) == 4 * 2  # 4 cells x evaluations at 100 and 200
    assert {(r["agent"], r["seed"], r["step"]) for r in rows} == {
        (a, s, t) for a in ("stub", "stub-preference") for s in "01" for t in ("100", "200")
    }
    assert all(int(r["env_step"]) == 2 * int(r["step"]) for r in rows)  # pendulum repeats 2x
    report = study / "report"
    summary = (report / "summary.md").read_text()
    assert "## pendulum" in summary and "| stub | 2 |" in summary
    assert "| stub-preference | 2 |" in summary
    for png in ("learning_curves.png", "final_performance.png"):
        assert (report / png).read_bytes()[:4] == b"\x89PNG"
    videos = sorted(p.name for p in (report / "videos").glob("*.mp4"))
    assert len(videos) == 2 and videos[0].startswith("pendulum-stub-preference-s")
    assert all((report / "videos" / v).stat().st_size > 1000 for v in videos)
    inits = stub.calls["init"]
    stamps = {c: (study / c / "metrics.jsonl").stat().st_mtime_ns for c in cells}
    capsys.readouterr()

    assert cli.main([*STUB, "--out", str(out_dir), "--name", "s"]) == 0
    assert "4 finished, 0 to run" in capsys.readouterr().out
    assert stub.calls["init"] == inits  # no agent was even built
    assert stamps == {c: (study / c / "metrics.jsonl").stat().st_mtime_ns for c in cells}
    assert _rows(study) == rows
    assert cli.main(["compare", "--resume", str(study)]) == 0  # the saved definition
    assert "4 finished, 0 to run" in capsys.readouterr().out


def test_changed_config_is_refused(stub, out_dir, capsys):
    assert cli.main([*STUB, "--out", str(out_dir), "--name", "s", "--seeds", "1"]) == 0
    capsys.readouterr()
    changed = [*STUB, "--out", str(out_dir), "--name", "s", "--seeds", "1", "--steps", "300"]
    assert cli.main(changed) == 2
    err = capsys.readouterr().err
    assert "was made with steps=200 (now 300)" in err and "--resume" in err
    # how it runs may change: workers, threads, quiet
    assert cli.main([*STUB, "--out", str(out_dir), "--name", "s", "--seeds", "1"]) == 0


def test_a_crashing_cell_is_reported_with_its_traceback_and_the_others_go_on(
    stub, out_dir, capsys, monkeypatch
):
    monkeypatch.setattr(stub, "crash_at", 60)  # a bug inside the agent, not a user error
    args = [*STUB, "--out", str(out_dir), "--name", "c", "--no-video"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("crashed with SimulatedKill") == 2 * 4  # as each cell stops, and at the end
    trace = out_dir / "study" / "c" / "cells" / "pendulum" / "stub" / "s0" / "error.txt"
    assert "Traceback" in trace.read_text() and "SimulatedKill" in trace.read_text()
    monkeypatch.setattr(stub, "crash_at", 0)
    assert cli.main(args) == 0  # the same command resumes them


@pytest.mark.parametrize(
    "args, message",
    [
        (["--agents", "sac,sca"], "unknown agent 'sca'; did you mean 'sac'?"),
        (["--agents", "sac:efe"], "invalid objective='efe': must be one of reward"),
        (["--agents", "aif:joy"], "invalid objective='joy'"),
        (["--envs", "pendulum,reachr"], "unknown task 'reachr'"),
        (["--agents", "sac,sac"], "without repeats"),
        (["--set", "aif.horizon=5"], "AGENT.key=value for sac"),
        (["--set", "sac.no_such_key=5"], "unknown key(s) no_such_key"),
        (["--address", "auto"], "unset unless --backend ray"),
        (["--backend", "ray", "--device", "cuda"], "invalid gpus=0.0: must be > 0 for --device"),
    ],
)
def test_bad_studies_are_refused_before_any_work(out_dir, capsys, args, message):
    assert cli.main(["compare", "--agents", "sac", "--out", str(out_dir), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out_dir.exists()


def _activegen(*args, **kwargs):
    command = [sys.executable, "-m", "runs.cli", *args]
    return subprocess.Popen(command, start_new_session=True, **kwargs)


def _stat(pid):
    """Fields of ``/proc/PID/stat`` after the command name (state, ppid, ...); [] if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _workers(pid):
    """The pool's worker processes of study process ``pid`` (children running spawn_main)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_text()
        except OSError:
            continue
        stat = _stat(int(entry))
        if stat and int(stat[1]) == pid and "spawn_main" in cmdline:
            found.append(int(entry))
    return found


def _running(pid):
    """Whether process ``pid`` exists and is not a zombie waiting to be reaped."""
    stat = _stat(pid)
    return bool(stat) and stat[0] != "Z"


def test_killed_worker_fails_its_cells_and_the_same_command_resumes_them(out_dir):
    """Two spawned workers; one is killed (SIGKILL) once a cell holds a checkpoint mid-way.
    The study reports the unfinished cells and exits 2; the same command resumes them
    without duplicated or lost evaluation rows."""
    args = [*SAC, "--seeds", "2", "--steps", "500", "--eval-every", "100", "--workers", "2"]
    args += ["--out", str(out_dir), "--name", "k", "--no-video"]
    study = out_dir / "study" / "k"
    process = _activegen(*args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    checkpoints = []
    while time.time() < deadline and not checkpoints:
        checkpoints = list(study.glob("cells/*/*/s*/checkpoints/last.pt"))
        time.sleep(0.05)
    assert checkpoints, "no cell checkpointed within 2 minutes"
    workers = _workers(process.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2
    assert "did not finish; the same command resumes them" in err
    cell = checkpoints[0].parent.parent
    assert not (cell / "summary.json").exists()  # it was stopped mid-cell

    assert cli.main(args) == 0
    rows = _rows(study)
    for seed in ("0", "1"):
        steps = [int(r["step"]) for r in rows if r["seed"] == seed]
        assert steps == [100, 200, 300, 400, 500]


def test_workers_of_a_killed_study_stop_too(out_dir):
    """SIGKILL the study process itself: its workers must not train on, orphaned."""
    args = [*SAC, "--seeds", "2", "--steps", "5000", "--eval-every", "1000", "--workers", "2"]
    args += ["--out", str(out_dir), "--name", "o", "--no-video"]
    process = _activegen(*args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    workers = []
    while time.time() < deadline and len(workers) < 2:
        workers = _workers(process.pid)
        time.sleep(0.05)
    assert len(workers) == 2, "the study did not start its workers within 2 minutes"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    deadline = time.time() + 30
    while time.time() < deadline and any(_running(w) for w in workers):
        time.sleep(0.2)
    alive = [w for w in workers if _running(w)]
    for w in alive:
        os.kill(w, signal.SIGKILL)
    assert not alive, f"workers {alive} outlived their study"


def test_ray_backend_runs_cells_on_a_local_ray_instance(out_dir, capsys):
    args = [*SAC, "--seeds", "1", "--steps", "100", "--backend", "ray", "--no-video"]
    assert cli.main([*args, "--out", str(out_dir), "--name", "r"]) == 0
    assert "1 cells, 0 finished, 1 to run (ray" in capsys.readouterr().out
    rows = _rows(out_dir / "study" / "r")
    assert [(r["agent"], r["seed"], r["step"]) for r in rows] == [("sac", "0", "100")]


def test_the_demo_study_is_valid(out_dir):
    """`make demo` runs this definition; every cell's agent config must resolve."""
    from runs.demo import STUDY
    from runs.study import CompareConfig, make_cells, study_dir

    cfg = CompareConfig(**STUDY, out=out_dir)
    cells = make_cells(cfg, study_dir(cfg))
    assert len(cells) == 9 and {c.label for c in cells} == {"aif-preference", "aif-reward", "sac"}
    assert not out_dir.exists()


def test_discrete_tasks_join_the_study(out_dir):
    """pymdp agents and the tabular baseline are ordinary cells (issue: discrete studies)."""
    args = ["compare", "--envs", "tmaze", "--agents", "pymdp:preference,qlearning", "--seeds",
            "1", "--steps", "40", "--eval-episodes", "5", "--quiet", "--no-video"]  # fmt: skip
    assert cli.main([*args, "--out", str(out_dir), "--name", "d"]) == 0
    study = out_dir / "study" / "d"
    rows = _rows(study)
    assert {r["agent"] for r in rows} == {"pymdp-preference", "qlearning"}
    summary = (study / "report" / "summary.md").read_text()
    assert "## tmaze" in summary and "| pymdp-preference | 1 |" in summary and "n/a" in summary
