"""Every VAE through the CLI: smoke train, evaluate, sample, and the latent grids."""

import json

import pytest

from runs import cli

VAES = ("vae", "conv-vae", "beta-vae", "iwae", "gumbel-vae", "vq-vae")


@pytest.mark.parametrize("model", VAES)
def test_smoke_train_evaluate_sample(model, out_dir):
    args = ["--model", model, "--data", "digits", "--preset", "smoke", "--out", str(out_dir)]
    assert cli.main(["train-generative", *args, "--quiet"]) == 0
    (folder,) = (out_dir / "generative" / f"{model}-digits").iterdir()
    summary = json.loads((folder / "summary.json").read_text())["metrics"]
    assert 0 < summary["test/nll"] < 400 and "test/neg_elbo" in summary
    names = {p.name.split("-")[0] for p in (folder / "samples").glob("*.png")}
    assert {"samples", "reconstructions", "interpolations"} <= names
    assert "traversals" in names or model == "vq-vae"
    assert cli.main(["evaluate", str(folder), "--split", "val", "--eval-samples", "5"]) == 0
    assert cli.main(["sample", str(folder), "--n", "4", "--temperature", "0.5"]) == 0
    assert list((folder / "samples").glob("sampled-T0.5-s0-*.png"))
