"""The fast path's frame codec without I/O (`transports.ws_codec`): what drills W9 (Autobahn)
and W10 (fuzzing) found, each as the smallest exchange that shows it."""

from __future__ import annotations

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request
from wsproto.handshake import server_extensions_handshake

from parley.api.socket.transports.ws_codec import BoundedDeflate


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; server_max_window_bits=",
        "permessage-deflate; client_no_context_takeover; server_max_window_bits=1.5",
    ],
)
def test_a_malformed_deflate_offer_is_declined_not_raised(offer: str) -> None:
    # W10: wsproto's PerMessageDeflate raised ValueError here, failing the upgrade.
    assert server_extensions_handshake([offer], [BoundedDeflate(65_536)]) is None
    # ... and a well-formed offer after it is still taken.
    accepted = server_extensions_handshake([offer, "permessage-deflate"], [BoundedDeflate(65_536)])
    assert accepted is not None and accepted.startswith(b"permessage-deflate")


def test_the_handshake_with_a_malformed_offer_accepts_without_compression() -> None:
    client = WSConnection(ConnectionType.CLIENT)
    request = client.send(Request(host="example.org", target="/socket/websocket"))
    offer = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=x\r\n"
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(request.replace(b"\r\n\r\n", b"\r\n" + offer + b"\r\n", 1))
    assert isinstance(next(server.events()), Request)
    deflate = BoundedDeflate(65_536)
    response = server.send(AcceptConnection(extensions=[deflate]))
    assert response.startswith(b"HTTP/1.1 101")
    assert b"sec-websocket-extensions" not in response.lower()
    assert not deflate.enabled()
