"""Output files: checked up front, written atomically, and failures that name the path.

Every binary writes its results somewhere the user chose (`--save_path`, `--output_dir`,
`--export_dir`, `--output`). A path that cannot be written should fail before any work is
done, in one line that says which path and why, not minutes later as a traceback from deep
inside TensorFlow. `check_output_dir` / `check_output_file` are those up-front checks (the
binaries register them as flag validators); `write_text` / `write_json` are the writes, atomic
(a temporary file renamed into place, so a crash leaves the old file or the new one, whole) and
with the path attached to any `OSError` (a full disk raises at write or close time with no
file name otherwise).
"""
from __future__ import annotations

import errno
import json
import os
from typing import Any

from l2l_tf.errors import UserError


def _nearest_existing(path: str) -> str:
    parent = path
    while not os.path.lexists(parent):
        up = os.path.dirname(parent)
        if up == parent:
            break
        parent = up
    return parent


def output_dir_problem(path: str) -> str | None:
    """Why directory `path` cannot be used for output (None: it exists and is writable, or can be created)."""
    path = os.path.abspath(path)
    if os.path.exists(path):
        if not os.path.isdir(path):
            return f"{path} is a file, not a directory"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"{path} is not writable ({os.strerror(_access_errno(path))})"
        return _full_disk_problem(path, path)
    existing = _nearest_existing(path)
    if not os.path.isdir(existing):
        return f"{path} cannot be created: {existing} is a file, not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{path} cannot be created: {existing} is not writable ({os.strerror(_access_errno(existing))})"
    return _full_disk_problem(path, existing)


def _full_disk_problem(path: str, existing: str) -> str | None:
    """ENOSPC up front when `existing`'s filesystem has no block left for us.

    A full disk otherwise shows only when the results are written, after all the work (an hour of
    meta-training, a benchmark). A disk with a few blocks left can still fill during the run: the
    writes below attach the path to that error. Filesystems that report no blocks at all (virtual
    ones) are not judged."""
    try:
        stats = os.statvfs(existing)
    except OSError:
        return None
    available = stats.f_bfree if os.geteuid() == 0 else stats.f_bavail  # root may use the reserved blocks
    if stats.f_blocks > 0 and available == 0:
        return f"{path} cannot be written: {existing} has no space left ({os.strerror(errno.ENOSPC)})"
    return None


def output_file_problem(path: str) -> str | None:
    """Why file `path` cannot be written (None: it, or its directory, can be)."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        return f"{path} is a directory, not a file"
    problem = output_dir_problem(os.path.dirname(path))
    if problem:
        return problem
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return f"{path} is not writable ({os.strerror(_access_errno(path))})"
    return None


def _access_errno(path: str) -> int:
    """EROFS for a read-only filesystem, else EACCES (what a write would fail with)."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return errno.EROFS
    except OSError:
        pass
    return errno.EACCES


def check_output_dir(path: str, flag: str) -> None:
    """Raises a one-line `UserError` if `--flag` (a directory) cannot be written."""
    problem = output_dir_problem(path)
    if problem:
        raise UserError(f"--{flag}: {problem}")


def check_output_file(path: str, flag: str) -> None:
    """Raises a one-line `UserError` if `--flag` (a file) cannot be written."""
    problem = output_file_problem(path)
    if problem:
        raise UserError(f"--{flag}: {problem}")


def write_text(path: str, text: str) -> str:
    """Writes `text` to `path` atomically (creating its folder); an `OSError` always carries `path`
    as its filename."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.lexists(tmp):
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise OSError(e.errno, e.strerror or str(e), path) from None
    return path


def write_json(path: str, value: Any, **dump_args) -> str:
    """`write_text` of `json.dumps(value, **dump_args)` (indent 2 unless given)."""
    dump_args.setdefault("indent", 2)
    return write_text(path, json.dumps(value, **dump_args))


def describe_os_error(e: OSError) -> str:
    """One line: the path (or both paths of a rename) and the reason."""
    reason = e.strerror or str(e)
    if e.filename and getattr(e, "filename2", None):
        return f"{e.filename} -> {e.filename2}: {reason}"
    if e.filename:
        return f"{e.filename}: {reason}"
    return f"writing output failed: {reason}"


def save_figure(fig, path: str) -> str:
    """`fig.savefig(path)` with the path attached to any `OSError` (a full disk fails in the write)."""
    try:
        fig.savefig(path)
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), path) from None
    return path
