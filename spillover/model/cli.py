"""The `spillover model` command group."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from spillover.model.build import DEFAULT_REPO, build_model, format_summary
from spillover.model.contract import TOP_K
from spillover.model.precision import Precision
from spillover.model.synth import SynthConfig
from spillover.model.train import TrainConfig

__all__ = ["register", "run_build"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `model build` to the top-level parser; the chosen command is in ``args.func``."""
    model = subparsers.add_parser("model", help="build the recommender model")
    commands = model.add_subparsers(dest="model_command", metavar="COMMAND", required=True)
    build = commands.add_parser(
        "build",
        help="generate data, train, evaluate and export the model into a Triton repository",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    synth_defaults, train_defaults = SynthConfig(), TrainConfig()
    build.add_argument("--repo", type=Path, default=DEFAULT_REPO, help="model repository dir")
    build.add_argument(
        "--users",
        type=_at_least(1),
        default=synth_defaults.n_users,
        help="number of synthetic users",
    )
    build.add_argument(
        "--items",
        type=_at_least(TOP_K),
        default=synth_defaults.n_items,
        help=f"catalog size (at least TOP_K={TOP_K})",
    )
    build.add_argument(
        "--categories",
        type=_at_least(1),
        default=synth_defaults.n_categories,
        help="number of item categories (at most --items)",
    )
    build.add_argument(
        "--seed", type=_at_least(0), default=synth_defaults.seed, help="seed for data and training"
    )
    build.add_argument(
        "--epochs", type=_at_least(1), default=train_defaults.epochs, help="training epochs"
    )
    build.add_argument(
        "--dim", type=_at_least(1), default=train_defaults.dim, help="embedding width"
    )
    build.add_argument(
        "--precision",
        choices=[precision.value for precision in Precision],
        default=Precision.FP32.value,
        help="weights and arithmetic of the served graph (fp16/int8 are converted from fp32)",
    )
    build.add_argument(
        "--tensorrt",
        action="store_true",
        help="with --precision fp16: config.pbtxt hands the graph to TensorRT at FP16 on GPUs "
        "(untested: no GPU here)",
    )
    build.set_defaults(func=lambda args: run_build(args, build))


def run_build(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Build from parsed flags, print the summary; returns the exit code."""
    if args.categories > args.items:
        parser.error(
            f"argument --categories: must be at most --items ({args.items}), got {args.categories}"
        )
    precision = Precision(args.precision)
    if args.tensorrt and precision is not Precision.FP16:
        parser.error(
            f"argument --tensorrt: TensorRT's FP16 mode goes with --precision fp16, "
            f"got --precision {args.precision}"
        )
    synth = SynthConfig(
        n_users=args.users, n_items=args.items, n_categories=args.categories, seed=args.seed
    )
    train = TrainConfig(dim=args.dim, epochs=args.epochs, seed=args.seed)
    print(f"building {args.repo / 'recommender'} at {precision} ...", flush=True)
    metrics = build_model(args.repo, synth, train, precision, tensorrt_fp16=args.tensorrt)
    print(format_summary(metrics))
    return 0


def _at_least(minimum: int) -> Callable[[str], int]:
    """argparse type: an integer >= minimum (argparse names the flag in its error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse
