"""Where things live, and how files are written so that nothing half-written is ever read.

Two roots, each one setting:
  * the offline data root: ``data_root=`` argument, else ``$SSLMEM_DATA``, else ``<repo>/data``;
  * the run cache root: ``runs_root=`` argument, else ``$SSLMEM_RUNS``, else ``<repo>/runs``.
Both defaults are git-ignored folders of the checkout (or of the working directory when the
package is installed elsewhere).

Every file sslmem writes goes through :func:`atomic_path`: a temporary file beside the target,
renamed onto it only when complete. A write that fails (read-only folder, full disk) becomes one
:class:`~sslmem.errors.SSLMemError` line and leaves the target as it was; the temporary file of
a writer that was killed is removed by the next write to its folder.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from sslmem.errors import SSLMemError

_PACKAGE_DIR = Path(__file__).resolve().parent


def repo_dir() -> Path:
    """The checkout that holds this package, else the working directory."""
    parent = _PACKAGE_DIR.parent
    return parent if (parent / "pyproject.toml").exists() else Path.cwd()


def data_root(data_root: str | os.PathLike | None = None) -> Path:
    """The offline data root: argument, else $SSLMEM_DATA, else <repo>/data, or, while that
    is empty, ../shared/data beside the checkout when it exists (the rule the Makefile uses, so that
    ``sslmem ...`` run outside ``make`` finds the same data)."""
    if data_root is not None:
        return Path(data_root).expanduser()
    env = os.environ.get("SSLMEM_DATA")
    if env:
        return Path(env).expanduser()
    own, shared = repo_dir() / "data", repo_dir().parent / "shared" / "data"
    own_empty = not own.is_dir() or next(own.iterdir(), None) is None
    return shared if own_empty and (shared / "README.md").exists() else own


def data_root_origin(root: str | os.PathLike | None = None) -> str:
    """The data root :func:`data_root` picks for ``root`` and why, for messages about data."""
    if root is not None:
        return f"{Path(root).expanduser()}, given as data_root/--data-root"
    env = os.environ.get("SSLMEM_DATA")
    if env:
        return f"{Path(env).expanduser()}, from $SSLMEM_DATA"
    found, shared = data_root(), repo_dir().parent / "shared" / "data"
    if found == shared:
        return f"{found}, ../shared/data beside the checkout ($SSLMEM_DATA is unset)"
    if (shared / "README.md").exists():
        return f"{found}, the checkout's data/ ($SSLMEM_DATA is unset)"
    return f"{found}, the checkout's data/ ($SSLMEM_DATA is unset and there is no {shared})"


def runs_root(runs_root: str | os.PathLike | None = None) -> Path:
    """The run cache root: argument, else $SSLMEM_RUNS, else <repo>/runs."""
    if runs_root is not None:
        return Path(runs_root).expanduser()
    env = os.environ.get("SSLMEM_RUNS")
    return Path(env).expanduser() if env else repo_dir() / "runs"


# A temporary file is named .<target>.<pid>-<host>.<random>.tmp, so that a later writer can tell
# whether the process that made it is gone (it was killed mid-write) or still writing.
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_TMP_NAME = re.compile(r"^\..+\.(?P<pid>\d+)-(?P<host>[0-9a-f]{8})\.\w+\.tmp$")
_OLD_TMP_NAME = re.compile(r"^\..+\.\w{8}\.tmp$")  # before writers were named
STALE_TMP_S = 3600  # a temporary file untouched this long is an orphan, whoever made it


def write_error(path, err: OSError) -> SSLMemError:
    """The one-line message for a file that cannot be written (the target is unchanged); a full
    disk (or quota, or file-size limit) says how much space is left there."""
    return SSLMemError(f"cannot write {path} ({type(err).__name__}: {err.strerror or err}"
                       f"{_space_note(Path(path), err)}); make {Path(path).parent} writable, "
                       "free some space, or point the setting that chose it (SSLMEM_RUNS, "
                       "SSLMEM_RESULTS, --out) elsewhere — nothing was changed")


def _space_note(path: Path, err: OSError) -> str:
    if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return ""
    folder = next((p for p in (path.parent, *path.parents) if p.exists()), None)
    try:
        free = f"{format_bytes(shutil.disk_usage(folder).free)} free on its disk"
    except (OSError, TypeError):
        free = "free space unknown"
    if err.errno == errno.EFBIG:
        return f"; the file-size limit of this process (ulimit -f) was reached, {free}"
    return f"; {free}"


def format_bytes(n: float) -> str:
    """``n`` bytes as a short human number (``512 B``, ``3.2 MB``, ``41 GB``)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" or n >= 100 else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Why: a crash or Ctrl-C in the middle of a write must never leave a truncated file where a
    later run would read it as a valid cache entry. ``os.replace`` is atomic on one filesystem.
    An ``OSError`` (creating the folder or the file, writing inside the block, renaming) becomes
    one :func:`write_error` line; orphans of killed writers in the folder are removed first.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_orphans(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-{_HOST}.", suffix=".tmp",
                                   dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise write_error(path, err) from None
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        raise write_error(path, err) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def remove_orphans(folder: Path, max_age_s: float = STALE_TMP_S) -> list[Path]:
    """Remove the temporary files of dead writers in ``folder``; returns what was removed.

    Safe beside concurrent writers: a file is removed only when its writer ran on this host and
    its process is gone, or when nobody has touched it for ``max_age_s`` (another host's writer,
    or a file from before writers were named).
    """
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        named = _TMP_NAME.match(entry.name)
        if named is None and not _OLD_TMP_NAME.match(entry.name):
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        dead = named is not None and named["host"] == _HOST and not _alive(int(named["pid"]))
        if dead or age > max_age_s:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def file_stamp(path: str | os.PathLike) -> str:
    """A short hash of where a file is and of its size, times and inode.

    Why the change time and the inode: any write to a file sets its ctime (which no user can set
    back, unlike the mtime) and a replaced file has a new inode, so an edit that keeps the size
    and restores the modification time still gives a new stamp. A cache keyed by this stamp is
    rebuilt after every edit and never shared between two copies of a file.
    """
    path = Path(path).resolve()
    st = path.stat()
    text = f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    return Path(path)


def git_commit() -> str:
    """The checkout's commit (with '+dirty' when it has uncommitted changes), or 'unknown'."""
    try:
        cwd = _PACKAGE_DIR.parent
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        if not sha:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device) -> str:
    """A human name for a torch device: the GPU model on CUDA, the CPU model otherwise."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def location(device) -> dict:
    """The provenance fields that say where ``device`` is (the CPU model only for a CPU)."""
    import torch

    device = torch.device(device)
    return {"device": device_name(device), "cpu": cpu_model() if device.type == "cpu" else None}


def computed_on(prov: dict) -> str:
    """Where a result was computed, for a reader: the CPU model and cores where its provenance
    names the model (hosts of one size differ ~5x in speed), else the device."""
    device = str(prov.get("device") or "unknown")
    cpu = prov.get("cpu")
    if not cpu or not device.startswith("cpu"):
        return device
    cores = re.search(r"(\d+) cores", device)
    return f"{cpu}, {cores[1]} cores" if cores else str(cpu)


@functools.cache  # read once per process: the plan asks it for every unit's estimate
def cpu_model() -> str:
    """The CPU's model name and its widest matrix ISA (hosts of one size differ: a 2-core AMX
    Xeon trains ~5x faster than a 2-core AVX2 EPYC), for provenance."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                  if line.startswith("model name")), platform.machine())
    isa = next((name for flag, name in ((" amx_bf16", "AMX"), (" avx512_bf16", "AVX512-BF16"),
                                        (" avx512f", "AVX512"), (" avx2", "AVX2"))
                if flag in info), "no AVX2")
    return f"{model} ({isa})"


def provenance(config: dict | None = None, device="cpu", wall_s=None, **extra) -> dict:
    """Everything needed to say where a number came from: config, commit, versions, device, time."""
    import importlib.metadata as md

    versions = {}
    for pkg in ("torch", "torchvision", "lightly", "numpy", "scipy", "scikit-learn", "pandas"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    from sslmem import __version__

    return {
        "sslmem": __version__,
        "config": config,
        "git_commit": git_commit(),
        "versions": versions,
        "python": platform.python_version(),
        "device": device_name(device),
        "cpu": cpu_model(),
        "wall_s": wall_s,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }


@contextlib.contextmanager
def stderr_to(path: Path):
    """Send file descriptor 2 to ``path`` for the duration (the parent's own stderr after).

    Why: child processes started meanwhile (a notebook kernel, a submitit controller) inherit
    it, and one torn down by Ctrl-C, SIGTERM or a timeout prints its own traceback there: the
    user sees sslmem's one line, and the child's log is kept aside.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
