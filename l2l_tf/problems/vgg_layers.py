"""VGG-19's convolutional layer names, without TensorFlow.

The neural-art flags are checked against these names while absl parses them, before
TensorFlow loads (l2l_tf/problems/vgg.py, which builds the network, imports TensorFlow).
"""

#: VGG-19's convolutional layers in order, by block (Keras names).
BLOCKS = ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
CONV_LAYERS = tuple(f"block{b}_conv{i}" for b, n in BLOCKS for i in range(1, n + 1))
