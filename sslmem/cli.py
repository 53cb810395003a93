"""``sslmem`` command line: train, score, probe, or run a whole experiment.

Every option maps onto a field of :class:`sslmem.pipeline.config.Config`; ``--profile`` picks one of
``sslmem.pipeline.config.PROFILES`` (paper, laptop, tiny), and ``--set FIELD=VALUE`` reaches any
other
field. Values are checked once, by ``Config`` (``sslmem.pipeline.config.FIELDS``), before any data
is
loaded. Errors a user can fix print one line and exit with status 2; Ctrl-C exits with 130 and
SIGTERM with 143, after one line (a rerun resumes from the last checkpoint).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
import warnings

from sslmem.errors import SSLMemError, command_line
from sslmem.pipeline.config import FIELDS, PROFILES, Config
from sslmem.pipeline.validate import OneLineParser, seed_list

COMMON = {  # option -> (Config field, type, help)
    "--dataset": ("dataset", str, "dataset name or folder:PATH (default: profile's)"),
    "--method": ("method", str, "training method (simclr, byol, simsiam, dino, mae, vicreg, "
                                "barlowtwins, supervised)"),
    "--backbone": ("backbone", str, "backbone (default: the method's)"),
    "--epochs": ("epochs", int, "training epochs (default: the method's paper value)"),
    "--batch-size": ("batch_size", int, "batch size (default: the method's paper value)"),
    "--seeds": ("seeds", seed_list, "comma-separated seeds"),
    "--n-pairs": ("n_pairs", int, "augmentation pairs per point for the score"),
    "--score-precision": ("score_precision", str, "fp32, or int8 (CPU: ~3.5x faster scoring, "
                                                  "scores within ~0.1 s.e. of fp32)"),
    "--representation": ("representation", str, "what the score compares: pooled (default), or "
                                                "tokens (every token of a ViT: the authors' MAE)"),
    "--device": ("device", str, "auto, cpu or cuda[:N]"),
    "--data-root": ("data_root", str, "offline data root (default: $SSLMEM_DATA)"),
    "--runs-root": ("runs_root", str, "run cache root (default: $SSLMEM_RUNS or ./runs)"),
}



def _profile_help() -> str:
    """Each of ``PROFILES`` with the first words of its ``Config`` constructor's docstring."""
    words = {name: re.split(r"[:.](?:\s|$)", getattr(Config, name).__doc__ or "")[0].strip()
             for name in PROFILES}
    return "; ".join(f"{name} = {text[:1].lower() + text[1:]}" for name, text in words.items())

_WORDS = {"true": True, "false": False, "none": None, "null": None, "inf": float("inf")}


def _parse_value(text: str):
    """A Python literal (``3``, ``0.1``, ``[0, 1]``, ``'x'``), a word (true, false, none, inf)
    or else the text itself; ``Config`` then checks the type."""
    word = text.strip().lower()
    if word in _WORDS:
        return _WORDS[word]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def build_config(args: argparse.Namespace) -> Config:
    overrides = {field: getattr(args, opt[2:].replace("-", "_"))
                 for opt, (field, _, _) in COMMON.items()
                 if getattr(args, opt[2:].replace("-", "_")) is not None}
    for item in args.set or []:
        if "=" not in item:
            raise SSLMemError(f"--set expects FIELD=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key.strip()] = _parse_value(value)
    if args.no_progress:
        overrides["progress"] = False
    return Config.for_profile(args.profile, **overrides)


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="sslmem", description="SSLMem: memorization scores for self-supervised encoders "
        "(Wang et al., ICLR 2024). Results are cached under $SSLMEM_RUNS.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {"train": "train encoders f (with S_C) and g (with S_I) for every seed "
                      "(multi-GPU: torchrun --nproc_per_node=N -m sslmem train ...)",
             "score": "SSLMem scores of S_S, S_C, S_I, S_E and the paper's t-tests",
             "probe": "linear-probe and kNN accuracy of encoder f on a downstream dataset",
             "run": "a whole experiment: train, score, test, probe"}
    sub.add_parser("plan", add_help=False,
                   help="the units of work the book needs for a profile: list, run within a "
                        "time budget, or emit one command per unit (sslmem plan --help)")
    text = ("what this host's measurements chose (sslmem.train.calibrate): the memory format of "
            "training and scoring per shape, with the seconds per step that decided it")
    sub.add_parser("calibration", help=text, description=text)
    for name, text in helps.items():
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--profile", choices=PROFILES, default="paper",
                       help=_profile_help())
        for opt, (_, typ, hlp) in COMMON.items():
            p.add_argument(opt, type=typ, default=None, help=hlp)
        p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                       help="any other Config field (repeatable), e.g. --set align_lambda=0.1")
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")
        if name == "probe":
            p.add_argument("--downstream", default=None,
                           help="dataset to probe on (default: the training dataset)")
    return parser


def _init_distributed(cfg: Config) -> Config:
    """Under ``torchrun`` (WORLD_SIZE > 1): join the process group, one GPU per process.

    Why here: the training loop only wraps the model in DistributedDataParallel when a process
    group exists, so ``torchrun --nproc_per_node=N -m sslmem train ...`` is all a user types.
    """
    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return cfg
    cuda = torch.cuda.is_available() and cfg.device != "cpu"
    torch.distributed.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return cfg.replace(device=f"cuda:{local}")
    return cfg.replace(device="cpu")


RESUME = "rerun the same command to resume (stored results are kept; training resumes from " \
         "its last checkpoint)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "plan":
        from sslmem.pipeline.plan import main as plan_main
        from sslmem.pipeline.plan import resume_text

        with command_line("sslmem plan", resume_text) as status:
            status.code = plan_main(argv[1:])
        return status.code
    args = _parser().parse_args(argv)
    with command_line("sslmem", RESUME) as status:
        status.code = _run(args)
    return status.code


def _run(args: argparse.Namespace) -> int:
    """Build the config (every value checked) and run the command."""
    if args.command == "calibration":
        from sslmem.train.calibrate import report

        print(report())
        return 0
    from sslmem.pipeline.experiment import Experiment
    from sslmem.score.significance import why_untested

    cfg = build_config(args)
    if getattr(args, "downstream", None) is not None:  # checked before anything is trained
        FIELDS["dataset"]("--downstream", args.downstream)
    if args.command == "train":
        cfg = _init_distributed(cfg)
    exp = Experiment(cfg)
    if args.command == "train":
        for seed in exp.cfg.seeds:
            for which in ("f", "g"):
                exp.encoder(which, seed)
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"encoders: {exp.run_dir}")
    elif args.command in ("score", "run"):
        table = exp.scores()
        print(table.groupby("subset")[["L_f", "L_g", "score_raw", "score_ratio"]]
              .mean().to_string(float_format="%.4f"))
        print()
        tests = exp.significance()
        print(tests[["hypothesis", "t", "p", "mean_a", "mean_b"]]
              .to_string(index=False, float_format="%.4g"))
        untested = why_untested(tests)
        if untested:  # NaN rows: say why, in one line (``command_line`` prints the warning)
            sys.stdout.flush()
            warnings.warn(untested, stacklevel=1)
        if args.command == "run":
            print(json.dumps({"probe": exp.probe()}, indent=1))
        print(f"\nresults: {exp.store_dir}")
    elif args.command == "probe":
        print(json.dumps(exp.probe(dataset=args.downstream), indent=1))
        print(f"results: {exp.store_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
