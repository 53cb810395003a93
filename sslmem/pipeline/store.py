"""The results store: small, committed, content-hashed result files that outlive the encoders.

Why: encoders are large and live only on the machine that trained them (a lent GPU keeps nothing,
a ResNet-18 checkpoint is 45 MB); scores, curves, probes and histories are a few MB and are what
the book shows. So every result is written here, keyed by the same configuration hash as the run
cache, and a chapter can be executed from the store alone, anywhere, without retraining.

Layout (``results_root()`` = argument, else ``$SSLMEM_RESULTS``, else ``<repo>/results``)::

    <root>/<profile>/<dataset>/<method>-<training key>/
        run.json                          the training configuration and data fingerprint
        history-f-seed0.csv.gz (+ .json)  per-epoch loss, lr, seconds, kNN monitor
        scores-<key>.csv.gz (+ .json)     per-point L_f, L_g, score_se, atypicality
        epochs-<key>.csv.gz (+ .json)     mean score per subset and snapshot epoch
        probe-<key>.json, retrain-<key>.json, labelmem-<key>.csv.gz (+ .json)

A table is gzip CSV (byte-reproducible: fixed float format, gzip mtime 0) with a JSON sidecar
holding its SHA-256, row count and provenance; the sidecar is written last, so it marks a
complete entry. A record is one JSON file holding its result, the result's SHA-256 and provenance.

Reading distinguishes three cases, and never deletes anything:
  * absent (or a table without its sidecar: an interrupted write) -> ``None``: compute it;
  * unreadable (permissions, I/O errors) -> ``SSLMemError``: nothing is touched;
  * present but proven corrupt (bad hash, unparsable) -> ``CorruptResult``: the caller may
    recompute and overwrite it (atomically), or stop when it only reads (``results_only``).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
from pathlib import Path

import pandas as pd

from sslmem.errors import CorruptFile, SSLMemError
from sslmem.io import atomic_path, repo_dir, write_json

STORE_VERSION = 1
FLOAT_FORMAT = "%.9g"  # float32 round-trips exactly; the file stays byte-reproducible


class MissingResult(SSLMemError):
    """A result that is not in the store while computing is not allowed (``results_only``)."""


class CorruptResult(CorruptFile):
    """A stored result whose bytes fail their hash or cannot be parsed."""


def results_root(root: str | os.PathLike | None = None) -> Path:
    """The store root: argument, else ``$SSLMEM_RESULTS``, else ``<repo>/results``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("SSLMEM_RESULTS")
    return Path(env).expanduser() if env else repo_dir() / "results"


def results_only_default() -> bool:
    """``$SSLMEM_RESULTS_ONLY=1``: serve stored results, never train or score (the book build)."""
    return os.environ.get("SSLMEM_RESULTS_ONLY", "").strip().lower() in ("1", "true", "yes")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def _read_bytes(path: Path) -> bytes | None:
    """The file's bytes, ``None`` when absent; an unreadable file stops with a message."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise SSLMemError(f"cannot read stored result {path} ({type(err).__name__}: "
                          f"{err.strerror or err}); fix its permissions or the disk — nothing "
                          "was changed") from None


def frame_bytes(frame: pd.DataFrame) -> bytes:
    """Deterministic gzip CSV bytes of ``frame`` (same frame -> same bytes -> same hash)."""
    text = frame.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


def write_frame(path: Path, frame: pd.DataFrame, provenance: dict) -> pd.DataFrame:
    """Write a table and then its sidecar, each atomically; return the frame as read back.

    Returning the read-back frame means a caller never sees more precision than a later reader
    of the store would: a page executed right after computing equals one executed from the store.
    """
    path = Path(path)
    data = frame_bytes(frame)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    write_json(_sidecar(path), {"store_version": STORE_VERSION, "sha256": sha256_bytes(data),
                                "rows": len(frame), "columns": list(frame.columns),
                                "provenance": provenance})
    return _parse_frame(path, data)


def _sidecar(path: Path) -> Path:
    name = path.name.removesuffix(".csv.gz")
    return path.with_name(name + ".json")


def _parse_frame(path: Path, data: bytes) -> pd.DataFrame:
    try:
        return pd.read_csv(io.BytesIO(gzip.decompress(data)))
    except (OSError, EOFError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise CorruptResult(f"stored table {path} cannot be parsed ({err})") from None


def read_frame(path: Path) -> tuple[pd.DataFrame, dict] | None:
    """(table, sidecar) from the store; ``None`` when absent or never completed.

    Raises:
        SSLMemError: the file exists but cannot be read (nothing is touched).
        CorruptResult: the bytes fail the sidecar's hash or row count, or cannot be parsed.
    """
    path = Path(path)
    meta_raw = _read_bytes(_sidecar(path))
    if meta_raw is None:
        return None  # absent, or the writer stopped before its commit marker
    data = _read_bytes(path)
    if data is None:
        raise CorruptResult(f"stored table {path} is missing but its sidecar exists")
    try:
        meta = json.loads(meta_raw)
        expected = meta["sha256"]
    except (ValueError, KeyError, TypeError) as err:
        raise CorruptResult(f"sidecar of {path} is not valid ({err})") from None
    if sha256_bytes(data) != expected:
        raise CorruptResult(f"stored table {path} fails its SHA-256 (edited or damaged)")
    frame = _parse_frame(path, data)
    if len(frame) != meta.get("rows"):
        raise CorruptResult(f"stored table {path} has {len(frame)} rows, its sidecar says "
                            f"{meta.get('rows')}")
    return frame, meta


def write_record(path: Path, result, provenance: dict):
    """Write a JSON result with its hash and provenance atomically; return it as read back."""
    payload = json.loads(_canonical(result))
    write_json(path, {"store_version": STORE_VERSION, "sha256": sha256_bytes(_canonical(payload)),
                      "result": payload, "provenance": provenance})
    return payload


def stored_provenance(folder: Path, prefixes=("scores-", "member-")) -> dict | None:
    """The provenance of the first stored result in ``folder`` whose name starts with one of
    ``prefixes`` (in that order), read from its sidecar; ``None`` when there is none.

    Why: a page may describe its results before it has read any; it must name where they were
    computed, not the checkout that renders it. Unreadable files are passed over (a banner never
    stops a page; reading the result itself checks its hash).
    """
    folder = Path(folder)
    for prefix in prefixes:
        for meta in sorted(folder.glob(f"{prefix}*.json")) if folder.is_dir() else ():
            try:
                prov = json.loads(meta.read_text()).get("provenance")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(prov, dict) and prov.get("git_commit"):
                return prov
    return None


def read_record(path: Path) -> tuple[object, dict] | None:
    """(result, provenance) of a JSON record; ``None`` when absent; errors as :func:`read_frame`."""
    path = Path(path)
    raw = _read_bytes(path)
    if raw is None:
        return None
    try:
        record = json.loads(raw)
        result, expected = record["result"], record["sha256"]
    except (ValueError, KeyError, TypeError) as err:
        raise CorruptResult(f"stored record {path} cannot be parsed ({err})") from None
    if sha256_bytes(_canonical(result)) != expected:
        raise CorruptResult(f"stored record {path} fails its SHA-256 (edited or damaged)")
    return result, record.get("provenance", {})


_HELD: dict[str, int] = {}  # lock files this process holds, with their nesting depth


@contextlib.contextmanager
def lock(path: Path):
    """An exclusive advisory lock on ``path`` (created if needed), released on exit.

    Why: two processes of a scheduler (``xargs -P``, a SLURM array) may reach the same unit, or
    a unit and its dependency; the second waits and then finds the result stored. Re-entrant
    within one process (``flock`` on a second descriptor of the same file would deadlock).
    """
    import fcntl

    path = Path(path)
    key = str(path.resolve()) if path.parent.exists() else str(path)
    if _HELD.get(key):
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")  # noqa: SIM115 - held for the duration of the block
    except OSError as err:
        raise SSLMemError(f"cannot create lock file {path} ({type(err).__name__}: "
                          f"{err.strerror or err}); is the folder writable?") from None
    key = str(path.resolve())
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        _HELD[key] = 1
        yield
    finally:
        _HELD.pop(key, None)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def store_size(root: Path) -> int:
    """Total bytes of the files under ``root`` (lock files excluded)."""
    root = Path(root)
    if not root.exists():
        return 0
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and ".locks" not in p.parts)
