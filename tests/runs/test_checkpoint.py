import random

import numpy as np
import pytest
import torch

from runs import checkpoint
from runs.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state


def _draws():
    return (
        [random.random() for _ in range(5)],
        np.random.rand(5).tolist(),
        np.random.normal(size=3).tolist(),
        torch.rand(5).tolist(),
    )


def test_resumed_random_streams_continue_exactly(tmp_path):
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    _draws()
    np.random.normal()  # leaves a cached gaussian in numpy's legacy state
    save_checkpoint({"rng": rng_state()}, tmp_path / "c.pt")
    uninterrupted = _draws()
    _draws()  # the stream moves on, as in a process that died later
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])
    assert _draws() == uninterrupted


def test_round_trip_of_model_and_optimizer_state(tmp_path):
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    save_checkpoint(
        {"model": model.state_dict(), "opt": opt.state_dict(), "step": 7}, tmp_path / "c.pt"
    )
    state = load_checkpoint(tmp_path / "c.pt")
    assert state["step"] == 7
    for k, v in model.state_dict().items():
        assert torch.equal(state["model"][k], v)
    restored = torch.optim.Adam(torch.nn.Linear(4, 2).parameters())
    restored.load_state_dict(state["opt"])
    assert torch.equal(
        restored.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"]
    )


def test_crash_during_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"step": 1, "w": torch.ones(3)}, path)

    def dying_save(obj, f):
        f.write(b"\x80\x02partial")  # some bytes reach the disk, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["step"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


class Pickled:
    """Any class instance: a weights-only load must refuse to unpickle it."""


def test_loading_refuses_pickled_objects(tmp_path):
    torch.save({"obj": Pickled()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match=r"[Ww]eights only"):
        load_checkpoint(tmp_path / "evil.pt")
