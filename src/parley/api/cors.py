"""Cross-origin browsers (CORS): pages of the origins in `http.cors_origins` may call the API.

quart-cors (by Quart's author) does the header work as an after-request hook: it answers a
preflight (`OPTIONS` with `Access-Control-Request-Method`) from a listed origin with that origin,
the allowed methods, the requested headers that are allowed, `Max-Age` and `Vary: Origin`, and
adds `Access-Control-Allow-Origin`, `-Allow-Credentials` and `-Expose-Headers` to the actual
responses of listed origins. Any other origin gets no `Access-Control-*` header at
all, so its browser keeps the answer from the page.

Credentials (the refresh cookie, on `/api/auth`) are allowed for listed origins only. `["*"]` lets
pages of any origin in without credentials: the browser sends no cookie and reads no `Set-Cookie`,
and such pages use Bearer tokens from the response bodies. The config loader refuses `*` beside
other entries, so the two never mix.

Quart answers `OPTIONS` itself (PROVIDE_AUTOMATIC_OPTIONS, 200 with `Allow`, before any role
check); an accepted preflight is turned into a 204, the usual status for a bodiless answer. The
Phoenix socket is outside Quart (api/socket/transports/) and checks `socket.allowed_origins`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from quart import Response, request
from quart_cors import cors

if TYPE_CHECKING:
    from quart_trio import QuartTrio

    from parley.config import HttpSettings

ALLOW_METHODS: Final = ("GET", "HEAD", "POST", "PATCH", "DELETE")
ALLOW_HEADERS: Final = ("authorization", "content-type")
"""The request headers a page may send; a preflight is answered with those of them it asked for."""
EXPOSE_HEADERS: Final = ("Retry-After", "WWW-Authenticate")
"""Response headers a page may read beyond the always-readable ones (Content-Type, ...): how long
to wait after a 429, and why a token was refused."""


def install(app: QuartTrio, settings: HttpSettings) -> None:
    """Answer preflights and mark responses for `settings.cors_origins` (nothing when empty)."""
    origins = settings.cors_origins
    if not origins:
        return

    # After-request hooks run in reverse order of registration: this one runs after quart-cors's.
    @app.after_request
    async def preflight_no_content(response: Response) -> Response:
        if (
            request.method == "OPTIONS"
            and response.status_code == 200
            and "Access-Control-Allow-Methods" in response.headers
        ):
            response.status_code = 204
        return response

    any_origin = origins == ("*",)
    cors(
        app,
        allow_origin=list(origins),
        allow_credentials=not any_origin,
        allow_methods=ALLOW_METHODS,
        allow_headers=ALLOW_HEADERS,
        expose_headers=EXPOSE_HEADERS,
        max_age=settings.cors_max_age_seconds,
    )
