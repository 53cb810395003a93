"""The result cache behind every experiment: a result is read from the store, or computed once.

Why a base class of its own: what makes a result trustworthy (a lock per result, a re-check once
the lock is held, an atomic write with provenance, a corrupt file recomputed with a warning or, when
only reading, refused with the command that recomputes it) is the same for scores, probes,
histories and ensemble members, and independent of how any of them is computed.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from sslmem.errors import SSLMemError, read_error
from sslmem.io import provenance, write_json
from sslmem.pipeline.config import CONFIG_VERSION
from sslmem.pipeline.store import (
    CorruptResult,
    MissingResult,
    lock,
    read_frame,
    read_record,
    stored_provenance,
    write_frame,
    write_record,
)


class ResultCache:
    """Stored results of one configuration (``self.cfg``, ``self.store_dir``, ``self.wall``,
    ``self.sources``, ``self.results_only``), computed under a lock when missing."""

    def _run_info(self) -> dict:
        return {"version": CONFIG_VERSION, "config": self.cfg.to_dict(),
                "data_fingerprint": self.data_fingerprint,
                "split_fingerprint": self.split.fingerprint()}

    def _check_dir(self, folder: Path) -> None:
        """Write ``run.json``, or refuse a folder that a different sslmem version wrote.

        An unparsable ``run.json`` (e.g. truncated) is informational only (the key already
        hashes the configuration), so it is rewritten; a readable one of another version is
        refused, since its files may mean something else.
        """
        info_path = folder / "run.json"
        try:
            text = info_path.read_bytes()
        except FileNotFoundError:
            text = None
        except OSError as err:
            raise read_error(info_path, err) from None
        if text is not None:
            try:
                version = json.loads(text).get("version")
            except (ValueError, AttributeError):  # truncated, binary, not an object
                version = None
            if version is not None and version != CONFIG_VERSION:
                raise SSLMemError(
                    f"{folder} was written by an incompatible sslmem version ({version} != "
                    f"{CONFIG_VERSION}); move it away or set SSLMEM_RUNS/SSLMEM_RESULTS elsewhere")
            if version is not None:
                return
        write_json(folder / "run.json", self._run_info())

    # ---- the store -----------------------------------------------------------------------------
    def _read(self, reader, path: Path):
        """A stored result, or None when it must be computed (absent, or proven corrupt).

        Reading only (``results_only``), a corrupt result raises :class:`CorruptResult` (the
        plan lists its unit as damaged); the advice names $SSLMEM_RESULTS_ONLY only when that
        variable is what forbids computing.
        """
        try:
            return reader(path)
        except CorruptResult as err:
            if self.results_only:
                how = ("unset SSLMEM_RESULTS_ONLY" if self.cfg.results_only is None  # the env
                       else f"`sslmem plan --profile {self.cfg.profile} --run` recomputes "
                       "damaged results")
                raise CorruptResult(f"{err}. Restore it (git checkout -- {path}, where the "
                                    f"store is committed) or recompute it ({how})") from None
            warnings.warn(f"{err}; recomputing it", stacklevel=4)
            return None

    def _require_compute(self, what: str, path: Path) -> None:
        if self.results_only:
            raise MissingResult(
                f"{what} is not in the results store ({path}); compute it with `sslmem plan "
                f"--profile {self.cfg.profile} --run` (or run without SSLMEM_RESULTS_ONLY)")

    def _cached(self, name: str, what: str, compute: Callable, *, table: bool):
        """The stored result ``name``, else ``compute()`` under a lock, stored atomically."""
        path = self.store_dir / (f"{name}.csv.gz" if table else f"{name}.json")
        reader = read_frame if table else read_record
        found = self._read(reader, path)
        if found is None:
            self._require_compute(what, path)
            with lock(self.store_dir.parent / ".locks" / f"{self.store_dir.name}-{name}.lock"):
                found = self._read(reader, path)  # another process may have finished it
                if found is None:
                    before, t0 = dict(self.wall), time.perf_counter()
                    value = compute()
                    wall = {k: v for k, v in self.wall.items() if before.get(k) != v}
                    prov = self.provenance(wall={**wall, "total": time.perf_counter() - t0})
                    self._check_dir(self.store_dir)
                    writer = write_frame if table else write_record
                    found = writer(path, value, prov), prov
        self.sources[name] = found[1].get("provenance", found[1]) if table else found[1]
        return found[0]

    def provenance(self, wall: dict | None = None) -> dict:
        """Config, commit, versions, device and wall seconds (``wall``: of one result, whose
        ``total`` includes any training it needed; default: everything this object did)."""
        settings = sorted(set(self.train_settings.values()))
        return provenance(self.cfg.to_dict(), self.device,
                          wall_s=dict(self.wall) if wall is None else wall,
                          run_dir=str(self.run_dir), profile=self.cfg.profile,
                          # how the encoders trained by this process ran (sslmem.train.calibrate);
                          # encoders from the run cache name theirs in their stored history
                          train_setting="; ".join(settings) if settings else None,
                          data_fingerprint=self.data_fingerprint,
                          split_fingerprint=self.split.fingerprint())

    def result_provenance(self) -> dict:
        """Provenance of the results this experiment served (scores first), for a page banner.

        Before it has served any (a page drawing its banner first), that of this configuration's
        stored scores or ensemble members: the checkout rendering the page computed nothing.
        """
        for name, meta in self.sources.items():
            if name.startswith("scores-"):
                return meta
        if self.sources:
            return next(iter(self.sources.values()))
        return stored_provenance(self.store_dir) or self.provenance()
