"""Supervised classifier with the standard CIFAR augmentation: the label-memorization baseline.

Feldman's label memorization needs classifiers f_sup (trained with the candidates) and g_sup
(without); ``classifier`` maps float [0, 1] images to logits for that.
"""

from __future__ import annotations

from torch import nn

from sslmem.train.methods.base import Defaults, Method


class Classifier(nn.Module):
    """Encoder + linear head: float [0, 1] images -> logits."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x):
        return self.head(self.encoder(x))


class Supervised(Method):
    name = "supervised"
    recipe_name = "supervised"
    per_sample_loss = True  # cross-entropy averaged over the batch (BatchNorm backbones aside)
    batch_coupling = ""
    defaults = Defaults(
        backbone="resnet18", epochs=200, batch_size=512, optimizer="sgd", lr=0.1,
        weight_decay=5e-4, warmup_epochs=5,
        source="standard CIFAR ResNet-18 recipe (SGD 0.1/256, momentum 0.9, wd 5e-4, cosine, "
               "pad-4 crop + flip); the paper's supervised baseline settings are not available")

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.head = nn.Linear(self.encoder.feature_dim, self.num_classes)
        self.classifier = Classifier(self.encoder, self.head)
        self.criterion = nn.CrossEntropyLoss()

    def views_loss(self, views, labels):
        return self.inputs_loss(*self.sample_inputs(views, labels)), None, None

    def sample_inputs(self, views, labels):
        return views[0], labels

    def inputs_loss(self, view, labels):
        return self.criterion(self.classifier(view).float(), labels)
