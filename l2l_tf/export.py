"""SavedModel export of a trained optimizer: run it from any TensorFlow program, no l2l_tf needed.

The contract of an export directory (also in README, "Use a trained optimizer"):

    signature init_state(params: float32 [None])            -> {state name: float32 [None, units]}
    signature step(gradients: float32 [None], **state)      -> {"update": float32 [None], **next state}

An optimizer with the progress feature (`LSTMOptimizerConfig.progress_feature`) also takes
`horizon: float32 []` in `step`, the number of steps the whole run will have (its feature is
min(t / horizon, 1)); its `moments` carry one more column, the step count.

`params` and `gradients` are the flattened parameters/gradients of whatever is optimized
(concatenate several tensors into one vector, or keep one state per tensor: the rule is
coordinatewise, so both give the same updates). The update is *added* to the parameters.
State names are `lstm_<layer>_h` and `lstm_<layer>_c`, and `moments` ([None, 2 (K + 1)]) for
optimizers with Adam-normalized features (K momentum timescales). Nothing in the graph depends on the
number of coordinates, so one export serves 10 or 10,000,000 of them.

Groups. An optimizer may use several LSTMs for different parameter groups (conv and fully
connected layers: `l2l_tf.optimizers.grouped`). An export therefore describes a list of
groups, each with its own settings, weights (`phi[<group>]` in the SavedModel), signature
names and, for a grouped optimizer, the regular expression that selects its parameters by
name (`pattern`; the first group whose pattern is found in a parameter's name serves it);
the first group is the default one and owns the unsuffixed `init_state`/`step`, and when
there is more than one group every group also gets `init_state_<group>`/`step_<group>`. A
single-LSTM optimizer is exported as one group called "default".

Metadata. `assets/l2l_tf_export.json` records the format and its version, the library and
TensorFlow versions, every group's architecture, preprocessing, output scale and state
layout, and the training problem and flags. It is a file so that a loader can refuse a
foreign, newer or corrupt export with a one-line message before paying for
`tf.saved_model.load`; after loading, `loaded.metadata.asset_path` points at the same file.

The exported functions call `CoordinatewiseLSTM.update` itself (its Keras cells, traced),
so the SavedModel computes exactly the library's updates; `export_optimizer` checks that on
a few random steps before it moves the export into place.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

import numpy as np
import tensorflow as tf

from l2l_tf import saving
from l2l_tf.errors import UserError
from l2l_tf.kernels import fused_lstm
from l2l_tf.optimizers import registry
from l2l_tf.optimizers.coordinatewise import MOMENTS, CoordinatewiseLSTM, LSTMOptimizerConfig
from l2l_tf.optimizers.preprocessing import STATEFUL, MomentFeatures
from l2l_tf.optimizers.grouped import GroupedConfig, GroupedLSTM
from l2l_tf.version import __version__

EXPORT_FORMAT = "l2l_tf.optimizer_export"
#: Bumped whenever the contract above changes incompatibly; loaders refuse newer versions.
FORMAT_VERSION = 1
METADATA_FILE = "l2l_tf_export.json"
SAVED_MODEL_FILE = "saved_model.pb"
DEFAULT_GROUP = "default"
#: The step signature's extra input for optimizers with the progress feature: the trajectory's length.
HORIZON = "horizon"
#: Largest difference between exported and in-library updates accepted by the export check,
#: relative to the largest update (at least 1): rules whose steps grow with the gradient
#: (output="momentum") make steps of hundreds on the check's gradients of up to 1e2.
VERIFY_TOLERANCE = 1e-6


def state_layout(config: LSTMOptimizerConfig) -> list[tuple[str, int]]:
    """(name, width) of every state tensor, in signature order: lstm_0_h, lstm_0_c, lstm_1_h, ...,
    and "moments" for optimizers with Adam-normalized features (see `CoordinatewiseLSTM.state_layout`)."""
    layout = [(f"lstm_{i}_{part}", units) for i, units in enumerate(config.layers) for part in ("h", "c")]
    if config.preprocess in STATEFUL:
        layout.append((MOMENTS, MomentFeatures(config.momentum_betas, config.rms_beta,
                                               progress_feature=config.progress_feature).width))
    return layout


def signature_names(groups: list[str]) -> dict[str, dict[str, list[str]]]:
    """{group: {"init_state": [names], "step": [names]}}: which signatures serve which group."""
    names = {}
    for k, group in enumerate(groups):
        names[group] = {"init_state": [], "step": []}
        for kind in ("init_state", "step"):
            if k == 0:
                names[group][kind].append(kind)
            if len(groups) > 1:
                names[group][kind].append(f"{kind}_{group}")
    return names


def _functions_for(optimizer: CoordinatewiseLSTM):
    """The init_state and step tf.functions of one group, with [None]-shaped input signatures."""
    layout = state_layout(optimizer.config)
    assert layout == optimizer.state_layout(), "the export's layout must be the optimizer's own"

    def init_state(params):
        n = tf.size(params)
        return {name: tf.zeros(tf.stack([n, units]), tf.float32) for name, units in layout}

    def step(gradients, *states):
        with fused_lstm.disabled():  # a SavedModel must load without this library's custom op
            (update,), (next_state,) = optimizer.update([gradients], [tuple(states)], [gradients])
        return {"update": update, **{name: t for (name, _), t in zip(layout, next_state)}}

    def step_with_horizon(gradients, horizon, *states):
        with optimizer.horizon_input(horizon):
            return step(gradients, *states)

    init_fn = tf.function(init_state, input_signature=[tf.TensorSpec([None], tf.float32, name="params")])
    inputs = [tf.TensorSpec([None], tf.float32, name="gradients")]
    if optimizer.config.progress_feature:
        inputs.append(tf.TensorSpec([], tf.float32, name=HORIZON))
    step_fn = tf.function(step_with_horizon if optimizer.config.progress_feature else step, input_signature=inputs + [
        tf.TensorSpec([None, units], tf.float32, name=name) for name, units in layout])
    return init_fn, step_fn


def _build_module(groups: dict[str, CoordinatewiseLSTM], metadata_file: str) -> tuple[tf.Module, dict]:
    """What the SavedModel holds: phi per group, the metadata asset and the signature functions.

    Only the plain `tf.Variable`s behind the Keras cells are attached, not the Keras layers,
    so loading an export restores variables and graphs and nothing Keras-specific. Returns
    the module and the {signature name: concrete function} map for `tf.saved_model.save`.
    """
    module = tf.Module(name="l2l_tf_optimizer")
    module.phi = {group: saving.tf_variables(opt.meta_variables) for group, opt in groups.items()}
    module.metadata = tf.saved_model.Asset(metadata_file)
    signatures = {}
    names = signature_names(list(groups))
    for group, opt in groups.items():
        init_fn, step_fn = _functions_for(opt)
        for kind, fn in (("init_state", init_fn), ("step", step_fn)):
            for name in names[group][kind]:
                setattr(module, name, fn)
                signatures[name] = fn.get_concrete_function()
    return module, signatures


def build_metadata(groups: dict[str, CoordinatewiseLSTM], training: dict[str, Any] | None = None,
                   source: str | None = None, patterns: dict[str, str] | None = None) -> dict[str, Any]:
    """The JSON record stored in assets/ (see the module docstring)."""
    names = signature_names(list(groups))
    patterns = patterns or {}
    return {
        "format": EXPORT_FORMAT,
        "format_version": FORMAT_VERSION,
        "l2l_tf_version": __version__,
        "tensorflow_version": tf.__version__,
        "default_group": next(iter(groups)),
        "groups": [{
            "name": group,
            "optimizer": opt.config.to_dict(),
            "signatures": names[group],
            "state": [{"name": name, "units": units} for name, units in state_layout(opt.config)],
            "num_meta_parameters": int(sum(np.prod(v.shape) for v in opt.meta_variables)),
            **({"pattern": patterns[group]} if group in patterns else {}),
        } for group, opt in groups.items()],
        "training": dict(training or {}),
        "source": source,
    }


def _check_target(export_dir: str, overwrite: bool) -> None:
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise UserError(f"export directory {export_dir} exists and is not a directory")
    if os.path.isdir(export_dir) and os.listdir(export_dir) and not overwrite:
        raise UserError(f"export directory {export_dir} already exists and is not empty "
                        "(choose another one or overwrite it with --overwrite)")


def _verify(export_dir: str, groups: dict[str, CoordinatewiseLSTM]) -> None:
    """Loads the fresh export and checks a few steps against the in-library optimizer."""
    loaded = tf.saved_model.load(export_dir)
    rng = np.random.default_rng(0)
    for group, opt in groups.items():
        names = signature_names(list(groups))[group]
        init, step = loaded.signatures[names["init_state"][0]], loaded.signatures[names["step"][0]]
        params = tf.zeros([37])
        state, ref_state = init(params=params), opt.init([params])
        extra = {HORIZON: tf.constant(5.0)} if opt.config.progress_feature else {}
        with opt.horizon_input(tf.constant(5.0)):  # the library's side of the same horizon
            _verify_steps(group, opt, step, state, ref_state, params, extra, rng)


def _verify_steps(group, opt, step, state, ref_state, params, extra, rng) -> None:
    """Three random steps of the export's `step` against the library's update."""
    for _ in range(3):
        # Magnitudes from 1e-7 to 1e2 exercise both branches of the log/sign preprocessing.
        g = tf.constant(rng.standard_normal(37) * 10.0 ** rng.uniform(-7, 2, 37), tf.float32)
        out = step(gradients=g, **extra, **state)
        ref, ref_state = opt.update([g], ref_state, [params])
        ref_update = ref[0].numpy()
        diff = float(np.max(np.abs(out.pop("update").numpy() - ref_update)))
        if not diff <= VERIFY_TOLERANCE * max(1.0, float(np.max(np.abs(ref_update)))):
            raise RuntimeError(f"exported group {group!r} differs from the library by {diff:.3g}")
        state = out


def export_optimizer(optimizer: CoordinatewiseLSTM, export_dir: str, training: dict[str, Any] | None = None,
                     source: str | None = None, overwrite: bool = False, verify: bool = True) -> dict[str, Any]:
    """Writes `optimizer` as a self-contained SavedModel to `export_dir`; returns its metadata.

    `training` (problem, flags, best epoch, ...) and `source` (where phi came from) go into
    the metadata. The export is written next to `export_dir`, checked, and only then moved
    into place, so an interrupted export never leaves a half-written directory behind.
    """
    config = getattr(optimizer, "config", None)
    if config is None:
        raise UserError(f"only learned optimizers can be exported, got {type(optimizer).__name__}")
    registry.require_per_coordinate(config, "an export (one parameter tensor at a time)")
    if isinstance(optimizer, GroupedLSTM):
        groups, patterns = dict(optimizer.optimizers), dict(optimizer.config.groups)
    elif isinstance(optimizer, CoordinatewiseLSTM):
        groups, patterns = {DEFAULT_GROUP: optimizer}, None
    else:
        raise UserError(f"only the library's learned optimizers can be exported, got {type(optimizer).__name__}")
    export_dir = os.path.abspath(export_dir)
    _check_target(export_dir, overwrite)
    metadata = build_metadata(groups, training, source, patterns)
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=os.path.basename(export_dir) + ".tmp", dir=parent)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            metadata_file = os.path.join(scratch, METADATA_FILE)
            with open(metadata_file, "w") as f:
                json.dump(metadata, f, indent=2, sort_keys=True)
            module, signatures = _build_module(groups, metadata_file)
            tf.saved_model.save(module, tmp, signatures=signatures)
        if verify:
            _verify(tmp, groups)
        if os.path.isdir(export_dir):
            shutil.rmtree(export_dir)
        os.replace(tmp, export_dir)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
    return metadata


# -- reading ---------------------------------------------------------------------------------


def is_export(path: str) -> bool:
    """Whether `path` is a SavedModel directory (an l2l_tf export or not)."""
    return os.path.isfile(os.path.join(path, SAVED_MODEL_FILE))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def read_metadata(export_dir: str) -> dict[str, Any]:
    """Reads and validates an export's metadata; a one-line UserError for anything unusable."""
    if not os.path.isdir(export_dir):
        raise UserError(f"export directory {export_dir} does not exist")
    if not is_export(export_dir):
        raise UserError(f"{export_dir} is not a SavedModel (no {SAVED_MODEL_FILE})")
    file = os.path.join(export_dir, "assets", METADATA_FILE)
    if not os.path.isfile(file):
        raise UserError(f"{export_dir} is a SavedModel but not an l2l_tf optimizer export "
                        f"(no assets/{METADATA_FILE}); write one with l2l_export")
    try:
        with open(file) as f:
            metadata = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{file} is unreadable or corrupt: {_first_line(e)}") from None
    if not isinstance(metadata, dict) or metadata.get("format") != EXPORT_FORMAT:
        raise UserError(f"{file} does not describe an l2l_tf optimizer export (format is not {EXPORT_FORMAT!r})")
    version = metadata.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise UserError(f"{file} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise UserError(f"{export_dir} was exported by l2l_tf {metadata.get('l2l_tf_version')} in export format "
                        f"{version}; this l2l_tf {__version__} reads formats up to {FORMAT_VERSION}: upgrade l2l_tf")
    groups = metadata.get("groups")
    if not isinstance(groups, list) or not groups or not all(isinstance(g, dict) for g in groups):
        raise UserError(f"{file} lists no optimizer groups")
    for group in groups:
        settings = group.get("optimizer")
        if not isinstance(settings, dict):
            raise UserError(f"{file}: group {group.get('name')!r} has no optimizer settings")
        LSTMOptimizerConfig.from_dict(settings)  # UserError on unknown architecture or settings
    return metadata


def _check_signatures(export_dir: str, metadata: dict[str, Any]) -> None:
    """Parses saved_model.pb and checks it has every signature the metadata promises."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(export_dir, SAVED_MODEL_FILE)
    proto = saved_model_pb2.SavedModel()
    try:
        with open(path, "rb") as f:
            proto.ParseFromString(f.read())
    except Exception as e:  # protobuf's DecodeError has no stable import path across versions
        raise UserError(f"{path} is corrupt: {_first_line(e)}") from None
    if not proto.meta_graphs:
        raise UserError(f"{path} is corrupt: it holds no graph")
    signatures = proto.meta_graphs[0].signature_def
    for group in metadata["groups"]:
        config = LSTMOptimizerConfig.from_dict(group["optimizer"])
        state = {name for name, _ in state_layout(config)}
        step_inputs = {"gradients"} | state | ({HORIZON} if config.progress_feature else set())
        expected = {"init_state": ({"params"}, state), "step": (step_inputs, {"update"} | state)}
        for kind, names in group.get("signatures", {}).items():
            if kind not in expected:
                continue
            for name in names:
                if name not in signatures:
                    raise UserError(f"{export_dir} is corrupt or incomplete: it has no signature {name!r}")
                inputs, outputs = set(signatures[name].inputs), set(signatures[name].outputs)
                if (inputs, outputs) != expected[kind]:
                    raise UserError(f"{export_dir}: signature {name!r} does not match its recorded state layout")


def check_export(export_dir: str) -> dict[str, Any]:
    """`read_metadata` plus a parse of the graph and its signatures: cheap, no variables loaded."""
    metadata = read_metadata(export_dir)
    _check_signatures(export_dir, metadata)
    return metadata


def load_exported_optimizer(export_dir: str) -> tuple[CoordinatewiseLSTM | GroupedLSTM, dict[str, Any]]:
    """Rebuilds the in-library optimizer from an export (settings + phi); returns it with the metadata.

    The result is an ordinary `CoordinatewiseLSTM` (or a `GroupedLSTM` when the export has
    groups with patterns), differentiable and usable in the evaluator's compiled loops,
    rather than a wrapper around the SavedModel's graphs: the graphs were traced from that
    very class, so they compute the same updates.
    """
    metadata = check_export(export_dir)
    groups = metadata["groups"]
    if len(groups) == 1 and "pattern" not in groups[0]:
        optimizer = CoordinatewiseLSTM(LSTMOptimizerConfig.from_dict(groups[0]["optimizer"]))
        phi = {groups[0]["name"]: saving.tf_variables(optimizer.meta_variables)}
    else:
        if not all(isinstance(g.get("pattern"), str) for g in groups):
            raise UserError(f"{export_dir} has several optimizer groups but not every one has a pattern that "
                            "says which parameters it serves")
        settings = [g["optimizer"] for g in groups]
        if any(s != settings[0] for s in settings):
            raise UserError(f"{export_dir}: its groups have different LSTM settings; this l2l_tf {__version__} "
                            "rebuilds grouped optimizers whose LSTMs share their settings")
        optimizer = GroupedLSTM(GroupedConfig(tuple((g["name"], g["pattern"]) for g in groups),
                                              LSTMOptimizerConfig.from_dict(settings[0])))
        phi = {name: saving.tf_variables(opt.meta_variables) for name, opt in optimizer.optimizers.items()}
    prefix = os.path.join(export_dir, "variables", "variables")
    if not tf.io.gfile.exists(prefix + ".index"):
        raise UserError(f"{export_dir} is corrupt or incomplete: no variables/variables.index")
    try:
        status = tf.train.Checkpoint(phi=phi).read(prefix)
        status.assert_existing_objects_matched()
        status.expect_partial()
    except (tf.errors.OpError, ValueError, AssertionError) as e:
        raise UserError(f"the weights in {export_dir} are corrupt or do not fit its recorded architecture: "
                        f"{_first_line(e)}") from None
    return optimizer, metadata


def load_saved_model(export_dir: str):
    """`tf.saved_model.load` of a checked export, with a one-line error if TensorFlow cannot read it."""
    check_export(export_dir)
    try:
        return tf.saved_model.load(export_dir)
    except (tf.errors.OpError, ValueError, OSError) as e:
        raise UserError(f"{export_dir} cannot be loaded (corrupt?): {_first_line(e)}") from None
