"""Fault injection for the subprocess tests (tests/test_robustness.py, test_executors.py).

Loaded as ``sitecustomize`` when ``tests/faults`` is on PYTHONPATH, so ``python -m sslmem ...``
runs exactly as a user would while the operating system seems to refuse some files. Why: the
tests run as root, whom permissions do not stop. Inert unless one of these is set (paths
separated by ``os.pathsep``; a path covers everything below it, a pattern with ``*`` is matched
against the absolute path with fnmatch):

  SSLMEM_FAULT_UNREADABLE  opening a file there for reading fails with EACCES
  SSLMEM_FAULT_NOSPACE     a file there opened for writing is created, but writing to it
                           fails with ENOSPC (a disk that fills up mid-write)
  SSLMEM_FAULT_KILL_AFTER  a file moved into place there (``os.replace``, how sslmem writes
                           atomically) is followed at once by SIGKILL to the process itself
                           (a unit killed by the OOM killer or a user just after a checkpoint)
"""

import builtins
import errno
import io
import os
import signal
from fnmatch import fnmatch


def _paths(var):
    return [p if "*" in p else os.path.abspath(p)
            for p in os.environ.get(var, "").split(os.pathsep) if p]


_UNREADABLE = _paths("SSLMEM_FAULT_UNREADABLE")
_NOSPACE = _paths("SSLMEM_FAULT_NOSPACE")
_KILL_AFTER = _paths("SSLMEM_FAULT_KILL_AFTER")


def _under(path, roots) -> bool:
    try:
        p = os.path.abspath(os.fsdecode(os.fspath(path)))
    except TypeError:
        return False
    return any(p == r or p.startswith(r + os.sep) or fnmatch(p, r) for r in roots)


class _Full(io.RawIOBase):
    """A file whose every write finds the disk full."""

    def __init__(self, raw):
        self.raw = raw

    def writable(self):
        return True

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def close(self):
        self.raw.close()
        super().close()


if _UNREADABLE or _NOSPACE:
    _io_open, _os_open = io.open, os.open

    def _open(file, mode="r", *args, **kwargs):
        if isinstance(file, int):
            return _io_open(file, mode, *args, **kwargs)
        writing = any(c in mode for c in "wax")
        if not writing and _under(file, _UNREADABLE):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(file))
        handle = _io_open(file, mode, *args, **kwargs)
        if writing and _under(file, _NOSPACE):
            full = _Full(handle)
            return full if "b" in mode else io.TextIOWrapper(io.BufferedWriter(full))
        return handle

    def _open_fd(path, flags, *args, **kwargs):
        if not flags & (os.O_WRONLY | os.O_RDWR) and _under(path, _UNREADABLE):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return _os_open(path, flags, *args, **kwargs)

    builtins.open = io.open = _open
    os.open = _open_fd

if _KILL_AFTER:
    _os_replace = os.replace

    def _replace(src, dst, *args, **kwargs):
        _os_replace(src, dst, *args, **kwargs)
        if _under(dst, _KILL_AFTER):
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = _replace
