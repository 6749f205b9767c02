"""l2l_tf: learning to learn by gradient descent by gradient descent, in TensorFlow 2 / Keras 3.

    from l2l_tf import optimizers, problems, meta, evaluation
"""
from l2l_tf.version import __version__

__all__ = ["__version__"]
