"""`spillover demo`: the README's first command, end to end on this machine.

Builds the model if needed, brings up the local stack the packaged spillover.yaml
describes (one private replica, a burst pool standing by at 0) with its controller,
asks for real recommendations, then sends a spike over HTTP and gRPC: the
controller starts burst replicas and routes the overflow to them. Once the spike
is over burst returns to standby, and the ledger shows what each pool cost. The
stack is always torn down.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path

from spillover.bench.load import SUMMARY_HEADERS, LoadResult, run_closed_loop, summary_row
from spillover.config import load_config
from spillover.config_cli import LOCAL_DEFAULT
from spillover.controller.bill_report import format_bill
from spillover.controller.cli import database_path, render_status
from spillover.controller.ledger import Ledger
from spillover.controller.reports import format_spend
from spillover.drivers.haproxy import RuntimeApi
from spillover.drivers.local.layout import LocalLayout
from spillover.local.cli import DEFAULT_RUN_DIR, config_pools
from spillover.local.stack import LocalStack
from spillover.model.build import DEFAULT_REPO, ensure_model, model_sizes
from spillover.serving.client import AsyncRecommenderClient, Protocol, RecommenderClient
from spillover.serving.workload import sample_requests
from spillover.tables import format_table

SHOWN_ITEMS = 5
NEW_VISITOR = -1
"""Any id outside the trained users is served by the out-of-vocabulary row."""
STANDBY_TIMEOUT_S = 90.0


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="run the local hybrid stack end to end, then stop it")
    demo.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    demo.add_argument("--model-repo", type=Path, default=DEFAULT_REPO)
    demo.add_argument("--config", type=Path, default=LOCAL_DEFAULT)
    demo.add_argument("--port-base", type=int, default=8000)
    demo.add_argument("--seconds", type=float, default=8.0, help="spike per protocol (default 8)")
    demo.add_argument("--concurrency", type=int, default=16)
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = ensure_model(args.model_repo)
    n_users, n_items = model_sizes(args.model_repo)
    layout = LocalLayout(config_pools(args.config), port_base=args.port_base)
    stack = LocalStack(args.run_dir)
    print(f"starting the pools of {args.config.name} behind HAProxy, and the controller ...")
    stack.up(layout, model)
    try:
        stack.start_controller(args.config)
        endpoints = stack.gateway_endpoints
        print(f"gateway http {endpoints['http']}, grpc {endpoints['grpc']}\n")
        _show_recommendations(endpoints["http"], args.model_repo, n_users, n_items)
        gateway = RuntimeApi(stack.run_dir.gateway_socket)
        # Where the controller just started writes: the config may name its own file.
        database = database_path(load_config(args.config), stack.run_dir.path).path
        print(f"spike: {args.concurrency} clients in a closed loop, HTTP then gRPC ...")
        before = _sessions_by_pool(gateway)
        results = [
            asyncio.run(_load(protocol, endpoints[protocol], n_users, n_items, args))
            for protocol in ("http", "grpc")
        ]
        _print_summary(results, _sessions_by_pool(gateway) - before)
        with Ledger(database, window_seconds=None) as ledger:
            print(f"\n$ spillover status   (during the spike)\n{render_status(ledger)}\n")
            print("spike over: waiting for burst to return to standby after the cooldown ...")
            _wait_for_standby(ledger)
            print(f"\n$ spillover status\n{render_status(ledger, decisions=6)}\n")
            rows = ledger.spend(0.0, time.time() + 1, by="pool")
            print(f"$ spillover spend\n{format_spend(rows, 'table', 'pool')}")
            bill = format_bill(ledger.bill(0.0, time.time() + 1), "table")
            print(f"$ spillover spend --by category\n{bill}")
        return 0 if not any(result.failures for result in results) else 1
    finally:
        stack.down()
        print("\nstack stopped")


def _wait_for_standby(ledger: Ledger) -> None:
    deadline = time.monotonic() + STANDBY_TIMEOUT_S
    while time.monotonic() < deadline:
        saved = ledger.load_controller_state()
        pools = json.loads(saved.status)["pools"] if saved else []
        if all(p["status"] == "standby" for p in pools if p["role"] == "burst"):
            return
        time.sleep(1)
    print(f"burst still running after {STANDBY_TIMEOUT_S:.0f} s")


def _show_recommendations(url: str, repo: Path, n_users: int, n_items: int) -> None:
    """Two new visitors known only by what they browsed, and one returning user."""
    catalog = json.loads((repo / "recommender" / "1" / "catalog.json").read_text())
    names, item_category = catalog["categories"], catalog["item_category"]
    visitors = sample_requests(n_users, n_items, 2, seed=2026, item_category=item_category)
    examples = [
        ("new visitor", [NEW_VISITOR], [int(i) for i in visitors[0].histories[0] if i >= 0][:8]),
        ("new visitor", [NEW_VISITOR], [int(i) for i in visitors[1].histories[0] if i >= 0][:3]),
        ("returning user 42, nothing browsed yet", [42], []),
    ]
    with RecommenderClient(url) as client:
        for who, user_ids, history in examples:
            answer = client.recommend(user_ids, [history])
            browsed = Counter(names[item_category[item]] for item in history).most_common(2)
            if history:
                who += f", browsed {len(history)} items in {' and '.join(n for n, _ in browsed)}"
            print(f"{who}:")
            for item, score in list(zip(answer.item_ids[0], answer.scores[0], strict=True))[
                :SHOWN_ITEMS
            ]:
                category = names[item_category[int(item)]]
                print(f"  item {int(item):>6}  {category:<14} score {score:.3f}")
    print()


async def _load(
    protocol: Protocol, url: str, n_users: int, n_items: int, args: argparse.Namespace
) -> LoadResult:
    requests = sample_requests(n_users, n_items, count=2048, seed=11)
    client = AsyncRecommenderClient(url, protocol)

    async def send(index: int) -> None:
        request = requests[index % len(requests)]
        await client.recommend(request.user_ids, request.histories)

    try:
        return await run_closed_loop(
            f"{protocol} via gateway", send, args.concurrency, args.seconds, max_requests=50_000
        )
    finally:
        await client.close()


def _sessions_by_pool(gateway: RuntimeApi) -> Counter[str]:
    """Requests each pool's servers have taken so far, over both protocols."""
    totals: Counter[str] = Counter()
    for row in gateway.server_stats():
        totals[row.pool] += row.total_sessions
    return totals


def _print_summary(results: list[LoadResult], served: Counter[str]) -> None:
    rows = [[result.label, *summary_row(result)] for result in results]
    print(format_table(["load", *SUMMARY_HEADERS], rows))
    total = sum(served.values()) or 1
    shares = ", ".join(f"{pool} {count / total:.0%}" for pool, count in sorted(served.items()))
    print(f"\nserved by pool: {shares}")
    for result in results:
        for failure in result.failures[:3]:
            print(f"  {result.label} failure: {failure}")
