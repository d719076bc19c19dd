"""Each chart is loaded once per session; every test renders it with its own values."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import helm_python as helm
import pytest

from tests.charts.rendering import CHART_NAMES, Rendered, chart_dir, kube_version_floor, render

RenderChart = Callable[..., Rendered]


@pytest.fixture(scope="session")
def charts() -> Iterator[dict[str, helm.Chart]]:
    loaded = {name: helm.Chart.load(chart_dir(name)) for name in CHART_NAMES}
    yield loaded
    for chart in loaded.values():
        chart.close()


def _renderer(charts: dict[str, helm.Chart], name: str) -> RenderChart:
    def render_chart(values: dict[str, Any] | None = None, **options: Any) -> Rendered:
        options.setdefault("kube_version", kube_version_floor(name))
        return render(charts[name], values, **options)

    return render_chart


@pytest.fixture(scope="session")
def render_triton(charts: dict[str, helm.Chart]) -> RenderChart:
    return _renderer(charts, "triton-recommender")


@pytest.fixture(scope="session")
def render_gateway(charts: dict[str, helm.Chart]) -> RenderChart:
    return _renderer(charts, "spillover-gateway")


@pytest.fixture(scope="session")
def render_controller(charts: dict[str, helm.Chart]) -> RenderChart:
    return _renderer(charts, "spillover-controller")
