"""Small helpers the section notebooks call: parameter checks, glue, the smoke-run banner.

Why here and not inline: papermill only *warns* about an injected parameter the notebook does not
declare (a typo would silently run the defaults), myst-nb's ``{glue:text}`` breaks on NumPy
scalars, and every notebook needs the same "this is not the paper's setup" note. Keeping these
three in one module makes the notebooks read like the paper, not like plumbing.
"""

from __future__ import annotations

import inspect
import json
import numbers
import os
import time

from sslmem.errors import SSLMemError

_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython", "open"}


def _is_parameter(value) -> bool:
    """Papermill injects literals; modules, functions and classes are never parameters."""
    return not (inspect.ismodule(value) or inspect.isroutine(value) or inspect.isclass(value))


def parameter_names(namespace: dict, declared) -> list[str]:
    """The declared names that are parameters (imports made before the cell excluded)."""
    return sorted(k for k in declared if k in namespace and k not in _IPYTHON_NAMES
                  and not k.startswith("_") and _is_parameter(namespace[k]))


def check_parameters(namespace: dict, declared) -> dict:
    """Refuse parameters papermill injected that the ``parameters`` cell does not declare.

    Call right after the parameters cell, which ends with
    ``_declared = [k for k in dir() if not k.startswith("_")]``. Returns the parameters as a dict
    (for the provenance cell). Raises SSLMemError naming the unknown and the valid names.
    """
    valid = parameter_names(namespace, declared)
    unknown = sorted(k for k, v in namespace.items()
                     if not k.startswith("_") and k not in declared and k not in _IPYTHON_NAMES
                     and _is_parameter(v))
    if unknown:
        raise SSLMemError(f"unknown notebook parameter(s) {', '.join(unknown)}; valid "
                          f"parameters: {', '.join(valid)}")
    return {k: namespace[k] for k in valid}


def overrides(**values) -> dict:
    """Config overrides from notebook parameters: ``None`` means "keep the profile's value"."""
    out = {k: v for k, v in values.items() if v is not None}
    if "seeds" in out and not isinstance(out["seeds"], int):
        out["seeds"] = tuple(out["seeds"])
    return out


def plain(value):
    """A Python int/float/str from a NumPy or torch scalar (glue and JSON need plain values)."""
    if isinstance(value, bool):
        return value
    if hasattr(value, "item") and not isinstance(value, (int, float, str)):
        value = value.item()
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def glue_number(name: str, value, volatile: bool = False) -> None:
    """Glue a number for ``{glue:text}`name:.3f``` in the markdown (never shown in place).

    ``volatile``: the number measures this execution (e.g. how long the page took to render),
    not the results; the book runner does not rewrite a page in which nothing else changed
    (``sslmem.book.pages.write_page``), so re-rendering an unchanged book leaves git clean.
    Returns None so that a call ending a cell adds no output."""
    from myst_nb import glue

    value = plain(value)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise SSLMemError(f"glue_number({name!r}) needs a number, got {type(value).__name__}")
    if isinstance(value, float) and abs(value) < 1e-12:
        value = 0.0  # float noise would render as -0.00
    _log_glue(name, value)
    if not volatile:
        glue(name, value, display=False)
        return
    import IPython
    from myst_nb.ext.glue import GLUE_PREFIX

    # myst_nb's glue, with a mark on the output that only this execution gave its value
    bundle, metadata = IPython.core.formatters.format_display_data(value)
    metadata["scrapbook"] = dict(name=name, mime_prefix=GLUE_PREFIX)
    metadata[VOLATILE_KEY] = {"volatile": True}
    IPython.display.display({GLUE_PREFIX + k: v for k, v in bundle.items()}, raw=True,
                            metadata=metadata)


VOLATILE_KEY = "sslmem"  # output metadata {"sslmem": {"volatile": true}}: see glue_number


class _Text(str):
    """A string whose repr is itself, so ``{glue:text}`` shows it without quotes."""

    def __repr__(self) -> str:
        return str(self)


def glue_text(name: str, value) -> None:
    """Glue a short string (a method name, a dataset name) for ``{glue:text}`name```."""
    from myst_nb import glue

    _log_glue(name, _Text(value))
    glue(name, _Text(value), display=False)


def glue_all(values: dict) -> None:
    """Glue each value of a chapter module's result: a string as text, a number as a number."""
    for name, value in values.items():
        (glue_text if isinstance(value, str) else glue_number)(name, value)


GLUE_LOG = "SSLMEM_GLUE_LOG"


def _log_glue(name: str, value) -> None:
    """Append (name, text) of a glued value to the file named by $SSLMEM_GLUE_LOG, if set.

    Why: a test that executes the committed pages (nbval) can then compare every number they
    glue with the committed outputs in the same run, instead of executing the book twice.
    The text is the text/plain that myst_nb's glue stores for the value.
    """
    path = os.environ.get(GLUE_LOG)
    if not path:
        return
    import IPython

    text = IPython.core.formatters.format_display_data(value)[0].get("text/plain")
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps({"name": name, "text": text}) + "\n")


def glue_markdown(name: str, text: str) -> None:
    """Glue MyST markdown (e.g. an admonition) for a ``{glue:md}`` directive with
    ``:format: myst``: a page can show, under its title, what its later cells compute."""
    from IPython.display import Markdown
    from myst_nb import glue

    _log_glue(name, Markdown(text))
    glue(name, Markdown(text), display=False)


def show_table(frame, formats: dict | None = None) -> None:
    """Display a DataFrame as a compact, padded HTML table without its index.

    Headers and cells are HTML-escaped: a header such as "p S_I<S_S" lost its "<S_S" to the
    browser, which read it as a tag. The HTML is deterministic (its CSS id is a hash of the
    table), so re-executing a page from the same stored results gives the same output, which
    nbval and git diffs can compare.
    """
    import hashlib

    from IPython.display import HTML, display

    uid = hashlib.sha256(frame.to_json().encode()).hexdigest()[:10]
    styler = frame.style.hide(axis="index").set_uuid(uid).set_table_styles(
        [{"selector": "th, td", "props": "padding: 3px 12px; text-align: left;"}])
    styler = styler.format(escape="html", na_rep="–").format_index(escape="html", axis=1)
    if formats:
        styler = styler.format(formats, na_rep="–", escape="html")
    display(HTML(styler.to_html()))


PROFILE_NOTES = {
    "paper": ("note", "Paper profile: the paper's setup (CIFAR-10; 40,000 / 5,000 / 5,000 / "
              "5,000 points per subset; ResNet-18), with the epochs each chapter states."),
    "laptop": ("note", "Laptop profile: reduced from the paper's setup (40,000 / 5,000 / 5,000 / "
               "5,000 points per subset, ResNet-18, long schedules) to run on 2 CPU cores. "
               "Effects are reported with their significance at this scale; their magnitudes "
               "need not match the paper's."),
    "tiny": ("warning", "**Smoke run on CPU (tiny profile): numbers are not the paper's.** "
             "A tiny configuration that runs in minutes without a GPU: it shows that the "
             "pipeline works end to end; the direction of an effect may or may not survive at "
             "this scale."),
}
METHOD_NAMES = {"simclr": "SimCLR", "byol": "BYOL", "simsiam": "SimSiam", "mae": "MAE",
                "dino": "DINO", "vicreg": "VICReg", "barlowtwins": "Barlow Twins",
                "supervised": "supervised"}
BACKBONE_NAMES = {"resnet9": "ResNet-9", "resnet18": "ResNet-18", "vit_tiny": "ViT-Tiny"}
DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "mnist": "MNIST",
                 "fashionmnist": "Fashion-MNIST", "svhn": "SVHN", "stl10": "STL-10"}


def method_name(method: str) -> str:
    """A method as the paper names it ("simclr" -> "SimCLR")."""
    return METHOD_NAMES.get(method, method)


def encoders_text(cfg) -> str:
    """An experiment's encoders in words: method, backbone, epochs."""
    return (f"{method_name(cfg.method)}, {BACKBONE_NAMES.get(cfg.backbone, cfg.backbone)}, "
            f"{cfg.epochs} epochs")


def data_text(exp) -> str:
    """An experiment's data in words, from its configuration (the key of its stored results):
    dataset, image size as trained, and the split or the ensemble's pool."""
    c, sp = exp.cfg, exp.split
    data = f"{DATASET_NAMES.get(c.dataset, c.dataset)} at {exp.train.image_size} px"
    if not len(sp.shared) and not len(sp.independent):  # an ensemble: a pool and a placebo
        return (f"{data}: a pool of {len(sp.candidate)} training images, each encoder on a "
                f"random half, and {len(sp.extra)} placebo test images")
    return (f"{data}: S_S {len(sp.shared)}, S_C {len(sp.candidate)}, S_I {len(sp.independent)}, "
            f"S_E {len(sp.extra)} points")


def scale_text(exp) -> str:
    """The encoders and data of an experiment's results (:func:`data_text`)."""
    return f"{encoders_text(exp.cfg)}; {data_text(exp)}"


def describe_design(ensemble) -> str:
    """An ensemble design in words ("SimCLR, 800 epochs, 128-image pool, shared init")."""
    c = ensemble.exp.cfg
    text = f"{method_name(c.method)}, {c.epochs} epochs, {len(ensemble.pool)}-image pool"
    if getattr(ensemble, "shared_init", False):
        text += ", shared init"
    if getattr(ensemble, "pair_init", False) and getattr(ensemble, "views", "") == "pair":
        text += f", init and {c.n_pairs} view pairs drawn per pair"
    if getattr(ensemble, "membership_seed", 0):
        text += f", membership draw {ensemble.membership_seed}"
    if (getattr(c, "augment_strength", 1.0) or 1.0) < 1.0:
        text += ", weak augmentation"
    if getattr(c, "align_lambda", 0.0):
        text += f", alignment regularizer λ = {c.align_lambda:g}"
    return text


def banner(profile: str, exp=None, parameters: dict | None = None,
           scale: str | None = None) -> None:
    """Say which profile produced the page's numbers and at what scale.

    The scale (``scale``, else :func:`scale_text` of ``exp``) comes from the configuration that
    keys the stored results; where, with which commits and in how long they were computed comes
    from their provenance, in the verdict box and at the end of the page
    (:mod:`sslmem.book.provenance`), once the page has read them.
    """
    from IPython.display import Markdown, display

    kind, text = PROFILE_NOTES.get(profile, ("note", f"Profile `{profile}`."))
    if scale is None and exp is not None:
        scale = scale_text(exp)
    if scale:
        text += (f" This page: {scale}. Results are read from the results store (the page "
                 "trains nothing when they are stored); the hardware, commits and times they "
                 "record are stated in the verdict box and at the end of the page.")
    if exp is not None and exp.train is not None and not getattr(exp, "data_checked", True):
        text += (f" The {exp.cfg.dataset} data is not on this machine: the page was rendered from "
                 "the store's data cards (the data's fingerprint, labels and the images shown) "
                 "without re-checking the data itself.")
    given = ", ".join(f"`{k}={v!r}`" for k, v in (parameters or {}).items() if v is not None)
    if given:
        text += f"\n\nParameters of this page: {given}."
    display(Markdown(f":::{{{kind}}}\n{text}\n:::\n"))


class Timer:
    """Wall-clock of a notebook, started in its first cell and glued at its end."""

    def __init__(self):
        self.start = time.perf_counter()

    def minutes(self) -> float:
        return (time.perf_counter() - self.start) / 60.0
