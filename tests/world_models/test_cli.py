"""Smoke runs of ``train-world-model`` for every registered world model, then ``evaluate``."""

import json

import pytest
import torch

import world_models
from runs import cli
from world_models import replay as replay_module


def _train(out_dir, *args: str) -> int:
    return cli.main(
        ["train-world-model", "--preset", "smoke", "--out", str(out_dir), "--quiet", *args]
    )


def _run_dir(out_dir):
    (run_dir,) = sorted(out_dir.glob("world_model/*/*"))
    return run_dir


def _metrics(run_dir, drop=("charts/seq_steps_per_s",)):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in drop} for line in lines]


@pytest.mark.parametrize("model", sorted(world_models.WORLD_MODELS))
def test_smoke_train_then_evaluate_on_pendulum_state(model, out_dir, capsys):
    assert _train(out_dir, "--model", model, "--env", "pendulum") == 0
    run_dir = _run_dir(out_dir)
    assert run_dir.parent.name == f"{model}-pendulum-state"
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert {"model", "opt", "replay", "info", "rng"} <= set(state)
    summary = json.loads((run_dir / "summary.json").read_text())["metrics"]
    for key in ("eval/mse_h1", "eval/mse_h1_repeat", "eval/mse_h1_linear", "eval/reward_mse"):
        assert key in summary
    assert list((run_dir / "samples").glob("imagination-*.png"))
    capsys.readouterr()

    assert cli.main(["evaluate", str(run_dir)]) == 0
    assert "open-loop MSE" in capsys.readouterr().out
    again = json.loads((run_dir / "summary.json").read_text())["metrics"]
    assert again["eval/mse_h1"] == pytest.approx(summary["eval/mse_h1"], rel=1e-5)


@pytest.mark.video
def test_smoke_pixels_run_writes_the_imagination_video(out_dir):
    assert _train(out_dir, "--model", "rssm", "--env", "pendulum", "--obs", "pixels") == 0
    run_dir = _run_dir(out_dir)
    summary = json.loads((run_dir / "summary.json").read_text())["metrics"]
    assert "eval/psnr_h10" in summary and "eval/elbo" in summary
    (run_dir / "videos" / "imagination.mp4").unlink()
    assert cli.main(["evaluate", str(run_dir)]) == 0
    import imageio.v3 as iio

    frames = iio.imread(run_dir / "videos" / "imagination.mp4")
    assert frames.shape[1:] == (2 * 64, 2 * 64, 3)  # 2 held-out episodes; real | imagined


class Killed(Exception):
    pass


def test_killed_run_resumes_to_the_same_metrics(out_dir, tmp_path, monkeypatch):
    args = ("--model", "rssm", "--steps", "12", "--checkpoint-every", "5", "--log-every", "1")
    assert _train(tmp_path / "whole", *args) == 0
    whole = _run_dir(tmp_path / "whole")

    sample = replay_module.ReplayBuffer.sample
    calls = {"n": 0}

    def dying_sample(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 8:  # dies at step 8, after the checkpoint of step 5
            raise Killed
        return sample(self, *a, **k)

    monkeypatch.setattr(replay_module.ReplayBuffer, "sample", dying_sample)
    with pytest.raises(Killed):
        _train(out_dir, *args)
    monkeypatch.undo()
    run_dir = _run_dir(out_dir)
    assert cli.main(["train-world-model", "--resume", str(run_dir), "--quiet"]) == 0
    assert _metrics(run_dir) == _metrics(whole)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "ensemble", "--obs", "pixels"], "invalid obs='pixels': must be state for"),
        (["--collect", "random"], "invalid collect='random': must be random:N"),
        (["--model", "rsm"], "unknown world model 'rsm'; did you mean 'rssm'?"),
        (["--set", "deter=-1"], "--set for rssm: invalid deter=-1: must be >= 1"),
    ],
)
def test_user_errors_exit_2_with_one_line(out_dir, capsys, args, message):
    assert _train(out_dir, *args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
