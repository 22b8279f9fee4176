"""With compression on, a compressed message is inflated only up to `socket.max_frame_bytes`: a
deflate bomb closes with 1009 instead of being inflated whole first (drill W3 measures it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.config import Settings
from tests.drills.frames import OP_TEXT, deflated, frame, open_raw
from tests.socket.conftest import Realtime, socket_settings


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return socket_settings(tmp_path, database_url, socket={"compression": True})


async def test_a_deflate_bomb_closes_with_1009(realtime: Realtime) -> None:
    user = await realtime.user()
    limit = realtime.context.settings.socket.max_frame_bytes
    raw = await open_raw(realtime.url, user.token, deflate=True)
    try:
        await raw.stream.send_all(frame(OP_TEXT, deflated(b" " * (limit * 64)), rsv1=True))
        assert await raw.drain_until_closed() == 1009
    finally:
        await raw.aclose()
    # A compressed message within the limit is still served.
    raw = await open_raw(realtime.url, user.token, deflate=True)
    try:
        heartbeat = b'[null,"1","phoenix","heartbeat",{"pad":"' + b"x" * 1000 + b'"}]'
        await raw.stream.send_all(frame(OP_TEXT, deflated(heartbeat), rsv1=True))
        reply = await raw.read_until(lambda f: f[3] == "phx_reply" and f[1] == "1")
        assert reply[4]["status"] == "ok"
    finally:
        await raw.aclose()
