"""`spillover bench ...`: benchmarks that print their ratios side by side."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from spillover.bench.serving import ServingBenchConfig, report, run_serving_bench
from spillover.model.build import ensure_model, model_sizes

BENCH_DIR = Path(".spillover/bench")
BENCH_ITEMS = 100_000


def register(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench", help="benchmarks")
    kinds = bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    serving = kinds.add_parser(
        "serving", help="Triton+batching vs Flask per request, and gateway overhead"
    )
    defaults = {field.name: field.default for field in fields(ServingBenchConfig)}
    serving.add_argument("--items", type=_positive(int), default=BENCH_ITEMS, help="catalog size")
    serving.add_argument("--concurrency", type=_positive(int), default=defaults["concurrency"])
    serving.add_argument(
        "--seconds", type=_positive(float), default=defaults["duration_s"], help="per round"
    )
    serving.add_argument("--rounds", type=_positive(int), default=defaults["rounds"])
    serving.add_argument(
        "--model-instances", type=_positive(int), default=defaults["model_instances"]
    )
    serving.add_argument(
        "--model-threads",
        type=_positive(int),
        default=defaults["model_threads"],
        help="ONNX Runtime threads per model call, for both servers",
    )
    serving.add_argument("--port-base", type=int, default=defaults["port_base"])
    serving.add_argument("--work-dir", type=Path, default=BENCH_DIR)
    serving.set_defaults(func=_serving)

    controller = kinds.add_parser(
        "controller", help="policy + ledger cost per tick for a large fleet (goal < 20 ms)"
    )
    controller.add_argument("--pools", type=_positive(int), default=100)
    controller.add_argument("--replicas-per-pool", type=_positive(int), default=10)
    controller.add_argument("--ticks", type=_positive(int), default=300)
    controller.set_defaults(func=_controller)


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    """argparse type: a number above 0 (argparse names the flag in its error)."""

    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    return parse


def _serving(args: argparse.Namespace) -> int:
    repo = args.work_dir / f"model_repo_{args.items}"
    model = ensure_model(repo, items=args.items)
    n_users, n_items = model_sizes(repo)
    config = ServingBenchConfig(
        model_path=model,
        n_users=n_users,
        n_items=n_items,
        work_dir=args.work_dir,
        concurrency=args.concurrency,
        duration_s=args.seconds,
        port_base=args.port_base,
        rounds=args.rounds,
        model_instances=args.model_instances,
        model_threads=args.model_threads,
    )
    print(
        f"serving benchmark: {n_items} items, concurrency {args.concurrency}, "
        f"{args.rounds} interleaved rounds of {args.seconds:.0f} s per setup, "
        f"{args.model_instances} Triton model instance(s), {args.model_threads} ONNX Runtime"
        " thread(s) per model call, same ONNX file and machine\n"
    )
    print(report(run_serving_bench(config)))
    return 0


def _controller(args: argparse.Namespace) -> int:
    from spillover.bench import controller

    cost = controller.run(args.pools, args.replicas_per_pool, args.ticks)
    print(controller.report(cost, args.pools, args.replicas_per_pool))
    return 0
