"""`spillover bench ...`: benchmarks that print their ratios side by side."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from spillover.bench import precision as precision_bench
from spillover.bench.serving import BenchError, ServingBenchConfig, report, run_serving_bench
from spillover.config import load_config
from spillover.config_cli import LOCAL_DEFAULT
from spillover.model.build import ensure_model, model_sizes
from spillover.model.precision import Precision

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
    serving.add_argument(
        "--precision",
        type=_precisions,
        help="instead: serve the model at these precisions side by side, e.g. fp32,int8,fp16 "
        "(req/s, latency, size, memory, Recall@20, cost per 1,000)",
    )
    serving.add_argument(
        "--config",
        type=Path,
        default=LOCAL_DEFAULT,
        help="with --precision: spillover.yaml whose private pool's price sets the cost column",
    )
    serving.set_defaults(func=_serving)

    capacity = kinds.add_parser(
        "capacity",
        help="one replica held to a declared capacity, offered 0.5x, 1x, 2x of it",
    )
    capacity.add_argument("--items", type=_positive(int), default=BENCH_ITEMS, help="catalog size")
    capacity.add_argument(
        "--capacity-rps",
        type=_positive(float),
        help="declared requests/s per replica (default: the config's private pool's)",
    )
    capacity.add_argument(
        "--seconds", type=_positive(float), default=12.0, help="measured seconds per step"
    )
    capacity.add_argument("--config", type=Path, default=LOCAL_DEFAULT)
    capacity.add_argument("--port-base", type=int, default=9300)
    capacity.add_argument("--work-dir", type=Path, default=BENCH_DIR)
    capacity.set_defaults(func=_capacity)

    controller = kinds.add_parser(
        "controller", help="policy + ledger cost per tick for a large fleet (goal < 20 ms)"
    )
    controller.add_argument("--pools", type=_positive(int), default=100)
    controller.add_argument("--replicas-per-pool", type=_positive(int), default=10)
    controller.add_argument("--ticks", type=_positive(int), default=300)
    controller.set_defaults(func=_controller)

    sim = kinds.add_parser(
        "sim",
        help="the fleet simulator: a week of the 3-pool fleet (goal < 60 s) and one tick "
        "of 100 pools / 10,000 replicas (goal < 20 ms)",
    )
    sim.add_argument(
        "--days", type=_positive(float), default=7.0, help="simulated days of the packaged week"
    )
    sim.add_argument("--pools", type=_positive(int), default=100)
    sim.add_argument("--replicas-per-pool", type=_positive(int), default=100)
    sim.add_argument("--ticks", type=_positive(int), default=50)
    sim.set_defaults(func=_sim)


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    """argparse type: a number above 0 (argparse names the flag in its error)."""

    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    return parse


def _precisions(text: str) -> tuple[Precision, ...]:
    """argparse type: comma-separated precision names, each once."""
    names = [name.strip() for name in text.split(",")]
    known = [precision.value for precision in Precision]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown precision {', '.join(map(repr, unknown))}; choose from {', '.join(known)}"
        )
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"each precision once, got {text!r}")
    return tuple(Precision(name) for name in names)


def _serving(args: argparse.Namespace) -> int:
    if args.precision:
        return _serving_precisions(args)
    repo = args.work_dir / f"model_repo_{args.items}"
    model = ensure_model(repo, items=args.items)
    n_users, n_items = model_sizes(repo)
    config = ServingBenchConfig(
        model_path=model,
        **_replica_settings(args, n_users, n_items),
    )
    print(
        f"serving benchmark: {n_items} items, concurrency {args.concurrency}, "
        f"{args.rounds} interleaved rounds of {args.seconds:.0f} s per setup, "
        f"{args.model_instances} Triton model instance(s), {args.model_threads} ONNX Runtime"
        " thread(s) per model call, same ONNX file and machine\n"
    )
    print(report(run_serving_bench(config)))
    return 0


def _serving_precisions(args: argparse.Namespace) -> int:
    private = [pool for pool in load_config(args.config).pools if pool.role == "private"]
    if not private:
        raise BenchError(f"{args.config} has no private pool to price a replica with")
    pool = private[0]
    repos = [_precision_repo(args.work_dir, args.items, precision) for precision in args.precision]
    for repo, precision in zip(repos, args.precision, strict=True):
        ensure_model(repo, items=args.items, precision=precision)
    n_users, n_items = model_sizes(repos[0])
    config = precision_bench.PrecisionBenchConfig(
        models=tuple(precision_bench.BuiltModel.from_repo(repo) for repo in repos),
        usd_per_replica_hour=pool.price.hourly_usd,
        **_replica_settings(args, n_users, n_items),
    )
    print(
        f"precision benchmark: {n_items} items, concurrency {args.concurrency} straight to one "
        f"replica per precision, {args.rounds} interleaved rounds of {args.seconds:.0f} s each, "
        f"{args.model_instances} Triton model instance(s), {args.model_threads} ONNX Runtime "
        f"thread(s) per model call; cost at {pool.name}'s ${pool.price.hourly_usd:.3f} per "
        "replica-hour; same machine, same client, same requests\n"
    )
    results = precision_bench.run_precision_bench(config)
    print(precision_bench.report(results, config.usd_per_replica_hour))
    return 0


def _replica_settings(args: argparse.Namespace, n_users: int, n_items: int) -> dict[str, Any]:
    """What both serving benchmarks take from the command line (ReplicaBenchSettings)."""
    return {
        "n_users": n_users,
        "n_items": n_items,
        "work_dir": args.work_dir,
        "concurrency": args.concurrency,
        "duration_s": args.seconds,
        "port_base": args.port_base,
        "rounds": args.rounds,
        "model_instances": args.model_instances,
        "model_threads": args.model_threads,
    }


def _precision_repo(work_dir: Path, items: int, precision: Precision) -> Path:
    """fp32 shares the serving benchmark's build; the others sit beside it."""
    suffix = "" if precision is Precision.FP32 else f"_{precision}"
    return work_dir / f"model_repo_{items}{suffix}"


def _capacity(args: argparse.Namespace) -> int:
    from spillover.bench import capacity

    declared = args.capacity_rps or _private_capacity(args.config)
    repo = args.work_dir / f"model_repo_{args.items}"
    model = ensure_model(repo, items=args.items)
    n_users, n_items = model_sizes(repo)
    config = capacity.CapacityBenchConfig(
        model_path=model,
        n_users=n_users,
        n_items=n_items,
        work_dir=args.work_dir,
        capacity_rps=declared,
        step_s=args.seconds,
        port_base=args.port_base,
    )
    print(
        f"capacity benchmark: one replica held to {declared:.0f} req/s, one model instance, "
        f"offered {', '.join(f'{m:g}x' for m in config.multiples)} open loop for "
        f"{args.seconds:.0f} s each over {config.connections} connections\n"
    )
    print(capacity.report(capacity.run_capacity_bench(config), declared))
    return 0


def _private_capacity(path: Path) -> float:
    for pool in load_config(path).pools:
        if pool.role == "private" and pool.capacity_rps is not None:
            return pool.capacity_rps
    raise BenchError(f"{path} declares no private capacity_rps; pass --capacity-rps")


def _controller(args: argparse.Namespace) -> int:
    from spillover.bench import controller

    cost = controller.run(args.pools, args.replicas_per_pool, args.ticks)
    print(controller.report(cost, args.pools, args.replicas_per_pool))
    return 0


def _sim(args: argparse.Namespace) -> int:
    import logging

    from spillover.bench import sim

    logging.getLogger("spillover.controller").setLevel(logging.CRITICAL)  # per-tick decisions
    tick = sim.bench_tick(args.pools, args.replicas_per_pool, args.ticks)
    week = sim.bench_week(args.days)
    print(sim.report(week, tick))
    return 0
