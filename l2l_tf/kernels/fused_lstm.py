"""The fused CPU LSTM kernel (lstm_kernel.cc): built on first use, loaded, and its gradient.

Why a custom op: TensorFlow materializes every intermediate of the coordinatewise LSTM's
[N, 4 * units] gate matrix op by op, in both passes, and runs a dozen ops where one would do.
The kernel computes one layer, matmuls included, block of rows by block of rows in cache: one
op forward, one backward (its speed and memory: RESULTS.md, "Speed, memory and scale").

The library is compiled once per machine, TensorFlow version and source (the C++ file is
hashed into the cache key), with the compiler and flags TensorFlow reports
(`tf.sysconfig`), into `$L2L_TF_KERNEL_CACHE` (default `~/.cache/l2l_tf/kernels`). The build is
atomic (a temporary file renamed into place), so parallel processes can race for it safely.

`-march=native` is tried first. Some CPUs have ISA extensions that the headers TensorFlow
bundles cannot be compiled for (TF 2.21's Eigen fails on AVX512-FP16 with g++ 12), so a failed
native build is retried with those extensions switched off, and last with the compiler's
default target; `build_info()` says which flags were used and why the earlier ones failed, the
log warns when the build is not native, and the tests fail when it is not (a portable build is
correct but slower: nothing may lose the fast path silently).
When there is no compiler, every build fails or the library does not load, `available()` says
so once in the log and callers use the Keras cells instead: same math, slower.

`L2L_TF_LSTM_KERNEL=keras` turns the kernel off everywhere; `=fused` makes a failed build an
error instead of a fallback.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import tensorflow as tf
from absl import logging
from tensorflow.python.eager import record  # whether a tape watches a tensor (no public API)

from l2l_tf.kernels import CHOICES, ENV_CHOICE, KernelUnavailable, check_environment, choice  # noqa: F401 - API

SOURCE = Path(__file__).with_name("lstm_kernel.cc")
ENV_CACHE = "L2L_TF_KERNEL_CACHE"
_OPT_FLAGS = ["-O3", "-ffp-contract=fast", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC", "-w"]
#: Target flags, tried in order until one builds. -march=native: the library is built on the
#: machine that runs it (the CPU is in the cache key). The second drops the extensions that
#: TensorFlow's bundled headers fail to compile for; the last is the compiler's default
#: target, which builds everywhere but vectorizes less.
ARCH_CANDIDATES = (
    ("native", ("-march=native",)),
    ("native without AVX512-FP16", ("-march=native", "-mno-avx512fp16")),
    ("portable", ()),
)
#: The builds of `ARCH_CANDIDATES` that are native to this CPU (what the tests require).
NATIVE_BUILDS = ("native", "native without AVX512-FP16")


_local = threading.local()


@contextlib.contextmanager
def disabled():
    """Code traced inside uses Keras' cells, never the kernel.

    For graphs the custom op must not enter: SavedModel exports (which would then need this
    library to load). XLA clusters (the op has no XLA lowering) are detected by themselves.
    """
    before = getattr(_local, "disabled", False)
    _local.disabled = True
    try:
        yield
    finally:
        _local.disabled = before


def is_disabled() -> bool:
    """True inside `disabled()` (on this thread) and while tracing for XLA.

    The XLA check catches compilation the library does not start itself, e.g. Keras'
    `model.compile(jit_compile=True)` tracing `LearnedOptimizer`'s update into its train step.
    """
    return getattr(_local, "disabled", False) or _in_xla_context()


def _in_xla_context() -> bool:
    try:
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - a TensorFlow without it: rely on disabled()
        return False
    return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))


def _cpu_signature() -> str:
    """What -march=native depends on: the CPU's model and feature flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    keep = [l for l in lines if l.startswith(("model name", "flags"))][:2]
    return "\n".join(keep) or platform.machine()


def _compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")


def library_path() -> Path:
    """Where the built library for this source, TensorFlow and CPU lives."""
    key = hashlib.sha256()
    candidates = ";".join(" ".join(flags) for _, flags in ARCH_CANDIDATES)
    for part in (SOURCE.read_bytes(), tf.__version__.encode(), " ".join(_OPT_FLAGS).encode(), candidates.encode(),
                 " ".join(tf.sysconfig.get_compile_flags()).encode(), _cpu_signature().encode()):
        key.update(part)
        key.update(b"\0")
    cache = Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "l2l_tf" / "kernels")
    return cache / f"lstm_kernel_{key.hexdigest()[:16]}.so"


def _info_path(library: Path) -> Path:
    return library.with_suffix(".json")


def _compile(compiler: str, arch: tuple[str, ...], output: str) -> str | None:
    """Runs one build into `output`; returns None on success, else the compiler's last error line."""
    command = ([compiler, str(SOURCE), "-o", output] + _OPT_FLAGS + list(arch) + tf.sysconfig.get_compile_flags()
               + tf.sysconfig.get_link_flags())
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return "took over 600 s"
    except OSError as e:  # the compiler could not be started
        return f"{compiler}: {e.strerror}"
    if done.returncode == 0:
        return None
    lines = done.stderr.strip().splitlines()
    errors = [l for l in lines if "error" in l]
    return (errors or lines or ["(no output)"])[0 if errors else -1].strip()


def _build(target: Path) -> dict:
    """Builds the library into `target` with the first `ARCH_CANDIDATES` entry that compiles.

    Writes and returns the build record ({"build", "flags", "compiler", "failed": [...]}),
    stored beside the library as JSON so that a cached library still says how it was built.
    """
    compiler = _compiler()
    if compiler is None:
        raise KernelUnavailable("no C++ compiler (g++, c++ or clang++; or set $CXX)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    except OSError as e:
        raise KernelUnavailable(f"cannot write the kernel cache {target.parent}: {e.strerror} "
                                f"(set ${ENV_CACHE} to a writable directory)") from None
    os.close(fd)
    failed = []
    try:
        for name, arch in ARCH_CANDIDATES:
            error = _compile(compiler, arch, tmp)
            if error is None:
                built = {"build": name, "flags": list(arch), "compiler": compiler, "failed": failed}
                _write_json(_info_path(target), built)
                os.replace(tmp, target)
                return built
            failed.append({"build": name, "flags": list(arch), "error": error})
        tried = "; ".join(f"{f['build']} ({' '.join(f['flags']) or 'no -march'}): {f['error']}" for f in failed)
        raise KernelUnavailable(f"building {SOURCE.name} failed: {tried}")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_json(path: Path, content: dict) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(content, indent=1))
    os.replace(tmp, path)


def build_info() -> dict:
    """How the loaded library was built: {"build": "native" | "native without AVX512-FP16" |
    "portable", "flags", "compiler", "failed": the earlier candidates and their errors}.

    Builds the kernel if needed; raises `KernelUnavailable` when it cannot be had.
    """
    _load()
    try:
        return json.loads(_info_path(library_path()).read_text())
    except (OSError, ValueError):
        return {"build": "unknown", "flags": [], "compiler": None, "failed": []}


@functools.lru_cache(maxsize=None)
def _load():
    path = library_path()
    if not path.exists():
        logging.info("building the fused LSTM kernel into %s (once per machine)", path)
        built = _build(path)
        if built["failed"]:
            logging.warning("fused LSTM kernel built as %r (%s) because %s", built["build"],
                            " ".join(built["flags"]) or "the compiler's default target",
                            "; ".join(f"{f['build']} failed: {f['error']}" for f in built["failed"]))
    try:
        return tf.load_op_library(str(path))
    except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError, OSError) as e:
        raise KernelUnavailable(f"loading {path} failed: {e}") from None


@functools.lru_cache(maxsize=None)
def available() -> bool:
    """True if the fused kernel is wanted and works here (builds it on the first call).

    "auto" also requires that no GPU is visible: the kernel is CPU-only, and on a GPU
    TensorFlow's own ops are the fast path.
    """
    wanted = choice()
    if wanted == "keras":
        return False
    if wanted == "auto" and tf.config.list_physical_devices("GPU"):
        return False
    try:
        _load()
    except KernelUnavailable as e:
        if wanted == "fused":
            raise
        logging.warning("fused LSTM kernel unavailable, using Keras' LSTM cells: %s", e)
        return False
    return True


@tf.RegisterGradient("L2LLstmLayer")
def _layer_gradient(op, dh_out, dc_out, dcache):
    del dcache  # the cache only feeds the gradient op
    x, h, c, kernel, recurrent_kernel, _ = op.inputs
    h_out, c_out, cache = op.outputs
    dh_out = tf.zeros_like(h_out) if dh_out is None else dh_out
    dc_out = tf.zeros_like(c_out) if dc_out is None else dc_out
    return _load().l2l_lstm_layer_grad(dh_out, dc_out, x, h, c, kernel, recurrent_kernel, cache)


def lstm_step(x: tf.Tensor, h: tf.Tensor, c: tf.Tensor, kernel, recurrent_kernel, bias) -> tuple[tf.Tensor, tf.Tensor]:
    """One step of a Keras LSTMCell (sigmoid/tanh, gates i, f, g, o) on every row: (h', c').

    kernel [inputs, 4 * units], recurrent_kernel [units, 4 * units] and bias [4 * units] are the
    cell's own weights (Keras variables or tensors). Gradients flow to all six inputs. When no
    gradient tape watches the inputs, a variant that saves nothing for the backward pass runs
    (graph-mode `tf.gradients` through it fails loudly: it has no gradient).
    """
    inputs = [x, h, c] + [tf.convert_to_tensor(w) for w in (kernel, recurrent_kernel, bias)]
    if not record.should_record_backprop(inputs):
        # No tape watches this step (a Keras optimizer update, an evaluation): skip the cache.
        return tuple(_load().l2l_lstm_layer_inference(*inputs))
    h_out, c_out, _ = _load().l2l_lstm_layer(*inputs)
    return h_out, c_out
