"""Write the gateway chart's allow-list files from the one allow-list the local gateway uses.

The chart's haproxy.cfg includes charts/spillover-gateway/files/allow-{http,grpc}.cfg in its
traffic frontends. Both come from `spillover.drivers.haproxy_exposure` for the model named in
`spillover.model.contract`, so the cluster gateway refuses exactly what the local one refuses.
Run this script after changing the allow-list; a test fails until the files are in sync.

    .venv/bin/python scripts/sync-gateway-allowlist.py          # rewrite the files
    .venv/bin/python scripts/sync-gateway-allowlist.py --check  # exit 1 when one is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spillover.drivers.haproxy_exposure import grpc_rules, http_rules
from spillover.model.contract import MODEL_NAME

ROOT = Path(__file__).resolve().parents[1]
FILES_DIR = ROOT / "charts" / "spillover-gateway" / "files"
HEADER = (
    "# Written by scripts/sync-gateway-allowlist.py from spillover/drivers/haproxy_exposure.py"
    " (do not edit):\n# only inference, health and model metadata/config of {model} pass.\n"
)


def wanted_files() -> dict[Path, str]:
    """Each allow-list file's path and the text this script writes there."""
    rules = {"allow-http.cfg": http_rules(MODEL_NAME), "allow-grpc.cfg": grpc_rules(MODEL_NAME)}
    return {
        FILES_DIR / name: HEADER.format(model=MODEL_NAME) + "\n".join(lines) + "\n"
        for name, lines in rules.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only report whether the files are up to date"
    )
    args = parser.parse_args(argv)
    stale = {
        path: text
        for path, text in wanted_files().items()
        if not path.exists() or path.read_text() != text
    }
    for path, text in stale.items():
        where = path.relative_to(ROOT)
        if args.check:
            print(f"{where} is out of date: run scripts/sync-gateway-allowlist.py", file=sys.stderr)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {where}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
