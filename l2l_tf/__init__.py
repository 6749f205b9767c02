"""l2l_tf: learning to learn by gradient descent by gradient descent, in TensorFlow 2 / Keras 3.

    from l2l_tf import optimizers, problems, meta, evaluation
    from l2l_tf import LearnedOptimizer, load_optimizer   # use a trained optimizer

`LearnedOptimizer` and `load_optimizer` are imported on first access (module `__getattr__`):
`import l2l_tf` stays free of TensorFlow, so the binaries can quiet TensorFlow's logging
before it loads. Accessing `l2l_tf.LearnedOptimizer` also registers it with Keras, which
`keras.models.load_model` needs for models compiled with it.
"""
from l2l_tf.lazy import lazy_attributes
from l2l_tf.version import __version__

__all__ = ["__version__", "LearnedOptimizer", "load_optimizer"]

_LAZY = {"LearnedOptimizer": "keras_optimizer", "load_optimizer": "loading"}

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
