"""Every response the REST tests receive is checked against the served OpenAPI document.

The HTTP client used by the API tests carries `OpenApiChecker.check` as a response hook, so a test
that gets an undocumented status, or a body that does not match the documented schema, fails there.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import jsonschema

from parley.api.endpoint import ERROR_SCHEMA
from parley.api.openapi import openapi_document


class OpenApiChecker:
    def __init__(self) -> None:
        self.document = openapi_document()
        self._routes: list[tuple[re.Pattern[str], str]] = []
        for path in self.document["paths"]:
            pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"
            self._routes.append((re.compile(pattern), path))
        self.checked = 0

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        for pattern, template in self._routes:
            if pattern.match(path):
                operation: dict[str, Any] | None = self.document["paths"][template].get(method)
                return operation
        return None

    async def check(self, response: httpx.Response) -> None:
        request = response.request
        path = request.url.path
        if not path.startswith("/api/") or path in ("/api/openapi.json", "/api/docs"):
            return
        operation = self.operation(request.method.lower(), path)
        if operation is None:
            # Only routes that do not exist may be undocumented, and they still use the error shape.
            assert response.status_code in (404, 405), f"{request.method} {path} is not documented"
            await response.aread()
            jsonschema.validate(response.json(), ERROR_SCHEMA)
            return
        documented = operation["responses"].get(str(response.status_code))
        assert documented is not None, (
            f"{request.method} {path} answered {response.status_code}, which is not documented"
        )
        await response.aread()
        content = documented.get("content")
        if content is None:
            assert not response.content, f"{request.method} {path}: undocumented body"
        else:
            schema = content["application/json"]["schema"]
            jsonschema.validate(response.json(), schema, cls=jsonschema.Draft202012Validator)
        self.checked += 1
