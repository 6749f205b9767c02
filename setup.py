"""Installs l2l_tf: learned optimizers (Andrychowicz et al., 2016) in TensorFlow 2 / Keras 3."""
import pathlib
import re

from setuptools import find_packages, setup

_VERSION = re.search(
    r'__version__ = "([^"]+)"',
    (pathlib.Path(__file__).parent / "l2l_tf" / "version.py").read_text(),
).group(1)

setup(
    name="l2l_tf",
    version=_VERSION,
    description="Learning to learn by gradient descent by gradient descent, in TensorFlow 2 / Keras 3.",
    long_description=(pathlib.Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["l2l_tf", "l2l_tf.*"]),
    # Bundled pretrained optimizers (l2l_tf/pretrained/<name>/) are data, not packages; these
    # patterns put them in wheels, MANIFEST.in in sdists (see l2l_tf/pretrained/README.md).
    package_data={"l2l_tf": ["pretrained/README.md", "pretrained/*/optimizer.json", "pretrained/*/MODEL_CARD.md",
                             "pretrained/*/best/weights.*", "kernels/*.cc"]},
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3",
        "tensorflow-datasets",
        "importlib_resources",  # tensorflow-datasets needs it to write/read prepared data dirs
        "absl-py",
        "tensorboard",
        "numpy",
        "matplotlib",
    ],
    extras_require={"test": ["pytest", "pytest-xdist", "hypothesis"]},
    # The programs, as commands (l2l-train, ...) and as the bin/ scripts the README and RESULTS run.
    entry_points={"console_scripts": [
        "l2l-train = l2l_tf.cli.train:run",
        "l2l-evaluate = l2l_tf.cli.evaluate:run",
        "l2l-export = l2l_tf.cli.export:run",
        "l2l-neural-art = l2l_tf.cli.neural_art:run",
        "l2l-visualize = l2l_tf.cli.visualize:run",
        "l2l-benchmark = l2l_tf.cli.benchmark:run",  # a source checkout's harness (benchmarks/)
    ]},
    scripts=["bin/l2l_train.py", "bin/l2l_evaluate.py", "bin/l2l_visualize.py", "bin/l2l_export.py",
             "bin/l2l_neural_art.py"],
    license="Apache-2.0",
)
