"""Atomic writes: the one way mmkeras writes a file or a folder that someone else may read.

Everything is written under a hidden temporary name beside its target, flushed to disk, then
renamed into place, so a reader (a service, a later run, a user) sees the old version or the new
one, never half of one. A failure removes the temporary copy and leaves the target untouched.

- `atomic_file(path)`: a context manager that yields a temporary path to write one file to.
- `atomic_folder(path, overwrite=..., replaceable=...)`: the same for a folder; an existing
  target is replaced only with `overwrite=True`, and only when `replaceable(path)` says it is
  safe to delete (never a folder of the user's own).

Example:

>>> import json, os
>>> root = "demo"
>>> os.makedirs(root)
>>> with atomic_file(os.path.join(root, "a.json")) as tmp:
...     with open(tmp, "w") as f:
...         json.dump({"a": 1}, f)
>>> with atomic_folder(os.path.join(root, "run")) as tmp:
...     open(os.path.join(tmp, "x.txt"), "w").close()
>>> sorted(os.listdir(root)), os.listdir(os.path.join(root, "run"))  # no temporary copy left
(['a.json', 'run'], ['x.txt'])
"""

import contextlib
import ctypes
import os
import shutil
import tempfile

__all__ = ["atomic_file", "atomic_folder", "remove"]


def _umask():
    """The process umask, read without changing it (`os.umask` would, for every thread)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status", encoding="ascii") as f:
            return int(next(line for line in f if line.startswith("Umask:")).split()[1], 8)
    return 0o022


def _make_readable(path, folder=True):
    """`mkdtemp` / `mkstemp` create private (0700 / 0600) entries: give the result the usual
    permissions (umask applied), so a service running as another user can read it."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def _fsync(path):
    """Flush one file or folder to disk (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(root):
    """Flush every file and folder under `root` to disk (best effort)."""
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync(os.path.join(folder, name))
        _fsync(folder)


def _exchange(a, b):
    """Swap two paths atomically (Linux `renameat2(RENAME_EXCHANGE)`); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def remove(path):
    """Delete a file or a folder (best effort)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.remove(path)


def _never(path):
    return False


def check_target(path, overwrite, replaceable=_never, what="an export"):
    """Raise unless `path` is free, or may be replaced (`overwrite` and `replaceable(path)`)."""
    if not os.path.lexists(path):
        return
    if not overwrite:
        raise FileExistsError(
            f"`path` already holds {what}; it is kept. Pass overwrite=True (CLI: --overwrite) to "
            f"replace it once the new one is complete. Received: path={path!r}"
        )
    if not replaceable(path):
        raise ValueError(
            f"`path` exists and is not {what} (nor an empty folder): overwrite=True only replaces "
            f"{what}, never other files. Received: path={path!r}"
        )


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary path beside `path`; on success it is flushed and renamed to `path`.

    An existing file at `path` is replaced (as `os.replace` does) only once the new one is
    complete; on an error the temporary file is removed and `path` is untouched.
    """
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    base, suffix = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.tmp-", suffix=suffix, dir=parent)
    os.close(fd)
    _make_readable(tmp, folder=False)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_folder(path, *, overwrite=False, replaceable=_never, what="an export"):
    """Yield a temporary folder beside `path`; on success it is flushed and moved to `path`.

    Args:
        path: the folder to create.
        overwrite: bool, replace an existing `path` (only once the new folder is complete, and
            only when `replaceable(path)` is True). Defaults to `False`.
        replaceable: `fn(path) -> bool`, whether an existing `path` may be deleted. Defaults to
            never.
        what: how errors name what `path` should hold. Defaults to `"an export"`.

    Raises:
        FileExistsError: `path` exists and `overwrite` is False.
        ValueError: `path` exists and is not `replaceable`.
    """
    path = os.fspath(path)
    check_target(path, overwrite, replaceable, what)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-", dir=parent)
    _make_readable(tmp)
    try:
        yield tmp
        _publish(tmp, path, overwrite, replaceable, what)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # only left behind if something above failed


def _publish(tmp, path, overwrite, replaceable, what):
    """Move the complete folder `tmp` to `path`, swapping atomically with an old `path`."""
    parent = os.path.dirname(os.path.abspath(path))
    _fsync_tree(tmp)
    if not os.path.lexists(path):
        try:
            os.rename(tmp, path)  # fails if `path` appeared meanwhile and is not empty
        except OSError as error:
            raise FileExistsError(f"`path` appeared while writing; it is kept. Received: path={path!r}") from error
    else:
        check_target(path, overwrite, replaceable, what)
        if not _exchange(tmp, path):
            # No atomic swap here: the old folder steps aside, the new one moves in. In between
            # (two renames) `path` is briefly absent, never half-written.
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old-", dir=parent)
            os.rmdir(old)
            os.rename(path, old)
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old, path)
                raise
            tmp = old
        remove(tmp)  # the old folder, now at the temporary name
    _fsync(parent)
