"""One optimizer interface for learned and hand-designed update rules."""
from l2l_tf.optimizers.base import Optimizer
from l2l_tf.optimizers.coordinatewise import CoordinatewiseLSTM, LSTMOptimizerConfig
from l2l_tf.optimizers.hand_designed import HAND_DESIGNED, NAG, SGD, Adam, RMSprop, make_hand_designed
from l2l_tf.optimizers.preprocessing import log_sign

__all__ = ["Optimizer", "CoordinatewiseLSTM", "LSTMOptimizerConfig", "HAND_DESIGNED", "SGD", "NAG",
           "RMSprop", "Adam", "make_hand_designed", "log_sign"]
