import itertools

import pytest
import torch

from generative.autoregressive.pixelcnn import GatedPixelCNN, PixelCNN, PixelCNNNet
from generative.autoregressive.rnn import GRU, LSTM, RNNConfig
from generative.autoregressive.tcn import TCN
from generative.autoregressive.transformer import Transformer
from generative.base import DataSpec
from generative.data import DataError, load_dataset

SEQUENCE_MODELS = (LSTM, GRU, TCN, Transformer)
IMAGE_MODELS = (LSTM, GRU, TCN, Transformer, PixelCNN, GatedPixelCNN)


def tiny(cls, spec, **overrides):
    torch.manual_seed(0)
    return cls(cls.Config(**{**cls.SMOKE, **overrides}), spec).eval()


def total_probability(model) -> float:
    """log sum_x p(x) over every possible example (it must be 0)."""
    spec = model.spec
    every = torch.tensor(list(itertools.product(range(spec.levels), repeat=spec.dims)))
    with torch.no_grad():
        return float(torch.logsumexp(model.log_prob(model.untokens(every)).double(), 0))


@pytest.mark.parametrize("cls", SEQUENCE_MODELS)
def test_sequence_log_prob_sums_to_one(cls):
    # 3 symbols, length 3: all 27 sequences.
    assert abs(total_probability(tiny(cls, DataSpec("sequence", (3,), 3)))) < 1e-5


@pytest.mark.parametrize("cls", IMAGE_MODELS)
@pytest.mark.parametrize("shape", [(1, 2, 2), (2, 1, 2)])
def test_image_log_prob_sums_to_one(cls, shape):
    # Binary images with 4 values each: all 16.
    assert abs(total_probability(tiny(cls, DataSpec("image", shape, 2)))) < 1e-5


def test_row_rnn_log_prob_sums_to_one():
    model = LSTM(
        RNNConfig(hidden=8, layers=1, embed=4, mode="row"), DataSpec("image", (1, 2, 2), 3)
    )
    assert abs(total_probability(model.eval())) < 1e-5


@pytest.mark.parametrize("cls", IMAGE_MODELS)
def test_shapes_and_valid_samples_on_images(cls):
    spec = DataSpec("image", (1, 5, 4), 5)
    model = tiny(cls, spec)
    x = torch.randint(0, 5, (3, *spec.shape))
    assert model.logits(x).shape == (3, 20, 5)
    assert model.log_prob(x).shape == (3,)
    loss, metrics = model.loss(x)
    assert loss.dim() == 0 and {"nll", "bpd"} <= set(metrics)
    samples = model.sample(4, temperature=0.8)
    assert samples.shape == (4, 1, 5, 4) and samples.dtype == torch.long
    assert int(samples.min()) >= 0 and int(samples.max()) <= 4


@pytest.mark.parametrize("cls", SEQUENCE_MODELS)
def test_generate_continues_the_prompt(cls):
    model = tiny(cls, DataSpec("sequence", (6,), 4))
    prompt = torch.tensor([[1, 2, 3], [3, 2, 1]])
    out = model.generate(prompt, 10)
    assert out.shape == (2, 13) and torch.equal(out[:, :3], prompt)
    assert int(out.min()) >= 0 and int(out.max()) <= 3
    assert model.generate(prompt[:, :0], 4).shape == (2, 4)


def test_zero_temperature_is_the_most_likely_value():
    model = tiny(Transformer, DataSpec("sequence", (5,), 4))
    assert torch.equal(model.sample(3, temperature=0), model.sample(3, temperature=0))


def input_grads(model, x, embedding, out_index):
    """Gradient of the token ``out_index`` logits w.r.t. the embedded inputs ``(B, S, ...)``."""
    kept = {}

    def hook(module, args, output):
        output.retain_grad()
        kept["e"] = output

    handle = embedding.register_forward_hook(hook)
    model.logits(x)[:, out_index].sum().backward()
    handle.remove()
    return kept["e"].grad


@pytest.mark.parametrize("cls", [LSTM, GRU, TCN, Transformer])
def test_token_models_are_causal(cls):
    length = 12
    model = tiny(cls, DataSpec("sequence", (length,), 5))
    embedding = model.tok if cls is Transformer else model.embed
    x = torch.randint(0, 5, (2, length))
    for i in range(length):
        grad = input_grads(model, x, embedding, i)  # input position p holds token p - 1
        per_position = grad.abs().flatten(2).sum(-1).sum(0)
        assert torch.all(per_position[i + 1 :] == 0), (cls.__name__, i)
        assert per_position[i] > 0  # the token just before i is seen


def pixel_grads(net: PixelCNNNet, c: int, h: int, w: int, i: int, j: int, ch: int):
    """|d logits[pixel (i, j), channel ch] / d input features| summed to ``(C, H, W)``."""
    torch.manual_seed(1)
    f = torch.randn(1, c * net.embed.embedding_dim, h, w, requires_grad=True)
    net.logits_from_features(f)[0, :, ch, i, j].sum().backward()
    return f.grad.abs().view(c, -1, h, w).sum(1)


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("channels", [1, 3])
def test_pixelcnn_is_causal_over_pixels_and_channels(gated, channels):
    h, w = 5, 5
    net = PixelCNNNet(channels, 4, hidden=6, layers=2, gated=gated, embed=2).eval()
    order = [(i, j, c) for i in range(h) for j in range(w) for c in range(channels)]
    for n, (i, j, ch) in enumerate(order):
        grads = pixel_grads(net, channels, h, w, i, j, ch)
        for i2, j2, c2 in order[n:]:  # the same channel and everything after it
            assert grads[c2, i2, j2] == 0, (gated, (i, j, ch), (i2, j2, c2))


def test_gated_stack_has_no_blind_spot_and_plain_one_does():
    h = w = 5
    # Enough layers for the vertical stack to reach 4 columns to the right of row 3.
    gated = PixelCNNNet(1, 2, hidden=4, layers=5, gated=True, embed=2).eval()
    plain = PixelCNNNet(1, 2, hidden=4, layers=5, gated=False, embed=2).eval()
    i, j = 4, 0
    earlier = [(a, b) for a in range(h) for b in range(w) if (a, b) < (i, j)]
    g = pixel_grads(gated, 1, h, w, i, j, 0)[0]
    p = pixel_grads(plain, 1, h, w, i, j, 0)[0]
    assert all(g[a, b] > 0 for a, b in earlier)
    assert any(p[a, b] == 0 for a, b in earlier)  # the blind spot up and to the right


def test_pixelcnn_net_is_a_prior_for_any_size():
    net = PixelCNNNet(1, 7, hidden=8, layers=1).eval()
    codes = torch.randint(0, 7, (2, 1, 3, 6))
    assert net(codes).shape == (2, 7, 1, 3, 6)
    assert net.log_prob(codes).shape == (2,)
    assert net.sample(3, 4, 5).shape == (3, 1, 4, 5)


def test_models_refuse_data_they_cannot_model():
    with pytest.raises(DataError, match="image"):
        tiny(PixelCNN, DataSpec("sequence", (8,), 4))
    with pytest.raises(DataError, match="discrete"):
        tiny(Transformer, DataSpec("sequence", (4,)))
    with pytest.raises(DataError, match="row"):
        LSTM(RNNConfig(mode="row"), DataSpec("sequence", (8,), 4))
    with pytest.raises(ValueError, match="heads"):
        Transformer.Config(width=10, heads=3)


@pytest.mark.parametrize("cls", IMAGE_MODELS)
def test_loss_decreases_on_digits(cls):
    data = load_dataset("digits")
    torch.manual_seed(0)
    model = cls(cls.Config(**cls.SMOKE), data.spec)
    opts = model.optimizers(3e-3)
    test = data.test[:200]
    with torch.no_grad():
        before = -model.eval().log_prob(test).mean()
    model.train()
    for _ in range(150):
        model.train_step(data.batch("train", 32), opts)
    with torch.no_grad():
        after = -model.eval().log_prob(test).mean()
    # Uniform over 17 levels is 181 nats; the smoke sizes still learn well below it.
    assert after < before - 20 and after < 150, (float(before), float(after))
