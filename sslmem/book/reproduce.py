"""Execute the section notebooks into the book: jupytext -> papermill -> ``book/<name>.ipynb``.

Why a runner instead of ``jupyter-book``'s own execution: the book build must never retrain (it
renders with ``execute_notebooks: off``), parameters must be checked (papermill only warns about
unknown ones), and a failing notebook must not destroy the last good page. So each notebook is
executed into a temporary file, and only a successful run replaces ``book/<name>.ipynb``; the
first failure (or a cell timeout, Ctrl-C, SIGTERM) stops the run with one line naming the
notebook, and the page stays as it was.

Parameters are checked here, before a kernel starts: names against the notebook's ``parameters``
cell (read with ``ast``), values of config fields against ``sslmem.pipeline.config.FIELDS``.
The runner injects them itself (papermill's ``parameterize_notebook``) rather than through
``execute_notebook(parameters=...)``: papermill's own check reads the cell with a regex that
gives up on a line whose comment holds ``=`` (``x = None  # None = default``) and then warns
"Passed unknown parameter" for a parameter the notebook does declare. The chapters' cells are
written for that regex (``name: type = value  # help``, no ``=`` in a comment), so papermill
itself (``papermill --help-notebook``, ``-p``) reads them whole too.

An executed page is written only when it changed (``write_page``): cell ids hash their sources,
papermill's timings are dropped, and values glued as volatile (the page's own render time) do not
count as a change, so rendering an unchanged book leaves a clean checkout clean.

Usage::

    python -m sslmem.book.reproduce --profile stored          # the book from the committed store
    python -m sslmem.book.reproduce --profile tiny --only 01 --dataset fashionmnist
    python -m sslmem.book.reproduce --params my.yml --methods simclr,byol

``--profile stored`` picks the best profile whose every result is in the results store and
executes the notebooks with ``results_only`` (a missing result is an error, nothing is trained).
A page is never replaced by one from a lesser profile (paper > tiny) unless ``--force``.

A params file (YAML or JSON) maps notebook names (``01_definition`` or the prefix ``01``, quoted
or not: YAML reads an unquoted ``01`` as the number 1) to parameter dicts; other top-level keys
apply to every notebook that declares them.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from sslmem.book.pages import write_page
from sslmem.book.parameters import (
    NOTEBOOKS,
    _check_global_keys,
    check_parameters,
    declared_parameters,
    load_params,
    parameters_for,
)
from sslmem.errors import SSLMemError, command_line, one_line, read_error, unreadable
from sslmem.io import stderr_to, write_error
from sslmem.pipeline.config import FIELDS, PROFILES
from sslmem.pipeline.validate import OneLineParser, name_list, positive_int

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
BOOK_DIR = NOTEBOOK_DIR.parent / "book"
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
# papermill's own cell and the validation cell are plumbing: hide them in the rendered book
HIDE_TAGS = {"injected-parameters": "remove-cell"}


def resolve_profile(profile: str) -> str:
    """'stored' = the best profile the results store holds completely; 'auto' = 'paper' when
    CUDA is available, else 'tiny'."""
    choices = ("stored", "auto", *PROFILES)
    if profile not in choices:
        raise SSLMemError(f"unknown profile {profile!r}; choose one of: {', '.join(choices)}")
    if profile == "auto":
        import torch

        return "paper" if torch.cuda.is_available() else "tiny"
    if profile == "stored":
        from sslmem.pipeline.store import results_root
        from sslmem.pipeline.units import complete_profiles

        why: dict[str, str] = {}
        done = complete_profiles(why)
        if not done:
            found = "; ".join(f"{name}: {reason}" for name, reason in why.items())
            raise SSLMemError(
                f"the results store {results_root()} holds no profile that can be rendered "
                f"here ({found or 'it holds no profile at all'}); "
                + ("provide that data, or " if why else "")
                + "compute a profile with `make reproduce PROFILE=tiny` (or sslmem plan "
                "--profile tiny --run)")
        return done[0]
    return profile


def page_profile(path: Path) -> str | None:
    """The profile an executed page was made with (its notebook metadata), if any."""
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except FileNotFoundError:
        return None
    except Exception as err:  # noqa: BLE001 - a damaged page has no profile to protect
        if unreadable(err):  # but one we cannot read is not ours to replace
            raise read_error(path, err) from None
        return None
    return nb.metadata.get("sslmem", {}).get("profile")


def lesser(profile: str, than: str | None) -> bool:
    """True when ``profile`` ranks below ``than`` (paper > tiny; unknown ranks lowest)."""
    if than not in PROFILES:
        return False
    return profile not in PROFILES or PROFILES.index(profile) > PROFILES.index(than)


def select(only=None) -> list[str]:
    """Notebook names from ``--only 01,03`` (prefixes or full names); all when empty."""
    if not only:
        return list(NOTEBOOKS)
    if isinstance(only, str):
        only = [s for s in only.split(",") if s]
    chosen = []
    for item in only:
        matches = [n for n in NOTEBOOKS if n == item or n.startswith(f"{item}_")]
        if len(matches) != 1:
            raise SSLMemError(f"unknown notebook {item!r}; choose from: {', '.join(NOTEBOOKS)} "
                              "(or their prefixes 01, 02, ...)")
        chosen.append(matches[0])
    if not chosen:
        raise SSLMemError(f"--only names no notebook; choose from: {', '.join(NOTEBOOKS)}")
    return chosen


def _hide_plumbing(nb) -> None:
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        for tag, hide in HIDE_TAGS.items():
            if tag in tags and hide not in tags:
                cell.metadata.setdefault("tags", []).append(hide)


def _kernel_env() -> dict:
    """Environment for the kernel: inline figures (never Agg), no progress bars."""
    return {"MPLBACKEND": INLINE_BACKEND, "TQDM_DISABLE": "1"}


def _kernel_manager(folder: Path):
    """A kernel manager whose channels are Unix sockets in ``folder``, not TCP ports.

    Why: the book must render on a machine without a network, including inside a network
    namespace (``unshare -n make book``), whose loopback interface is down: a kernel on TCP
    then never answers. Unix sockets need no interface at all (POSIX; elsewhere, TCP)."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import CaselessStrEnum, Unicode

    if os.name != "posix":
        return AsyncKernelManager

    class UnixSocketKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)
        ip = Unicode(str(folder / "kernel"), config=True)

    return UnixSocketKernelManager


_RUNNING: list[str] = []  # the notebook being executed, for the message of an interruption


def execute(name: str, out_dir: Path, parameters: dict, *, timeout: int | None = None,
            results_only: bool = False, log=print) -> Path:
    """Execute one notebook; on success atomically replace ``out_dir/<name>.ipynb``."""
    import jupytext
    import nbformat
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    source = NOTEBOOK_DIR / f"{name}.py"
    if not source.is_file():
        raise SSLMemError(f"notebook source {source} not found")
    nb = parameterize_notebook(load_notebook_node(jupytext.read(source)), parameters,
                               report_mode=False, kernel_name="python3", language="python")
    target = out_dir / f"{name}.ipynb"
    work = Path(tempfile.mkdtemp(prefix=f"sslmem-{name}-"))
    tmp = work / f"{name}.ipynb"
    env = {**_kernel_env(), **({"SSLMEM_RESULTS_ONLY": "1"} if results_only else {})}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    _RUNNING[:] = [name]
    t0 = time.perf_counter()
    kept = f"the executed notebook is kept at {tmp}; {target} was left unchanged"
    try:
        with stderr_to(work / "kernel.log"):
            papermill.execute_notebook(nb, str(tmp), parameters=None, kernel_name="python3",
                                       progress_bar=False, log_output=False, cwd=str(work),
                                       execution_timeout=timeout, report_mode=False,
                                       kernel_manager_class=_kernel_manager(work))
    except PapermillExecutionError as err:
        cell_src = (err.source or "").strip().splitlines()
        first = cell_src[0] if cell_src else ""
        raise SSLMemError(
            f"notebook {name} failed in cell {err.exec_count} (`{first[:80]}`): "
            f"{err.ename}: {one_line(err.evalue)}; {kept}") from None
    except CellTimeoutError:
        raise SSLMemError(f"notebook {name}: a cell ran longer than the {timeout} s timeout "
                          f"(--timeout); {target} was left unchanged") from None
    except RuntimeError as err:  # the kernel never answered (nbclient raises no subclass)
        if "Kernel didn't respond" not in str(err):
            raise
        raise SSLMemError(f"notebook {name}: its kernel did not start ({one_line(err)}; its "
                          f"log: {work / 'kernel.log'}); {target} was left unchanged") from None
    except DeadKernelError as err:
        raise SSLMemError(f"notebook {name}: its kernel died ({one_line(err)[:200]}), e.g. out "
                          f"of memory (its log: {work / 'kernel.log'}); {target} was left "
                          "unchanged") from None
    except BaseException:  # Ctrl-C, SIGTERM: nothing of this run is kept
        shutil.rmtree(work, ignore_errors=True)
        raise
    else:
        _RUNNING.clear()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    executed = nbformat.read(tmp, as_version=4)
    _hide_plumbing(executed)
    executed.metadata["sslmem"] = {"profile": parameters.get("profile"),
                                   "results_only": results_only}
    changed = write_page(executed, target)
    shutil.rmtree(work, ignore_errors=True)
    log(f"{name}: executed in {time.perf_counter() - t0:.0f} s -> {target}"
        + ("" if changed else " (unchanged: the page was left as it was)"))
    return target


def reproduce(profile: str = "auto", params=None, dataset: str | None = None,
              methods=None, only=None, out: str | os.PathLike = BOOK_DIR,
              timeout: int | None = None, results_only: bool | None = None,
              force: bool = False, log=print) -> list[Path]:
    """Execute the chosen notebooks in order; stop at the first failure (SSLMemError).

    ``results_only`` (default: True for ``profile='stored'``): serve stored results, never train.
    A page made with a better profile than ``profile`` is kept unless ``force``.
    """
    import jupytext

    if results_only is None:
        results_only = profile == "stored"
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise SSLMemError(f"--out {out_dir} is not a folder (a file of that name exists)")
    if isinstance(methods, str):
        methods = [m for m in methods.split(",") if m]
    for method in methods or []:
        FIELDS["method"]("method", method)
    if dataset is not None:
        FIELDS["dataset"]("dataset", dataset)
    params = load_params(params)
    names = select(only)
    declared = {n: declared_parameters(jupytext.read(NOTEBOOK_DIR / f"{n}.py")) for n in names}
    _check_global_keys(params, declared)
    profile = resolve_profile(profile)
    values = {name: parameters_for(name, declared[name], params, profile=profile,
                                   dataset=dataset, methods=methods) for name in names}
    for name in names:
        if "pages" in declared[name]:  # the glance page reads the pages executed beside it
            values[name].setdefault("pages", str(out_dir.resolve()))
        check_parameters(name, declared[name], values[name])
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(out_dir / names[0], err) from None
    log(f"profile {profile}: executing {', '.join(names)} into {out_dir}/")
    done = []
    for name in names:
        existing = page_profile(out_dir / f"{name}.ipynb")
        if not force and lesser(profile, existing):
            log(f"{name}: kept the {existing}-profile page (this run is {profile}; --force "
                "replaces it)")
            continue
        done.append(execute(name, out_dir, values[name], timeout=timeout,
                            results_only=results_only, log=log))
    return done


def main(argv=None) -> int:
    parser = OneLineParser(
        prog="python -m sslmem.book.reproduce",
        description="Execute the section notebooks with papermill into the book folder.")
    parser.add_argument("--profile", default="stored", choices=("stored", "auto", *PROFILES),
                        help="stored (default: the best profile the results store holds, "
                        "rendered without training), a profile name (computes what the store "
                        "lacks), or auto (paper if CUDA, else tiny)")
    parser.add_argument("--params", help="YAML/JSON file of notebook parameters")
    parser.add_argument("--dataset", help="dataset for every notebook (e.g. fashionmnist)")
    parser.add_argument("--methods", type=name_list, help="comma-separated SSL methods (03 "
                        "compares all; the other notebooks use the first)")
    parser.add_argument("--only", type=name_list,
                        help="comma-separated notebooks, e.g. 01,02")
    parser.add_argument("--out", default=str(BOOK_DIR),
                        help="output folder (default: the checkout's book/)")
    parser.add_argument("--timeout", type=positive_int, default=None,
                        help="per-cell timeout in seconds")
    parser.add_argument("--results-only", action="store_true", default=None,
                        help="never train or score: a result missing from the store is an error "
                        "(the default with --profile stored)")
    parser.add_argument("--force", action="store_true",
                        help="replace pages even when they come from a better profile")
    args = parser.parse_args(argv)

    def resume() -> str:
        page = f"book page {_RUNNING[0]} was left unchanged, " if _RUNNING else ""
        return f"{page}pages already executed are kept; rerun to continue"

    with command_line(parser.prog, resume, error_code=1) as status:
        reproduce(args.profile, params=args.params, dataset=args.dataset, methods=args.methods,
                  only=args.only, out=args.out, timeout=args.timeout,
                  results_only=args.results_only, force=args.force)
    return status.code


if __name__ == "__main__":
    sys.exit(main())
