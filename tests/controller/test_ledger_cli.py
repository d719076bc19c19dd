"""`spillover status` and `spillover spend` read the ledger the config names: --db, else
the config's controller.database, else the run directory's; a missing one is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from spillover.cli import main
from spillover.config_cli import LOCAL_DEFAULT
from spillover.controller.ledger import Ledger, PoolUsage

PRICE = 3.6


def write_ledger(database: Path, mode: str, replicas: int) -> None:
    """A ledger whose status says `mode` and whose private pool ran `replicas` for 100 s."""
    status = {"at": 100.0, "mode": mode, "pools": []}
    with Ledger(database) as ledger:
        for at in (0.0, 100.0):
            ledger.record(at, [PoolUsage("private", "private", replicas, PRICE, "list", 0, 0)])
        ledger.save_controller_state(100.0, "{}", json.dumps(status))


def config_naming(tmp_path: Path, database: Path | None) -> Path:
    """The packaged local config, with controller.database set to `database`."""
    document = yaml.safe_load(LOCAL_DEFAULT.read_text())
    if database is not None:
        document.setdefault("controller", {})["database"] = str(database)
    path = tmp_path / "spillover.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def status_mode(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = run(capsys, "status", *argv, "--format", "json")
    assert code == 0, err
    return str(json.loads(out)["mode"])


def private_usd(capsys: pytest.CaptureFixture[str], *argv: str) -> float:
    code, out, err = run(capsys, "spend", *argv, "--since", "1970-01-01", "--format", "json")
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["pool"] == "private"
    return float(row["usd"])


@pytest.fixture
def ledgers(tmp_path: Path) -> dict[str, Path]:
    """Three ledgers that tell apart which one was read: by mode and by spend."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    paths = {
        "run-dir": run_dir / "controller.db",
        "config": tmp_path / "elsewhere" / "ledger.db",
        "flag": tmp_path / "flag.db",
    }
    paths["config"].parent.mkdir()
    for (name, path), replicas in zip(paths.items(), (1, 2, 3), strict=True):
        write_ledger(path, mode=name, replicas=replicas)
    return paths


def test_status_and_spend_read_the_configs_database(
    tmp_path: Path, ledgers: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_naming(tmp_path, ledgers["config"])
    where = ["--config", str(config), "--run-dir", str(ledgers["run-dir"].parent)]

    assert status_mode(capsys, *where) == "config"
    assert private_usd(capsys, *where) == pytest.approx(2 * 100 * PRICE / 3600)


def test_db_overrides_the_configs_database(
    tmp_path: Path, ledgers: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_naming(tmp_path, ledgers["config"])
    where = ["--config", str(config), "--db", str(ledgers["flag"])]

    assert status_mode(capsys, *where) == "flag"
    assert private_usd(capsys, *where) == pytest.approx(3 * 100 * PRICE / 3600)


def test_without_db_or_database_the_run_directorys_ledger_is_read(
    tmp_path: Path, ledgers: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The packaged config (the default --config) names no database."""
    where = ["--run-dir", str(ledgers["run-dir"].parent)]

    assert status_mode(capsys, *where) == "run-dir"
    assert private_usd(capsys, *where) == pytest.approx(1 * 100 * PRICE / 3600)


@pytest.mark.parametrize("command", ["status", "spend"])
@pytest.mark.parametrize(
    ("origin", "explained"),
    [
        ("flag", "given by --db"),
        ("config", "set by controller.database in the config"),
        (
            "run-dir",
            "the run directory's: neither --db nor the config's controller.database names one",
        ),
    ],
)
def test_a_missing_ledger_is_named_with_how_it_was_chosen(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    origin: str,
    explained: str,
) -> None:
    run_dir = tmp_path / "run"
    missing = {
        "flag": tmp_path / "typo.db",
        "config": tmp_path / "gone" / "ledger.db",
        "run-dir": run_dir / "controller.db",
    }[origin]
    config = config_naming(tmp_path, missing if origin == "config" else None)
    argv = [command, "--config", str(config), "--run-dir", str(run_dir)]
    if origin == "flag":
        argv += ["--db", str(missing)]

    code, out, err = run(capsys, *argv)

    assert code == 1 and out == ""
    assert f"no controller ledger at {missing} ({explained}; config {config})" in err
    assert not missing.exists(), "looking for a ledger must not create one"
