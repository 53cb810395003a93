"""Feldman's label memorization for the supervised comparison, from f and g models.

Why a module: supervised learning's own memorization score (Feldman 2020) is the baseline the
paper compares SSLMem with; it needs labels and classifiers, the SSL score does not.
"""

from __future__ import annotations

import pandas as pd
import torch

from sslmem.errors import SSLMemError
from sslmem.score.alignment import (
    _as_list,
    _encoders_device,
    _generator,
    _order,
    _positions,
    _view_augs,
    _view_batches,
)
from sslmem.score.evaluate import (
    eval_mode,
    forward_features,
    unwrap_images,
)


def label_memorization(f_models, g_models, images, labels, *, augment=None, n_aug: int = 1,
                       seed: int = 0, generator: torch.Generator | None = None, index=None,
                       batch_size: int = 4096, device=None, amp: bool = True) -> pd.DataFrame:
    """Feldman's label memorization P[f(x) = y] - P[g(x) = y] for the supervised comparison.

    ``f_models`` (trained with the points) and ``g_models`` (without) are classifier modules
    (float [0, 1] images -> logits) or lists of them (seeds); probabilities are the fraction of
    correct predictions over the models and, with ``augment`` (a ViewAug or Recipe), over
    ``n_aug`` augmented views shared by all models. Without ``augment`` the clean images are used
    (n_aug must be 1).

    Returns:
        DataFrame with ``index`` (when known), label, p_f, p_g, label_mem.
    """
    if n_aug < 1 or (augment is None and n_aug != 1):
        raise SSLMemError(f"n_aug={n_aug}: need n_aug >= 1, and n_aug = 1 without augment")
    fs, gs = _as_list(f_models), _as_list(g_models)
    images, own_index = unwrap_images(images)
    index = index if index is not None else own_index
    y = torch.as_tensor(_positions(labels))
    if len(y) != len(images):
        raise SSLMemError(f"{len(images)} images but {len(y)} labels")
    augs = () if augment is None else _view_augs(augment, images.shape[-1])[:1]
    device = _encoders_device([*fs, *gs], device)
    correct = {"f": torch.zeros(len(images), dtype=torch.float64, device=device),
               "g": torch.zeros(len(images), dtype=torch.float64, device=device)}
    batches = _view_batches(images, _order(len(images), index), augs, n_aug,
                            _generator(seed, generator), batch_size, device,
                            with_clean=augment is None)
    with eval_mode(*fs, *gs), torch.inference_mode():
        for pos, batch in batches:
            target = y[pos].repeat_interleave(n_aug).to(device)
            pos = pos.to(device)
            for name, models in (("f", fs), ("g", gs)):
                hits = sum((forward_features(m, batch, amp=amp).argmax(1) == target).double()
                           for m in models)
                correct[name][pos] = hits.view(len(pos), n_aug).mean(1) / len(models)
    p_f, p_g = correct["f"].cpu().numpy(), correct["g"].cpu().numpy()
    frame = pd.DataFrame({"label": y.numpy(), "p_f": p_f, "p_g": p_g, "label_mem": p_f - p_g})
    if index is not None:
        frame.insert(0, "index", _positions(index))
    return frame
