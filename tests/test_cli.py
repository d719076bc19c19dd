"""An install without an area's extra still starts: the area's commands stay listed and say
which extra to install; a module no extra provides is a bug and keeps its traceback."""

from __future__ import annotations

import sys

import pytest

from spillover import cli


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import matplotlib` raise ModuleNotFoundError, as if absent.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "tests.cli_areas.plotting_area", raising=False)


def test_a_command_whose_extra_is_missing_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, no_matplotlib: None, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setattr(
        cli, "AREAS", (*cli.AREAS, ("tests.cli_areas.plotting_area", "plot", ("draw",)))
    )
    assert cli.main(["draw", "--any", "arguments"]) == 1
    error = capsys.readouterr().err
    assert "`spillover draw` needs matplotlib, from the `plot` extra" in error
    assert "pip install 'spillover[plot]'" in error
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "draw" in capsys.readouterr().out


def test_an_optional_package_missing_at_run_time_names_its_extra(
    monkeypatch: pytest.MonkeyPatch, no_matplotlib: None, capsys: pytest.CaptureFixture[str]
):
    area = ("tests.cli_areas.lazy_plotting_area", None, ("plot-later",))
    monkeypatch.setattr(cli, "AREAS", (*cli.AREAS, area))
    assert cli.main(["plot-later"]) == 1
    error = capsys.readouterr().err
    assert "`spillover plot-later` needs matplotlib, from the `plot` extra" in error
    assert "Traceback" not in error


def test_a_module_no_extra_provides_is_not_hidden(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(
        cli, "AREAS", (*cli.AREAS, ("tests.cli_areas.broken_area", "plot", ("broken",)))
    )
    with pytest.raises(ModuleNotFoundError, match="spillover_no_such_module"):
        cli.build_parser()
