import gzip
import struct
from pathlib import Path

import pytest
import torch

from generative.data import DATASETS, DataError, dequantize, load_dataset
from generative.datasets.text import decode, encode

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
TOY = ("moons", "8gaussians", "checkerboard", "pinwheel", "2spirals")


def test_digits_uses_the_intro_dgm_split():
    data = load_dataset("digits")
    # load_digits has 1,797 images: [:1000], [1000:1350], [1350:].
    assert (len(data.train), len(data.val), len(data.test)) == (1000, 350, 447)
    assert data.spec.shape == (1, 8, 8) and data.spec.levels == 17
    assert data.train.dtype == torch.long
    assert int(data.train.min()) == 0 and int(data.train.max()) == 16


def test_batches_come_from_the_global_rng_and_passes_are_ordered():
    data = load_dataset("digits")
    torch.manual_seed(3)
    a = data.batch("train", 8)
    torch.manual_seed(3)
    assert torch.equal(a, data.batch("train", 8))
    passes = list(data.batches("test", 100))
    assert [len(b) for b in passes] == [100, 100, 100, 100, 47]
    assert torch.equal(torch.cat(passes), data.test)
    assert sum(len(b) for b in data.batches("test", 100, limit=64)) == 64


def test_static_binarisation_is_fixed_by_the_seed():
    a = load_dataset("digits", binarize="static", seed=1)
    b = load_dataset("digits", binarize="static", seed=1)
    c = load_dataset("digits", binarize="static", seed=2)
    assert a.spec.levels == 2 and set(a.train.unique().tolist()) == {0, 1}
    assert torch.equal(a.train, b.train) and not torch.equal(a.train, c.train)
    torch.manual_seed(0)
    batch = a.batch("train", 4)
    torch.manual_seed(0)
    assert torch.equal(batch, a.train[torch.randint(0, 1000, (4,))])


def test_dynamic_binarisation_redraws_training_batches():
    data = load_dataset("digits", binarize="dynamic")
    torch.manual_seed(0)
    idx_draws = [data.batch("train", 256) for _ in range(2)]
    assert all(set(d.unique().tolist()) <= {0, 1} for d in idx_draws)
    # Same images drawn twice get different pixels: the draw is not a fixed lookup.
    x = data.train_probs[:64]
    assert not torch.equal(torch.bernoulli(x), torch.bernoulli(x))
    assert data.spec.levels == 2 and set(data.test.unique().tolist()) <= {0, 1}


@pytest.mark.parametrize("name", TOY)
def test_toy_densities_honour_the_seed(name):
    a, b = load_dataset(name, seed=0, n=200), load_dataset(name, seed=0, n=200)
    c = load_dataset(name, seed=1, n=200)
    assert a.train.shape == (200, 2) and a.val.shape == (20, 2) and a.spec.levels is None
    assert torch.equal(a.train, b.train) and not torch.equal(a.train, c.train)
    assert a.train.abs().max() < 6


def test_missing_mnist_folder_says_what_to_put_where(tmp_path):
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz.*--data-root"):
        load_dataset("mnist", data_root=str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="no MNIST IDX files"):
        load_dataset("mnist", data_root=str(tmp_path))


def test_corrupt_mnist_file_is_reported(tmp_path):
    bad = struct.pack(">IIII", 1234, 10000, 28, 28)
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(bad)
    with pytest.raises(DataError, match="magic number 2051"):
        load_dataset("mnist", data_root=str(tmp_path))
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 2051, 10000, 28, 28) + bytes(100))
    with pytest.raises(DataError, match="bytes, expected"):
        load_dataset("mnist", data_root=str(tmp_path))


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="no shared MNIST test files")
def test_mnist_test_files_alone_are_split_8000_1000_1000_and_say_so():
    data = load_dataset("mnist", data_root=str(SHARED))
    assert (len(data.train), len(data.val), len(data.test)) == (8000, 1000, 1000)
    assert data.spec == load_dataset("mnist", data_root=str(SHARED / "mnist")).spec
    assert "not comparable" in data.meta["note"]
    again = load_dataset("mnist", data_root=str(SHARED), seed=5)
    assert torch.equal(data.test, again.test)  # the split does not follow the run's seed


def test_text_corpus_from_any_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("abcab" * 400)
    data = load_dataset("text", data_root=str(path), seq_len=16)
    assert data.meta["vocab"] == "abc" and data.spec.levels == 3
    assert data.spec.kind == "sequence" and data.spec.shape == (16,)
    assert data.train.numel() == 1800 and data.val.numel() == 100 and data.test.numel() == 100
    assert data.batch("train", 5).shape == (5, 16)
    assert [b.shape for b in data.batches("val", 4)] == [(4, 16), (2, 16)]
    assert decode(encode("cab", data.meta["vocab"]), data.meta["vocab"]) == "cab"
    with pytest.raises(DataError, match="not in the corpus"):
        encode("abz", data.meta["vocab"])


def test_text_without_a_path_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="--data-root"):
        load_dataset("text")
    with pytest.raises(DataError, match="not found"):
        load_dataset("text", data_root=str(tmp_path / "missing.txt"))
    with pytest.raises(DataError, match=r"no tinyshakespeare\.txt"):
        load_dataset("text", data_root=str(tmp_path))


@pytest.mark.skipif(not (SHARED / "text").is_dir(), reason="no shared Tiny Shakespeare")
def test_tiny_shakespeare_from_its_folder():
    data = load_dataset("text", data_root=str(SHARED))
    assert data.meta["chars"] == 1_115_394 and data.spec.levels == 65


def test_sprites_have_known_factors_and_follow_the_seed():
    a = load_dataset("sprites", n=30, size=32)
    b = load_dataset("sprites", n=30, size=32)
    assert a.train.shape == (30, 1, 32, 32) and a.spec.levels == 2
    assert a.meta["factors"]["train"].shape == (30, 5)
    assert torch.equal(a.train, b.train)
    assert (a.train.flatten(1).sum(1) > 0).all()  # every sprite is drawn
    assert a.batch("train", 2).dtype == torch.long


def test_moving_sprites_are_videos():
    data = load_dataset("moving-sprites", n=10, size=16, frames=6)
    assert data.spec.kind == "video" and data.train.shape == (10, 6, 1, 16, 16)
    factors = data.meta["factors"]["train"]
    assert factors.shape == (10, 6, 5) and (factors[..., 3:] >= 0).all()
    assert (factors[..., 3:] <= 1).all()
    assert not torch.equal(data.train[:, 0], data.train[:, -1])  # they move


def test_signals_are_quantised_sequences():
    data = load_dataset("signals", seq_len=32)
    assert data.train.shape == (5000, 32) and data.spec.levels == 64
    assert int(data.train.min()) >= 0 and int(data.train.max()) <= 63


def test_dequantize_stays_in_the_level_cell():
    x = torch.randint(0, 17, (1000,))
    y = dequantize(x, 17)
    assert (y >= 0).all() and (y < 1).all()
    assert torch.equal(torch.floor(y * 17).long(), x)


def test_unknown_dataset_and_option_are_errors():
    with pytest.raises(DataError, match="valid:"):
        load_dataset("digitz")
    with pytest.raises(DataError, match="unexpected keyword"):
        load_dataset("moons", binarize="static")
    assert set(TOY) <= set(DATASETS)
