"""The book's verdicts: one structured statement per claim of the paper, decided by a rule.

Why a module: a chapter's answer to the paper was a sentence typed into its prose, and the
sentences drifted from the numbers (a probe accuracy that rose against the paper went unsaid).
Here each claim of the paper gets a :class:`Verdict`: the claim in the paper's words, the scale,
data and hardware of this run, the test, its effect with a 95 % interval, the smallest effect the
design could detect, and one word of a fixed vocabulary (:data:`WORDS`) that follows from the
interval by a rule written here (:func:`interval_word`, :func:`threshold_word`). A chapter shows
its verdicts as a box under its title (:func:`markdown`) and glues them as JSON
(:func:`as_json`), so that a page collecting every chapter's verdicts can be built from them.
"""

from __future__ import annotations

import dataclasses
import json
import math

from scipy import stats

from sslmem.errors import SSLMemError

HOLDS, NOT_DETECTED, CONTRADICTED, NOT_RUN = WORDS = (
    "holds", "not detected at this power", "contradicted", "not run here")
BOX_CLASS = {HOLDS: "tip", NOT_DETECTED: "note", CONTRADICTED: "warning", NOT_RUN: "note"}
POWER, ALPHA = 0.8, 0.05  # the power and two-sided level of every "detectable" effect


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One claim of the paper as this run tested it.

    ``effect``, ``low`` and ``high`` are the effect and its 95 % interval in ``unit`` (signed
    so that the paper's direction is ``direction``: +1 the effect should be above ``reference``,
    -1 below it); ``detectable`` is the smallest effect the design detects with 80 % power (NaN
    where no such number applies). ``word`` is one of :data:`WORDS`; build a verdict with
    :func:`from_interval` or :func:`from_threshold` so that the word follows from the numbers.
    """

    claim: str  # the paper's claim, in its words
    short: str  # a title for the box, e.g. "Removing the most memorized points"
    source: str  # where the paper states it, e.g. "Sec. 4.4, Fig. 3"
    chapter: str  # the chapter's page, e.g. "04_generalization"
    word: str
    test: str = ""
    effect: float = math.nan
    low: float = math.nan
    high: float = math.nan
    detectable: float = math.nan
    measure: str = ""  # what the effect is, e.g. "true-score Spearman ρ"
    unit: str = ""  # its unit, e.g. "points"
    fmt: str = "+.2f"
    direction: int = 1
    reference: float = 0.0
    scale: str = ""  # points, image size, encoders of this run
    hardware: str = ""  # where the results were computed (their provenance)
    note: str = ""  # what else the reader must know (another outcome, a failed control)

    def __post_init__(self):
        if self.word not in WORDS:
            raise SSLMemError(f"verdict word {self.word!r} is not one of {WORDS}")


# ---- the rules -------------------------------------------------------------------------------

def _finite(*values) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def interval_word(low: float, high: float, direction: int = 1, reference: float = 0.0) -> str:
    """The word for a 95 % interval against the paper's direction: entirely beyond
    ``reference`` in the paper's direction → holds; entirely beyond it the other way →
    contradicted; containing it → not detected at this power; no interval → not run here."""
    if not _finite(low, high):
        return NOT_RUN
    lo, hi = sorted((direction * (low - reference), direction * (high - reference)))
    if lo > 0:
        return HOLDS
    if hi < 0:
        return CONTRADICTED
    return NOT_DETECTED


def threshold_word(low: float, high: float, threshold: float) -> str:
    """The word for a claim that a quantity reaches ``threshold`` (e.g. a reliability of 0.5):
    the interval above it → holds, below it → contradicted, across it → not detected."""
    return interval_word(low, high, 1, threshold)


def weakest(*words: str) -> str:
    """The word of a claim made of parts: contradicted if any part is, else not detected if
    any part is, else not run here if any part was not run, else holds."""
    for word in (CONTRADICTED, NOT_DETECTED, NOT_RUN):
        if word in words:
            return word
    return HOLDS


def from_interval(*, direction: int = 1, reference: float = 0.0, **fields) -> Verdict:
    """A :class:`Verdict` whose word is :func:`interval_word` of its ``low`` and ``high``."""
    word = interval_word(fields.get("low", math.nan), fields.get("high", math.nan), direction,
                         reference)
    return Verdict(word=word, direction=direction, reference=reference, **fields)


def from_threshold(*, threshold: float, **fields) -> Verdict:
    """A :class:`Verdict` whose word is :func:`threshold_word` against ``threshold``."""
    word = threshold_word(fields.get("low", math.nan), fields.get("high", math.nan), threshold)
    return Verdict(word=word, reference=threshold, **fields)


def not_run(why: str, **fields) -> Verdict:
    """The verdict of a claim this run could not test (``why`` says what is missing)."""
    return Verdict(word=NOT_RUN, test=why, **fields)


# ---- effects and what a design detects -------------------------------------------------------

def detectable_from_interval(low: float, high: float) -> float:
    """The smallest true effect detected with 80 % power at α = 0.05 (two-sided) by a test
    whose 95 % interval is [low, high]: (z_0.975 + z_0.8) standard errors, the standard error
    being the interval's half width over z_0.975."""
    if not _finite(low, high):
        return math.nan
    z = stats.norm.ppf(1 - ALPHA / 2)
    return (z + stats.norm.ppf(POWER)) * (high - low) / (2 * z)


def two_sample(mean_a: float, mean_b: float, n_a: int, n_b: int, t: float) -> dict:
    """mean_a − mean_b with the 95 % interval of Student's equal-variance t-test whose
    statistic is ``t``, and the smallest difference that test detects with 80 % power:
    ``effect``, ``low``, ``high``, ``detectable`` (NaN where t is 0 or undefined)."""
    effect = mean_a - mean_b
    if not _finite(t) or t == 0 or n_a + n_b < 3:
        return dict(effect=effect, low=math.nan, high=math.nan, detectable=math.nan)
    se, df = abs(effect / t), n_a + n_b - 2
    crit = stats.t.ppf(1 - ALPHA / 2, df)
    return dict(effect=effect, low=effect - crit * se, high=effect + crit * se,
                detectable=(crit + stats.t.ppf(POWER, df)) * se)


def difference_of_means(a, b) -> dict:
    """mean(b) − mean(a) of two independent samples with Welch's 95 % interval and the
    smallest difference detectable with 80 % power: ``effect``, ``low``, ``high``,
    ``detectable``."""
    import numpy as np

    a, b = np.asarray(a, float), np.asarray(b, float)
    effect = float(b.mean() - a.mean())
    if len(a) < 2 or len(b) < 2:
        return dict(effect=effect, low=math.nan, high=math.nan, detectable=math.nan)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if se > 0 else 1
    crit = stats.t.ppf(1 - ALPHA / 2, df)
    return dict(effect=effect, low=effect - crit * se, high=effect + crit * se,
                detectable=(crit + stats.t.ppf(POWER, df)) * se)


def from_correlation(row, detectable_true: float, **fields) -> Verdict:
    """A verdict on a positive relation between two per-point scores, from one row of
    :func:`sslmem.score.agreement.agreements`: the true-score ρ (corrected for both scores'
    reliabilities) with its 95 % interval and the smallest true ρ the design detects, where
    the data bound it; else the observed ρ, with that detectable ρ attenuated by the
    reliabilities (an observed correlation is the true one times sqrt(rel_a · rel_b))."""
    get = row.get if hasattr(row, "get") else (lambda k, d=math.nan: getattr(row, k, d))
    if _finite(get("r_true"), get("r_true_low"), get("r_true_high")):
        return from_interval(effect=get("r_true"), low=get("r_true_low"),
                             high=get("r_true_high"), detectable=detectable_true,
                             measure="true-score Spearman ρ", **fields)
    crossed = get("observed", "") == "cross-fitted"  # halves of disjoint pairs

    def rel(key):  # a cross-fitted ρ correlates half ensembles: their reliability attenuates it
        r = max(0.0, get(key))
        return r / (2 - r) if crossed else r

    attenuation = math.sqrt(rel("rel_a") * rel("rel_b")) if _finite(
        get("rel_a"), get("rel_b")) else math.nan
    why = (f"The data do not bound the true-score ρ (reliabilities {get('rel_a'):.2f} and "
           f"{get('rel_b'):.2f}); the detectable observed ρ is a true ρ of "
           f"{min(1.0, detectable_true):.2f}.")
    fields["note"] = " ".join(x for x in (fields.get("note", ""), why) if x)
    return from_interval(effect=get("r"), low=get("r_low"), high=get("r_high"),
                         detectable=min(1.0, detectable_true) * attenuation,
                         measure="observed Spearman ρ" + (" (cross-fitted halves)" if crossed
                                                          else ""), **fields)


# ---- as the reader sees them -----------------------------------------------------------------

def _number(value: float, fmt: str) -> str:
    text = format(value, fmt)
    return text.replace("-", "−")


def effect_text(v: Verdict) -> str:
    """The effect, its interval and what the design detects, in words."""
    if not _finite(v.effect):
        return "–"
    unit = f" {v.unit}" if v.unit else ""
    text = (f"{v.measure} = " if v.measure else "") + f"{_number(v.effect, v.fmt)}{unit}"
    if _finite(v.low, v.high):
        text += f", 95 % interval {_number(v.low, v.fmt)} to {_number(v.high, v.fmt)}"
    if _finite(v.detectable):
        text += (f"; the smallest effect this design detects (80 % power) is "
                 f"{_number(abs(v.detectable), v.fmt.lstrip('+'))}{unit}")
    return text


def box(v: Verdict, link: bool = False) -> str:
    """One verdict as a short MyST admonition (``link``: end with a link to its chapter)."""
    lines = [f":::{{admonition}} {v.short}: {v.word}", f":class: {BOX_CLASS[v.word]}",
             f"- **The paper:** {v.claim} ({v.source}).",
             f"- **This run:** {v.scale or '–'}; computed on {v.hardware or '–'}.",
             f"- **Test:** {v.test or '–'}."]
    if _finite(v.effect):
        lines.append(f"- **Effect:** {effect_text(v)}.")
    if v.note:
        lines.append(f"- {v.note}")
    if link:
        lines.append(f"- Chapter: {{doc}}`{v.chapter}`.")
    return "\n".join(lines + [":::", ""])


def markdown(verdicts, link: bool = False) -> str:
    """The chapter's verdict boxes, one after the other."""
    return "\n".join(box(v, link) for v in verdicts)


def _plain(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def as_json(verdicts) -> str:
    """The verdicts as a JSON list of objects (NaN written as null), for a page that collects
    every chapter's."""
    return json.dumps([{k: _plain(v) for k, v in dataclasses.asdict(x).items()}
                       for x in verdicts], ensure_ascii=False, sort_keys=True)


def from_json(text: str) -> list[Verdict]:
    """The verdicts of :func:`as_json` (null read back as NaN)."""
    return [Verdict(**{k: (math.nan if v is None else v) for k, v in row.items()})
            for row in json.loads(text)]


def with_provenance(verdicts, hardware: str) -> list[Verdict]:
    """The verdicts with the hardware their results record (known once they are read)."""
    return [dataclasses.replace(v, hardware=hardware) for v in verdicts]


def glue(verdicts, hardware: str | None = None) -> None:
    """Glue the chapter's boxes as ``verdicts`` (shown under the title with ``{glue:md}``)
    and their JSON as ``verdicts_json``."""
    from sslmem.book.notebook import glue_markdown, glue_text

    verdicts = list(verdicts) if hardware is None else with_provenance(verdicts, hardware)
    glue_markdown("verdicts", markdown(verdicts))
    glue_text("verdicts_json", as_json(verdicts))
