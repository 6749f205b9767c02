"""One optimizer interface for learned and hand-designed update rules.

The names below are imported on first access (module `__getattr__`): the architecture
registry (`l2l_tf.optimizers.registry`) and the baselines' names serve flag parsing without
TensorFlow loading.
"""
from l2l_tf.lazy import lazy_attributes

_LAZY = {"Optimizer": "base", "CoordinatewiseLSTM": "coordinatewise", "LSTMOptimizerConfig": "coordinatewise",
         "HAND_DESIGNED": "hand_designed", "SGD": "hand_designed", "NAG": "hand_designed",
         "RMSprop": "hand_designed", "Adam": "hand_designed", "make_hand_designed": "hand_designed",
         "log_sign": "preprocessing"}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
