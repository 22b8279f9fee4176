"""The console's pages: the sign-in form, the console itself, its static files, signing out.

`GET /debug` is the console for a signed-in browser and the sign-in form for anybody else (a
token in the URL signs nobody in: the form says so). The console is one HTML page and a few
ES modules and a style sheet under `static/`, served from the package as they are: no build
step, nothing from a CDN, and a Content-Security-Policy that allows only this origin's scripts
and styles.

`POST /debug/sign-in` takes the form's fields (or the same as JSON, for scripts): on success it
sets the session cookie and sends a browser back to `/debug` (303), or answers the operator and
the CSRF token as JSON; on failure the form comes back with the reason (or the error shape).
"""

from __future__ import annotations

import hmac
from html import escape
from importlib import resources
from typing import Final

from quart import Blueprint, Response, jsonify, request

from parley.api.body import FORM, json_or_form_object
from parley.api.errors import ApiError
from parley.api.operator.access import (
    CSRF_HEADER,
    TOKEN_PARAMETERS,
    check_same_site,
    clear_cookie,
    set_cookie,
)
from parley.api.operator.console import OperatorConsole

STATIC: Final = resources.files("parley.api.operator") / "static"
CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
"""On every console response: nothing but this origin's files runs, nothing frames it (the
confirmations must not be clickjacked), nothing is cached."""


def static_file(name: str) -> bytes | None:
    """A file of `static/` by its plain name, or None (no paths, no hidden files)."""
    if "/" in name or "\\" in name or name.startswith(".") or not name:
        return None
    entry = STATIC / name
    if not entry.is_file():
        return None
    return entry.read_bytes()


def _html(body: bytes | str, status: int = 200) -> Response:
    return Response(body, status=status, content_type=CONTENT_TYPES[".html"])


class ConsolePages:
    def __init__(self, console: OperatorConsole) -> None:
        self.console = console
        self.gate = console.gate
        self.settings = console.context.settings

    def register(self, blueprint: Blueprint) -> None:
        blueprint.add_url_rule("/debug", "page", self.page, methods=["GET"])
        blueprint.add_url_rule("/debug/", "page_slash", self.page, methods=["GET"])
        blueprint.add_url_rule("/debug/static/<name>", "static_file", self.static, methods=["GET"])
        blueprint.add_url_rule("/debug/sign-in", "sign_in", self.sign_in, methods=["POST"])
        blueprint.add_url_rule("/debug/sign-out", "sign_out", self.sign_out, methods=["POST"])

    def sign_in_form(self, notice: str | None = None, status: int = 200) -> Response:
        template = static_file("sign-in.html")
        assert template is not None, "static/sign-in.html ships with the package"
        paragraph = f'<p class="notice" role="alert">{escape(notice)}</p>' if notice else ""
        return _html(template.decode().replace("{{notice}}", paragraph), status)

    async def page(self) -> Response:
        if TOKEN_PARAMETERS.intersection(name.lower() for name in request.args):
            return self.sign_in_form(
                "Tokens in the URL are never accepted. Sign in with the form: the token stays "
                "out of your history and the server's logs."
            )
        session = self.gate.session()
        if session is None:
            return self.sign_in_form()
        self.gate.renew(session)
        shell = static_file("index.html")
        assert shell is not None, "static/index.html ships with the package"
        return _html(shell)

    async def static(self, name: str) -> Response:
        content = static_file(name)
        suffix = name[name.rfind(".") :] if "." in name else ""
        if content is None or suffix not in CONTENT_TYPES:
            raise ApiError(404, "not_found", "no such file")
        return Response(content, content_type=CONTENT_TYPES[suffix])

    async def sign_in(self) -> Response:
        is_form = request.mimetype == FORM
        try:
            fields = await json_or_form_object()
            secret, session = await self.gate.sign_in(fields)
        except ApiError as error:
            if not is_form:
                raise
            response = self.sign_in_form(error.message, error.status)
            response.headers.update(error.headers)
            return response
        debug = self.settings.debug
        await self.console.record(
            session.operator, "console.sign_in", "node", self.console.node.name
        )
        if is_form:
            response = Response("", status=303, headers={"Location": "/debug"})
        else:
            response = jsonify(
                {
                    "node": self.console.node.name,
                    "operator": session.operator.as_dict(),
                    "csrf_token": session.csrf_token,
                }
            )
        set_cookie(response, secret, debug.session_ttl_seconds, secure=self.gate.secure())
        return response

    async def sign_out(self) -> Response:
        check_same_site()
        session = self.gate.session()
        if session is not None:
            form = await request.form if request.mimetype == FORM else {}
            sent = request.headers.get(CSRF_HEADER) or form.get("csrf_token", "")
            if not hmac.compare_digest(str(sent).encode(), session.csrf_token.encode()):
                raise ApiError(403, "csrf", f"the {CSRF_HEADER} header is missing or wrong")
            self.gate.sessions.close(session)
            await self.console.record(
                session.operator, "console.sign_out", "node", self.console.node.name
            )
        if request.mimetype == FORM:
            response = Response("", status=303, headers={"Location": "/debug"})
        else:
            response = Response("", status=204)
        clear_cookie(response)
        return response
