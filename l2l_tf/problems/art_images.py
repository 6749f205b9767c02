"""Images for neural art: reading any image file, fitting it to a size, and content splits.

Content images come from two kinds of source, and every source image belongs to exactly one
split, so training, validation and test content never share a source image:

* **photos** (every .jpg/.jpeg/.png in a folder, minus excluded names): ranked by the SHA-256
  of their file name; rank r goes to "test" if r % 10 == 0, to "validation" if r % 10 == 1,
  and to "train" otherwise. Ranking (rather than thresholding each hash) guarantees that
  three photos already give every split one; the assignment is a function of the set of
  file names only. A function's content image is a random square crop of one photo of its
  split (side 30-100% of the photo's shorter side) resized to the image size.
* **CIFAR-10 images** (an npz with x_train and x_test, [N, h, w, 3] uint8): x_train is
  training content; x_test's first half is validation content, its second half test
  content. A function's content image is one of them upsampled to the image size.

When a split has both kinds, each function picks a photo crop or a CIFAR image with equal
probability (so a handful of photos is not drowned by 20,000 CIFAR images); everything is
drawn from the function's own seeded generator.
"""
from __future__ import annotations

import functools
import hashlib
import os
from typing import Sequence

import numpy as np
import tensorflow as tf

from l2l_tf.problems.datasets import read_npz
from l2l_tf.errors import UserError
from l2l_tf.problems.base import SPLITS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: Shortest crop side, as a fraction of a photo's shorter side.
MIN_CROP_FRACTION = 0.3


def read_image(path: str) -> np.ndarray:
    """An image file (JPEG/PNG/GIF/BMP, any size, grey or RGB(A)) as float32 RGB [H, W, 3] in [0, 1]."""
    if not os.path.isfile(path):
        raise UserError(f"image file {path} does not exist")
    try:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    except Exception as e:  # noqa: BLE001 - any undecodable file is the user's to fix
        raise UserError(f"{path} is not a readable image ({type(e).__name__})") from None
    return image.numpy().astype(np.float32) / 255.0


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize, antialiased when shrinking (so downscaled photos do not alias)."""
    out = tf.image.resize(image, [height, width], method="bilinear", antialias=True)
    return np.clip(out.numpy(), 0.0, 1.0).astype(np.float32)


def center_square(image: np.ndarray, size: int) -> np.ndarray:
    """The largest centred square of `image`, resized to size x size: how explicit content images are fitted."""
    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return resize(image[top:top + s, left:left + s], size, size)


def shorter_side_to(image: np.ndarray, size: int) -> np.ndarray:
    """`image` scaled (aspect kept) so its shorter side is `size`: how style images are fitted.

    The style enters only through Gram matrices, which do not care about the shape, so the
    whole painting is kept, at the scale of the image being styled.
    """
    h, w = image.shape[:2]
    scale = size / min(h, w)
    return resize(image, max(1, round(h * scale)), max(1, round(w * scale)))


def photo_split(names: Sequence[str]) -> dict[str, str]:
    """{file name: split} by rank of the name's SHA-256 (see the module docstring)."""
    ranked = sorted(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    return {n: "test" if r % 10 == 0 else "validation" if r % 10 == 1 else "train" for r, n in enumerate(ranked)}


def list_photos(folder: str, exclude: Sequence[str] = ()) -> list[str]:
    """Image files directly in `folder`, sorted, without the names in `exclude`."""
    if not os.path.isdir(folder):
        raise UserError(f"content folder {folder} does not exist")
    skip = set(exclude)
    return sorted(os.path.join(folder, n) for n in os.listdir(folder)
                  if n.lower().endswith(IMAGE_SUFFIXES) and n not in skip and os.path.isfile(os.path.join(folder, n)))


def load_cifar_images(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(x_train, x_test) uint8 [N, h, w, 3] from a CIFAR-10 npz (labels are not needed)."""
    if not os.path.isfile(path):
        raise UserError(f"CIFAR-10 file {path} does not exist")
    arrays = read_npz(path)
    missing = [k for k in ("x_train", "x_test") if k not in arrays]
    if missing:
        raise UserError(f"{path}: missing array {missing[0]!r} (expected x_train and x_test)")
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    for name, x in (("x_train", x_train), ("x_test", x_test)):
        if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8 or len(x) == 0:
            raise UserError(f"{path}: {name} has shape {x.shape} and dtype {x.dtype}; expected (N, h, w, 3) uint8")
    return x_train, x_test


@functools.lru_cache(maxsize=32)
def _cached_photo(path: str) -> np.ndarray:
    return read_image(path)


class ContentPool:
    """Content images by split, from photos in a folder and/or a CIFAR-10 npz.

    Args:
      photos: image file paths (split by `photo_split` on their base names).
      cifar: (x_train, x_test) uint8 arrays, or None.
      source: a description recorded in results.
    """

    def __init__(self, photos: Sequence[str] = (), cifar: tuple[np.ndarray, np.ndarray] | None = None,
                 source: str = ""):
        split_of = photo_split([os.path.basename(p) for p in photos])
        self.photos = {s: [p for p in photos if split_of[os.path.basename(p)] == s] for s in SPLITS}
        self.cifar: dict[str, np.ndarray] = {s: np.zeros((0, 32, 32, 3), np.uint8) for s in SPLITS}
        if cifar is not None:
            x_train, x_test = cifar
            half = len(x_test) // 2
            self.cifar = {"train": x_train, "validation": x_test[:half], "test": x_test[half:]}
        self.source = source
        for split in SPLITS:
            if not self.photos[split] and not len(self.cifar[split]):
                raise UserError(f"no {split} content images: {len(photos)} photos (ranks 0 and 1 of every ten go to "
                                f"test and validation, so 3 are needed) and {'no' if cifar is None else 'too few'} "
                                "CIFAR-10 images; add photos or a CIFAR-10 file")

    def describe(self) -> dict:
        """Where content comes from and which photos (by name) and how many CIFAR images each split has."""
        return {"source": self.source, "split_rule": "photos by rank of sha256(name) (rank % 10: 0 test, 1 "
                "validation, else train); CIFAR x_train train, x_test first half validation, second half test",
                **{s: {"photos": [os.path.basename(p) for p in self.photos[s]], "cifar": int(len(self.cifar[s]))}
                   for s in SPLITS}}

    def source_ids(self, split: str) -> set[str]:
        """Identifiers of the split's source images ("photo:NAME", "cifar:train:I", "cifar:test:I")."""
        ids = {f"photo:{os.path.basename(p)}" for p in self.photos[split]}
        offset = {"train": 0, "validation": 0, "test": len(self.cifar["validation"])}[split]
        kind = "train" if split == "train" else "test"
        return ids | {f"cifar:{kind}:{offset + i}" for i in range(len(self.cifar[split]))}

    def draw(self, split: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
        """(content image [size, size, 3] in [0, 1], description of its source) for one function."""
        photos, cifar = self.photos[split], self.cifar[split]
        use_photo = bool(photos) and (not len(cifar) or rng.random() < 0.5)
        if use_photo:
            path = photos[int(rng.integers(len(photos)))]
            image = _cached_photo(path)
            h, w = image.shape[:2]
            side = max(1, int(round(min(h, w) * rng.uniform(MIN_CROP_FRACTION, 1.0))))
            top, left = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
            crop = image[top:top + side, left:left + side]
            return resize(crop, size, size), f"{os.path.basename(path)}[{top}:{top + side},{left}:{left + side}]"
        index = int(rng.integers(len(cifar)))
        return resize(cifar[index].astype(np.float32) / 255.0, size, size), f"cifar10 {split} #{index}"


def write_png(image: np.ndarray, path: str) -> str:
    """Saves an image in [0, 1] (values outside are clipped, as any viewer would) as an 8-bit PNG."""
    pixels = np.round(np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tf.io.write_file(path, tf.io.encode_png(pixels))
    return path
