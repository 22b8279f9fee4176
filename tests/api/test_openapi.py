"""The served OpenAPI document and its docs page describe every declared parameter."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator

from parley.api.endpoint import OPERATIONS
from tests.api.conftest import register

if TYPE_CHECKING:
    import httpx


class _DocsPage(HTMLParser):
    """The parameter names the docs page shows, per operation section (`<section id=opId>`)."""

    def __init__(self) -> None:
        super().__init__()
        self.parameters: dict[str, list[str]] = {}
        self._section: str | None = None
        self._in_parameter = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "section" and attributes.get("class") == "op":
            self._section = attributes["id"]
            assert self._section is not None
            self.parameters[self._section] = []
        elif tag == "code" and attributes.get("class") == "parameter":
            self._in_parameter = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "code":
            self._in_parameter = False
        elif tag == "section":
            self._section = None

    def handle_data(self, data: str) -> None:
        if self._in_parameter and self._section is not None:
            self.parameters[self._section].append(data)


async def test_every_declared_parameter_is_in_openapi_json_and_on_the_docs_page(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/api/openapi.json")).json()
    docs = await client.get("/api/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    page = _DocsPage()
    page.feed(docs.text)

    declared = {op.operation_id: [(p["in"], p["name"]) for p in op.parameters] for op in OPERATIONS}
    assert any(("query", "before_seq") in parameters for parameters in declared.values()), (
        "the history endpoint declares its query parameters"
    )
    served = {
        op["operationId"]: op
        for operations in document["paths"].values()
        for op in operations.values()
    }
    assert served.keys() == declared.keys()
    for operation_id, parameters in declared.items():
        in_document = [(p["in"], p["name"]) for p in served[operation_id].get("parameters", [])]
        assert in_document == parameters, operation_id
        assert page.parameters[operation_id] == [name for _, name in parameters], operation_id


async def test_the_document_states_the_body_rules_schemathesis_found_unstated(
    client: httpx.AsyncClient,
) -> None:
    """Drill F1 (docs/reliability.md) sent schema-valid bodies the server refused with 422: a blank
    message, a reply of white space, a client_id with a NUL, a first message's client_id without
    its body, an admin change naming neither role nor banned. The document now says so, and what
    it calls valid the server takes."""
    document = (await client.get("/api/openapi.json")).json()

    def body_schema(method: str, path: str) -> dict[str, Any]:
        schema: dict[str, Any] = document["paths"][path][method]["requestBody"]["content"][
            "application/json"
        ]["schema"]
        return schema

    send = body_schema("post", "/api/conversations/{conversation_id}/messages")
    for blank in ("", "   ", "\n\t", "a\x00"):
        assert not Draft202012Validator(send).is_valid({"body": blank}), repr(blank)
    assert Draft202012Validator(send).is_valid({"body": " hello "})
    reply = body_schema("post", "/api/listings/{listing_id}/replies")
    assert not Draft202012Validator(reply).is_valid({"body": "  "})
    assert not Draft202012Validator(send).is_valid({"body": "hi", "client_id": "c\x00"})
    contact = body_schema("post", "/api/listings/{listing_id}/contact")
    assert not Draft202012Validator(contact).is_valid({"client_id": "c1"})  # without a body
    for fine in ({}, {"body": "hi"}, {"body": "hi", "client_id": "c1"}):
        assert Draft202012Validator(contact).is_valid(fine), fine
    change = body_schema("patch", "/api/admin/users/{user_id}")
    assert not Draft202012Validator(change).is_valid({"reason": "why"})
    assert Draft202012Validator(change).is_valid({"banned": False})

    account, other = await register(client), await register(client)
    created = await client.post(
        "/api/conversations", json={"member_ids": [str(other.id)]}, headers=account.headers
    )
    path = f"/api/conversations/{created.json()['id']}/messages"
    for body, status in ((" hello ", 201), ("   ", 422)):
        assert Draft202012Validator(send).is_valid({"body": body}) == (status == 201)
        sent = await client.post(path, json={"body": body}, headers=account.headers)
        assert sent.status_code == status, sent.text
