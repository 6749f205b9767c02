"""Dataset loading from both local layouts, with clear errors for missing or wrong data."""
import os

import numpy as np
import pytest

from l2l_tf.problems.datasets import ENV_VAR, load_dataset
from l2l_tf.errors import UserError

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "testdata", "mnist_subset.npz")


def fixture_arrays():
    with np.load(FIXTURE) as f:
        return {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}


def test_keras_npz_file_and_folder(tmp_path):
    direct = load_dataset("mnist", FIXTURE)
    assert direct.x_train.shape == (1000, 28, 28) and direct.x_train.dtype == np.uint8
    assert direct.y_test.shape == (200,) and direct.num_classes == 10
    np.savez(tmp_path / "mnist.npz", **fixture_arrays())
    in_folder = load_dataset("mnist", str(tmp_path))
    np.testing.assert_array_equal(in_folder.x_test, direct.x_test)


def test_environment_variable(tmp_path, monkeypatch):
    np.savez(tmp_path / "mnist.npz", **fixture_arrays())
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert load_dataset("mnist").x_train.shape[0] == 1000


def test_prepared_tfds_data_dir(tmp_path):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    arrays = fixture_arrays()
    features = tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(28, 28, 1)), "label": tfds.features.ClassLabel(num_classes=10)})
    splits = {split: tf.data.Dataset.from_tensor_slices(
        {"image": arrays[f"x_{split}"][..., None], "label": arrays[f"y_{split}"].astype(np.int64)})
        for split in ("train", "test")}
    tfds.dataset_builders.store_as_tfds_dataset(
        name="mnist", version="3.0.1", features=features, split_datasets=splits, data_dir=str(tmp_path))
    loaded = load_dataset("mnist", str(tmp_path))
    # tfds may store examples in another order: compare as multisets of (label, pixel sum).
    key = lambda x, y: sorted(zip(y.tolist(), x.reshape(len(x), -1).sum(1).tolist()))  # noqa: E731
    assert key(loaded.x_train, loaded.y_train) == key(arrays["x_train"], arrays["y_train"])
    assert loaded.x_test.shape == (200, 28, 28)


def test_missing_data_names_the_options(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_dataset("mnist", str(tmp_path / "nope"))
    with pytest.raises(UserError, match="mnist.npz"):
        load_dataset("mnist", str(tmp_path))


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("y_test"), "missing array 'y_test'"),
    (lambda a: a.update(x_train=a["x_train"][:, :20]), "shape"),
    (lambda a: a.update(x_train=a["x_train"].astype(np.float32)), "dtype"),
    (lambda a: a.update(y_train=a["y_train"] + 10), "labels"),
    (lambda a: a.update(y_test=a["y_test"][:5]), "labels"),
])
def test_wrong_files_are_reported_with_the_file_name(tmp_path, change, message):
    arrays = fixture_arrays()
    change(arrays)
    path = tmp_path / "mnist.npz"
    np.savez(path, **arrays)
    with pytest.raises(UserError, match=message) as info:
        load_dataset("mnist", str(path))
    assert str(path) in str(info.value)
    path.write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable .npz"):
        load_dataset("mnist", str(path))


def test_label_subset_relabels():
    data = load_dataset("mnist", FIXTURE).subset([3, 7])
    assert set(np.unique(data.y_train)) == {0, 1} and data.num_classes == 2
    full = load_dataset("mnist", FIXTURE)
    assert len(data.y_train) == int(np.sum((full.y_train == 3) | (full.y_train == 7)))
