"""BYOL (Grill et al. 2020): predict an EMA teacher's projection of the other view."""

from __future__ import annotations

import copy

from sslmem.train.methods.base import Defaults, Method, momentum_schedule


class BYOL(Method):
    name = "byol"
    recipe_name = "byol"
    batch_coupling = "its projector and predictor normalize with BatchNorm batch statistics"
    defaults = Defaults(
        backbone="resnet18", epochs=500, batch_size=512, optimizer="lars", lr=1.0,
        weight_decay=1e-5, warmup_epochs=10,
        source="not in the authors' code; CIFAR settings of solo-learn (LARS lr 1.0/256, wd 1e-5, "
               "teacher momentum 0.99 -> 1 cosine)",
        extra={"momentum": 0.99})

    def __init__(self, *args, momentum: float = 0.99, **kw):
        # lightly is imported here, not at the top (see sslmem.train.methods)
        from lightly.loss import NegativeCosineSimilarity
        from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
        from lightly.models.utils import deactivate_requires_grad
        super().__init__(*args, **kw)
        d = self.encoder.feature_dim
        self.projection = BYOLProjectionHead(d, 4096, 256)
        self.prediction = BYOLPredictionHead(256, 4096, 256)
        self.teacher_encoder = copy.deepcopy(self.encoder)
        self.teacher_projection = copy.deepcopy(self.projection)
        deactivate_requires_grad(self.teacher_encoder)
        deactivate_requires_grad(self.teacher_projection)
        self.base_momentum = momentum
        self.criterion = NegativeCosineSimilarity()

    def views_loss(self, views, labels):
        h1, h2 = self.encoder(views[0]), self.encoder(views[1])
        p1, p2 = self.prediction(self.projection(h1)), self.prediction(self.projection(h2))
        t1 = self.teacher_projection(self.teacher_encoder(views[0])).detach()
        t2 = self.teacher_projection(self.teacher_encoder(views[1])).detach()
        return 0.5 * (self.criterion(p1, t2) + self.criterion(p2, t1)), h1, h2

    def on_step(self, progress):
        from lightly.models.utils import update_momentum
        m = momentum_schedule(progress, self.base_momentum)
        update_momentum(self.encoder, self.teacher_encoder, m)
        update_momentum(self.projection, self.teacher_projection, m)
