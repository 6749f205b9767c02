"""Datasets from tensorflow-datasets when they can be had, from local files when they cannot.

Where a dataset comes from, in order:
1. `data_dir` (a flag) or the `L2L_DATA_DIR` environment variable, which may be
   * a Keras-layout `.npz` file (`mnist.npz`: x_train (N,28,28) uint8, y_train, x_test, y_test),
   * a folder holding such a file (`DIR/mnist.npz`, `DIR/cifar10.npz`: x (N,32,32,3) uint8),
   * for CIFAR-10, the official python release (`DIR/cifar-10-batches-py/`, or that folder
     itself: pickled `data_batch_1..5` and `test_batch`), or
   * a prepared tensorflow-datasets data dir (`DIR/mnist/<version>/`, as `tfds.load(data_dir=DIR)`
     writes it);
2. `tfds.load(name)` with its default data dir, which downloads when the network allows.
When none works, one `UserError` names every option. Loaded arrays are checked (keys, shapes,
dtypes, label range) and errors name the file and what is wrong, so a wrong file never turns
into silently wrong numbers.
"""
from __future__ import annotations

import dataclasses
import os
import pickle

import numpy as np

from l2l_tf.errors import UserError

ENV_VAR = "L2L_DATA_DIR"

#: name -> (image shape, number of classes, keras npz file name)
SPECS = {
    "mnist": ((28, 28), 10, "mnist.npz"),
    "cifar10": ((32, 32, 3), 10, "cifar10.npz"),
}
#: The folder of the official CIFAR-10 python release.
CIFAR_BATCHES_DIR = "cifar-10-batches-py"


@dataclasses.dataclass
class ImageDataset:
    """Images as uint8 arrays (scaled to [0, 1] floats only when batched, to keep memory small)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    num_classes: int

    def subset(self, labels) -> "ImageDataset":
        """Only the examples of the given classes, relabelled 0..len(labels)-1 in that order."""
        labels = list(labels)
        lut = np.full(self.num_classes, -1, np.int64)
        lut[labels] = np.arange(len(labels))
        keep_tr, keep_te = np.isin(self.y_train, labels), np.isin(self.y_test, labels)
        return ImageDataset(self.name, self.x_train[keep_tr], lut[self.y_train[keep_tr]].astype(np.int32),
                            self.x_test[keep_te], lut[self.y_test[keep_te]].astype(np.int32),
                            f"{self.source} (classes {labels})", len(labels))


def _check(name: str, arrays: dict, where: str) -> ImageDataset:
    shape, num_classes, _ = SPECS[name]
    for key in ("x_train", "y_train", "x_test", "y_test"):
        if key not in arrays:
            raise UserError(f"{where}: missing array {key!r} (expected keys x_train, y_train, x_test, y_test)")
    out = {}
    for split in ("train", "test"):
        x, y = np.asarray(arrays[f"x_{split}"]), np.asarray(arrays[f"y_{split}"]).reshape(-1)
        if x.ndim == len(shape) + 2 and x.shape[-1] == 1 and x.shape[1:-1] == shape:
            x = x[..., 0]
        if x.shape[1:] != shape:
            raise UserError(f"{where}: x_{split} has shape {x.shape}; expected (N, {', '.join(map(str, shape))})")
        if x.dtype != np.uint8:
            raise UserError(f"{where}: x_{split} has dtype {x.dtype}; expected uint8 pixels 0..255")
        if len(y) != len(x):
            raise UserError(f"{where}: {len(x)} x_{split} images but {len(y)} y_{split} labels")
        if len(y) == 0:
            raise UserError(f"{where}: the {split} split is empty")
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= num_classes:
            raise UserError(f"{where}: y_{split} must hold integer labels 0..{num_classes - 1}")
        out[split] = (x, y.astype(np.int32))
    return ImageDataset(name, *out["train"], *out["test"], source=where, num_classes=num_classes)


def read_npz(path: str) -> dict[str, np.ndarray]:
    """Every array of an .npz file (no pickles), or a one-line UserError naming the file."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None


def _load_npz(name: str, path: str) -> ImageDataset:
    return _check(name, read_npz(path), path)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a data file must never run code."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch file")
        return super().find_class(module, name)


def _read_cifar_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
        data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"{path}: not a CIFAR-10 python batch ({type(e).__name__}: {e})") from None
    if data.ndim != 2 or data.shape[1] != 32 * 32 * 3:
        raise UserError(f"{path}: data has shape {data.shape}; expected (N, 3072)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels  # stored channels-first


def _load_cifar_batches(folder: str) -> ImageDataset:
    """The official python release: data_batch_1..5 (train) and test_batch, in that order."""
    train_files = [os.path.join(folder, f"data_batch_{i}") for i in range(1, 6)]
    test_file = os.path.join(folder, "test_batch")
    missing = [f for f in [*train_files, test_file] if not os.path.isfile(f)]
    if missing:
        raise UserError(f"{folder}: missing CIFAR-10 batch files {[os.path.basename(f) for f in missing]}")
    train = [_read_cifar_batch(f) for f in train_files]
    x_test, y_test = _read_cifar_batch(test_file)
    arrays = {"x_train": np.concatenate([x for x, _ in train]), "y_train": np.concatenate([y for _, y in train]),
              "x_test": x_test, "y_test": y_test}
    return _check("cifar10", arrays, folder)


def _load_tfds(name: str, data_dir: str | None, download: bool) -> ImageDataset:
    import tensorflow_datasets as tfds

    where = f"tfds:{name}" + (f" in {data_dir}" if data_dir else "")
    if data_dir is not None:
        versions = sorted(os.listdir(os.path.join(data_dir, name)))
        if not versions:
            raise UserError(f"{os.path.join(data_dir, name)} holds no prepared tfds version")
        builder = tfds.builder_from_directory(os.path.join(data_dir, name, versions[-1]))
    else:
        builder = tfds.builder(name)
        if download:
            builder.download_and_prepare()
    arrays = {}
    for split in ("train", "test"):
        # Features by name ("image", "label": the tfds MNIST/CIFAR schema), which also works
        # for data dirs written without supervised keys.
        examples = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        if not {"image", "label"} <= set(examples):
            raise UserError(f"{where}: expected features 'image' and 'label', found {sorted(examples)}")
        arrays[f"x_{split}"], arrays[f"y_{split}"] = examples["image"], examples["label"]
    return _check(name, arrays, where)


def load_dataset(name: str, data_dir: str | None = None) -> ImageDataset:
    """Loads `name` ("mnist", "cifar10") from `data_dir`, $L2L_DATA_DIR, or tensorflow-datasets."""
    if name not in SPECS:
        raise UserError(f"unknown dataset {name!r}; expected one of {sorted(SPECS)}")
    npz_name = SPECS[name][2]
    data_dir = data_dir or os.environ.get(ENV_VAR) or None
    if data_dir:
        if os.path.isfile(data_dir):
            return _load_npz(name, data_dir)
        if not os.path.isdir(data_dir):
            raise UserError(f"data dir {data_dir} does not exist")
        if os.path.isfile(os.path.join(data_dir, npz_name)):
            return _load_npz(name, os.path.join(data_dir, npz_name))
        if name == "cifar10":
            if os.path.isfile(os.path.join(data_dir, "data_batch_1")):
                return _load_cifar_batches(data_dir)
            if os.path.isdir(os.path.join(data_dir, CIFAR_BATCHES_DIR)):
                return _load_cifar_batches(os.path.join(data_dir, CIFAR_BATCHES_DIR))
        if os.path.isdir(os.path.join(data_dir, name)):
            return _load_tfds(name, data_dir, download=False)
        other = f", a {CIFAR_BATCHES_DIR}/ folder" if name == "cifar10" else ""
        raise UserError(f"no {name} data in {data_dir}: expected {npz_name} (Keras layout){other} or a prepared "
                        f"tensorflow-datasets folder {name}/<version>/")
    try:
        return _load_tfds(name, None, download=True)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - no network, no cache: explain the options instead
        raise UserError(
            f"cannot load {name}: tensorflow-datasets failed ({type(e).__name__}); pass --data_dir (or set "
            f"{ENV_VAR}) to a folder with {npz_name} in Keras layout"
            f"{f' or {CIFAR_BATCHES_DIR}/' if name == 'cifar10' else ''} or a prepared tfds data dir") from None
