"""How pages are made: each chapter's analyses, notebook helpers, figures, the explorer, the
notebook runner, the Sphinx extension.

May import every layer below it.
"""
