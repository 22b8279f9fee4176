"""Draining a node, on the real channel core with memory transports and the mock clock."""

from __future__ import annotations

import trio
import trio.testing

from parley.api.operator.drain import DrainState, NodeDrain
from parley.api.socket.core.transport import Accepted, ConnectRequest, Refused
from parley.api.socket.phoenix.serializer import V2
from parley.config import Settings
from tests.socket.channel_case import ChannelClient, channel_case, principal


def _closed(clients: list[ChannelClient]) -> int:
    return sum(client.connection.closed is not None for client in clients)


async def test_a_drain_closes_the_sockets_spread_over_its_period_then_reports_drained(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with channel_case(Settings()) as case:
        clients = [await case.connect() for _ in range(8)]
        drain = NodeDrain(case.hub, period_seconds=2.0, grace_seconds=5.0)
        await case.nursery.start(drain.run)
        start = trio.current_time()
        assert drain.start()
        assert not case.hub.accepting and drain.state is DrainState.DRAINING
        counts = []
        for _ in range(8):
            await trio.sleep(0.25)
            counts.append(_closed(clients))
        assert counts == sorted(counts) and counts[0] < 3 and 3 <= counts[3] <= 5
        assert counts[-1] == 8
        assert {client.connection.closed for client in clients} == {(1012, "node draining")}
        await trio.testing.wait_all_tasks_blocked()
        assert drain.describe()["state"] == "drained" and case.hub.connection_count == 0
        assert drain.describe()["closed"] == 8
        assert trio.current_time() - start <= 2.5
        assert not drain.start()  # drained: resume first


async def test_resuming_stops_the_drain_and_takes_sockets_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with channel_case(Settings()) as case:
        clients = [await case.connect() for _ in range(8)]
        drain = NodeDrain(case.hub, period_seconds=2.0, grace_seconds=5.0)
        await case.nursery.start(drain.run)
        drain.start()
        await trio.sleep(0.6)
        assert drain.resume()
        closed = _closed(clients)
        assert 0 < closed < 8
        await trio.sleep(5)
        assert _closed(clients) == closed
        assert drain.state is DrainState.SERVING and case.hub.accepting
        assert not drain.resume()


async def test_while_draining_the_hub_refuses_every_upgrade_before_its_token(
    autojump_clock: trio.testing.MockClock,
) -> None:
    asked: list[ConnectRequest] = []

    async def accept_everyone(request: ConnectRequest) -> Accepted | Refused:
        asked.append(request)
        return Accepted(principal(), V2, None)

    async with channel_case(Settings()) as case:
        gate = case.hub.gate(accept_everyone)
        request = ConnectRequest("/socket/websocket", "vsn=2.0.0", {})
        assert isinstance(await gate(request), Accepted)
        case.hub.accepting = False
        assert await gate(request) == Refused(503, "draining")
        assert len(asked) == 1
