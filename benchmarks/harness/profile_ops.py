"""Where the time goes: a TensorFlow profiler trace, summed per op type and per part.

The trace is the one TensorBoard's profile plugin shows (`logdir/plugins/profile/...`);
this reads its XPlane protobuf directly so the benchmark report can carry the summary.
Op events of TensorFlow's executor are named "op_name:OpType"; their durations are summed
by type and by the part of the meta-step the op belongs to (LSTM forward, LSTM backward,
optimizee, the rest), which is what says whether fusing or shapes limit the speed.
"""
from __future__ import annotations

import collections
import glob
import os
import time
from typing import Callable

import tensorflow as tf


def _part(op_name: str) -> str:
    scopes = op_name.split("/")
    lstm = any(s.startswith(("stacked_lstm", "fused_lstm", "output", "unfused_lstm")) for s in scopes)
    backward = "gradient_tape" in scopes
    if lstm:
        return "LSTM backward" if backward else "LSTM forward"
    return "other (optimizee, preprocessing, meta-update)"


def profile(fn: Callable[[], object], logdir: str, top: int = 12) -> dict:
    """Runs `fn` under the profiler (trace kept in `logdir`) and summarizes executor op time."""
    options = tf.profiler.experimental.ProfilerOptions(host_tracer_level=3, python_tracer_level=0)
    tf.profiler.experimental.start(logdir, options=options)
    start = time.perf_counter()
    try:
        fn()
    finally:
        wall_ms = (time.perf_counter() - start) * 1e3
        tf.profiler.experimental.stop()
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")), key=os.path.getmtime)
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    by_type, by_part = collections.Counter(), collections.Counter()
    for plane in space.planes:
        names = plane.event_metadata
        for line in plane.lines:
            for event in line.events:
                name = names[event.metadata_id].name
                if ":" not in name or "::" in name:
                    continue  # runtime events (executor, iterators), not ops
                op_name, op_type = name.rsplit(":", 1)
                if not op_type or not op_type[0].isalpha() or " " in op_name:
                    continue  # function calls ("EagerLocalExecute: __inference_...") enclose ops

                by_type[op_type] += event.duration_ps
                by_part[_part(op_name)] += event.duration_ps
    total = sum(by_type.values()) or 1
    ms = lambda ps: round(ps / 1e9, 2)  # noqa: E731
    # oneDNN's kernels (MatMul with TF_ENABLE_ONEDNN_OPTS on, the CPU default) leave no op events,
    # so op time can be well below wall time even on one thread: both are reported.
    return {"trace": paths[-1], "op_ms_total": ms(total), "wall_ms": round(wall_ms, 2),
            "by_part": {k: {"ms": ms(v), "share": round(v / total, 3)} for k, v in by_part.most_common()},
            "top_op_types": [{"type": k, "ms": ms(v), "share": round(v / total, 3)} for k, v in by_type.most_common(top)]}
