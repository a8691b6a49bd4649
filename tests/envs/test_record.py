import json

import imageio
import pytest

from runs import cli


def _frames(path):
    # Not list(reader): the ffmpeg reader's len() is inf, which list() tries to allocate.
    with imageio.v2.get_reader(path) as reader:
        return [frame for frame in reader]


def _run_dir(out_dir, task):
    (run_dir,) = (out_dir / "record" / task).iterdir()
    return run_dir


@pytest.mark.mujoco
@pytest.mark.video
def test_record_writes_videos_that_read_back(out_dir, capsys):
    code = cli.main(
        ["record", "--env", "reacher", "--episodes", "2", "--size", "64", "--max-steps", "10",
         "--out", str(out_dir), "--quiet"]
    )  # fmt: skip
    assert code == 0
    run_dir = _run_dir(out_dir, "reacher")
    printed = capsys.readouterr().out
    for k in range(2):
        mp4, gif = run_dir / "videos" / f"episode-{k}.mp4", run_dir / "videos" / f"episode-{k}.gif"
        assert str(mp4) in printed and str(gif) in printed
        frames = _frames(mp4)
        assert len(frames) == 11  # the reset frame and one per step
        assert frames[0].shape == (64, 64, 3)
        assert len(imageio.v3.imread(gif)) == 11
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["episode/length"] for r in records] == [10, 10]
    assert list(run_dir.glob("events.out.tfevents.*"))
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 20


@pytest.mark.video
def test_record_classic_control_task(out_dir):
    code = cli.main(
        ["record", "--env", "pendulum", "--episodes", "1", "--size", "32", "--max-steps", "3",
         "--out", str(out_dir), "--quiet"]
    )  # fmt: skip
    assert code == 0
    frames = _frames(_run_dir(out_dir, "pendulum") / "videos" / "episode-0.mp4")
    assert len(frames) == 4 and frames[0].shape == (32, 32, 3)


def test_unknown_task_exits_2_with_the_closest_name(capsys):
    assert cli.main(["record", "--env", "reachr"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "activegen record: error: unknown task 'reachr'; did you mean 'reacher'? valid: "
    )
    assert "\n" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--obs-mode", "rgb"], "invalid obs_mode='rgb'"),
        (["--policy", "randm"], "unknown policy 'randm'; did you mean 'random'?"),
        (["--size", "15"], "invalid size=15"),
        (["--episodes", "0"], "invalid episodes=0"),
    ],
)
def test_invalid_record_options_exit_2(args, message, capsys):
    assert cli.main(["record", *args]) == 2
    assert message in capsys.readouterr().err


def test_record_from_a_run_without_an_agent_says_so(tmp_path, capsys):
    run_dir = tmp_path / "outputs" / "generative" / "vae" / "20260101-000000-s0"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("seed: 0\n")
    args = ["record", "--env", "pendulum", "--run", str(run_dir), "--out", str(tmp_path)]
    assert cli.main(args) == 2
    assert "no agent to load" in capsys.readouterr().err
