"""Custom TensorFlow kernels (C++ source, built on first use)."""
