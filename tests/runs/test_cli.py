import pytest

from runs import cli


def test_top_level_help_lists_commands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: activegen" in out
    for name in cli.COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([name, "--help"])
    assert exit_info.value.code == 0
    assert f"activegen {name}" in capsys.readouterr().out


def test_list_prints_every_registry(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for section in ("tasks:", "agents:", "world models:", "generative models:"):
        assert section in out


def test_unknown_command_suggests_the_closest(capsys):
    assert cli.main(["lst"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'lst'; did you mean 'list'?" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "-5"], "invalid steps=-5: must be > 0"),
        (["--lr", "0"], "invalid lr=0.0: must be > 0"),
        (["--device", "tpu"], "invalid device='tpu': must be one of auto, cpu, cuda"),
    ],
)
def test_invalid_values_exit_2_before_any_work(toy_cli, out_dir, capsys, args, message):
    assert toy_cli(["toy-train", "--out", str(out_dir), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"activegen toy-train: error: {message}"  # one line, no traceback
    assert not out_dir.exists()  # nothing was started


def test_missing_config_file_is_a_user_error(toy_cli, tmp_path, capsys):
    assert toy_cli(["toy-train", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_unknown_key_in_config_file_lists_valid_keys(toy_cli, tmp_path, capsys):
    bad = tmp_path / "c.yaml"
    bad.write_text("steps: 3\nlearning_rate: 0.1\n")
    assert toy_cli(["toy-train", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "unknown key(s) learning_rate" in err and "lr" in err


def test_resume_of_a_folder_that_is_not_a_run(toy_cli, tmp_path, capsys):
    assert toy_cli(["toy-train", "--resume", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_repeated_set_flags_add_up():
    args = ["--agent", "aif", "--env", "pendulum", "--set", "horizon=5", "elites=4", "--steps"]
    args += ["10", "--set=candidates=20", "--set", "iterations=2"]
    _, cfg = cli.parse("train-agent", args)
    assert cfg.set == ("horizon=5", "elites=4", "candidates=20", "iterations=2")
    assert cfg.steps == 10
