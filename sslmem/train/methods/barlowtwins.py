"""Barlow Twins (Zbontar et al. 2021): drive the views' cross-correlation matrix to identity."""

from __future__ import annotations

from sslmem.train.methods.base import Defaults, Method


class BarlowTwins(Method):
    name = "barlowtwins"
    recipe_name = "barlowtwins"
    batch_coupling = "its cross-correlation matrix is computed over the batch"
    defaults = Defaults(
        backbone="resnet18", epochs=1000, batch_size=512, optimizer="lars", lr=0.3,
        weight_decay=1e-4, warmup_epochs=10,
        source="not in the authors' code; CIFAR settings of solo-learn (LARS lr 0.3/256, wd 1e-4, "
               "off-diagonal weight 5e-3, 2048-wide projector)",
        extra={"projection_dim": 2048})

    def __init__(self, *args, projection_dim: int = 2048, **kw):
        # lightly is imported here, not at the top (see sslmem.train.methods)
        from lightly.loss import BarlowTwinsLoss
        from lightly.models.modules import BarlowTwinsProjectionHead
        super().__init__(*args, **kw)
        d = self.encoder.feature_dim
        self.projection = BarlowTwinsProjectionHead(d, projection_dim, projection_dim)
        self.criterion = BarlowTwinsLoss(gather_distributed=True)

    def views_loss(self, views, labels):
        h1, h2 = self.encoder(views[0]), self.encoder(views[1])
        return self.criterion(self.projection(h1).float(), self.projection(h2).float()), h1, h2
