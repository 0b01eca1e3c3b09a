"""Atomic writes: the one way mmkeras writes a file or a folder that someone else may read.

Everything is written under a hidden temporary name beside its target, flushed to disk, then
renamed into place, so a reader (a service, a later run, a user) sees the old version or the new
one, never half of one. A failure removes the temporary copy and leaves the target untouched.

- `atomic_file(path)`: a context manager that yields a temporary path to write one file to.
- `atomic_folder(path, overwrite=..., replaceable=...)`: the same for a folder; an existing
  target is replaced only with `overwrite=True`, and only when `replaceable(path)` says it is
  safe to delete (never a folder of the user's own). The old folder and the new one swap in one
  step (`renameat2(RENAME_EXCHANGE)`), so `path` is never missing.

Every file and folder gets the permissions the umask gives (0644 / 0755 with umask 022), as
`open` and `os.makedirs` would give them, not the private ones of `tempfile`.

A process killed while it writes a folder leaves its temporary folder `.NAME.tmp-XXXX` beside the
target, with an owner file `.NAME.tmp-XXXX.owner` (process id and host). The next
`atomic_folder` for the same target removes such leftovers once their process has ended (and,
after a kill between the two renames of the fallback without an atomic swap, moves the old
folder back); a folder without an owner file, or of a live process, is never touched.

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
import json
import os
import shutil
import socket
import tempfile

__all__ = ["atomic_file", "atomic_folder", "clean_stale", "remove"]


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
    name = os.path.basename(path)
    base, dot, rest = name.lstrip(".").partition(".")  # keep every extension: x.weights.h5
    base, suffix = name[: len(name) - len(rest) - len(dot)], dot + rest
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
    clean_stale(path)
    tmp, owner = _staging_folder(path)
    try:
        yield tmp
        _publish(tmp, path, overwrite, replaceable, what)
    finally:
        # Only left behind if something above failed (after a swap, `tmp` holds the old folder).
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(tmp + OLD_SUFFIX, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.remove(owner)


OWNER_SUFFIX = ".owner"
OLD_SUFFIX = ".old"


def _staging_folder(path):
    """A new private folder `.NAME.tmp-XXXX` beside `path`, and its owner file (created first)."""
    parent, name = os.path.split(os.path.abspath(path))
    fd, owner = tempfile.mkstemp(prefix=f".{name}.tmp-", suffix=OWNER_SUFFIX, dir=parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "target": name}, f)
    _make_readable(owner, folder=False)
    tmp = owner[: -len(OWNER_SUFFIX)]
    os.mkdir(tmp)
    _make_readable(tmp)
    return tmp, owner


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def clean_stale(path):
    """Remove what killed writers of `path` left beside it; return the names removed.

    Only mmkeras' own leftovers: a `.NAME.tmp-XXXX` folder with its owner file, written on this
    host by a process that no longer runs. If `path` is missing and the leftover holds the old
    folder (a kill between the two renames of the non-atomic fallback), it is moved back first.
    """
    parent, name = os.path.split(os.path.abspath(os.fspath(path)))
    removed = []
    try:
        entries = os.listdir(parent)
    except OSError:
        return removed
    prefix = f".{name}.tmp-"
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(OWNER_SUFFIX)):
            continue
        owner = os.path.join(parent, entry)
        try:
            with open(owner, encoding="utf-8") as f:
                info = json.load(f)
            pid, host, target = int(info["pid"]), info["host"], info["target"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # half-written or not ours: keep
        if target != name or host != socket.gethostname() or pid == os.getpid() or _alive(pid):
            continue
        tmp = owner[: -len(OWNER_SUFFIX)]
        old = tmp + OLD_SUFFIX
        if os.path.isdir(old) and not os.path.islink(old) and not os.path.lexists(path):
            os.rename(old, path)
        for leftover in (tmp, old):
            if os.path.isdir(leftover) and not os.path.islink(leftover):
                shutil.rmtree(leftover, ignore_errors=True)
                removed.append(os.path.basename(leftover))
        with contextlib.suppress(OSError):
            os.remove(owner)
    return removed


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
            # (two renames) `path` is briefly absent; after a kill there, the next writer of
            # `path` moves the old folder back (`clean_stale`), never leaving it missing.
            old = tmp + OLD_SUFFIX
            os.rename(path, old)
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old, path)
                raise
            tmp = old
        remove(tmp)  # the old folder, now at a temporary name
    _fsync(parent)
