"""Where things live, and how results are written so that nothing half-written is ever read.

Two roots, each one setting:
  * the offline data root: ``data_root=`` argument, else ``$SSLMEM_DATA``, else ``<repo>/data``;
  * the run cache root: ``runs_root=`` argument, else ``$SSLMEM_RUNS``, else ``<repo>/runs``.
Both defaults are git-ignored folders of the checkout (or of the working directory when the
package is installed elsewhere).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def repo_dir() -> Path:
    """The checkout that holds this package, else the working directory."""
    parent = _PACKAGE_DIR.parent
    return parent if (parent / "pyproject.toml").exists() else Path.cwd()


def data_root(data_root: str | os.PathLike | None = None) -> Path:
    """The offline data root: argument, else $SSLMEM_DATA, else <repo>/data."""
    if data_root is not None:
        return Path(data_root).expanduser()
    env = os.environ.get("SSLMEM_DATA")
    return Path(env).expanduser() if env else repo_dir() / "data"


def runs_root(runs_root: str | os.PathLike | None = None) -> Path:
    """The run cache root: argument, else $SSLMEM_RUNS, else <repo>/runs."""
    if runs_root is not None:
        return Path(runs_root).expanduser()
    env = os.environ.get("SSLMEM_RUNS")
    return Path(env).expanduser() if env else repo_dir() / "runs"


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Why: a crash or Ctrl-C in the middle of a write must never leave a truncated file where a
    later run would read it as a valid cache entry. ``os.replace`` is atomic on one filesystem.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


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
        "wall_s": wall_s,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }
