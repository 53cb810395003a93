"""DINO (Caron et al. 2021): self-distillation with an EMA teacher, centering and multi-crop."""

from __future__ import annotations

import copy
import warnings

import torch

from sslmem.train.methods.base import Defaults, Method, momentum_schedule


class DINO(Method):
    name = "dino"
    recipe_name = "dino"
    batch_coupling = "its teacher outputs are centred with a running mean of whole batches"
    defaults = Defaults(
        backbone="resnet18", epochs=600, batch_size=512, optimizer="adamw", lr=5e-4,
        weight_decay=0.04, warmup_epochs=10,
        source="authors' DINO_train.py (AdamW 5e-4/256, wd 0.04, teacher momentum 0.996, teacher "
               "temperature 0.04, 2 global + local crops) with [LM]'s 600 epochs; we use a "
               "ResNet-18 on 32 px crops (theirs: ViT-S/16 on 224 px up-sampled CIFAR), head "
               "output 4096 (theirs 65,536), fixed weight decay (theirs 0.04 -> 0.4)",
        extra={"momentum": 0.996, "output_dim": 4096})

    def __init__(self, *args, momentum: float = 0.996, output_dim: int = 4096, **kw):
        # lightly is imported here, not at the top (see sslmem.train.methods)
        from lightly.loss import DINOLoss
        from lightly.models.modules import DINOProjectionHead
        from lightly.models.utils import deactivate_requires_grad
        super().__init__(*args, **kw)
        d = self.encoder.feature_dim
        with warnings.catch_warnings():  # lightly's head uses the deprecated weight_norm
            warnings.simplefilter("ignore", FutureWarning)
            self.head = DINOProjectionHead(d, 2048, 256, output_dim, freeze_last_layer=-1)
            # lightly 1.6 cannot deepcopy a DINO head (weight norm): build a twin, copy weights
            self.teacher_head = DINOProjectionHead(d, 2048, 256, output_dim)
        self.teacher_encoder = copy.deepcopy(self.encoder)
        self.teacher_head.load_state_dict(self.head.state_dict())
        deactivate_requires_grad(self.teacher_encoder)
        deactivate_requires_grad(self.teacher_head)
        self.base_momentum = momentum
        self.criterion = DINOLoss(output_dim=output_dim, warmup_teacher_temp_epochs=0)

    def views_loss(self, views, labels):
        n_global = 2
        with torch.no_grad():
            teacher = [self.teacher_head(self.teacher_encoder(v)) for v in views[:n_global]]
        feats = [self.encoder(v) for v in views]
        student = [self.head(h) for h in feats]
        return self.criterion(teacher, student, epoch=0), feats[0], feats[1]

    def on_step(self, progress):
        from lightly.models.utils import update_momentum
        m = momentum_schedule(progress, self.base_momentum)
        update_momentum(self.encoder, self.teacher_encoder, m)
        update_momentum(self.head, self.teacher_head, m)
