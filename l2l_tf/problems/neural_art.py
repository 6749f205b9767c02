"""Neural art (Gatys et al.'s style transfer) as a problem family: the optimizee is the image.

The parameters are one tensor, the image [H, W, 3] (RGB, 1.0 = full intensity; values are
not clipped during optimization, only when saved). The loss is

    L(x) = content_weight * mean over content layers l of  |F_l(x) - F_l(c)|^2 / |F_l(c)|^2
         + style_weight   * mean over style layers l   of  |G_l(x) - G_l(s)|^2 / |G_l(s)|^2

with F_l the VGG-19 activations of layer l, G_l their Gram matrix divided by the number of
positions (`vgg.gram_matrix`), c the content image and s the style image; |.|^2 is the
mean of squares over the tensor's entries. Why normalized this way: each term is a
*relative* squared error (1 when the features are all zero), so its size does not depend on
the layer's channel count, spatial size or activation scale, nor on the image size. The raw
Gatys terms do: from a noise image with the real weights and Starry Night, E_block1_conv1 is
3e5 and E_block3_conv1 1.7e9, and the raw content term is 6.7e9 at 64x64 and 2.4e10 at
128x128. A learned optimizer sees gradients through a log preprocessing, but the meta-loss
(a sum of losses) and the baselines' tuned learning rates would be set by the largest raw
term alone.

Initialization: the content image itself (`init="content"`, default), as most practical
style-transfer code does: the content loss starts at 0 and the optimizer's job is to add the
style. `init="noise"` starts from uniform noise in [0, 1], as Gatys et al. did.

A problem's fixed tensors (content features, style Grams and their normalizers) are its
`data`, so one compiled trajectory loop serves every content image of a size; a new image
size costs one retrace. The coordinatewise optimizer does not care about the number of
pixels, so an optimizer trained at 64x64 runs unchanged at 128x128.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import tensorflow as tf

from l2l_tf.errors import UserError
from l2l_tf.problems import art_images, vgg
from l2l_tf.problems.base import Problem, ProblemFamily, function_rng

DEFAULT_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1")
DEFAULT_CONTENT_LAYERS = ("block3_conv2",)
INITS = ("content", "noise")
#: Keeps the normalizers away from zero (e.g. an all-black content image at block3).
_EPS = 1e-8


def _mean_square(x: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.square(x))


class NeuralArtFamily(ProblemFamily):
    """Style transfer of content images (from a `ContentPool`) to one style image.

    Args:
      style_image: path of the style image (any size; scaled so its shorter side is `image_size`).
      content: where `sample` draws content images from; None for a family that only styles
        images given to `problem_for` (e.g. l2l_neural_art --mode=stylize).
      vgg_weights: npz of VGG-19 weights, or None for keras.applications' ImageNet weights.
      image_size: the optimized image is image_size x image_size x 3.
      content_layers, style_layers: VGG-19 conv layer names.
      content_weight, style_weight: the weights of the two (layer-averaged) terms.
      init: "content" or "noise" (see the module docstring).
    """

    name = "neural_art"
    vectorized = False

    def __init__(self, style_image: str, content: art_images.ContentPool | None = None,
                 vgg_weights: str | None = None, image_size: int = 64,
                 content_layers: Sequence[str] = DEFAULT_CONTENT_LAYERS,
                 style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS, content_weight: float = 1.0,
                 style_weight: float = 1.0, init: str = "content"):
        self.content_layers = vgg.check_layer_names(content_layers, "content_layers")
        self.style_layers = vgg.check_layer_names(style_layers, "style_layers")
        if init not in INITS:
            raise UserError(f"unknown initialization {init!r}; expected one of {INITS}")
        for flag, w in (("content_weight", content_weight), ("style_weight", style_weight)):
            if not (w >= 0 and np.isfinite(w)):
                raise UserError(f"--{flag} must be a finite number >= 0, got {w}")
        if content_weight == 0 and style_weight == 0:
            raise UserError("--content_weight and --style_weight cannot both be 0")
        layers = tuple(dict.fromkeys(self.content_layers + self.style_layers))
        smallest = 2 * vgg.downsampling(vgg.deepest_layer(layers))
        if int(image_size) < smallest:
            raise UserError(f"--image_size={image_size} is too small for layer {vgg.deepest_layer(layers)}: "
                            f"it needs at least {smallest} pixels")
        self.image_size = int(image_size)
        if content is not None:
            check_style_not_content(style_image, content)
        self.content, self.init = content, init
        self.content_weight, self.style_weight = float(content_weight), float(style_weight)
        self.style_image = os.path.abspath(style_image)
        self.vgg = vgg.VGGFeatures(layers, vgg_weights)
        self._features = tf.function(self.vgg.__call__, reduce_retracing=True)
        style = art_images.shorter_side_to(art_images.read_image(style_image), self.image_size)
        feats = self._features(tf.constant(style[None]))
        self._style_grams = tuple(vgg.gram_matrix(feats[n])[0] for n in self.style_layers)
        self._style_scales = tuple(_mean_square(g) + _EPS for g in self._style_grams)
        self._terms_fn = None

    # -- problems ----------------------------------------------------------------------

    def problem_for(self, content_image: np.ndarray, rng: np.random.Generator | None = None) -> Problem:
        """The problem of styling one content image ([H, W, 3] in [0, 1], fitted to image_size).

        `rng` draws the noise initialization (init="noise"); the content initialization
        needs none.
        """
        content_image = np.asarray(content_image, np.float32)
        if content_image.shape != (self.image_size, self.image_size, 3):
            content_image = art_images.center_square(content_image, self.image_size)
        feats = self._features(tf.constant(content_image[None]))
        content_feats = tuple(feats[n] for n in self.content_layers)
        data = (content_feats, tuple(_mean_square(f) + _EPS for f in content_feats),
                self._style_grams, self._style_scales)
        if self.init == "content":
            start = content_image
        else:
            start = (rng or np.random.default_rng(0)).uniform(0.0, 1.0, content_image.shape).astype(np.float32)
        return Problem(params=[tf.constant(start)], data=data, num_functions=1)

    def sample(self, split: str, seed: int, indices: Sequence[int]) -> Problem:
        if len(indices) != 1:
            raise ValueError(f"{self.name} problems hold one image each; got {len(indices)} indices")
        if self.content is None:
            raise UserError("this neural_art family has no content images: pass --content_dir, --content_cifar "
                            "or --data_dir")
        rng = function_rng(split, seed, indices[0], self.name)
        image, _ = self.content.draw(split, rng, self.image_size)
        return self.problem_for(image, rng)

    def content_of(self, split: str, seed: int, index: int) -> tuple[np.ndarray, str]:
        """The content image (and where it came from) of function `index` of a split, as `sample` draws it."""
        return self.content.draw(split, function_rng(split, seed, index, self.name), self.image_size)

    # -- the loss ----------------------------------------------------------------------

    def loss_terms(self, params: Sequence[tf.Tensor], data) -> tuple[tf.Tensor, tf.Tensor]:
        """(content term, style term) of the image `params[0]`, each averaged over its layers."""
        content_feats, content_scales, style_grams, style_scales = data
        feats = self.vgg(params[0][None])
        content = tf.add_n([_mean_square(feats[n][0] - f) / s
                            for n, f, s in zip(self.content_layers, content_feats, content_scales)])
        style = tf.add_n([_mean_square(vgg.gram_matrix(feats[n])[0] - g) / s
                          for n, g, s in zip(self.style_layers, style_grams, style_scales)])
        return content / len(self.content_layers), style / len(self.style_layers)

    def loss(self, params, data, batch):
        del batch
        content, style = self.loss_terms(params, data)
        return tf.reshape(self.content_weight * content + self.style_weight * style, [1])

    def metrics(self, params: Sequence[tf.Tensor], problem: Problem) -> dict[str, float]:
        """The final image's two terms (unweighted), to see what the optimizer traded."""
        if self._terms_fn is None:
            self._terms_fn = tf.function(self.loss_terms, reduce_retracing=True)
        content, style = self._terms_fn(list(params), problem.data)
        return {"content_loss": float(content), "style_loss": float(style)}

    def describe(self) -> dict:
        return {"name": self.name, "image_size": self.image_size, "num_params": 3 * self.image_size ** 2,
                "style_image": self.style_image, "vgg_weights": self.vgg.source,
                "content_layers": list(self.content_layers), "style_layers": list(self.style_layers),
                "content_weight": self.content_weight, "style_weight": self.style_weight, "init": self.init,
                "loss": "weighted layer means of relative squared errors of VGG features / Gram matrices",
                "content": None if self.content is None else self.content.describe()}


def content_pool(content_dir: str | None = None, content_exclude: Sequence[str] = (),
                 content_cifar: str | None = None) -> art_images.ContentPool | None:
    """Content photos in `content_dir` (minus the names in `content_exclude`) and/or CIFAR-10
    images; None when neither is given.

    The pool, and so the split of every source image, depends on these three settings only
    (never on the style image), so l2l_train and every evaluation of its optimizer agree on
    which images are test content.
    """
    if not (content_dir or content_cifar):
        return None
    photos = art_images.list_photos(content_dir, content_exclude) if content_dir else []
    cifar = art_images.load_cifar_images(content_cifar) if content_cifar else None
    source = " + ".join(s for s in (content_dir and f"photos in {os.path.abspath(content_dir)}",
                                    content_cifar and f"CIFAR-10 {os.path.abspath(content_cifar)}") if s)
    return art_images.ContentPool(photos, cifar, source)


def check_style_not_content(style_image: str, pool: art_images.ContentPool) -> None:
    """A style image must not also be a content photo (it would be styled with itself)."""
    style = os.path.realpath(style_image)
    for split, photos in pool.photos.items():
        if any(os.path.realpath(p) == style for p in photos):
            raise UserError(f"style image {style_image} is also a {split} content photo; add "
                            f"{os.path.basename(style_image)} to --content_exclude")


def neural_art_family(style_image: str, content_dir: str | None = None, content_exclude: Sequence[str] = (),
                      content_cifar: str | None = None, **kwargs) -> NeuralArtFamily:
    """The family from paths (what `--problem=neural_art` builds); see `content_pool`."""
    return NeuralArtFamily(style_image, content_pool(content_dir, content_exclude, content_cifar), **kwargs)
