"""The Quart-Trio application: blueprints and error handlers over the running system's parts."""

from __future__ import annotations

from quart import request
from quart_trio import QuartTrio

from parley.api.admin import blueprint as admin_blueprint
from parley.api.admin_realtime import blueprint as realtime_blueprint
from parley.api.applications import blueprint as applications_blueprint
from parley.api.audit import blueprint as audit_blueprint
from parley.api.auth import blueprint as auth_blueprint
from parley.api.context import AppContext
from parley.api.conversations import blueprint as conversations_blueprint
from parley.api.cors import install as install_cors
from parley.api.dev import blueprint as dev_blueprint
from parley.api.errors import install_error_handlers
from parley.api.events import blueprint as events_blueprint
from parley.api.health import blueprint as health_blueprint
from parley.api.listings import blueprint as listings_blueprint
from parley.api.me import blueprint as me_blueprint
from parley.api.openapi import blueprint as openapi_blueprint
from parley.api.operator import OperatorConsole
from parley.api.operator import install as install_operator
from parley.api.organizations import blueprint as organizations_blueprint
from parley.api.pages import blueprint as pages_blueprint
from parley.api.pusher_routes import blueprint as pusher_api_blueprint
from parley.api.socket.core.transport import Authorize
from parley.api.socket.pusher.connect import PUSHER_PATH_PREFIX
from parley.api.socket.transports.asgi import install as install_socket
from parley.api.socket.transports.longpoll import LongPollTransport
from parley.api.socket.transports.longpoll import install as install_longpoll
from parley.api.tokens import blueprint as tokens_blueprint
from parley.api.users import blueprint as users_blueprint


def create_app(
    context: AppContext,
    authorize_socket: Authorize,
    longpoll: LongPollTransport,
    console: OperatorConsole,
    pusher_socket: Authorize | None = None,
) -> QuartTrio:
    """The app over the running system's parts; its socket path (the portable ASGI transport)
    asks `authorize_socket` about each upgrade, and upgrades under `/app/` ask `pusher_socket`
    (the Pusher protocol, docs/pusher.md). `console` is served at `/debug` and `/metrics`."""
    app = QuartTrio("parley")
    app.config["MAX_CONTENT_LENGTH"] = context.settings.server.max_request_body_bytes
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = True
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["parley"] = context
    install_error_handlers(app)
    install_cors(app, context.settings.http)
    install_operator(app, console)  # first: its request timer starts before the body is read

    @app.before_request
    async def read_the_whole_body() -> None:
        # An answer sent before the request body has arrived (a 404 from routing, a 401 from the
        # role check) leaves the rest of the body unread, and Hypercorn then stalls the next
        # request on that kept-alive connection. Reading it first (bounded by MAX_CONTENT_LENGTH,
        # a 413 past it) keeps every connection in step.
        await request.get_data(cache=True)

    for blueprint in (
        health_blueprint,
        openapi_blueprint,
        conversations_blueprint,
        auth_blueprint,
        me_blueprint,
        users_blueprint,
        admin_blueprint,
        tokens_blueprint,
        dev_blueprint,
        realtime_blueprint,
        pages_blueprint,
        listings_blueprint,
        audit_blueprint,
        organizations_blueprint,
        applications_blueprint,
        events_blueprint,
        pusher_api_blueprint,
    ):
        app.register_blueprint(blueprint)
    # The socket at settings.socket.path, in front of the app's routes (the ASGI transport), and
    # over long polling at its sibling path (transports.longpoll).
    pusher = None if pusher_socket is None else (PUSHER_PATH_PREFIX, pusher_socket)
    install_socket(app, context.sockets, authorize_socket, pusher)
    install_longpoll(app, longpoll)
    return app
