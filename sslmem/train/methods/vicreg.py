"""VICReg (Bardes et al. 2022): invariance + variance + covariance terms on an expander."""

from __future__ import annotations

from sslmem.train.methods.base import Defaults, Method


class VICReg(Method):
    name = "vicreg"
    recipe_name = "vicreg"
    batch_coupling = "its variance and covariance terms are statistics over the batch"
    defaults = Defaults(
        backbone="resnet18", epochs=1000, batch_size=512, optimizer="lars", lr=0.2,
        weight_decay=1e-6, warmup_epochs=10,
        source="authors' VicReg_train.py (LARS base lr 0.2/256, wd 1e-6, lambda=mu=25, nu=1, 1000 "
               "epochs, batch 2048); we use ResNet-18, batch 512 and a 2048-wide expander "
               "(theirs: ResNet-50, 8192)",
        extra={"expander_dim": 2048})

    def __init__(self, *args, expander_dim: int = 2048, **kw):
        # lightly is imported here, not at the top (see sslmem.train.methods)
        from lightly.loss import VICRegLoss
        from lightly.models.modules.heads import VICRegProjectionHead
        super().__init__(*args, **kw)
        d = self.encoder.feature_dim
        self.projection = VICRegProjectionHead(d, expander_dim, expander_dim, num_layers=3)
        self.criterion = VICRegLoss(lambda_param=25.0, mu_param=25.0, nu_param=1.0,
                                    gather_distributed=True)

    def views_loss(self, views, labels):
        h1, h2 = self.encoder(views[0]), self.encoder(views[1])
        return self.criterion(self.projection(h1).float(), self.projection(h2).float()), h1, h2
