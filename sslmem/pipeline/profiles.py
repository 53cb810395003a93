"""Each profile's sizes, schedules and ensemble designs: the numbers the chapters run at.

Why a module of its own: these are measured choices (each comment says what decided it), read by
:mod:`sslmem.pipeline.chapters` (what each chapter computes) and so by the plan; keeping them
apart from the functions that build experiments keeps both short and the choices in one place.
"""

from __future__ import annotations

# Epochs of the book's paper-profile encoders: the methods' paper schedules cut to what one
# f/g pair can train in about eight minutes of an H100 (``sslmem plan`` shows the estimates);
# each chapter states the fraction of the paper's schedule it ran.
PAPER_BOOK_EPOCHS = {"simclr": 200, "byol": 150, "simsiam": 200, "dino": 60, "mae": 100,
                     "vicreg": 100, "barlowtwins": 120, "supervised": 100}

SETTINGS = {
    "paper": {
        "epoch_points": 1000,
        "methods": ["simclr", "byol", "simsiam", "dino", "mae", "vicreg", "barlowtwins"],
        "backbones": {"mae": "vit_tiny"},
        "patch_sizes": {},
        "method_epochs": PAPER_BOOK_EPOCHS,
        "top_k": 100,
        "align_epochs": None,  # the method's book epochs
        "align_sizes": dict(shared=0, candidate=25000, independent=25000, extra=5000),
        "probe_max_train": None,
        "probe_max_test": None,
        "align_lambdas": [0.0, 0.1, 0.5],
        "privacy_method": "mae",
        "privacy_epochs": 15,  # DP-SGD's per-sample gradients cost ~5x a normal step
        "privacy_sizes": None,  # the profile's split
        "epsilons": [None, 20.0, 8.0],  # None = no DP (epsilon = infinity)
        # Not measured on a GPU yet: the laptop's chosen design (long training on a small
        # pool, shared init) scaled to the paper's images and backbone, to be sized on a GPU.
        "ensemble_base": dict(n_pairs=16, warmup_epochs=10,
                              sizes=dict(shared=0, candidate=1000, independent=0, extra=500)),
        "ensembles": {
            # the fixed-view design chapter 7 sets beside the all-facet ranking
            "simclr-e800-n1000-shared": dict(method="simclr", epochs=800, members=32,
                                             shared_init=True),
            # the all-facet ranking (membership, init and 128 view pairs drawn per pair, the
            # per-epoch losses chapter 8 reads) and a second method on its own draw (chapter 3)
            "simclr-e800-n1000-facets": dict(method="simclr", epochs=800, members=32,
                                             pair_init=True, views="pair", dynamics=True,
                                             n_pairs=128),
            "byol-e800-n1000-facets-m1": dict(method="byol", epochs=800, members=32,
                                              pair_init=True, views="pair", dynamics=True,
                                              n_pairs=128, membership_seed=1),
            "supervised-e200-n1000-shared": dict(method="supervised", epochs=200, members=32,
                                                 shared_init=True),
        },
        "ranking": dict(ssl="simclr-e800-n1000-facets", supervised="supervised-e200-n1000-shared",
                        facets="simclr-e800-n1000-facets", fixed_views="simclr-e800-n1000-shared",
                        methods=["simclr-e800-n1000-facets", "byol-e800-n1000-facets-m1"],
                        dejavu=["simclr-e800-n1000-facets"]),
        # chapter 4: the ranking design's pool without its top / random / bottom k
        "removal": dict(k=250, seeds=[0, 1, 2, 3], rank_members=32, max_train=None,
                        max_test=None, regularized=None),
    },
    "laptop": {
        "epoch_points": 100,
        "methods": ["simclr", "byol", "simsiam", "mae"],
        "backbones": {"mae": "vit_tiny"},
        "patch_sizes": {"mae": 4},
        # MAE shows no memorization at this scale (measured: 50 epochs on 400 images, or 60 at
        # 10x the learning rate on 200); 30 epochs keep it in chapters 3, 5 and 6 cheaply
        "method_epochs": {"byol": 100, "simsiam": 100, "mae": 30, "supervised": 100},
        "top_k": 40,  # a fifth of the 200 candidates
        "align_epochs": 100,
        "align_sizes": dict(shared=0, candidate=400, independent=400, extra=200),
        "probe_max_train": 5000,
        "probe_max_test": 5000,
        "align_lambdas": [0.0, 0.5],
        "privacy_method": "mae",
        "privacy_epochs": 30,  # as chapter 3's MAE; DP-SGD costs ~2.5x a step on a CPU
        "privacy_sizes": dict(shared=100, candidate=100, independent=100, extra=100),
        "epsilons": [None, 20.0, 8.0],
        # The precision chapter's regime search (``ensembles``): SimCLR ensembles on random
        # halves of a 256-image pool at 16 px (a 32-px ResNet-9 step runs at ~50 img/s on a
        # 2-core host without AVX-512, 4x slower than at 16 px), differing in one knob at a time.
        "ensemble_base": dict(image_size=16, batch_size=64, n_pairs=16, monitor_points=500,
                              warmup_epochs=5,
                              sizes=dict(shared=0, candidate=256, independent=0, extra=128)),
        "ensembles": {
            "simclr-e100": dict(method="simclr", epochs=100, members=8),
            "simclr-e300": dict(method="simclr", epochs=300, members=8, repeats=1),
            "simclr-e300-shared": dict(method="simclr", epochs=300, members=8,
                                       shared_init=True),
            "supervised-e100": dict(method="supervised", epochs=100, members=8),
            # more signal per point: 64 images per encoder, 800 epochs, shared init (measured
            # at M = 4: 100 epochs on 128 images gave no detectable between-point spread)
            # repeats: members 0 and 1 (one fixed partition) retrained with 3 more seeds, the
            # multi-seed f/g estimator to compare with the ensemble on equal compute
            "simclr-e800-n128-shared": dict(method="simclr", epochs=800, members=22,
                                            shared_init=True, repeats=3,
                                            sizes=dict(shared=0, candidate=128,
                                                       independent=0, extra=128)),
            # weaker views (augment.weaken: half the jitter, crops of at least 54 % of the
            # image): memorization is known to grow as augmentation weakens
            "simclr-e800-n128-shared-weak": dict(method="simclr", epochs=800, members=4,
                                                 shared_init=True, augment_strength=0.5,
                                                 sizes=dict(shared=0, candidate=128,
                                                            independent=0, extra=128)),
            # The all-facet design chapters 2, 3 and 5 rank by (fixed, with its 24 members and
            # K = 128, before any member was trained): every complementary pair draws its own
            # init, augmentation stream and 128 scoring view pairs (shared within the pair), so
            # a split-half over whole pairs counts view, seed and composition noise as error;
            # each point's alignment loss at every snapshot epoch is stored too (the training
            # dynamics one-run proxies read).
            "simclr-e800-n128-facets": dict(method="simclr", epochs=800, members=24,
                                            pair_init=True, views="pair", dynamics=True,
                                            n_pairs=128,
                                            sizes=dict(shared=0, candidate=128,
                                                       independent=0, extra=128)),
            # the weak-augmentation knob on the all-facet design (issue 33): is it cheaper per
            # unit of all-facet reliability? Same pool, halves, inits and pair seeds as
            # simclr-e800-n128-facets (its views come from the weaker recipe)
            "simclr-e800-n128-facets-weak": dict(method="simclr", epochs=800, members=16,
                                                 pair_init=True, views="pair", n_pairs=128,
                                                 augment_strength=0.5,
                                                 sizes=dict(shared=0, candidate=128,
                                                            independent=0, extra=128)),
            # chapter 3 on independent draws: BYOL on its own membership draw, seeds and views
            # (membership_seed 1), otherwise the all-facet SimCLR design's recipe
            "byol-e800-n128-facets-m1": dict(method="byol", epochs=800, members=32,
                                             pair_init=True, views="pair", dynamics=True,
                                             n_pairs=128, membership_seed=1,
                                             sizes=dict(shared=0, candidate=128,
                                                        independent=0, extra=128)),
            # a non-contrastive method on the same pool and halves (chapter 3's SSL-SSL agreement)
            "byol-e800-n128-shared": dict(method="byol", epochs=800, members=32,
                                          shared_init=True,
                                          sizes=dict(shared=0, candidate=128, independent=0,
                                                     extra=128)),
            # chapter 4's alignment regularizer (λ = 0.5) on the same pool, halves and seed as
            # the chosen design: member j of both is a pair that differs only in λ
            "simclr-e800-n128-shared-align": dict(method="simclr", epochs=800, members=4,
                                                  shared_init=True, align_lambda=0.5,
                                                  sizes=dict(shared=0, candidate=128,
                                                             independent=0, extra=128)),
            # the literature's atypicality (C-score estimator, Feldman–Zhang) on the same pool
            # and the same membership matrix as the chosen SimCLR design (chapter 2)
            "supervised-e200-n128-shared": dict(method="supervised", epochs=200, members=48,
                                                shared_init=True,
                                                sizes=dict(shared=0, candidate=128,
                                                           independent=0, extra=128)),
        },
        # Designs being computed for the next version of the pages (the plan lists their
        # members; no chapter reads them yet).
        "next_ensembles": {},
        # Chapter 6's ensemble test (its own designs, on the same 128-image pool and halves as
        # chapter 7's): DP-capable recipes (a per-sample loss on a ViT: no BatchNorm, no
        # negatives) tried at ε = ∞ for one whose average in/out contrast is positive over its
        # pairs, then that recipe at ε = 20 and 8 on the same pairs (halves, inits, views).
        # Batches of 16 on 64 images per encoder: a sampling rate q = 0.25 for the accountant.
        "privacy_ensembles": {
            "designs": {
                "mae-vit-e200-n128-facets": dict(
                    method="mae", backbone="vit_tiny", patch_size=4, epochs=200,
                    batch_size=16, members=8, pair_init=True, views="pair",
                    sizes=dict(shared=0, candidate=128, independent=0, extra=128)),
                # 4x the schedule: memorization grows with epochs on a fixed small set (16
                # members: at 8 its contrast was +0.0036, p = 0.12 over 4 pairs)
                "mae-vit-e800-n128-facets": dict(
                    method="mae", backbone="vit_tiny", patch_size=4, epochs=800,
                    batch_size=16, members=16, pair_init=True, views="pair",
                    sizes=dict(shared=0, candidate=128, independent=0, extra=128)),
                "supervised-vit-e200-n128-facets": dict(
                    method="supervised", backbone="vit_tiny", patch_size=4, epochs=200,
                    batch_size=16, members=8, pair_init=True, views="pair",
                    sizes=dict(shared=0, candidate=128, independent=0, extra=128)),
                # the DP levels of the 800-epoch regime (the one whose ε = ∞ contrast was tested
                # at 16 members, fixed before members 8-15 trained): the same pairs (halves,
                # inits, views) at ε = 20 and 8, so each pair is paired across ε
                "mae-vit-e800-n128-facets-dp20": dict(
                    method="mae", backbone="vit_tiny", patch_size=4, epochs=800,
                    batch_size=16, members=16, pair_init=True, views="pair", dp_epsilon=20.0,
                    sizes=dict(shared=0, candidate=128, independent=0, extra=128)),
                "mae-vit-e800-n128-facets-dp8": dict(
                    method="mae", backbone="vit_tiny", patch_size=4, epochs=800,
                    batch_size=16, members=16, pair_init=True, views="pair", dp_epsilon=8.0,
                    sizes=dict(shared=0, candidate=128, independent=0, extra=128)),
                # the same encoders scored as the authors score MAE: every token, not the class
                # token (spec.md §1.5; sslmem.score.representation); scoring only, no training
                "mae-vit-e200-n128-facets-tokens": dict(
                    method="mae", backbone="vit_tiny", patch_size=4, epochs=200,
                    batch_size=16, members=8, pair_init=True, views="pair",
                    representation="tokens",
                    sizes=dict(shared=0, candidate=128, independent=0, extra=128)),
                "mae-vit-e800-n128-facets-tokens": dict(
                    method="mae", backbone="vit_tiny", patch_size=4, epochs=800,
                    batch_size=16, members=16, pair_init=True, views="pair",
                    representation="tokens",
                    sizes=dict(shared=0, candidate=128, independent=0, extra=128)),
            },
            "regimes": ["mae-vit-e200-n128-facets", "mae-vit-e800-n128-facets",
                        "supervised-vit-e200-n128-facets", "mae-vit-e200-n128-facets-tokens",
                        "mae-vit-e800-n128-facets-tokens"],
            "levels": [(None, "mae-vit-e800-n128-facets"), (20.0, "mae-vit-e800-n128-facets-dp20"),
                       (8.0, "mae-vit-e800-n128-facets-dp8")],
        },
        # chapters 2-5 rank points by these ensembles (same pool, same membership)
        # chapter 7 shows the ranking's all-facet reliability (``facets``) beside the fixed-view
        # design's on the same pool (``fixed_views``)
        "ranking": dict(ssl="simclr-e800-n128-facets", supervised="supervised-e200-n128-shared",
                        facets="simclr-e800-n128-facets", fixed_views="simclr-e800-n128-shared",
                        methods=["simclr-e800-n128-facets", "byol-e800-n128-facets-m1"],
                        dejavu=["simclr-e800-n128-facets"],
                        # chapter 7: is this all-facet design cheaper per unit of reliability?
                        alternatives=["simclr-e800-n128-facets-weak"]),
        # chapter 4: a quarter of the 128-image pool removed; 4 paired seeds per arm (the
        # power calculation on the page says what they can detect)
        # The removed sets were ranked by the fixed-view design before the all-facet one existed
        # (``design``): they stay as pre-registered; the page states that ranking's precision.
        "removal": dict(k=32, seeds=[0, 1, 2, 3], rank_members=16, max_train=5000,
                        design="simclr-e800-n128-shared",
                        max_test=5000, regularized="simclr-e800-n128-shared-align"),
    },
    "tiny": {
        "epoch_points": 150,
        "methods": ["simclr", "byol", "dino", "mae"],
        "backbones": {"mae": "vit_tiny"},
        "patch_sizes": {"mae": 4},
        "method_epochs": {"dino": 2, "mae": 2},
        "top_k": None,  # a fifth of the candidates
        "align_epochs": None,
        "align_sizes": dict(shared=0, candidate=0.3, independent=0.3),
        "probe_max_train": 2000,
        "probe_max_test": 2000,
        "align_lambdas": [0.0, 0.5],
        "privacy_method": "mae",
        "privacy_epochs": None,  # chapter 3's
        # a third of the split: DP-SGD's per-sample gradients and the ViT's scoring made
        # chapter 6 the tiny book's largest (280 s of 650 s at 1 thread)
        "privacy_sizes": dict(shared=200, candidate=50, independent=50, extra=50),
        "epsilons": [None, 8.0],  # the smoke run: no DP and the strongest (0.7 min each)
        "ensemble_base": dict(n_pairs=4, monitor_points=200, batch_size=32, warmup_epochs=1,
                              sizes=dict(shared=0, candidate=64, independent=0, extra=32)),
        "ensembles": {
            "simclr-e6": dict(method="simclr", epochs=6, members=4, repeats=1),
            "supervised-e6": dict(method="supervised", epochs=6, members=4),
            "byol-e6": dict(method="byol", epochs=6, members=4),
            "simclr-e6-align": dict(method="simclr", epochs=6, members=2, align_lambda=0.5),
            # the all-facet design (chapter 7's facets section against simclr-e6)
            "simclr-e6-facets": dict(method="simclr", epochs=6, members=8, pair_init=True,
                                     views="pair", dynamics=True),
            # chapter 7's cost comparison: the same design with weaker views
            "simclr-e6-facets-weak": dict(method="simclr", epochs=6, members=6, pair_init=True,
                                          views="pair", augment_strength=0.5),
        },
        # chapter 6's ensemble test, smoke-sized: MAE at ε = ∞ and 8 on the same 2 pairs
        "privacy_ensembles": {
            "designs": {
                "mae-e2-facets": dict(method="mae", backbone="vit_tiny", patch_size=4,
                                      epochs=2, batch_size=8, members=4, pair_init=True,
                                      views="pair"),
                "mae-e2-facets-dp8": dict(method="mae", backbone="vit_tiny", patch_size=4,
                                          epochs=2, batch_size=8, members=4, pair_init=True,
                                          views="pair", dp_epsilon=8.0),
            },
            "regimes": ["mae-e2-facets"],
            "levels": [(None, "mae-e2-facets"), (8.0, "mae-e2-facets-dp8")],
        },
        "ranking": dict(ssl="simclr-e6", supervised="supervised-e6", facets="simclr-e6-facets",
                        fixed_views="simclr-e6", alternatives=["simclr-e6-facets-weak"],
                        methods=["simclr-e6", "byol-e6"], dejavu=["simclr-e6"]),
        # one downstream set, the one probed on halves of its test split (the plumbing)
        "removal": dict(k=16, seeds=[0, 1], rank_members=4, max_train=1000, max_test=1000,
                        regularized="simclr-e6-align", downstream=["cifar100"]),
    },
}
