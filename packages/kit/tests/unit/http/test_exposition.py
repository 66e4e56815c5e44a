from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter
from starlette.applications import Starlette
from starlette.routing import Mount

from stockflow_kit.http import metrics_app, metrics_route


def _registry_with_a_sample() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("widgets", "Widgets made.", registry=registry).inc(3)
    return registry


async def test_the_route_serves_text_exposition_without_a_redirect(send) -> None:
    app = Starlette(routes=[metrics_route(_registry_with_a_sample())])

    response = await send(app, "GET", "/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "widgets_total 3.0" in response.text


async def test_the_route_answers_head_and_refuses_other_methods(send) -> None:
    app = Starlette(routes=[metrics_route(_registry_with_a_sample())])

    assert (await send(app, "HEAD", "/metrics")).status_code == 200
    assert (await send(app, "POST", "/metrics")).status_code == 405


async def test_openmetrics_is_served_when_asked_for(send) -> None:
    app = Starlette(routes=[metrics_route(_registry_with_a_sample(), path="/m")])

    response = await send(app, "GET", "/m", headers={"Accept": "application/openmetrics-text"})

    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


async def test_the_app_serves_the_default_registry_when_none_is_given(send) -> None:
    response = await send(metrics_app(), "GET", "/anything")

    assert response.status_code == 200
    assert "python_info" in response.text


async def test_mounting_the_app_redirects_which_is_why_the_route_exists(send) -> None:
    app = Starlette(routes=[Mount("/metrics", app=metrics_app(_registry_with_a_sample()))])

    response = await send(app, "GET", "/metrics")

    assert response.status_code == 307
