"""Exports a trained optimizer as a self-contained SavedModel (usable without l2l_tf).

    python bin/l2l_export.py --path=runs/quadratic --export_dir=runs/quadratic/export
    saved_model_cli show --dir runs/quadratic/export --all

--path is a trained optimizer directory, an existing export or a bundled pretrained name.
The export has signatures `init_state(params)` and `step(gradients, **state)`; see README,
"Use a trained optimizer", for the contract.
"""
from __future__ import annotations

import os


from absl import flags

from l2l_tf import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("path", None, "Trained optimizer directory, export directory or bundled pretrained name.",
                    required=True)
flags.DEFINE_string("export_dir", None, "Where to write the SavedModel.", required=True)
flags.DEFINE_bool("overwrite", False, "Replace --export_dir if it already holds files.")
cli.validate_flags_nonempty("path", "export_dir")
cli.validate_output_dirs("export_dir")


def main(argv):
    del argv
    from l2l_tf import export, loading

    target = os.path.abspath(FLAGS.export_dir)
    optimizer, info = loading.load_with_info(FLAGS.path)
    if info["source"].path == target:
        raise cli.UserError(f"--export_dir {FLAGS.export_dir} is the optimizer being exported")
    metadata = export.export_optimizer(optimizer, target, training=info["training"],
                                       source=info["source"].describe(), overwrite=FLAGS.overwrite)
    group = metadata["groups"][0]
    state = ", ".join(s["name"] for s in group["state"])
    print(f"exported {info['source'].describe()} to {target}")
    print(f"  signatures: init_state(params) -> {{{state}}}; step(gradients, {state}) -> {{update, {state}}}")
    print(f"  metadata:   {os.path.join(target, 'assets', export.METADATA_FILE)}")


def run() -> None:
    """The `l2l_export` program: bin/l2l_export.py and the `l2l-export` command."""
    cli.run(main)


if __name__ == "__main__":
    run()
