"""sslmem: a reproducible companion to SSLMem (Wang et al., ICLR 2024).

SSLMem measures how much a self-supervised encoder memorizes a training point x by comparing the
alignment of x's augmented views under an encoder f trained with x and an encoder g trained without
it: m(x) = E_g d(g(x'), g(x'')) - E_f d(f(x'), f(x'')).

Modules, one concept each:
  errors      the one exception type whose message says what to do
  io          roots (data, runs), atomic writes, provenance
  data        datasets by name, offline-first, uint8 tensors
  splits      the paper's S_S / S_C / S_I / S_E protocol
  augment     per-sample batched augmentation on any device
  backbones   ResNet / ViT encoders
  methods     one module per SSL method + supervised
  train       the single training loop (checkpoints, resume, DDP)
  privacy     DP-SGD for per-sample losses (Opacus clipping/noise, RDP accountant)
  evaluate    frozen features, linear probe, weighted kNN
  memorization  alignment loss, SSLMem, label memorization
  experiment  cached experiments keyed by config
  plots, cli
"""

__version__ = "0.1.0"

from sslmem.errors import SSLMemError  # noqa: E402,F401
