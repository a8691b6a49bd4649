import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from toy_command import SimulatedKill, ToyConfig  # registered on sys.path by toy_cli

from runs import config as config_lib
from runs.checkpoint import load_checkpoint, save_checkpoint
from runs.loop import TrainingError, check_finite
from runs.run import Run


def _only_run(out_dir):
    runs = sorted(out_dir.glob("test/toy/*"))
    assert len(runs) == 1, runs
    return runs[0]


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _tensorboard_steps(run_dir, tag="losses/mse"):
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_run_folder_holds_the_well_known_files(toy_cli, out_dir, capsys):
    assert toy_cli(["toy-train", "--out", str(out_dir), "--seed", "3", "--steps", "10"]) == 0
    run_dir = _only_run(out_dir)
    assert run_dir.name.endswith("-s3")
    assert f"run folder: {run_dir}" in capsys.readouterr().out
    for sub in ("checkpoints", "videos", "samples"):
        assert (run_dir / sub).is_dir()
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["steps"] == 10 and saved["seed"] == 3 and "resume" not in saved
    records = _metrics(run_dir)
    assert [r["step"] for r in records] == list(range(1, 11))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 10 and summary["wall_seconds"] > 0
    assert summary["metrics"]["losses/mse"] == records[-1]["losses/mse"]
    assert {"python", "torch", "gymnasium", "mujoco"} <= set(summary["versions"])
    assert [s for s, _ in _tensorboard_steps(run_dir)] == list(range(1, 11))


def test_config_reruns_an_identical_config(toy_cli, out_dir, tmp_path):
    assert toy_cli(["toy-train", "--out", str(out_dir), "--steps", "7", "--lr", "0.02"]) == 0
    first = _only_run(out_dir)
    again = tmp_path / "again"
    assert toy_cli(["toy-train", "--config", str(first / "config.yaml"), "--out", str(again)]) == 0
    second = next(again.glob("test/toy/*"))
    cfg1 = config_lib.load_yaml(ToyConfig, first / "config.yaml")
    cfg2 = config_lib.load_yaml(ToyConfig, second / "config.yaml")
    assert config_lib.replace(cfg2, out=cfg1.out) == cfg1
    assert _metrics(first) == _metrics(second)  # same config, same seed: same run


@pytest.mark.parametrize("lr", [0.25, 1, "25e-2", np.float64(0.25), np.int64(1)])
def test_a_float_field_takes_any_number_or_numeric_text(lr):
    assert config_lib.from_dict(ToyConfig, {"lr": lr}).lr == float(lr)


@pytest.mark.parametrize("lr", [True, np.bool_(True), "fast", [0.1]])
def test_a_float_field_refuses_anything_else_in_one_line(lr):
    with pytest.raises(config_lib.ConfigError, match=r"^invalid config.lr=.*expected a number$"):
        config_lib.from_dict(ToyConfig, {"lr": lr})


def test_killed_run_resumes_without_losing_or_duplicating_steps(toy_cli, out_dir, tmp_path):
    assert toy_cli(["toy-train", "--out", str(tmp_path / "whole"), "--steps", "20"]) == 0
    whole = next((tmp_path / "whole").glob("test/toy/*"))

    # Dies at step 13: steps 11 and 12 were logged after the checkpoint at step 10.
    with pytest.raises(SimulatedKill):
        toy_cli(["toy-train", "--out", str(out_dir), "--steps", "20", "--crash-at", "13"])
    run_dir = _only_run(out_dir)
    assert [r["step"] for r in _metrics(run_dir)][-1] == 12

    resume = ["toy-train", "--resume", str(run_dir), "--crash-at", "0"]
    assert toy_cli(resume) == 0
    assert _metrics(run_dir) == _metrics(whole)
    assert _tensorboard_steps(run_dir) == _tensorboard_steps(whole)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 20


def _reopen_elsewhere(run_dir) -> subprocess.CompletedProcess:
    code = "import sys; from pathlib import Path; from runs.run import Run; "
    code += "Run.reopen(Path(sys.argv[1]), None).close()"
    return subprocess.run(
        [sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True
    )


def test_a_run_still_going_is_not_resumed_by_another_process(tmp_path):
    cfg = ToyConfig(out=tmp_path)
    run = Run.create(cfg, "test", "toy")
    run.log({"x": 1.0}, 1)  # after no checkpoint: a resume would drop it
    refused = _reopen_elsewhere(run.dir)
    assert refused.returncode != 0
    assert f"in use by another process (pid {os.getpid()})" in refused.stderr
    assert _metrics(run.dir) == [{"step": 1, "x": 1.0}]
    # In this process a new Run takes over from one an exception left open.
    Run.reopen(run.dir, cfg).close()
    assert _metrics(run.dir) == []
    assert _reopen_elsewhere(run.dir).returncode == 0  # released: as when a process ends


def test_a_checkpoint_another_version_wrote_is_refused_in_one_line(toy_cli, out_dir, capsys):
    with pytest.raises(SimulatedKill):
        toy_cli(["toy-train", "--out", str(out_dir), "--steps", "20", "--crash-at", "8"])
    run_dir = _only_run(out_dir)
    path = run_dir / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    del state["model"]["bias"]  # as a checkpoint written before a buffer was added
    save_checkpoint(state, path)
    capsys.readouterr()
    assert toy_cli(["toy-train", "--resume", str(run_dir), "--crash-at", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not fit this version" in err and 'Missing key(s) in state_dict: "bias"' in err
    assert str(run_dir) in err and "\n" not in err


def test_non_finite_metric_names_the_step():
    with pytest.raises(TrainingError, match="non-finite loss=nan at step 42"):
        check_finite({"loss": float("nan")}, 42)


def test_nan_loss_stops_the_command_with_exit_1(toy_cli, out_dir, capsys):
    # A learning rate this large makes SGD on the quadratic loss diverge to inf, then NaN.
    assert toy_cli(["toy-train", "--out", str(out_dir), "--lr", "1e6", "--steps", "200"]) == 1
    err = capsys.readouterr().err
    assert "training stopped: non-finite losses/mse=" in err and "at step" in err
