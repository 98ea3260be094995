"""Data: CIFAR pickles (real and fake), stratified subsets, preprocessing, ImageFolder, missing/corrupt files."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from labkit import LabkitError
from labkit.config import DataConfig
from labkit.data import (default_subset, ensure_available, find_cifar, load_cifar_arrays, load_data,
                         stratified_indices, train_size_of)

from conftest import cifar_dir, needs_cifar


@needs_cifar
def test_cifar10_subset_shapes_balance_and_disjoint_val():
    cfg = DataConfig(dataset="cifar10", subset=1000, val_size=200)
    d = load_data(cfg, seed=3)
    assert d.train_x.shape == (1000, 3, 32, 32) and d.train_x.dtype == torch.uint8
    assert d.val_x.shape == (200, 3, 32, 32) and d.test_x.shape == (10000, 3, 32, 32)
    assert d.train_y.dtype == torch.int64 and d.num_classes == 10
    assert torch.bincount(d.train_y).tolist() == [100] * 10
    assert torch.bincount(d.val_y).tolist() == [20] * 10
    # val disjoint from train: no image appears in both
    tr = {bytes(x.numpy()) for x in d.train_x}
    assert not any(bytes(x.numpy()) in tr for x in d.val_x)
    # statistics from the training subset only
    xf = d.train_x.float() / 255
    assert torch.allclose(d.mean, xf.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(d.std, xf.std(dim=(0, 2, 3)), atol=1e-5)
    z = d.to_input(d.train_x)
    assert z.dtype == torch.float32
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-3)
    assert torch.allclose(z.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)
    # seeded: same seed same subset, other seed another
    assert torch.equal(load_data(cfg, seed=3).train_y, d.train_y)
    assert not torch.equal(load_data(cfg, seed=4).train_x, d.train_x)
    assert train_size_of(cfg) == 1000


@needs_cifar
def test_preprocess_mean_and_none():
    m = load_data(DataConfig(subset=500, val_size=100, preprocess="mean"), 0)
    assert torch.equal(m.std, torch.ones(3)) and (m.mean > 0.2).all()
    n = load_data(DataConfig(subset=500, val_size=100, preprocess="none"), 0)
    assert torch.allclose(n.to_input(n.train_x[:2]), n.train_x[:2].float() / 255)


def test_stratified_indices_keep_proportions():
    y = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    idx = stratified_indices(y, 20, torch.Generator().manual_seed(0))
    assert len(set(idx.tolist())) == 20
    assert torch.bincount(y[idx]).tolist() == [12, 6, 2]


def _write_fake_cifar100(root: Path, n_train: int = 200, n_test: int = 50) -> None:
    d = root / "cifar-100-python"
    d.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(0)
    for name, n in (("train", n_train), ("test", n_test)):
        blob = {"data": g.integers(0, 256, (n, 3072), dtype=np.uint8), "fine_labels": [i % 100 for i in range(n)],
                "coarse_labels": [i % 20 for i in range(n)]}
        (d / name).write_bytes(pickle.dumps(blob))
    (d / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)]}))


def test_cifar100_from_fake_pickles(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the decoded-array cache of these fakes
    _write_fake_cifar100(tmp_path)
    d = load_data(DataConfig(dataset="cifar100", root=str(tmp_path), subset=100, val_size=100, download=False), 0)
    assert d.num_classes == 100 and d.classes[7] == "c7"
    assert d.train_x.shape == (100, 3, 32, 32) and d.test_x.shape == (50, 3, 32, 32)
    assert torch.bincount(d.train_y, minlength=100).tolist() == [1] * 100
    with pytest.raises(LabkitError, match="data.subset=150 is larger than the 100 training images"):
        load_data(DataConfig(dataset="cifar100", root=str(tmp_path), subset=150, val_size=100, download=False), 0)


def test_corrupt_pickle_is_a_labkit_error(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _write_fake_cifar100(tmp_path)
    (tmp_path / "cifar-100-python" / "train").write_bytes(b"not a pickle at all")
    with pytest.raises(LabkitError, match="corrupt data file .*train.*download again"):
        load_cifar_arrays(str(tmp_path / "cifar-100-python"), "cifar100")
    (tmp_path / "cifar-100-python" / "train").write_bytes(pickle.dumps({"nodata": 1}))
    with pytest.raises(LabkitError, match="corrupt data file"):
        load_cifar_arrays(str(tmp_path / "cifar-100-python"), "cifar100")
    _write_fake_cifar100(tmp_path / "b")
    (tmp_path / "b" / "cifar-100-python" / "test").unlink()
    with pytest.raises(LabkitError, match="missing file .*test"):
        load_cifar_arrays(str(tmp_path / "b" / "cifar-100-python"), "cifar100")


def test_missing_data_offline_names_every_path(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(LabkitError) as e:
        find_cifar("cifar10", str(tmp_path / "arg"), download=False)
    msg = str(e.value)
    for p in (tmp_path / "arg", tmp_path / "env", tmp_path / "cache" / "labkit" / "data"):
        assert str(p / "cifar-10-batches-py") in msg
    assert "LABKIT_DATA" in msg and "labkit data --download" in msg


def test_failed_download_names_every_path_and_the_failure(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tvu, "download_and_extract_archive", offline)
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(LabkitError) as e:
        load_data(DataConfig(dataset="cifar10", root=str(tmp_path / "arg"), download=True), 0)
    msg = str(e.value)
    assert "download failed" in msg and "network is unreachable" in msg
    assert str(tmp_path / "env" / "cifar-10-batches-py") in msg and str(tmp_path / "arg" / "cifar-10-batches-py") in msg


def test_image_folder(tmp_path):
    from PIL import Image

    g = np.random.default_rng(0)
    for cls, colour in (("cats", 0), ("dogs", 2)):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(10):
            a = g.integers(0, 60, (40, 50, 3), dtype=np.uint8)
            a[..., colour] = 220  # each class has its own dominant colour
            Image.fromarray(a).save(tmp_path / "imgs" / cls / f"{i}.png")
    cfg = DataConfig(dataset="folder", folder=str(tmp_path / "imgs"), subset=0, val_size=2)
    d = load_data(cfg, 0)
    assert d.classes == ["cats", "dogs"] and d.kind == "image"
    assert d.train_x.shape[1:] == (3, 32, 32) and d.train_x.dtype == torch.uint8
    assert len(d.train_y) + len(d.val_y) + len(d.test_y) == 20
    assert len(d.test_y) == 4 and len(d.val_y) == 2 and train_size_of(cfg) == len(d.train_y)
    cats = d.train_x[d.train_y == 0].float()
    assert cats[:, 0].mean() > 150 and cats[:, 2].mean() < 100
    with pytest.raises(LabkitError, match="does not exist"):
        load_data(DataConfig(dataset="folder", folder=str(tmp_path / "none")), 0)
    with pytest.raises(LabkitError, match="needs data.folder"):
        load_data(DataConfig(dataset="folder"), 0)


@pytest.mark.parametrize("name", ["spirals", "circles", "xor", "blobs"])
def test_points(name):
    d = load_data(DataConfig(dataset=name, points=400), 1)
    assert d.kind == "points" and d.train_x.shape == (400, 2) and d.train_x.dtype == torch.float32
    assert d.num_classes == 2 and torch.bincount(d.train_y).min() > 100
    assert torch.allclose(d.to_input(d.train_x).mean(0), torch.zeros(2), atol=1e-4)


def test_a_folder_is_used_whole_by_default_while_cifar_takes_5000():
    assert default_subset("folder") == 0 and default_subset("cifar10") == 5000 == DataConfig().subset
    assert default_subset("spirals") == 5000  # not read by the 2-D sets


def test_ensure_available_finds_the_data_before_anything_is_made(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(LabkitError, match="cifar100 not found"):
        ensure_available(DataConfig(dataset="cifar100", download=False))
    with pytest.raises(LabkitError, match="does not exist"):
        ensure_available(DataConfig(dataset="folder", folder=str(tmp_path / "none")))
    ensure_available(DataConfig(dataset="spirals"))  # generated: nothing to find
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((8, 8, 3), 20 * i, dtype=np.uint8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    ensure_available(DataConfig(dataset="folder", folder=str(tmp_path / "imgs"), subset=0))
    # 20 images: 4 test, 2 validation, 14 to train on; a subset beyond that is found out here, not after the run began
    with pytest.raises(LabkitError, match="data.subset=15 is larger than the 14 training images"):
        ensure_available(DataConfig(dataset="folder", folder=str(tmp_path / "imgs"), subset=15))


def test_decoded_arrays_are_cached_on_disk_and_decoded_again_when_a_file_changes(tmp_path, monkeypatch):
    """The pickles are decoded once; a later process reads the cached uint8 arrays, unless a file changed or the
    cache is unreadable (then the pickles are decoded again)."""
    from labkit.data import sets

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _write_fake_cifar100(tmp_path)
    folder = str(tmp_path / "cifar-100-python")
    decoded = []
    real_read = sets._read_pickle
    monkeypatch.setattr(sets, "_read_pickle", lambda p: decoded.append(p.name) or real_read(p))

    def load():
        sets.load_cifar_arrays.cache_clear()  # as a new process would start
        return sets.load_cifar_arrays(folder, "cifar100")

    first = load()
    assert sorted(decoded) == ["meta", "test", "train"]
    [cache] = (tmp_path / "cache" / "labkit" / "data" / "arrays").iterdir()
    decoded.clear()
    again = load()
    assert decoded == []  # from the cache
    for a, b in zip(first, again):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert again[0].dtype == np.uint8 and again[0].shape == (200, 3, 32, 32)
    # a changed file (new size and time) is decoded again, into a cache entry of its own
    _write_fake_cifar100(tmp_path, n_train=300)
    assert len(load()[1]) == 300 and "train" in decoded
    # an unreadable cache entry is not trusted: the pickles are decoded
    for entry in (tmp_path / "cache" / "labkit" / "data" / "arrays").iterdir():
        (entry / "train_x.npy").write_bytes(b"garbage")
    decoded.clear()
    assert len(load()[1]) == 300 and "train" in decoded
    sets.load_cifar_arrays.cache_clear()
