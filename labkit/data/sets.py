"""Datasets held in memory: CIFAR-10/100, the learner's own image folder, and 2-D toy sets.

Images stay uint8 (N, 3, 32, 32) tensors; `Data.to_input` turns a batch into
normalized floats with statistics taken from the training subset only.
Data directory: explicit argument, else $LABKIT_DATA, else a per-user cache.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import pickle
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..config import DataConfig
from ..errors import LabkitError
from ..registry import Registry
from .shapes import CLASSES as SHAPES, TRAIN_PER_CLASS, shapes_pool

SHAPES_TRAIN = TRAIN_PER_CLASS * len(SHAPES)

CIFAR = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "md5": "c58f30108f718f92721af3b95e74349a",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": ("batches.meta", "label_names"),
        "labels": "labels",
        "classes": 10,
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "md5": "eb9058c3a382ffc7106e4002c42a8d85",
        "train": ["train"],
        "test": ["test"],
        "meta": ("meta", "fine_label_names"),
        "labels": "fine_labels",
        "classes": 100,
    },
}
CIFAR_TRAIN_SIZE = 50_000


@dataclass
class Data:
    """One dataset split into train / val / test, in memory, with its normalization."""

    name: str
    kind: str  # "image" (uint8 N,3,H,W) or "points" (float N,2)
    classes: list[str]
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: torch.Tensor = field(default_factory=lambda: torch.zeros(1))
    std: torch.Tensor = field(default_factory=lambda: torch.ones(1))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    def to(self, device: torch.device | str) -> "Data":
        """A copy of this data on `device` (itself when it is there already): as fast CIFAR trainers keep the
        whole set in GPU memory, the batches and their augmentation are then made on the device."""
        device = torch.device(device)
        if self.train_x.device == device:
            return self
        move = {f: getattr(self, f).to(device) for f in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y",
                                                         "mean", "std")}
        return dataclasses.replace(self, **move)

    def to_input(self, x: torch.Tensor) -> torch.Tensor:
        """A batch as normalized float32 (images: /255, minus mean, over std; channels-last)."""
        if self.kind == "image":
            x = x.float().div_(255.0)
            x = x.sub_(self.mean.view(1, -1, 1, 1)).div_(self.std.view(1, -1, 1, 1))
            return x.contiguous(memory_format=torch.channels_last)
        return (x - self.mean) / self.std


DataFactory = Callable[[DataConfig, int], Data]
DATASETS: Registry[DataFactory] = Registry("dataset")


# -- where data lives ---------------------------------------------------------
def cache_dir() -> Path:
    """The per-user data cache (~/.cache/labkit/data, or under $XDG_CACHE_HOME)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "labkit" / "data"


def data_dirs(root: str | os.PathLike | None = None) -> list[Path]:
    """Directories searched for data, in order: `root`, $LABKIT_DATA, the per-user cache."""
    dirs: list[Path] = []
    if root:
        dirs.append(Path(root).expanduser())
    if os.environ.get("LABKIT_DATA"):
        dirs.append(Path(os.environ["LABKIT_DATA"]).expanduser())
    dirs.append(cache_dir())
    out: list[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def find_cifar(name: str, root: str | None = None, download: bool = True) -> Path:
    """The folder holding `name`'s pickles; downloads the official archive when missing and allowed."""
    spec = CIFAR[name]
    tried = data_dirs(root)
    for d in tried:
        if (d / spec["folder"]).is_dir():
            return d / spec["folder"]
    target = tried[0]
    error = ""
    if download:
        try:
            download_cifar(name, target)
            return target / spec["folder"]
        except LabkitError as e:
            error = f"\n  download failed: {e}"
    where = "\n".join(f"  {d / spec['folder']}" for d in tried)
    raise LabkitError(
        f"{name} not found; looked in:\n{where}{error}\n"
        f"fix: connect to the internet and run `labkit data --download {name}`, or "
        f"unpack {spec['url'].rsplit('/', 1)[1]} into one of those directories, or point "
        f"LABKIT_DATA (or --data-root) at a directory that holds {spec['folder']}/"
    )


def download_cifar(name: str, target: Path) -> Path:
    """Download and verify (md5) the official archive into `target` with torchvision's helper."""
    from torchvision.datasets.utils import download_and_extract_archive

    spec = CIFAR[name]
    try:
        target.mkdir(parents=True, exist_ok=True)
        download_and_extract_archive(spec["url"], str(target), md5=spec["md5"])
    except Exception as e:  # network, disk or checksum: all end the same way for the user
        raise LabkitError(f"could not download {spec['url']} into {target}: {e}") from None
    return target / spec["folder"]


def _read_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except FileNotFoundError:
        raise LabkitError(
            f"missing file {path}; the folder {path.parent} is incomplete: delete it and "
            f"download again (`labkit data --download`)"
        ) from None
    except Exception as e:
        raise LabkitError(
            f"corrupt data file {path} ({type(e).__name__}: {e}); delete {path.parent} "
            f"and download again (`labkit data --download`)"
        ) from None


ARRAYS = ("train_x", "train_y", "test_x", "test_y")


def _array_cache(folder: Path, files: list[str]) -> Path:
    """Where the decoded arrays of `folder` are cached: keyed by its path and each file's size and mtime, so
    an edited or replaced file is decoded again."""
    key = [str(folder.resolve())]
    for fn in files:
        try:
            st = (folder / fn).stat()
            key.append(f"{fn}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            key.append(f"{fn}:missing")
    return cache_dir() / "arrays" / hashlib.sha256("\n".join(key).encode()).hexdigest()[:20]


def _read_cached(path: Path) -> tuple | None:
    """The cached arrays, memory-mapped (read-only: a run reads the pages of its subset, not all 150 MB), and the
    class names; None when the cache is missing or unreadable."""
    try:
        arrays = tuple(np.load(path / f"{a}.npy", mmap_mode="r") for a in ARRAYS)
        names = json.loads((path / "names.json").read_text())
    except (OSError, ValueError):
        return None
    tx, ty, vx, vy = arrays
    if tx.dtype != np.uint8 or tx.ndim != 4 or len(tx) != len(ty) or len(vx) != len(vy):
        return None
    return (*arrays, names)


def _write_cached(path: Path, arrays: tuple, names: list[str]) -> None:
    """Write the arrays next to `path` and rename into place (a crash leaves no half cache); best effort:
    an unwritable cache only means the next process decodes the pickles again."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        for a, arr in zip(ARRAYS, arrays):
            np.save(tmp / f"{a}.npy", np.ascontiguousarray(arr))
        (tmp / "names.json").write_text(json.dumps(names))
        tmp.rename(path)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


@functools.lru_cache(maxsize=4)
def load_cifar_arrays(folder: str, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(train_x, train_y, test_x, test_y, class names); cached per process, and on disk as uint8 arrays
    (decoding the pickles takes ~1 s, a cached reload a few ms)."""
    spec = CIFAR[name]
    d = Path(folder)
    cache = _array_cache(d, [*spec["train"], *spec["test"], spec["meta"][0]])
    cached = _read_cached(cache)
    if cached is not None:
        return cached

    def read(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for fn in files:
            b = _read_pickle(d / fn)
            try:
                x = np.asarray(b["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                y = np.asarray(b[spec["labels"]], dtype=np.int64)
            except (KeyError, ValueError, TypeError) as e:
                raise LabkitError(
                    f"corrupt data file {d / fn}: expected 'data' (N x 3072 uint8) and "
                    f"'{spec['labels']}' ({e}); delete {d} and download again"
                ) from None
            if len(x) != len(y) or (len(y) and (y.min() < 0 or y.max() >= spec["classes"])):
                raise LabkitError(f"corrupt data file {d / fn}: labels do not match the images")
            xs.append(x)
            ys.append(y)
        return np.concatenate(xs), np.concatenate(ys)

    tx, ty = read(spec["train"])
    vx, vy = read(spec["test"])
    meta = _read_pickle(d / spec["meta"][0])
    names = list(meta.get(spec["meta"][1], [str(i) for i in range(spec["classes"])]))
    _write_cached(cache, (tx, ty, vx, vy), names)
    return tx, ty, vx, vy, names


# -- splits ------------------------------------------------------------------
def stratified_indices(labels: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """`n` indices drawn without replacement with class proportions kept (largest remainder)."""
    counts = torch.bincount(labels).double()
    exact = n * counts / counts.sum()
    quota = exact.floor().long()
    rest = n - int(quota.sum())
    if rest:
        order = torch.argsort(-(exact - quota.double()), stable=True)
        quota[order[:rest]] += 1
    picked = []
    for c, q in enumerate(quota.tolist()):
        if q:
            idx = torch.nonzero(labels == c).flatten()
            picked.append(idx[torch.randperm(len(idx), generator=gen)[:q]])
    return torch.sort(torch.cat(picked)).values if picked else torch.zeros(0, dtype=torch.long)


def check_split(n: int, subset: int, val_size: int, what: str) -> None:
    """Raise unless `val_size` and then `subset` fit in `n` training images."""
    if val_size < 0 or val_size >= n:
        raise LabkitError(f"data.val_size={val_size} must be in [0, {n - 1}] for {what} ({n} training images)")
    if subset < 0 or subset > n - val_size:
        raise LabkitError(
            f"data.subset={subset} is larger than the {n - val_size} training images {what} has "
            f"after carving {val_size} for validation; use --subset between 1 and {n - val_size} (0 = all)"
        )


def split_train(x: torch.Tensor, y: torch.Tensor, subset: int, val_size: int, seed: int, what: str):
    """Carve a stratified validation set, then a stratified training subset from the rest."""
    n = len(y)
    check_split(n, subset, val_size, what)
    gen = torch.Generator().manual_seed(seed)
    val_idx = stratified_indices(y, val_size, gen) if val_size else torch.zeros(0, dtype=torch.long)
    keep = torch.ones(n, dtype=torch.bool)
    keep[val_idx] = False
    pool = torch.nonzero(keep).flatten()
    train_idx = pool if subset == 0 else pool[stratified_indices(y[pool], subset, gen)]
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


# (examples, scale) -> per-channel (mean, std) of examples / scale; channels are dim 1 (images and points alike)
Stats = Callable[[torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]]
PREPROCESS: Registry[Stats] = Registry("preprocess")


def _as_float(x: torch.Tensor, scale: float) -> torch.Tensor:
    return x.to(torch.float32, copy=True).div_(scale)  # a copy: the points sets are float already


def _dims(x: torch.Tensor) -> tuple[int, ...]:
    return (0, *range(2, x.ndim))  # every dim but the channels


def _standardize(xf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return xf.mean(dim=_dims(xf)), xf.std(dim=_dims(xf)).clamp_min(1e-6)


# "none" never converts the examples: 50,000 CIFAR images as float32 are 600 MB
PREPROCESS.add("none", lambda x, scale: (torch.zeros(x.shape[1]), torch.ones(x.shape[1])),
               "raw inputs: pixels scaled to [0, 1], points as generated")
PREPROCESS.add("mean", lambda x, scale: (_as_float(x, scale).mean(dim=_dims(x)), torch.ones(x.shape[1])),
               "subtract the per-channel mean of the training split")
PREPROCESS.add("standardize", lambda x, scale: _standardize(_as_float(x, scale)),
               "subtract the per-channel mean, divide by the per-channel std (of the training split)")


def image_stats(x: torch.Tensor, preprocess: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (mean, std) of uint8 images in [0, 1] units, as `preprocess` asks."""
    if len(x) == 0:
        return torch.zeros(x.shape[1]), torch.ones(x.shape[1])
    return PREPROCESS.get(preprocess)(x, 255.0)


# -- CIFAR -------------------------------------------------------------------
def _cifar(name: str) -> DataFactory:
    def load(cfg: DataConfig, seed: int) -> Data:
        folder = find_cifar(name, cfg.root, cfg.download)
        tx, ty, vx, vy, names = load_cifar_arrays(str(folder), name)
        with warnings.catch_warnings():  # memory-mapped, read-only: indexing copies what the run keeps
            warnings.simplefilter("ignore", UserWarning)
            x, y = torch.from_numpy(tx), torch.from_numpy(ty)
        # the run keeps the test set whole: its own writable copy
        return _image_set(name, cfg, seed, names, x, y, torch.from_numpy(np.array(vx)), torch.from_numpy(np.array(vy)))

    return load


def _image_set(name: str, cfg: DataConfig, seed: int, names: list[str], x: torch.Tensor, y: torch.Tensor,
               test_x: torch.Tensor, test_y: torch.Tensor) -> Data:
    """Keep the classes `cfg.classes` picks (relabelled 0..k-1), split train/val, and take the training statistics."""
    keep = pick_classes(cfg.classes, names, name)
    x, y = select_classes(x, y, keep, len(names))
    test_x, test_y = select_classes(test_x, test_y, keep, len(names))
    what = f"{name} (classes {cfg.classes})" if cfg.classes else name
    trx, try_, vax, vay = split_train(x, y, cfg.subset, cfg.val_size, seed, what)
    mean, std = image_stats(trx, cfg.preprocess)
    return Data(name, "image", [names[i] for i in keep], trx, try_, vax, vay, test_x, test_y, mean, std)


# -- class subsets -------------------------------------------------------------
def class_tokens(text: str) -> list[str]:
    """The comma-separated items of a data.classes value ("" = none: all classes)."""
    return [t.strip() for t in text.split(",")] if text.strip() else []


def pick_classes(text: str, names: list[str] | None, dataset: str) -> list[int]:
    """Indices of the classes `text` picks by index or name ("0,1,4", "cat,dog"; "" = every one), in its order.

    With `names` None (not known without reading the data) only the form is checked: items, repeats, and
    indices against the dataset's class count where the registry knows it. Errors name the item and the fix.
    """
    tokens = class_tokens(text)
    count = len(names) if names is not None else DATASETS.entry(dataset).traits.get("classes")
    if not tokens:
        return list(range(count)) if count is not None else []
    listing = (", ".join(names) + f"; or indices 0-{len(names) - 1}" if names is not None else
               f"indices 0-{count - 1} or the class names" if count else "indices or class names")
    fix = "fix: --classes with two or more of them, comma-separated (empty = all classes)"
    if "" in tokens:
        raise LabkitError(f"data.classes={text!r} has an empty item; {fix}, e.g. 0,1,4")
    picked: list[int] = []
    for t in tokens:
        if t.lstrip("-").isdigit():
            i = int(t)
            if i < 0 or (count is not None and i >= count):
                raise LabkitError(f"data.classes: class index {i} is out of range for {dataset}; allowed: {listing}; "
                                  f"{fix}")
        elif names is None:
            continue  # a name: checked once the names are read
        elif t in names:
            i = names.index(t)
        else:
            raise LabkitError(f"data.classes: unknown class {t!r} of {dataset}; allowed: {listing}; {fix}")
        if i in picked:
            what = f"{names[i]!r} (index {i})" if names is not None else f"index {i}"
            raise LabkitError(f"data.classes={text!r} names class {what} twice; {fix}, each once")
        picked.append(i)
    twice = next((t for i, t in enumerate(tokens) if t in tokens[:i]), None)
    if names is None and twice is not None:
        raise LabkitError(f"data.classes={text!r} names class {twice!r} twice; {fix}, each once")
    if len(tokens) < 2:
        raise LabkitError(f"data.classes={text!r} keeps one class, and one class is nothing to tell apart; {fix}")
    return picked


def select_classes(x: torch.Tensor, y: torch.Tensor, keep: list[int], total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The examples of the classes `keep` (of `total`), relabelled 0..len(keep)-1 in keep's order (all of them, as
    they are, when keep lists every class in order)."""
    if keep == list(range(total)):
        return x, y
    relabel = torch.full((max(total, int(y.max()) + 1 if len(y) else 0),), -1, dtype=torch.long)
    relabel[torch.tensor(keep, dtype=torch.long)] = torch.arange(len(keep))
    new = relabel[y]
    mask = new >= 0
    return x[mask], new[mask]


def dataset_classes(cfg: DataConfig) -> list[str]:
    """Every class name of the dataset `cfg` names, before --classes picks (CIFAR: its meta file; a folder: its
    sub-folders; a generated set: its registry entry), without loading the images."""
    spec = CIFAR.get(cfg.dataset)
    if spec is not None:
        meta = _read_pickle(find_cifar(cfg.dataset, cfg.root, cfg.download) / spec["meta"][0])
        return list(meta.get(spec["meta"][1], [str(i) for i in range(spec["classes"])]))
    if cfg.dataset == "folder":
        return list(_folder_images(cfg)[3])
    return list(DATASETS.entry(cfg.dataset).traits["names"])


DATASETS.add("cifar10", _cifar("cifar10"), "CIFAR-10: 60,000 32x32 colour images in 10 classes", kind="image",
             classes=10)
DATASETS.add("cifar100", _cifar("cifar100"), "CIFAR-100: 60,000 32x32 colour images in 100 classes", kind="image",
             classes=100)


# -- generated shapes: an image set unlike CIFAR, offline (see labkit.data.shapes) ----------------------------
def _shapes(cfg: DataConfig, seed: int) -> Data:
    total = len(SHAPES)
    k = len(class_tokens(cfg.classes)) or total
    # the pool is generated in class-balanced chunks: draw only what the split needs (0 = the whole pool)
    need = -(-(cfg.val_size + cfg.subset) * total // k) if cfg.subset else None
    x, y = shapes_pool("train", need)
    tx, ty = shapes_pool("test")
    return _image_set("shapes", cfg, seed, list(SHAPES), x, y, tx, ty)


DATASETS.add("shapes", _shapes, f"generated drawings of {len(SHAPES)} shapes (offline, instant): unlike CIFAR's "
             "photos, the 'different' target for transfer learning", kind="image", classes=len(SHAPES),
             names=SHAPES, train_size=SHAPES_TRAIN)


# -- the learner's own images ------------------------------------------------
@functools.lru_cache(maxsize=2)
def _load_folder(path: str, mtime: float) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.Resize((32, 32)), transforms.PILToTensor()])
    try:
        ds = datasets.ImageFolder(path, transform=tf)
    except (FileNotFoundError, OSError) as e:
        raise LabkitError(
            f"cannot read image folder {path}: {e}; expected one sub-folder per class, "
            f"each holding .png/.jpg images (torchvision's ImageFolder layout)"
        ) from None
    if len(ds.classes) < 2:
        raise LabkitError(f"image folder {path} has {len(ds.classes)} class folder(s); at least 2 are needed")
    xs = []
    for file, _ in ds.samples:
        try:
            img = ds.loader(file)
        except Exception as e:
            raise LabkitError(f"cannot read image {file}: {e}; remove or replace it") from None
        xs.append(tf(img.convert("RGB")))
    return torch.stack(xs), torch.tensor(ds.targets), tuple(ds.classes)


def _folder_test_size(n: int) -> int:
    return max(1, n // 5)  # a fifth of the images is the test set


def _folder_val_size(pool: int, val_size: int) -> int:
    return min(val_size, pool // 8)  # at most an eighth of the rest validates, so small folders keep most to train


def _folder_images(cfg: DataConfig) -> tuple[Path, torch.Tensor, torch.Tensor, tuple[str, ...]]:
    if not cfg.folder:
        raise LabkitError("dataset 'folder' needs data.folder (--folder DIR): a directory with one sub-folder of images per class")
    p = Path(cfg.folder).expanduser()
    if not p.is_dir():
        raise LabkitError(f"image folder {p} does not exist; pass a directory with one sub-folder of images per class")
    return (p, *_load_folder(str(p.resolve()), p.stat().st_mtime))


def _folder(cfg: DataConfig, seed: int) -> Data:
    p, x, y, names = _folder_images(cfg)
    keep = pick_classes(cfg.classes, list(names), f"folder {p}")
    x, y = select_classes(x, y, keep, len(names))
    names = tuple(names[i] for i in keep)
    gen = torch.Generator().manual_seed(seed)
    n = len(y)
    test_idx = stratified_indices(y, _folder_test_size(n), gen)
    rest = torch.ones(n, dtype=torch.bool)
    rest[test_idx] = False
    pool = torch.nonzero(rest).flatten()
    val = _folder_val_size(len(pool), cfg.val_size)
    trx, try_, vax, vay = split_train(x[pool], y[pool], cfg.subset, val, seed, f"folder {p}")
    mean, std = image_stats(trx, cfg.preprocess)
    return Data("folder", "image", list(names), trx, try_, vax, vay, x[test_idx], y[test_idx], mean, std)


# subset=0: a folder of your own images is used whole unless a subset is asked for (5,000 is CIFAR's default)
DATASETS.add("folder", _folder, "your own images: one sub-folder per class (ImageFolder layout), resized to 32x32",
             kind="image", subset=0)


# -- 2-D sets, as in TensorFlow Playground --------------------------------------
def _spirals(n: int, g: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = np.arange(n) % 2
    r = g.uniform(0.05, 1.0, n)
    theta = r * 3.0 * np.pi + np.pi * y
    return np.stack([r * np.cos(theta), r * np.sin(theta)], 1), y


def _circles(n: int, g: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = np.arange(n) % 2
    r = np.where(y == 0, g.uniform(0.0, 0.45, n), g.uniform(0.65, 1.0, n))
    theta = g.uniform(0, 2 * np.pi, n)
    return np.stack([r * np.cos(theta), r * np.sin(theta)], 1), y


def _xor(n: int, g: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    p = g.uniform(-1, 1, (n, 2))
    p += np.sign(p) * 0.05  # a small margin around the axes
    return p, ((p[:, 0] > 0) ^ (p[:, 1] > 0)).astype(np.int64)


def _blobs(n: int, g: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = np.arange(n) % 2
    centers = np.array([[-0.5, -0.5], [0.5, 0.5]])
    return centers[y] + g.normal(0, 0.25, (n, 2)), y


def _points(name: str, make: Callable, classes: list[str]) -> DataFactory:
    def load(cfg: DataConfig, seed: int) -> Data:
        g = np.random.default_rng(seed)
        n_eval = max(200, cfg.points // 4)
        parts = []
        for n in (cfg.points, n_eval, n_eval):
            p, y = make(n, g)
            p = p + g.normal(0, cfg.noise, p.shape)
            parts += [torch.tensor(p, dtype=torch.float32), torch.tensor(y, dtype=torch.long)]
        mean, std = PREPROCESS.get(cfg.preprocess)(parts[0], 1.0)
        return Data(name, "points", classes, *parts, mean=mean, std=std)

    return load


DATASETS.add("spirals", _points("spirals", _spirals, ["arm A", "arm B"]), "two interleaved spirals (2-D, instant)", kind="points")
DATASETS.add("circles", _points("circles", _circles, ["inner", "outer"]), "a disc inside a ring (2-D, instant)", kind="points")
DATASETS.add("xor", _points("xor", _xor, ["same sign", "opposite sign"]), "the XOR quadrants (2-D, instant)", kind="points")
DATASETS.add("blobs", _points("blobs", _blobs, ["blob A", "blob B"]), "two Gaussian blobs (2-D, instant)", kind="points")


def default_subset(dataset: str) -> int:
    """The training subset `dataset` uses unless one is given: its `subset` trait (a folder: 0 = all), else 5,000."""
    return int(DATASETS.entry(dataset).traits.get("subset", DataConfig.subset))


def ensure_available(cfg: DataConfig) -> None:
    """Find (or, when allowed, download) the files `cfg` needs; raise the plain error naming where it looked.

    Cheap when the data is there (a few stat calls; a folder's images are read once and cached for the run),
    so a caller can check before creating anything, e.g. a run directory that would only record the failure.
    """
    if cfg.dataset in CIFAR:
        find_cifar(cfg.dataset, cfg.root, cfg.download)
    elif cfg.dataset == "folder":
        p, _, y, names = _folder_images(cfg)
        n = len(select_classes(y, y, pick_classes(cfg.classes, list(names), f"folder {p}"), len(names))[1])
        pool = n - _folder_test_size(n)
        check_split(pool, cfg.subset, _folder_val_size(pool, cfg.val_size), f"folder {p}")
    if cfg.classes and cfg.dataset != "folder":  # names are known once the files are: unknown ones stop here
        pick_classes(cfg.classes, dataset_classes(cfg), cfg.dataset)


def is_image(dataset: str) -> bool:
    """True for image datasets (augmentation and conv models apply)."""
    return DATASETS.entry(dataset).traits["kind"] == "image"


def load_data(cfg: DataConfig, seed: int = 0) -> Data:
    """Load (from the in-process cache after the first time) and split the dataset `cfg` names."""
    return DATASETS.get(cfg.dataset)(cfg, seed)


def train_size_of(cfg: DataConfig) -> int:
    """Training examples a config will use, without loading images (for LR previews)."""
    if not is_image(cfg.dataset):
        return cfg.points
    if cfg.dataset == "folder":
        from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset, find_classes

        if not cfg.folder or not Path(cfg.folder).is_dir():
            raise LabkitError(f"image folder {cfg.folder!r} does not exist")
        _, idx = find_classes(cfg.folder)
        n = len(make_dataset(cfg.folder, idx, IMG_EXTENSIONS))
        pool = n - _folder_test_size(n)
        return cfg.subset or pool - _folder_val_size(pool, cfg.val_size)
    return cfg.subset or _pool(cfg)[1] - cfg.val_size


def describe(root: str | None = None) -> list[dict]:
    """What `labkit data` prints: each directory searched and which datasets it holds."""
    rows = []
    for d in data_dirs(root):
        for name, spec in CIFAR.items():
            folder = d / spec["folder"]
            files = spec["train"] + spec["test"] + [spec["meta"][0]]
            present = [f for f in files if (folder / f).is_file()]
            rows.append({
                "dataset": name, "path": str(folder),
                "status": "complete" if len(present) == len(files) else
                ("partial: missing " + ", ".join(sorted(set(files) - set(present))) if present else "absent"),
            })
    return rows


def _pool(cfg: DataConfig) -> tuple[int, int, str]:
    """(classes, training images, what) of a dataset of known size (CIFAR, shapes) after --classes picks."""
    traits = DATASETS.entry(cfg.dataset).traits
    total = traits["classes"]
    picked = len(class_tokens(cfg.classes)) or total
    size = traits.get("train_size", CIFAR_TRAIN_SIZE) * picked // total
    return picked, size, f"{cfg.dataset}" + (f" (classes {cfg.classes})" if cfg.classes else "")


def check_subset(cfg: DataConfig) -> None:
    """Raise early when a subset of CIFAR or shapes cannot fit (the full check happens at load time)."""
    if "train_size" not in DATASETS.entry(cfg.dataset).traits and cfg.dataset not in CIFAR:
        return
    classes, size, what = _pool(cfg)
    if cfg.val_size >= size:
        raise LabkitError(
            f"data.val_size={cfg.val_size} leaves no training images: {what} has {size} in its "
            f"training set; use --val-size below that (1000 is the default; 5000 is a common split)")
    if 0 < cfg.subset < classes:
        raise LabkitError(
            f"data.subset={cfg.subset} is fewer than the {classes} classes of {what}: a stratified subset "
            f"needs at least one image of each; use --subset {classes} or more (0 = all)")
    if cfg.subset > size - cfg.val_size:
        raise LabkitError(
            f"data.subset={cfg.subset} is larger than the {size - cfg.val_size} training "
            f"images {what} has after carving {cfg.val_size} for validation; "
            f"use --subset between 1 and {size - cfg.val_size} (0 = all)"
        )

