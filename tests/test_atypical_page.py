"""Chapter 2's page texts and tables (sslmem.book.atypicality) on synthetic agreement rows."""

from __future__ import annotations

import math

import pandas as pd

from sslmem.book import atypicality


def _agree(r_pool: float = 0.4, p_pool: float = 1e-6, p_placebo: float = 0.5) -> pd.DataFrame:
    """An :func:`atypicality.agreement_table`-shaped frame: two pool rows and the control."""
    row = dict(a=atypicality.SSLMEM, points=200, r_low=0.2, r_high=0.6, rel_a=0.8, rel_b=0.7,
               r_true=0.55, r_true_low=0.3, r_true_high=0.8, detectable=0.3)
    return pd.DataFrame([
        {**row, "subset": "pool", "b": atypicality.MEASURES[0], "r": r_pool, "p": p_pool},
        {**row, "subset": "pool", "b": atypicality.MEASURES[1], "r": 0.1, "p": 0.3},
        {**row, "subset": "placebo", "b": atypicality.MEASURES[0], "r": 0.02, "p": p_placebo,
         "r_true": math.nan},
    ])


SUMMARY = {"pool_rel": 0.71, "pool_rel_low": 0.6, "pool_rel_high": 0.8}


def test_page_texts_name_each_result():
    texts = atypicality.page_texts(SUMMARY, _agree(), fit=0.9)
    assert tuple(texts) == atypicality.PAGE_TEXTS
    assert texts["reliability"] == "0.71 [0.60, 0.80]"
    assert texts["verdict"].startswith("held: ρ = +0.40")
    assert texts["fz_verdict"].startswith("not detected: ρ = +0.10")
    assert texts["control"].startswith("passed")
    assert texts["precision_note"].startswith("reliable enough")


def test_page_texts_when_the_models_fit_everything_or_the_control_fails():
    texts = atypicality.page_texts({**SUMMARY, "pool_rel": 0.3}, _agree(r_pool=-0.4,
                                                                         p_placebo=1e-4), fit=1.0)
    assert texts["verdict"].startswith("reversed")
    assert texts["fz_verdict"].startswith("the same numbers as atypicality")
    assert "(accuracy 1.00 on them)" in texts["fz_verdict"]
    assert texts["control"].startswith("FAILED")
    assert texts["precision_note"].startswith("below 0.5")


def test_agreement_view_formats_intervals():
    shown = atypicality.agreement_view(_agree())
    assert list(shown.columns) == ["pair", "ρ observed [95 %]", "p", "rank reliabilities",
                                   "ρ true-score [95 %]", "detectable ρ"]
    assert set(atypicality.AGREEMENT_FORMATS) <= set(shown.columns)
    assert shown.pair[0] == "SSLMem vs 1 − consistency (pool)"
    assert shown["ρ observed [95 %]"][0] == "+0.40 [+0.20, +0.60]"
    assert shown["rank reliabilities"][0] == "0.80 / 0.70"
    assert list(shown["ρ true-score [95 %]"]) == ["+0.55 [+0.30, +0.80]"] * 2 + ["–"]


def test_comparison_quotes_the_texts():
    agree = _agree()
    found = {"summary": SUMMARY, "texts": atypicality.page_texts(SUMMARY, agree, fit=0.9)}
    compare = atypicality.comparison(found, n_members=20)
    assert len(compare) == 4
    assert "ensemble of 20 encoders (reliability 0.71)" in compare["this run"][0]
    assert list(compare["this run"][1:]) == [found["texts"][k]
                                             for k in ("verdict", "fz_verdict", "control")]


def test_missing_warning_names_both_designs():
    text = atypicality.missing_warning("laptop", "ssl-a", "sup-b", 2, 0)
    assert text.startswith(":::{warning}\n") and text.endswith("\n:::\n")
    assert "holds 2 of **ssl-a** and 0 of **sup-b**" in text
    assert "`sslmem plan --profile laptop --run`" in text and "`ens-sup-b-…`" in text


def test_the_pixel_reading_of_atypicality_is_reported_beside_not_instead():
    rows = [{"subset": "pool", "b": atypicality.PIXELS, "r": 0.6, "r_low": 0.5, "r_high": 0.7,
             "r_true": 0.69, "r_true_low": 0.55, "r_true_high": 0.82},
            {"subset": "placebo", "b": atypicality.PIXELS, "r": 0.15, "r_low": -0.01,
             "r_high": 0.34, "r_true": float("nan"), "r_true_low": float("nan"),
             "r_true_high": float("nan")}]
    import pandas as pd

    text = atypicality.pixels_text(pd.DataFrame(rows))
    assert text.startswith("true-score ρ = +0.69 [+0.55, +0.82]") and "+0.15 [-0.01" in text
    assert atypicality.pixels_text(pd.DataFrame(rows[:1])) == "not measured"
