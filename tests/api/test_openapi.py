"""The served OpenAPI document and its docs page describe every declared parameter."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import TYPE_CHECKING

from parley.api.endpoint import OPERATIONS

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
