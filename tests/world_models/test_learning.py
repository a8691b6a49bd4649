"""Each world model learns the point mass within a few hundred steps and then predicts it
open loop better than repeating the last observation."""

import pytest
import torch

from generative.base import DataSpec
from world_models.ensemble import EnsembleConfig, EnsembleDynamics
from world_models.evaluation import open_loop_errors
from world_models.mdnrnn import MDNRNN, MDNRNNConfig
from world_models.rssm import RSSM, RSSMConfig

MODELS = {
    "rssm": (RSSM, RSSMConfig(deter=32, stoch=8, hidden=32, embed=32, mlp=(64,), head=(32,))),
    "mdnrnn": (MDNRNN, MDNRNNConfig(latent=4, hidden=32, mixtures=2, mlp=(64,), beta=0.1)),
    "ensemble": (EnsembleDynamics, EnsembleConfig(members=3, hidden=32, layers=2, head=(32,))),
}
STEPS = 300


@pytest.mark.parametrize("name", sorted(MODELS))
def test_loss_decreases_and_beats_repeating_the_last_observation(name, point_mass_data):
    train, held_out = point_mass_data
    torch.manual_seed(0)
    cls, cfg = MODELS[name]
    model = cls(cfg, DataSpec("vector", (4,)), action_dim=2)
    model.fit_normalizer(train.transitions())
    opt = model.optimizers(3e-3)
    seq_len = 2 if name == "ensemble" else 10
    batch = 64 if name == "ensemble" else 16
    losses = [
        model.train_step(train.sample(batch, seq_len), opt)["losses/total"] for _ in range(STEPS)
    ]
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < first - 0.5, (first, last)

    model.eval()
    horizons = (1, 5, 10)
    errors = open_loop_errors(model, held_out, context=1, horizons=horizons)
    for h in horizons:
        assert errors[f"mse_h{h}"] < errors[f"mse_h{h}_repeat"], (h, errors)
    model_total = sum(errors[f"mse_h{h}"] for h in horizons)
    repeat_total = sum(errors[f"mse_h{h}_repeat"] for h in horizons)
    assert model_total < 0.5 * repeat_total, errors


def test_the_mdnrnn_refuses_chunks_that_run_across_episodes():
    cls, cfg = MODELS["mdnrnn"]
    model = cls(cfg, DataSpec("vector", (4,)), action_dim=2)
    is_first = torch.zeros(1, 5, dtype=torch.bool)
    is_first[0, 3] = True
    with pytest.raises(ValueError, match="one episode per chunk"):
        model.observe(torch.randn(1, 5, 4), torch.randn(1, 5, 2), is_first=is_first)
