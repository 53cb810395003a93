"""MAE (He et al. 2022): reconstruct the pixels of 75 % masked patches from the visible ones.

Follows the authors' CIFAR-10 MAE (spec.md §2.3): ViT-tiny, patch 2, 4-block decoder of width
192 and 3 heads, 75 % masking, loss = MSE on masked patches. Masking and patchify come from
lightly. The encoder scored by SSLMem is the unmasked ViT (class token after the final norm).
"""

from __future__ import annotations

import torch

from sslmem.errors import SSLMemError
from sslmem.train.methods.base import Defaults, Method


class MAE(Method):
    name = "mae"
    recipe_name = "mae"
    per_sample_loss = True  # each image is masked and reconstructed on its own
    batch_coupling = ""
    defaults = Defaults(
        backbone="vit_tiny", epochs=800, batch_size=2048, optimizer="adamw", lr=1.5e-4,
        weight_decay=0.05, warmup_epochs=120,
        source="authors' MAE_train.py: AdamW(0.9, 0.95) lr 1.5e-4/256, wd 0.05, batch 2048, 800 "
               "epochs, 120 warmup, mask 0.75; same here (normalization uses the dataset's "
               "statistics instead of 0.5/0.5)",
        extra={"mask_ratio": 0.75})

    def __init__(self, *args, mask_ratio: float = 0.75, **kw):
        # lightly is imported here, not at the top (see sslmem.train.methods)
        from lightly.models.modules import MAEDecoder
        super().__init__(*args, **kw)
        backbone = self.encoder.backbone
        if backbone.kind != "vit":
            raise SSLMemError("method 'mae' needs a ViT backbone (vit_tiny or vit_small); "
                              f"got a {backbone.kind}")
        self.mask_ratio = mask_ratio
        self.patch_size = backbone.patch_size
        self.decoder = MAEDecoder(
            seq_length=backbone.sequence_length, num_layers=4, num_heads=3,
            embed_input_dim=backbone.feature_dim, hidden_dim=192, mlp_dim=4 * 192,
            out_dim=self.patch_size ** 2 * self.channels)
        self.mask_token = torch.nn.Parameter(torch.zeros(1, 1, 192))

    def views_loss(self, views, labels):
        return self.inputs_loss(*self.sample_inputs(views, labels)), None, None

    def sample_inputs(self, views, labels):
        """The view and its kept/masked token indices (the only random draws of the loss)."""
        from lightly.models import utils
        n = self.encoder.backbone.vit.sequence_length
        # random_token_mask draws from torch's global RNG, which the training loop seeds per epoch
        idx_keep, idx_mask = utils.random_token_mask(
            size=(views[0].shape[0], n), mask_ratio=self.mask_ratio, device=views[0].device)
        return views[0], idx_keep, idx_mask

    def inputs_loss(self, view, idx_keep, idx_mask):
        """MSE on the masked patches: the mean of equal-sized per-sample terms (same mask ratio)."""
        from lightly.models import utils
        images = self.encoder.normalize(view)
        vit = self.encoder.backbone.vit
        b, n = images.shape[0], vit.sequence_length
        encoded = self.decoder.embed(vit.encode(images, idx_keep=idx_keep))
        tokens = utils.repeat_token(self.mask_token, (b, n))
        tokens = utils.set_at_index(tokens, idx_keep, encoded.type_as(tokens))
        pred = self.decoder.predict(utils.get_at_index(self.decoder.decode(tokens), idx_mask))
        # idx_mask counts the class token at position 0; patches do not have it
        target = utils.get_at_index(utils.patchify(images, self.patch_size), idx_mask - 1)
        return torch.nn.functional.mse_loss(pred.float(), target.float())
