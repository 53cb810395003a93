# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Results at a glance
#
# This book reruns **Memorization in Self-Supervised Learning Improves Downstream
# Generalization** {cite}`wang2024memorization` (ICLR 2024): every claim of the paper as an
# executed experiment, with the precision of each estimate, a control where one exists, and the
# power of every test that finds nothing. The table collects the verdict each chapter decided from
# its own numbers (one rule, written in code, per claim): **holds** when the 95 % interval lies on
# the paper's side, **contradicted** when it lies on the other side, **not detected at this
# power** when it contains no effect (the last column then gives the smallest effect the design
# could have seen), **not run here** when the results are not stored.
#
# Claims tested on the {glue:text}`profile` profile: {glue:text}`n_claims`. Hold:
# {glue:text}`n_holds`; not detected at the power reached: {glue:text}`n_not_detected`;
# contradicted: {glue:text}`n_contradicted`; not run here: {glue:text}`n_not_run`.
# Every row names the scale it ran at and the hardware that computed it; the paper's own numbers
# were not available to this project and stay marked UNVERIFIED in the chapters.
#
# ## The claims, one row each

# %% tags=["remove-cell"]
from pathlib import Path

from IPython.display import Markdown, display

from sslmem.book import glance
from sslmem.book.notebook import (Timer, banner, check_parameters, glue_all, glue_number,
                                  glue_text)
from sslmem.book.parameters import CHAPTERS
from sslmem.book.reproduce import BOOK_DIR

_timer = Timer()

# %% tags=["parameters", "hide-input"]
profile: str = "paper"  # the profile of the chapter pages collected here
pages: "Optional[str]" = None  # the folder of the executed chapter pages; None: the book's
# the names declared above (parenthesized: papermill reads no parameter here)
(_declared) = [k for k in dir() if not k.startswith("_")]

# %% tags=["remove-input", "full-width"]
parameters = check_parameters(globals(), _declared)
banner(profile)
found = glance.collect(Path(pages) if pages else BOOK_DIR, CHAPTERS)
numbers = glance.counts(found)
glue_text("profile", profile)
glue_all({"n_claims": len(found), "n_holds": numbers["holds"],
          "n_not_detected": numbers["not detected at this power"],
          "n_contradicted": numbers["contradicted"], "n_not_run": numbers["not run here"]})
display(Markdown(glance.table(found)))

# %% [markdown]
# ## Where to go from here
#
# Each chapter opens with the same verdict in a box, then shows how it was reached: the design,
# the estimate of every point's score with its standard error, the tests and their power. How
# to rerun any of it, on this machine, a GPU or a cluster, is in {doc}`reproduce`; what the book
# is and what it verified is in {doc}`intro`.

# %% tags=["remove-input", "hide-output"]
glue_number("seconds", 60 * _timer.minutes(), volatile=True)
