"""l2l_tf: learning to learn by gradient descent by gradient descent, in TensorFlow 2 / Keras 3.

    from l2l_tf import optimizers, problems, meta, evaluation
    from l2l_tf import LearnedOptimizer, load_optimizer   # use a trained optimizer

`LearnedOptimizer` and `load_optimizer` are imported on first access (module `__getattr__`):
`import l2l_tf` stays free of TensorFlow, so the binaries can quiet TensorFlow's logging
before it loads. Accessing `l2l_tf.LearnedOptimizer` also registers it with Keras, which
`keras.models.load_model` needs for models compiled with it.
"""
from l2l_tf.version import __version__

__all__ = ["__version__", "LearnedOptimizer", "load_optimizer"]

_LAZY = {"LearnedOptimizer": "l2l_tf.keras_optimizer", "load_optimizer": "l2l_tf.loading"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'l2l_tf' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
