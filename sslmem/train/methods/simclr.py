"""SimCLR (Chen et al. 2020): NT-Xent between two views' projections."""

from __future__ import annotations

from sslmem.train.methods.base import Defaults, Method


class SimCLR(Method):
    name = "simclr"
    recipe_name = "simclr"
    batch_coupling = "NT-Xent contrasts each view with the other samples of the batch as negatives"
    defaults = Defaults(
        backbone="resnet18", epochs=500, batch_size=512, optimizer="adam", lr=1e-3 / 2,
        weight_decay=1e-6, warmup_epochs=10,
        source="authors' SimClr_train.py: Adam lr 1e-3 at batch 512 (= 5e-4 per 256), wd 1e-6, "
               "tau 0.5, 500 epochs; we use ResNet-18 (theirs: ResNet-50) and add a 10-epoch "
               "warmup + cosine decay",
        extra={"temperature": 0.5, "projection_dim": 128})

    def __init__(self, *args, temperature: float = 0.5, projection_dim: int = 128, **kw):
        # lightly is imported here, not at the top (see sslmem.train.methods)
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead
        super().__init__(*args, **kw)
        d = self.encoder.feature_dim
        self.projection = SimCLRProjectionHead(d, 2048, projection_dim)
        self.criterion = NTXentLoss(temperature=temperature, gather_distributed=True)

    def views_loss(self, views, labels):
        h1, h2 = self.encoder(views[0]), self.encoder(views[1])
        return self.criterion(self.projection(h1), self.projection(h2)), h1, h2
