"""SimSiam (Chen & He 2021): predict the other view's projection, stop-gradient, no teacher."""

from __future__ import annotations

from sslmem.train.methods.base import Defaults, Method


class SimSiam(Method):
    name = "simsiam"
    recipe_name = "simsiam"
    batch_coupling = "its projector and predictor normalize with BatchNorm batch statistics"
    defaults = Defaults(
        backbone="resnet18", epochs=200, batch_size=512, optimizer="sgd", lr=0.05,
        weight_decay=5e-4, warmup_epochs=24,
        source="follow-up paper [LM] Table 9: SGD lr 2.5e-2 at batch 128 (= 0.05 per 256), 200 "
               "epochs, 24 warmup; we use batch 512 with the linear lr scaling")

    def __init__(self, *args, **kw):
        # lightly is imported here, not at the top (see sslmem.train.methods)
        from lightly.loss import NegativeCosineSimilarity
        from lightly.models.modules import SimSiamPredictionHead, SimSiamProjectionHead
        super().__init__(*args, **kw)
        d = self.encoder.feature_dim
        self.projection = SimSiamProjectionHead(d, 2048, 2048)
        self.prediction = SimSiamPredictionHead(2048, 512, 2048)
        self.criterion = NegativeCosineSimilarity()

    def views_loss(self, views, labels):
        h1, h2 = self.encoder(views[0]), self.encoder(views[1])
        z1, z2 = self.projection(h1), self.projection(h2)
        p1, p2 = self.prediction(z1), self.prediction(z2)
        return 0.5 * (self.criterion(p1, z2.detach()) + self.criterion(p2, z1.detach())), h1, h2
