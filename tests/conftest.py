"""Shared test set-up: quiet TensorFlow, the repository on sys.path, helpers to run binaries."""
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def run_binary(name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs bin/<name>.py with the test interpreter; returns the completed process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)  # a cluster description from the environment would change what runs
    return subprocess.run([sys.executable, os.path.join(ROOT, "bin", f"{name}.py"), *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


#: `L2L_TF_KERNEL_TESTS=skip` opts out of requiring the fused kernel (e.g. a machine whose compiler
#: is known not to build it). Otherwise a machine with a C++ compiler must build the kernel
#: natively, and the tests that need it fail when it does not: a fallback to Keras' cells (or to
#: a portable build) is correct but slow, and would otherwise pass unnoticed.
KERNEL_OPT_OUT = "L2L_TF_KERNEL_TESTS"


def kernel_not_expected() -> str | None:
    """Why the fused kernel need not be there (None: it must be, natively built)."""
    from l2l_tf.kernels import fused_lstm

    if os.environ.get(KERNEL_OPT_OUT, "").strip().lower() == "skip":
        return f"${KERNEL_OPT_OUT}=skip"
    if fused_lstm.choice() == "keras":
        return f"${fused_lstm.ENV_CHOICE}=keras turns the kernel off"
    if fused_lstm._compiler() is None:
        return "no C++ compiler here"
    return None


def trajectory_updates(optimizer, grads_seq, shapes) -> list:
    """The updates an optimizer (library interface) proposes for a sequence of gradients, per step
    a list of arrays, with parameters of `shapes` at zero (the update rules here ignore them)."""
    import tensorflow as tf

    params = [tf.zeros(s) for s in shapes]
    state = optimizer.init(params)
    out = []
    for grads in grads_seq:
        updates, state = optimizer.update([tf.constant(g) for g in grads], state, params)
        out.append([u.numpy() for u in updates])
    return out


def trained_looking_lstm(seed: int, layers=(20, 7)):
    """A coordinatewise LSTM whose phi is perturbed away from its initialization (biases
    included), so that comparisons of implementations exercise every weight."""
    import numpy as np

    from l2l_tf.optimizers import CoordinatewiseLSTM, LSTMOptimizerConfig

    optimizer = CoordinatewiseLSTM(LSTMOptimizerConfig(layers=layers), seed=seed)
    rng = np.random.default_rng(seed)
    for v in optimizer.meta_variables:
        v.assign(v.numpy() + rng.normal(scale=0.3, size=v.shape).astype(np.float32))
    return optimizer


# -- a tiny trained optimizer shared by the export, Keras wrapper, pretrained and README tests --

import pytest  # noqa: E402

#: Settings of the shared tiny optimizer: 40 epochs of 20-step quadratics, a few seconds.
TINY_TRAINING = dict(num_epochs=40, num_steps=20, unroll_length=10, meta_batch_size=8,
                     evaluation_period=20, evaluation_epochs=1, log_period=1000, seed=0)

#: Prepended to code that must run without l2l_tf: any attempt to import it fails.
BLOCK_L2L_TF = '''
import sys
class _NoL2L:
    def find_spec(self, name, path=None, target=None):
        if name == "l2l_tf" or name.startswith("l2l_tf."):
            raise ImportError("l2l_tf must not be imported here")
sys.meta_path.insert(0, _NoL2L())
'''


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory) -> str:
    """A trained optimizer directory (optimizer.json + best/) from a seconds-long meta-training."""
    from l2l_tf.meta import MetaTrainConfig, MetaTrainer
    from l2l_tf.optimizers import CoordinatewiseLSTM
    from l2l_tf.problems import QuadraticFamily

    path = str(tmp_path_factory.mktemp("tiny") / "quadratic")
    MetaTrainer(QuadraticFamily(), CoordinatewiseLSTM(seed=0), MetaTrainConfig(**TINY_TRAINING), save_path=path,
                metadata={"problem": QuadraticFamily().describe(), "train_flags": TINY_TRAINING}).train()
    return path


@pytest.fixture(scope="session")
def tiny_export(tiny_trained, tmp_path_factory) -> str:
    """The tiny optimizer exported as a SavedModel."""
    from l2l_tf import export, loading

    optimizer, info = loading.load_with_info(tiny_trained)
    path = str(tmp_path_factory.mktemp("export") / "export")
    export.export_optimizer(optimizer, path, training=info["training"], source=tiny_trained)
    return path


def run_python(code: str, cwd: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs Python code in a fresh interpreter (the test one) in `cwd`."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=cwd)


def _unmount_stale_test_mounts() -> None:
    """The binaries battery mounts small tmpfs (a read-only directory, a full disk) under pytest's
    temporary directory; a run killed before its teardown leaves them mounted, and pytest could
    never delete those directories again. They are ours by construction: unmount them."""
    try:
        with open("/proc/mounts") as f:
            mounts = [line.split()[1] for line in f if line.split()[0] == "tmpfs" and "/pytest-of-" in line]
    except OSError:
        return
    for mount in mounts:
        subprocess.run(["umount", mount], capture_output=True)


def pytest_configure(config):
    """Builds the fused kernel once, before pytest-xdist starts its workers (which would otherwise
    all compile it at once on a fresh machine); a failed build is reported by the kernel tests."""
    if hasattr(config, "workerinput"):
        return
    _unmount_stale_test_mounts()
    if kernel_not_expected() is not None:
        return
    from l2l_tf.kernels import fused_lstm

    try:
        fused_lstm._load()
    except fused_lstm.KernelUnavailable:
        pass
