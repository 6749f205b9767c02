"""Neural art without pretrained weights: a tiny VGG-shaped net with fixed random weights.

The features, Gram matrices and the loss are checked against a direct NumPy computation;
the content splits against their sources; one optimizer runs at two image sizes; weight
files that cannot give the chosen layers fail with one-line errors; and the binaries run
end to end on tiny images.
"""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_binary
from l2l_tf.errors import UserError
from l2l_tf.problems import art_images, vgg
from l2l_tf.problems.neural_art import NeuralArtFamily, content_pool, neural_art_family

#: Channels of the tiny VGG: the real layer names and shapes, but 4-8 channels instead of 64-256.
TINY_CHANNELS = {"block1_conv1": 4, "block1_conv2": 4, "block2_conv1": 6, "block2_conv2": 6,
                 "block3_conv1": 8, "block3_conv2": 8}
PAINTING = "painting.png"


def write_tiny_vgg(path, layers=tuple(TINY_CHANNELS), seed=0) -> str:
    """An npz in vgg19_conv_block1-3.npz's layout (LAYER/kernel HWIO, LAYER/bias) with random weights."""
    rng = np.random.default_rng(seed)
    arrays, c_in = {}, 3
    for name in layers:
        c_out = TINY_CHANNELS[name]
        scale = np.sqrt(2 / (9 * c_in)) / (100 if c_in == 3 else 1)  # the input is caffe-preprocessed: about +-120
        arrays[f"{name}/kernel"] = (rng.standard_normal((3, 3, c_in, c_out)) * scale).astype(np.float32)
        arrays[f"{name}/bias"] = (0.1 * rng.standard_normal(c_out)).astype(np.float32)
        c_in = c_out
    np.savez(path, **arrays)
    return str(path)


def write_png(path, pixels) -> str:
    art_images.write_png(np.asarray(pixels, np.float32), str(path))
    return str(path)


@pytest.fixture(scope="module")
def art_data(tmp_path_factory):
    """Tiny weights, a style image, a folder of photos (one is a painting to exclude) and a CIFAR-like npz.

    Every photo and every CIFAR image has its own solid colour, so a content image tells
    which source it was cut from.
    """
    root = tmp_path_factory.mktemp("art")
    rng = np.random.default_rng(1)
    photos = root / "photos"
    photos.mkdir()
    colours = {}
    for i, (h, w) in enumerate([(40, 50), (30, 30), (25, 60), (33, 41), (50, 20)]):
        colour = np.array([i / 5, 1 - i / 5, 0.5], np.float32)
        colours[f"p{i}.png"] = colour
        write_png(photos / f"p{i}.png", np.broadcast_to(colour, (h, w, 3)))
    write_png(photos / PAINTING, rng.uniform(size=(20, 30, 3)))
    cifar = {"x_train": np.repeat(np.arange(0, 60, 10, dtype=np.uint8)[:, None, None, None], 8 * 8 * 3).reshape(
        6, 8, 8, 3), "x_test": np.repeat(np.arange(200, 240, 10, dtype=np.uint8)[:, None, None, None], 192).reshape(
        4, 8, 8, 3), "y_train": np.zeros(6, np.uint8), "y_test": np.zeros(4, np.uint8)}
    np.savez(root / "cifar.npz", **cifar)
    return {"weights": write_tiny_vgg(root / "vgg.npz"), "style": write_png(root / "style.png", rng.uniform(size=(24, 36, 3))),
            "photos": str(photos), "cifar": str(root / "cifar.npz"), "colours": colours, "root": root}


def tiny_family(art_data, size=16, **kwargs) -> NeuralArtFamily:
    return neural_art_family(art_data["style"], content_dir=art_data["photos"], content_exclude=[PAINTING],
                             content_cifar=art_data["cifar"], vgg_weights=art_data["weights"], image_size=size,
                             **kwargs)


# -- a direct NumPy VGG ----------------------------------------------------------------

def np_features(image, weights_path, layers):
    with np.load(weights_path) as f:
        w = {k: f[k] for k in f.files}
    x = image[..., ::-1] * 255.0 - np.array(vgg.CAFFE_BGR_MEAN)
    out, block = {}, 1
    for name in vgg.layers_up_to(vgg.deepest_layer(layers)):
        b = int(name[5])
        if b != block:
            h, wd, c = x.shape
            x = x[:h // 2 * 2, :wd // 2 * 2].reshape(h // 2, 2, wd // 2, 2, c).max(axis=(1, 3))
            block = b
        kernel, bias = w[f"{name}/kernel"], w[f"{name}/bias"]
        padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
        h, wd = x.shape[:2]
        y = sum(padded[i:i + h, j:j + wd] @ kernel[i, j] for i in range(3) for j in range(3))
        x = np.maximum(y + bias, 0.0)
        if name in layers:
            out[name] = x
    return out


def np_gram(feature):
    flat = feature.reshape(-1, feature.shape[-1]).astype(np.float64)
    return flat.T @ flat / flat.shape[0]


def test_features_and_grams_match_numpy(art_data):
    layers = ("block1_conv1", "block2_conv2", "block3_conv2")
    image = np.random.default_rng(2).uniform(size=(12, 12, 3)).astype(np.float32)
    features = vgg.VGGFeatures(layers, art_data["weights"])(tf.constant(image[None]))
    expected = np_features(image.astype(np.float64), art_data["weights"], layers)
    assert set(features) == set(layers)
    for name in layers:
        assert features[name].shape[1:] == expected[name].shape
        assert np.abs(expected[name]).max() > 0.05  # the check is not comparing zeros
        np.testing.assert_allclose(features[name][0].numpy(), expected[name], rtol=2e-4, atol=2e-5)
        np.testing.assert_allclose(vgg.gram_matrix(features[name])[0].numpy(), np_gram(expected[name]),
                                   rtol=2e-4, atol=1e-5)


def test_loss_matches_numpy(art_data):
    family = tiny_family(art_data, size=16, content_weight=0.7, style_weight=2.5,
                         content_layers=["block2_conv2", "block3_conv1"], style_layers=["block1_conv1", "block3_conv2"])
    rng = np.random.default_rng(3)
    content = rng.uniform(size=(16, 16, 3)).astype(np.float32)
    image = rng.uniform(size=(16, 16, 3)).astype(np.float32)
    problem = family.problem_for(content)
    np.testing.assert_array_equal(problem.params[0].numpy(), content)  # initialized at the content image
    loss = family.loss([tf.constant(image)], problem.data, ()).numpy()

    style = art_images.shorter_side_to(art_images.read_image(art_data["style"]), 16)
    layers = ("block2_conv2", "block3_conv1", "block1_conv1", "block3_conv2")
    fx, fc, fs = (np_features(a.astype(np.float64), art_data["weights"], layers) for a in (image, content, style))
    c_term = np.mean([np.mean((fx[n] - fc[n]) ** 2) / (np.mean(fc[n] ** 2) + 1e-8)
                      for n in ("block2_conv2", "block3_conv1")])
    s_term = np.mean([np.mean((np_gram(fx[n]) - np_gram(fs[n])) ** 2) / (np.mean(np_gram(fs[n]) ** 2) + 1e-8)
                      for n in ("block1_conv1", "block3_conv2")])
    assert loss.shape == (1,)
    assert c_term > 0.01 and s_term > 0.01
    np.testing.assert_allclose(loss[0], 0.7 * c_term + 2.5 * s_term, rtol=1e-3)
    metrics = family.metrics([tf.constant(image)], problem)
    np.testing.assert_allclose([metrics["content_loss"], metrics["style_loss"]], [c_term, s_term], rtol=1e-3)
    # At the content image itself the content term is zero.
    assert family.loss_terms(problem.params, problem.data)[0].numpy() == pytest.approx(0.0, abs=1e-9)


def test_only_the_layers_needed_are_built_and_a_missing_layer_is_named(art_data, tmp_path):
    partial = write_tiny_vgg(tmp_path / "blocks12.npz", layers=("block1_conv1", "block1_conv2", "block2_conv1",
                                                                 "block2_conv2"))
    features = vgg.VGGFeatures(["block1_conv1", "block2_conv2"], partial)
    assert features.built_layers == ("block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2")
    with pytest.raises(UserError, match="lacks layer block3_conv1") as e:
        vgg.VGGFeatures(["block1_conv1", "block3_conv1"], partial)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="lacks layer block3_conv1"):  # the family's default style layers need it
        neural_art_family(art_data["style"], content_cifar=art_data["cifar"], vgg_weights=partial)


def test_missing_or_broken_weights_are_one_line_errors(art_data, tmp_path):
    with pytest.raises(UserError, match="nowhere.npz does not exist") as e:
        neural_art_family(art_data["style"], content_cifar=art_data["cifar"], vgg_weights=str(tmp_path / "nowhere.npz"))
    assert "\n" not in str(e.value) and "block3_conv2" in str(e.value)  # names the deepest layer it was needed for
    with pytest.raises(UserError, match="not a readable .npz") as e:
        neural_art_family(art_data["style"], content_cifar=art_data["cifar"], vgg_weights=art_data["style"])
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="not a VGG-19 conv layer"):
        vgg.VGGFeatures(["block6_conv1"], art_data["weights"])
    with pytest.raises(UserError, match="too small"):
        tiny_family(art_data, size=6)


def test_splits_never_share_a_source_image(art_data):
    pool = content_pool(art_data["photos"], [PAINTING], art_data["cifar"])
    ids = {s: pool.source_ids(s) for s in ("train", "validation", "test")}
    assert all(ids.values())
    assert not (ids["train"] & ids["validation"] or ids["train"] & ids["test"] or ids["validation"] & ids["test"])
    assert len(set().union(*ids.values())) == 5 + 6 + 4  # every photo and CIFAR image is in exactly one split
    assert f"photo:{PAINTING}" not in set().union(*ids.values())
    # The split of a photo depends on the set of names only, not on their order.
    names = [f"p{i}.png" for i in range(5)]
    assert art_images.photo_split(names) == art_images.photo_split(names[::-1])
    # Drawn content comes from its split's sources: every source has its own colour.
    family = tiny_family(art_data, size=8)
    cifar_levels = {"train": set(range(0, 60, 10)), "validation": {200, 210}, "test": {220, 230}}
    for split in ("train", "validation", "test"):
        allowed = [art_data["colours"][os.path.basename(p)] for p in pool.photos[split]]
        seen_photo = seen_cifar = False
        for i in range(12):
            image, _ = family.content_of(split, 0, i)
            pixel = image[4, 4]
            if any(np.allclose(pixel, c, atol=0.01) for c in allowed):
                seen_photo = True
            else:
                assert round(pixel[0] * 255) in cifar_levels[split], (split, pixel)
                seen_cifar = True
            np.testing.assert_array_equal(family.sample(split, 0, [i]).params[0].numpy(), image)
        assert seen_photo and seen_cifar


def test_a_style_image_cannot_be_content(art_data):
    with pytest.raises(UserError, match="content_exclude"):
        neural_art_family(os.path.join(art_data["photos"], "p0.png"), content_dir=art_data["photos"],
                          vgg_weights=art_data["weights"])


def test_images_of_any_size_and_kind(art_data, tmp_path):
    grey = tmp_path / "grey.png"
    tf.io.write_file(str(grey), tf.io.encode_png(np.full((7, 300, 1), 128, np.uint8)))
    family = NeuralArtFamily(str(grey), None, vgg_weights=art_data["weights"], image_size=16)
    problem = family.problem_for(art_images.read_image(art_data["style"]))  # 24x36 content, centre-cropped
    assert problem.params[0].shape == (16, 16, 3)
    assert np.isfinite(family.loss(problem.params, problem.data, ()).numpy()).all()
    with pytest.raises(UserError, match="no content images"):
        family.sample("test", 0, [0])
    with pytest.raises(UserError, match="not a readable image"):
        art_images.read_image(art_data["weights"])


@pytest.mark.slow
def test_one_optimizer_meta_trained_small_runs_at_twice_the_size(art_data):
    from l2l_tf.evaluation import run_problem, sample_problems
    from l2l_tf.meta import MetaTrainConfig, MetaTrainer
    from l2l_tf.optimizers import CoordinatewiseLSTM

    small, large = tiny_family(art_data, size=16), tiny_family(art_data, size=32)
    optimizer = CoordinatewiseLSTM(seed=0)
    before = [v.numpy().copy() for v in optimizer.meta_variables]
    MetaTrainer(small, optimizer, MetaTrainConfig(num_epochs=2, num_steps=4, unroll_length=2, evaluation_period=2,
                                                  evaluation_epochs=1, log_period=100)).train()
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, optimizer.meta_variables))
    for family, size in ((small, 16), (large, 32)):
        problem = sample_problems(family, "test", 0, 1)[0]
        curve, final = run_problem(family, optimizer, problem, 3)
        assert final.params[0].shape == (size, size, 3) and curve.shape == (4, 1) and np.isfinite(curve).all()
    assert large.describe()["num_params"] == 4 * small.describe()["num_params"]


# -- the binaries ----------------------------------------------------------------------

def _data_flags(art_data):
    return [f"--content_dir={art_data['photos']}", f"--content_exclude={PAINTING}", f"--content_cifar={art_data['cifar']}",
            f"--style_image={art_data['style']}", f"--vgg_weights={art_data['weights']}"]


@pytest.fixture(scope="module")
def trained_art(art_data):
    path = str(art_data["root"] / "opt")
    proc = run_binary("l2l_train", "--problem=neural_art", *_data_flags(art_data), "--image_size=16",
                      f"--save_path={path}", "--num_epochs=2", "--num_steps=4", "--unroll_length=2",
                      "--evaluation_period=2", "--evaluation_epochs=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return path


@pytest.mark.slow
def test_train_records_the_art_settings(trained_art):
    record = json.load(open(os.path.join(trained_art, "optimizer.json")))
    settings = record["problem"]
    assert settings["name"] == "neural_art" and settings["image_size"] == 16
    assert settings["style_layers"] == ["block1_conv1", "block2_conv1", "block3_conv1"]
    assert sum(len(settings["content"][s]["photos"]) for s in ("train", "validation", "test")) == 5


@pytest.mark.slow
def test_stylize_writes_pngs_and_results(art_data, trained_art, tmp_path):
    out = tmp_path / "styled"
    content = write_png(tmp_path / "content.png", np.random.default_rng(4).uniform(size=(30, 45, 3)))
    proc = run_binary("l2l_neural_art", "--mode=stylize", f"--path={trained_art}", f"--content_image={content}",
                      f"--style_image={art_data['style']}", f"--vgg_weights={art_data['weights']}",
                      "--image_size=32", "--num_steps=3", "--lr_grid_min=0.01", "--lr_grid_max=1",
                      "--lr_grid_per_decade=1", f"--output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.load(open(out / "results.json"))
    assert set(results["optimizers"]) == {"L2L", "adam"} and results["num_problems"] == 1
    assert results["optimizers"]["L2L"]["learning_rate"] is None
    assert results["optimizers"]["adam"]["learning_rate"] in (0.01, 0.1, 1.0)
    assert len(results["optimizers"]["adam"]["loss_mean_per_step"]) == 4
    for name in ("L2L", "adam"):
        assert art_images.read_image(str(out / f"{name}.png")).shape == (32, 32, 3)


@pytest.mark.slow
def test_evaluate_writes_three_settings(art_data, trained_art, tmp_path):
    out = tmp_path / "eval"
    second = write_png(tmp_path / "second.png", np.random.default_rng(5).uniform(size=(40, 20, 3)))
    proc = run_binary("l2l_neural_art", "--mode=evaluate", f"--path={trained_art}", *_data_flags(art_data),
                      f"--test_style_image={second}", "--image_size=16", "--test_image_size=32", "--num_steps=3",
                      "--num_problems=2", "--num_tuning_problems=1", "--baselines=adam", "--lr_grid_min=0.01",
                      "--lr_grid_max=0.1", "--lr_grid_per_decade=1", "--grid_images=1", f"--output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for setting, size in (("64", 16), ("128", 32), ("second_style_128", 32)):
        results = json.load(open(out / setting / "results.json"))
        assert results["problem_settings"]["image_size"] == size and results["num_problems"] == 2
        assert set(results["optimizers"]) == {"L2L", "adam"}
        assert "final_style_loss_mean" in results["optimizers"]["L2L"]
        assert (out / setting / "images.png").exists() and (out / setting / "report.md").exists()
    assert json.load(open(out / "second_style_128" / "results.json"))["problem_settings"]["style_image"] == second
    assert (out / "loss_curves.png").exists()
