"""A regression found by the schemathesis run (drill F1, tests/drills/test_api_fuzzing.py, which
runs schemathesis over the whole OpenAPI document as several identities; its short run is in
`make test`)."""

from __future__ import annotations

import trio

from parley.service import RunningServer


async def test_keep_alive_survives_an_answer_sent_before_the_body_arrived(
    server: RunningServer,
) -> None:
    """Found by the schemathesis run (drill F1): a response sent before the request body arrived
    (404 from routing, 401 from the role check) used to stall the next request on the same
    keep-alive connection.

    The body is sent after the headers in a segment of its own, once the server (in this process)
    has read the head and every task of this run waits: the moment a 404 used to go out early.
    """
    host, _, port = server.base_url.removeprefix("http://").rpartition(":")
    body = b'{"banned": false}'
    head = (
        b"PATCH /api/admin/users/not-a-uuid HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    async with await trio.open_tcp_stream(host, int(port)) as stream:
        await stream.send_all(head)
        await trio.testing.wait_all_tasks_blocked()
        await stream.send_all(body)
        assert (await _status_line(stream)).startswith(b"HTTP/1.1 404")
        await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await _status_line(stream)).startswith(b"HTTP/1.1 200")


async def _status_line(stream: trio.SocketStream) -> bytes:
    """The status line of the next response (its body is skipped by Content-Length)."""
    data = b""
    with trio.fail_after(3):
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            rest += await stream.receive_some(65536)
    return head.split(b"\r\n")[0]
