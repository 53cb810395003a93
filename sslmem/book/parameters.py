"""A chapter's parameters: a params file, per-notebook values, their checks before a kernel runs.

Why a module: papermill only warns about an injected parameter a notebook does not declare, and a
wrong value would surface minutes later as a traceback inside a kernel; here every value is
checked against the notebook's declared names and the config's field specs first.
"""

from __future__ import annotations

import json
from pathlib import Path

from sslmem.errors import SSLMemError
from sslmem.pipeline.config import FIELDS

CHAPTERS = ("01_definition", "02_atypical_examples", "03_ssl_vs_supervised",
            "04_generalization", "05_dejavu", "06_privacy", "07_precision", "08_proxies")
# executed in this order: the glance page (the book's landing page) collects the chapters'
# verdicts from their executed pages, so it runs last
NOTEBOOKS = (*CHAPTERS, "00_glance")


def load_params(params) -> dict:
    """A params dict from a dict, a .yml/.yaml/.json path, or None."""
    if params is None:
        return {}
    if isinstance(params, dict):
        return dict(params)
    path = Path(params)
    if not path.is_file():
        raise SSLMemError(f"params file {path} not found")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as err:  # noqa: BLE001 - any parse error is the user's to fix
        raise SSLMemError(f"cannot parse params file {path}: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SSLMemError(f"params file {path} must hold a mapping, got {type(data).__name__}")
    return {_key(k): v for k, v in data.items()}


def _key(key) -> str:
    """A top-level params key as a string: YAML reads ``01:`` as the int 1, meaning ``'01'``."""
    if isinstance(key, int) and not isinstance(key, bool) and key >= 0:
        return f"{key:02d}"
    return str(key)


def _per_notebook(key: str) -> bool:
    return key in NOTEBOOKS or key.split("_")[0].isdigit()


def declared_parameters(nb) -> list[str]:
    """Names assigned at the top level of the notebook's ``parameters`` cell."""
    import ast

    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse(cell.source)
            return [t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                    for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                    if isinstance(t, ast.Name) and not t.id.startswith("_")]
    return []


def parameters_for(name: str, declared: list[str], params: dict, *, profile: str,
                   dataset: str | None, methods: list[str] | None) -> dict:
    """The parameters to inject into notebook ``name``.

    Global keys (and --dataset/--methods) go only to notebooks that declare them; a per-notebook
    dict is passed as is, so a misspelled name reaches the notebook's check and fails loudly.
    """
    out: dict = {"profile": profile}
    for key, value in params.items():
        if _per_notebook(key):
            continue
        if key in declared:
            out[key] = value
    if dataset is not None:
        out["dataset"] = dataset
    if methods:
        if "methods" in declared:
            out["methods"] = list(methods)
        elif "method" in declared:
            out["method"] = methods[0]
    for key, value in params.items():
        if key == name or (key.split("_")[0].isdigit() and name.startswith(f"{key}_")):
            if not isinstance(value, dict):
                raise SSLMemError(f"params for {key} must be a mapping of parameter names")
            out.update({str(k): v for k, v in value.items()})
    return out


def check_parameters(name: str, declared: list[str], values: dict) -> None:
    """Refuse, before a kernel starts, a parameter ``name`` does not declare or a value a config
    field would refuse (the notebooks hand these names to ``Config`` as they are)."""
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise SSLMemError(f"notebook {name}: unknown parameter(s) {', '.join(unknown)}; valid "
                          f"parameters: {', '.join(sorted(declared))}")
    try:
        for key, value in values.items():
            if value is None:
                continue  # the notebooks' "the profile's value"
            if key in FIELDS:
                FIELDS[key](key, value)
            elif key == "sizes":
                _check_sizes(value)
            elif key == "methods":
                if not isinstance(value, (list, tuple)) or not value:
                    raise SSLMemError(f"methods must be a list of method names, got {value!r}")
                for method in value:
                    FIELDS["method"]("method", method)
    except SSLMemError as err:
        raise SSLMemError(f"notebook {name}: {err}") from None


def _check_sizes(sizes) -> None:
    subsets = ("shared", "candidate", "independent", "extra")
    if not isinstance(sizes, dict) or set(sizes) - set(subsets):
        raise SSLMemError(f"sizes must map some of {', '.join(subsets)} to a count or a "
                          f"fraction, got {sizes!r}")
    for key, value in sizes.items():
        FIELDS[key](key, value)


def _check_global_keys(params: dict, declared: dict[str, list[str]]) -> None:
    every = sorted({k for names in declared.values() for k in names})
    for key in params:
        if not _per_notebook(key) and key not in every:
            raise SSLMemError(f"unknown parameter {key!r} in params; notebooks declare: "
                              + ", ".join(every))
        if _per_notebook(key) and not any(n == key or n.startswith(f"{key}_")
                                          for n in NOTEBOOKS):
            raise SSLMemError(f"params key {key!r} names no notebook; notebooks: "
                              + ", ".join(NOTEBOOKS))
