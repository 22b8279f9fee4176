"""Serving the console from the Quart app: its routes, `/metrics`, and the request timer."""

from __future__ import annotations

import time

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from quart import Blueprint, Response, g, request
from quart_trio import QuartTrio

from parley.api.operator.actions import ConsoleActions
from parley.api.operator.console import OperatorConsole
from parley.api.operator.pages import SECURITY_HEADERS, ConsolePages
from parley.api.operator.views import ConsoleViews


def install(app: QuartTrio, console: OperatorConsole) -> None:
    """Serve `console` at `/debug` and `/metrics`, and time every request for `/metrics`."""
    blueprint = Blueprint("operator", __name__)
    ConsolePages(console).register(blueprint)
    ConsoleViews(console).register(blueprint)
    ConsoleActions(console).register(blueprint)

    @blueprint.after_request
    async def harden(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        return response

    app.register_blueprint(blueprint)

    async def metrics() -> Response:
        await console.gate.operator()
        return Response(console.metrics.exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)

    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])

    @app.before_request
    async def start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    async def observe_request(response: Response) -> Response:
        started = g.get("request_started")
        if started is not None:
            rule = request.url_rule
            console.metrics.observe_request(
                request.method,
                rule.rule if rule is not None else "unmatched",
                response.status_code,
                started,
            )
        return response
