"""`GET /metrics`: Prometheus text from `prometheus_client`, with the DESIGN §6 figures."""

from __future__ import annotations

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from parley.service import RunningServer
from tests.api.operator.conftest import BEARER, wait_for
from tests.phoenix_client import open_phoenix_client
from tests.socket.conftest import Realtime


async def _scrape(http: httpx.AsyncClient) -> dict[str, Metric]:
    response = await http.get("/metrics", headers=BEARER)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def _value(family: Metric, suffix: str = "", **labels: str) -> float:
    total = 0.0
    for sample in family.samples:
        if sample.name == family.name + suffix and labels.items() <= sample.labels.items():
            total += sample.value
    return total


async def test_metrics_parse_and_carry_the_design_figures(
    anonymous: httpx.AsyncClient, realtime: Realtime, server: RunningServer
) -> None:
    alice, bob = await realtime.users(2)
    conversation_id = await realtime.group(alice, bob)
    async with open_phoenix_client(realtime.url, token=alice.token) as client:
        topic = f"conversation:{conversation_id}"
        assert (await client.join(topic)).status == "ok"
        assert (await client.push(topic, "new_msg", {"body": "measured"})).status == "ok"
        await client.receive(event="new_msg", topic=topic)
        families = await _scrape(anonymous)
        assert (
            _value(families["parley_connections"], transport="websocket", protocol="phoenix") == 1
        )
        assert _value(families["parley_connections"], transport="longpoll") == 0

    async def lag_measured() -> bool:
        return _value((await _scrape(anonymous))["parley_event_loop_lag_seconds"], "_count") > 0

    await wait_for(lag_measured, "the lag probe reported")
    families = await _scrape(anonymous)
    kinds = {name: family.type for name, family in families.items()}
    for name, kind in {
        "parley_connections": "gauge",
        "parley_connections_opened": "counter",
        "parley_joins": "counter",
        "parley_messages_in": "counter",
        "parley_messages_out": "counter",
        "parley_deliveries": "counter",
        "parley_mailbox_depth": "gauge",
        "parley_writer_batch_size": "histogram",
        "parley_writer_commit_seconds": "histogram",
        "parley_delivery_seconds": "histogram",
        "parley_http_request_duration_seconds": "histogram",
        "parley_event_loop_lag_seconds": "histogram",
        "parley_gc_pause_seconds": "histogram",
        "parley_node_info": "gauge",  # an info metric, as the 0.0.4 text format has it
        "process_resident_memory_bytes": "gauge",
    }.items():
        assert kinds.get(name) == kind, name
    assert _value(families["parley_joins"], "_total") >= 1
    assert _value(families["parley_messages_in"], "_total") >= 2  # the join and the push
    assert _value(families["parley_messages_out"], "_total") >= 3  # replies and the broadcast
    assert _value(families["parley_deliveries"], "_total") >= 1
    assert _value(families["parley_writer_commit_seconds"], "_count") >= 1
    assert _value(families["parley_writer_batch_size"], "_sum") >= 1
    assert _value(families["parley_delivery_seconds"], "_count") >= 1
    assert _value(families["parley_actors"], kind="conversation") == 1
    assert _value(families["process_resident_memory_bytes"]) > 0
    (info,) = families["parley_node_info"].samples
    assert info.labels["node"] == server.console.node.name
    requests = families["parley_http_request_duration_seconds"]
    assert _value(requests, "_count", route="/metrics", method="GET", status="200") >= 1


async def test_metrics_need_a_bearer_token(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/metrics")).status_code == 401
    wrong = await anonymous.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
