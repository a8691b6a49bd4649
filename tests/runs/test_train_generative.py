import json

import numpy as np
import pytest
import torch

from runs import cli
from runs.images import make_grid, scatter_image

AUTOREGRESSIVE = ("lstm", "gru", "tcn", "pixelcnn", "gated-pixelcnn", "transformer")


def run_folder(out_dir):
    (folder,) = [p for p in out_dir.glob("generative/*/*") if p.is_dir()]
    return folder


def metrics_lines(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name", AUTOREGRESSIVE)
def test_smoke_train_evaluate_sample(name, out_dir, capsys):
    args = ["--model", name, "--data", "digits", "--preset", "smoke", "--out", str(out_dir)]
    assert cli.main(["train-generative", *args, "--quiet"]) == 0
    folder = run_folder(out_dir)
    for f in ("config.yaml", "metrics.jsonl", "summary.json", "checkpoints/last.pt"):
        assert (folder / f).is_file(), f
    assert list((folder / "samples").glob("*.png"))
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["steps"] == 20 and 0 < summary["metrics"]["test/nll"] < 400
    assert cli.main(["evaluate", str(folder), "--split", "val"]) == 0
    after = json.loads((folder / "summary.json").read_text())["metrics"]
    assert "val/bpd" in after and after["test/nll"] == summary["metrics"]["test/nll"]
    assert cli.main(["sample", str(folder), "--n", "4", "--temperature", "0.5"]) == 0
    assert list((folder / "samples").glob("sampled-T0.5-s0-*.png"))


@pytest.mark.parametrize("name", ["transformer", "lstm"])
def test_text_run_continues_a_prompt(name, out_dir, tmp_path, capsys):
    corpus = tmp_path / "play.txt"
    corpus.write_text("ROMEO: what light through yonder window breaks?\nJULIET: ay me!\n" * 40)
    args = ["--model", name, "--data", "text", "--data-root", str(corpus), "--seq-len", "16"]
    assert cli.main(["train-generative", *args, "--preset", "smoke", "--out", str(out_dir)]) == 0
    folder = run_folder(out_dir)
    assert list((folder / "samples").glob("samples-*.txt"))
    capsys.readouterr()
    code = cli.main(["sample", str(folder), "--prompt", "ROMEO:", "--n", "2", "--length", "40"])
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("ROMEO:") and list((folder / "samples").glob("sampled-*.txt"))
    assert cli.main(["sample", str(folder), "--prompt", "ROMEO{"]) == 2
    assert "not in the corpus" in capsys.readouterr().err


class SimulatedKill(Exception):
    pass


def test_killed_run_resumes_to_identical_metrics(out_dir, tmp_path, monkeypatch):
    from generative.autoregressive.rnn import LSTM

    common = ["--model", "lstm", "--data", "digits", "--preset", "smoke", "--quiet"]
    common += ["--steps", "30", "--checkpoint-every", "10", "--log-every", "1"]
    common += ["--eval-every", "10"]
    straight = tmp_path / "straight"
    assert cli.main(["train-generative", *common, "--out", str(straight)]) == 0

    original, calls = LSTM.train_step, {"n": 0}

    def dies_at_25(self, batch, optimizers):
        calls["n"] += 1
        if calls["n"] == 25:
            raise SimulatedKill
        return original(self, batch, optimizers)

    monkeypatch.setattr(LSTM, "train_step", dies_at_25)
    with pytest.raises(SimulatedKill):
        cli.main(["train-generative", *common, "--out", str(out_dir)])
    monkeypatch.setattr(LSTM, "train_step", original)
    folder = run_folder(out_dir)
    assert cli.main(["train-generative", "--resume", str(folder), "--quiet"]) == 0

    assert metrics_lines(folder) == metrics_lines(run_folder(straight))
    timing = {"train_seconds", "samples_per_second"}
    a = json.loads((folder / "summary.json").read_text())["metrics"]
    b = json.loads((run_folder(straight) / "summary.json").read_text())["metrics"]
    assert {k: v for k, v in a.items() if k not in timing} == {
        k: v for k, v in b.items() if k not in timing
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "pixelcnn", "--set", "hiden=3"], "valid: dropout, embed, hidden"),
        (["--model", "pixelcnn", "--set", "kernel_size=4"], "kernel_size=4"),
        (["--model", "pixelcnn", "--set", "layers"], "key=value"),
        (["--model", "pixelcn"], "did you mean 'pixelcnn'"),
        (["--data", "mnist", "--data-root", "/nonexistent"], "t10k-images-idx3-ubyte.gz"),
        (["--model", "pixelcnn", "--data", "signals"], "cannot model data 'signals'"),
        (["--binarize", "sometimes"], "static"),
    ],
)
def test_user_errors_exit_2_with_one_line(args, message, out_dir, capsys):
    assert cli.main(["train-generative", *args, "--preset", "smoke", "--out", str(out_dir)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_evaluate_needs_a_run_folder(tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_binarised_mnist_style_data_and_set_reach_the_model(out_dir):
    args = ["--model", "pixelcnn", "--data", "digits", "--binarize", "dynamic"]
    args += ["--set", "hidden=5", "layers=2", "--preset", "smoke", "--quiet"]
    assert cli.main(["train-generative", *args, "--out", str(out_dir)]) == 0
    state = torch.load(run_folder(out_dir) / "checkpoints" / "last.pt", weights_only=True)
    assert state["info"]["model_config"]["hidden"] == 5
    assert state["info"]["model_config"]["layers"] == 2
    assert state["info"]["spec"]["levels"] == 2


def test_grid_and_scatter_pictures():
    images = torch.randint(0, 17, (10, 1, 8, 8))
    grid = make_grid(images, levels=17, nrow=5, pad=1)
    assert grid.shape == (2 * 9 + 1, 5 * 9 + 1, 3) and grid.dtype == np.uint8
    rgb = make_grid(torch.rand(4, 3, 4, 4))
    assert rgb.shape == (11, 11, 3)
    picture = scatter_image(torch.randn(500, 2), size=64)
    assert picture.shape == (64, 64, 3) and picture.min() < 255


def test_budget_follows_the_data_kind():
    """GANs train 2-D toys with their vector budget unless the command line says otherwise."""
    from runs.train_generative import TrainGenerativeConfig, resolve_defaults

    toy = resolve_defaults(TrainGenerativeConfig(model="dcgan", data="8gaussians"), "vector")
    assert (toy.lr, toy.batch_size, toy.steps) == (1e-3, 256, 10000)
    image = resolve_defaults(TrainGenerativeConfig(model="dcgan", data="digits"), "image")
    assert (image.lr, image.batch_size) == (2e-4, 64)
    given = TrainGenerativeConfig(model="dcgan", data="8gaussians", lr=5e-3)
    assert resolve_defaults(given, "vector").lr == 5e-3


def test_compare_generative_writes_table_and_figures(out_dir, capsys):
    args = ["compare-generative", "--models", "vae,dcgan", "--steps", "5", "--n", "40"]
    assert cli.main([*args, "--out", str(out_dir), "--quiet"]) == 0
    (folder,) = out_dir.glob("compare-generative/digits/*")
    table = (folder / "table.md").read_text()
    assert "| vae | IS estimate |" in table and "| dcgan | none |" in table
    assert "| real data (test vs train) |" in table
    rows = (folder / "table.csv").read_text().splitlines()
    assert rows[0].startswith("model,likelihood,params") and len(rows) == 4
    for png in ("samples/vae.png", "samples/dcgan.png", "samples.png"):
        assert (folder / png).read_bytes()[:4] == b"\x89PNG"
    # finished runs are loaded, not retrained
    runs = sorted(str(p) for p in out_dir.glob("generative/*/*"))
    again = ["compare-generative", "--runs", *runs, "--n", "40", "--out", str(out_dir)]
    assert cli.main(again) == 0
    assert len(list(out_dir.glob("generative/*/*"))) == 2
    assert capsys.readouterr().out.count("| vae | IS estimate |") == 2


def test_compare_generative_refuses_non_image_data(out_dir, capsys):
    args = ["compare-generative", "--data", "moons", "--models", "vae", "--out", str(out_dir)]
    assert cli.main(args) == 2
    assert "needs image data" in capsys.readouterr().err


def test_prior_option_selects_the_vae_prior(out_dir, capsys):
    args = ["train-generative", "--model", "vae", "--data", "digits", "--preset", "smoke"]
    assert cli.main([*args, "--prior", "flow", "--out", str(out_dir), "--quiet"]) == 0
    (run_dir,) = out_dir.glob("generative/vae-digits/*")
    assert "prior: flow" in (run_dir / "config.yaml").read_text()
    assert cli.main([*args, "--prior", "flw", "--out", str(out_dir)]) == 2
    assert "unknown prior 'flw'; did you mean 'flow'?" in capsys.readouterr().err
    gan = ["train-generative", "--model", "dcgan", "--data", "digits", "--prior", "mog"]
    assert cli.main([*gan, "--out", str(out_dir)]) == 2
    assert "VAE models only" in capsys.readouterr().err
