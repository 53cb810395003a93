"""sslmem: a reproducible companion to SSLMem (Wang et al., ICLR 2024).

SSLMem measures how much a self-supervised encoder memorizes a training point x by comparing the
alignment of x's augmented views under an encoder f trained with x and an encoder g trained without
it: m(x) = E_g d(g(x'), g(x'')) - E_f d(f(x'), f(x'')).

Subpackages by concept, each importing only the layers above it in this list (and the base
modules ``errors`` and ``io``); ``tests/test_layers.py`` enforces it:

  train      what trains an encoder: data, splits, augment, backbones, methods/, optim, fit,
             privacy (DP-SGD), calibrate, downstream
  score      what scores a point: alignment (L_align), memorization (SSLMem), significance,
             label_memorization, evaluate (probes), quantize, dejavu, reliability, agreement
  pipeline   where results live and how units run: config, validate, store, cache, encoders,
             experiment, ensemble, removal, regularizer, chapters, units, costs, plan, executors
  book       how pages are made: the chapters' analyses, notebook helpers, plots, grids,
             explorer, the runner (reproduce, parameters, pages), the Sphinx extension
  cli        the ``sslmem`` command
"""

__version__ = "0.1.0"

from sslmem.errors import SSLMemError  # noqa: E402,F401
