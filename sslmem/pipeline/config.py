"""One frozen configuration for a whole experiment, with a ``paper`` default and a ``tiny`` profile.

Why one dataclass: its hash keys the run cache (so a changed setting can never reuse a stale
encoder), it is saved with every result (provenance), and papermill/CLI parameters map onto its
fields one to one. ``None`` means "the method's paper default"
(``sslmem.train.methods.*.defaults``);
``resolved()`` fills those in so the saved config says exactly what ran.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, fields

from sslmem.errors import SSLMemError
from sslmem.pipeline.validate import (
    Bool,
    Choice,
    Dataset,
    Device,
    Float,
    Folder,
    Int,
    Seeds,
    Size,
    check_fields,
)

CONFIG_VERSION = 2  # bump when the meaning of a field or the run-directory layout changes
RUNTIME_FIELDS = ("device", "compile", "progress", "data_root", "runs_root", "checkpoint_every",
                  "profile", "results_root", "results_only")
PROFILES = ("paper", "laptop", "tiny")  # best first: the book shows the best profile stored
DP_FIELDS = {"dp_epsilon": None, "dp_delta": None, "dp_max_grad_norm": 1.0}  # name: default (off)
# Fields added after stores were written: at these defaults they stay out of the key, so
# existing results keep their keys.
KEY_DEFAULTS = {**DP_FIELDS, "monitor_points": 10000, "augment_strength": 1.0,
                "precision": "fp32", "score_precision": "fp32", "representation": "pooled"}


@dataclass(frozen=True)
class Config:
    """Everything that determines an experiment's results (runtime fields excepted).

    Split sizes are counts (int) or fractions (float) of the training set; ``extra`` is drawn
    from the test split. ``split_protocol='paper'`` is the authors' CIFAR-10 split by index.
    """

    # data and the paper's split (S_S, S_C, S_I from train; S_E from test)
    dataset: str = "cifar10"
    image_size: int | None = None  # None = the dataset's native size
    split_protocol: str = "paper"
    shared: int | float = 40000
    candidate: int | float = 5000
    independent: int | float = 5000
    extra: int | float = 5000
    split_seed: int = 0
    # training (None = the method's paper default)
    method: str = "simclr"
    backbone: str | None = None
    patch_size: int = 0
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    lr: float | None = None  # per 256 images; scaled linearly with the batch size
    weight_decay: float | None = None
    warmup_epochs: int | None = None
    seeds: tuple[int, ...] = (0,)
    align_lambda: float = 0.0  # the alignment-limiting regularizer (0 = off)
    align_start_epoch: int = 0
    monitor_points: int = 10000  # train and test images of the kNN monitor at snapshot epochs
    augment_strength: float = 1.0  # 1 = the method's recipe; below 1 weaker views (augment.py)
    # the arithmetic of training and scoring: bf16 autocast changes the numbers, so it is part
    # of the key (a bf16 result is never served as an fp32 one); the memory format, which only
    # reorders sums, is chosen per host by measurement (sslmem.train.calibrate)
    precision: str = "fp32"
    # differential privacy: DP-SGD when dp_epsilon is set (sslmem.train.privacy); None or inf = off
    dp_epsilon: float | None = None  # target epsilon over the whole training run
    dp_delta: float | None = None  # None = the largest power of ten below 1/N (N = train set)
    dp_max_grad_norm: float = 1.0  # per-sample gradient clipping bound C
    # scoring (spec.md §1.8)
    n_pairs: int = 10
    score_variant: str = "pairs"  # pairs = d(f(x'), f(x'')); clean = d(f(x), f(aug(x)))
    score_augment: str = "train"  # train = the method's training views; score = authors' set
    score_seed: int = 0
    # int8 scoring (sslmem.score.quantize, CPU): 3.2-3.6x the eager fp32 scorer, scores within ~0.1
    # s.e.
    # of fp32 but not equal to them, so it is part of the key
    score_precision: str = "fp32"
    # what SSLMem compares: the pooled feature, or every token of a ViT (the authors' MAE scoring,
    # spec.md §1.5; sslmem.score.representation)
    representation: str = "pooled"
    # runtime (not part of the cache key)
    device: str = "auto"
    compile: str = "auto"
    progress: bool = True
    data_root: str | None = None
    runs_root: str | None = None
    checkpoint_every: int = 10
    profile: str = "paper"  # which profile's folder of the results store this run writes to
    results_root: str | None = None  # None = $SSLMEM_RESULTS, else <repo>/results
    results_only: bool | None = None  # serve stored results, never compute; None = env

    def __post_init__(self):
        """Check and normalize every field (``FIELDS``), then the combinations of fields."""
        checked = check_fields(self.__dict__, FIELDS)
        for name, value in checked.items():
            object.__setattr__(self, name, value)
        self._check_combinations()
        self._check_privacy()

    def _check_combinations(self) -> None:
        """What one field's spec cannot see: settings that only fail together."""
        if self.patch_size and self.image_size is not None and self.image_size % self.patch_size:
            raise SSLMemError(f"patch_size={self.patch_size} does not divide image_size="
                              f"{self.image_size}; pick a divisor (or 0 for the default)")
        if self.backbone == "resnet9" and self.image_size is not None:
            smallest = self.image_size // 2 if self.method == "dino" else self.image_size
            if smallest < 8:  # three 2x2 max-pools
                raise SSLMemError(
                    f"resnet9 needs views of at least 8 px; {self.method} at image_size="
                    f"{self.image_size} makes {smallest}-px views (DINO's local crops are half "
                    "the side): raise image_size")
        if self.representation == "tokens":
            from sslmem.train.backbones import VITS

            if not (self.backbone in VITS or (self.backbone is None and self.method == "mae")):
                raise SSLMemError(f"representation='tokens' scores every token of a ViT; "
                                  f"{self.method} with backbone={self.backbone!r} has none: "
                                  f"set backbone to one of {', '.join(VITS)} or use "
                                  "representation='pooled'")
        if self.method == "mae" and self.backbone is not None:
            from sslmem.train.backbones import VITS

            if self.backbone not in VITS:
                raise SSLMemError(f"method 'mae' needs a ViT backbone ({', '.join(VITS)}); got "
                                  f"backbone={self.backbone!r}")

    def _check_privacy(self) -> None:
        """Without DP, reset δ and C so the run shares the plain cache; refuse DP for a method
        whose loss couples samples (the ranges are checked by ``FIELDS``).

        ε = ∞ is no privacy at all, so it is stored as ``None`` (``FIELDS``): a sweep over
        ε ∈ {∞, 20, 8} reuses the ordinary (non-private) encoders for its ∞ point.
        """
        if self.dp_epsilon is None:
            object.__setattr__(self, "dp_delta", None)
            object.__setattr__(self, "dp_max_grad_norm", DP_FIELDS["dp_max_grad_norm"])
        else:
            from sslmem.train.privacy import check_method_name

            check_method_name(self.method, self.backbone)

    # ---- profiles -------------------------------------------------------------------------
    @classmethod
    def paper(cls, **overrides) -> Config:
        """The paper's CIFAR-10 setup (spec.md §6): index split, ResNet-18, method defaults,
        bf16 autocast (a GPU profile: 2.5x fp32's throughput on an H100)."""
        return cls.from_dict({"profile": "paper", "precision": "bf16", **overrides})

    @classmethod
    def laptop(cls, **overrides) -> Config:
        """Real photographs on 2 CPU cores: CIFAR-10 at its native 32 px, a random split of
        200 points per subset, ResNet-9 for 150 epochs (the design and its measurements:
        ``book/reproduce.md``, "The laptop profile")."""
        base = dict(dataset="cifar10", split_protocol="random", shared=200, candidate=200,
                    independent=200, extra=200, backbone="resnet9", epochs=150,
                    warmup_epochs=5, batch_size=128, n_pairs=16, checkpoint_every=10,
                    monitor_points=2000, profile="laptop")
        return cls.from_dict({**base, **overrides})

    @classmethod
    def tiny(cls, **overrides) -> Config:
        """A CPU smoke profile: sklearn digits at their native 8 px, ResNet9, a few epochs.

        8 px, not the 16 px it once upsampled to: every convolution costs a quarter, which is
        what makes the whole tiny book (and CI, which runs it from scratch) take minutes; 300
        shared and 100 per other subset and 6 epochs, not 600, 150 and 8, for the same reason
        (chapter 1's pair took 63 s at one thread; many tests run such units)."""
        base = dict(dataset="digits", image_size=8, split_protocol="random", shared=300,
                    candidate=100, independent=100, extra=100, backbone="resnet9", epochs=6,
                    warmup_epochs=1, batch_size=128, n_pairs=4, checkpoint_every=4,
                    profile="tiny")
        return cls.from_dict({**base, **overrides})

    @classmethod
    def for_profile(cls, name: str, **overrides) -> Config:
        """The named profile (see ``PROFILES``) with ``overrides``."""
        if name not in PROFILES:
            raise SSLMemError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}")
        return getattr(cls, name)(**overrides)

    @classmethod
    def from_dict(cls, values: dict) -> Config:
        """Build from a dict, refusing unknown keys with the list of valid ones."""
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise SSLMemError(f"unknown config field(s) {', '.join(unknown)}; valid fields: "
                              + ", ".join(valid))
        return cls(**values)

    def replace(self, **changes) -> Config:
        return dataclasses.replace(self.from_dict({**self.to_dict(), **changes}))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["seeds"] = list(self.seeds)
        return d

    # ---- resolution and keys --------------------------------------------------------------
    def resolved(self) -> Config:
        """Fill the method's paper defaults into the ``None`` fields."""
        from sslmem.train.methods import method_class

        d = method_class(self.method).defaults
        fill = dict(backbone=d.backbone, epochs=d.epochs, batch_size=d.batch_size,
                    optimizer=d.optimizer, lr=d.lr, weight_decay=d.weight_decay,
                    warmup_epochs=d.warmup_epochs)
        return dataclasses.replace(self, **{k: v for k, v in fill.items()
                                            if getattr(self, k) is None})

    def key(self, *names: str, **extra) -> str:
        """A short hash of the named fields (default: all but runtime ones) plus ``extra``."""
        d = self.resolved().to_dict()
        names = names or tuple(k for k in d if k not in RUNTIME_FIELDS)
        # DP fields at their defaults (no DP) stay out, so non-private keys predate them
        payload = {k: d[k] for k in names if k not in KEY_DEFAULTS or d[k] != KEY_DEFAULTS[k]}
        payload |= extra | {"version": CONFIG_VERSION}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


_DEFAULT = "None = the method's default"
# What each field accepts (sslmem.pipeline.validate), checked at construction: a new field needs
# one line
# here (tests/test_config.py fails for a field without one).
FIELDS = {
    "dataset": Dataset(),
    "image_size": Int(low=8, none="None = the dataset's native size"),
    "split_protocol": Choice("sslmem.train.splits:PROTOCOLS"),
    "shared": Size(),
    "candidate": Size(low=1),
    "independent": Size(),
    "extra": Size(),
    "split_seed": Int(low=0),
    "method": Choice("sslmem.train.methods:METHODS"),
    "backbone": Choice("sslmem.train.backbones:BACKBONES", none=_DEFAULT),
    "patch_size": Int(low=0),
    "epochs": Int(low=1, none=_DEFAULT),
    "batch_size": Int(low=1, none=_DEFAULT),
    "optimizer": Choice("sslmem.train.optim:OPTIMIZERS", none=_DEFAULT),
    "lr": Float(low=0, open_low=True, none=_DEFAULT),
    "augment_strength": Float(low=0, high=1, open_low=True),
    "precision": Choice(("fp32", "bf16")),
    "weight_decay": Float(low=0, none=_DEFAULT),
    "warmup_epochs": Int(low=0, none=_DEFAULT),
    "seeds": Seeds(),
    "align_lambda": Float(low=0),
    "align_start_epoch": Int(low=0),
    "dp_epsilon": Float(low=0, open_low=True, none="None or inf = no DP", inf_is_none=True),
    "dp_delta": Float(low=0, high=1, open_low=True, open_high=True,
                      none="None = the largest power of ten below 1/N"),
    "dp_max_grad_norm": Float(low=0, open_low=True),
    "n_pairs": Int(low=1),
    "score_variant": Choice(("pairs", "clean")),
    "score_augment": Choice(("train", "score")),
    "score_seed": Int(low=0),
    "score_precision": Choice(("fp32", "int8")),
    "representation": Choice("sslmem.score.representation:REPRESENTATIONS"),
    "device": Device(),
    "compile": Choice(("auto", "on", "off")),
    "progress": Bool(),
    "data_root": Folder(none="None = $SSLMEM_DATA"),
    "runs_root": Folder(none="None = $SSLMEM_RUNS"),
    "checkpoint_every": Int(low=1),
    "monitor_points": Int(low=1),
    "profile": Choice(PROFILES),
    "results_root": Folder(none="None = $SSLMEM_RESULTS"),
    "results_only": Bool(none="None = $SSLMEM_RESULTS_ONLY"),
}

TRAIN_FIELDS = ("dataset", "image_size", "split_protocol", "shared", "candidate", "independent",
                "extra", "split_seed", "method", "backbone", "patch_size", "epochs", "batch_size",
                "optimizer", "lr", "weight_decay", "warmup_epochs", "align_lambda",
                "align_start_epoch", *DP_FIELDS, "monitor_points", "augment_strength",
                "precision")
