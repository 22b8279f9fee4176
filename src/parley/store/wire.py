"""A small PostgreSQL client on trio's own sockets, for the message writer's one statement.

Why it exists: asyncpg runs on an asyncio loop in a second thread (`bridge`), and under socket load
that thread waits for the GIL. The trio thread releases the GIL at every system call and takes it
straight back, so the loop thread mostly gets it only when the switch interval forces a hand-over,
once for each of its many short steps (measured: a 500-row batch took 23-26 ms alone and 150-200
ms beside a thread busy with system calls; `docs/fast_path.md`). The writer is the one hot path
into PostgreSQL, so it speaks the protocol itself, on the trio thread: one write and one or two
reads per batch, no second thread to wake, nothing to wait for but the database.

Scope, kept small on purpose: the extended query protocol for statements prepared once per
connection, parameters and results in text format, one statement in flight. The connection
parameters come from the DSN exactly as asyncpg reads it (its own parser, so both connections go to
the same place as the same user), with TLS negotiated as asyncpg does (`sslmode`), and password
authentication by cleartext, MD5 or SCRAM-SHA-256. What it does not speak (GSSAPI, channel
binding, direct TLS) raises `WireUnsupported` at connect, and the caller uses the pool instead.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import secrets
import ssl
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import trio
from asyncpg import connect_utils

_PROTOCOL_VERSION = 196608  # 3.0
_SSL_REQUEST_CODE = 80877103
_CANCEL_REQUEST_CODE = 80877102
_INT32 = struct.Struct("!i")
_HEADER = struct.Struct("!ci")
_RECEIVE_BYTES = 65536

# Authentication request codes ('R' messages).
_AUTH_OK = 0
_AUTH_CLEARTEXT = 3
_AUTH_MD5 = 5
_AUTH_SASL = 10
_AUTH_SASL_CONTINUE = 11
_AUTH_SASL_FINAL = 12

Row = list[bytes | None]
_IO_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class WireError(Exception):
    """PostgreSQL answered with an error; the connection is still usable."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(f"{message} (SQLSTATE {sqlstate})")
        self.sqlstate = sqlstate


class WireUnsupported(Exception):
    """The DSN or the server asks for something this client does not speak."""


class WireBroken(Exception):
    """The connection failed (closed, reset, a protocol violation); it cannot be used again."""


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to connect, as asyncpg reads the DSN."""

    address: str | tuple[str, int]
    """A Unix socket path, or (host, port)."""
    user: str
    password: str | None
    database: str
    ssl: ssl.SSLContext | None
    ssl_required: bool


def endpoints(dsn: str) -> list[Endpoint]:
    """The DSN's hosts in order, read by asyncpg's own parser (environment variables, passfile,
    `host=` query parameters and `sslmode` included); raises `WireUnsupported` for what
    `WireConnection` cannot do."""
    # asyncpg's own (private) parser: the pinned version's, covered by tests/store/test_wire.py.
    addresses, params = connect_utils._parse_connect_dsn_and_args(  # type: ignore[attr-defined]
        dsn=dsn, host=None, port=None, user=None, password=None, passfile=None, database=None,
        ssl=None, service=None, servicefile=None, direct_tls=None, server_settings=None,
        target_session_attrs=None, krbsrvname=None, gsslib=None,
    )  # fmt: skip
    if params.ssl_negotiation != connect_utils.SSLNegotiation.postgres:
        raise WireUnsupported("direct TLS negotiation")
    password = params.password
    if callable(password):
        raise WireUnsupported("a password callback")
    context = params.ssl if isinstance(params.ssl, ssl.SSLContext) else None
    required = params.sslmode >= connect_utils.SSLMode.require
    return [
        Endpoint(address, params.user, password, params.database, context, required)
        for address in addresses
    ]


class WireConnection:
    """One PostgreSQL session. Not safe for concurrent use: one statement at a time."""

    def __init__(self, stream: trio.abc.Stream, endpoint: Endpoint) -> None:
        self._stream = stream
        self._endpoint = endpoint
        self._buffer = bytearray()
        self._broken = False
        self._cancel_key = b""

    @classmethod
    async def connect(cls, dsn: str, *, application_name: str, time_zone: str) -> WireConnection:
        """Connect and authenticate to the first of the DSN's hosts that answers."""
        failures: list[str] = []
        for endpoint in endpoints(dsn):
            try:
                stream = await _open(endpoint)
            except OSError as exc:
                failures.append(f"{endpoint.address}: {exc}")
                continue
            connection = cls(stream, endpoint)
            try:
                await connection._start(application_name, time_zone)
            except BaseException:
                await connection.aclose()
                raise
            return connection
        raise WireBroken("could not connect: " + "; ".join(failures))

    @property
    def usable(self) -> bool:
        return not self._broken

    async def aclose(self) -> None:
        """Say goodbye (Terminate) if the session is healthy, then close the socket."""
        if not self._broken:
            self._broken = True
            with trio.move_on_after(1), contextlib.suppress(*_IO_ERRORS):
                await self._stream.send_all(b"X" + _INT32.pack(4))
        await trio.aclose_forcefully(self._stream)

    async def prepare(self, name: str, query: str) -> None:
        """Parse `query` as the named statement `name` (its parameter types as the query says)."""
        await self._send(_message(b"P", _cstring(name) + _cstring(query) + b"\0\0") + _SYNC)
        await self._finish_exchange()

    async def send_execute(self, statement: str, params: Sequence[bytes | None]) -> None:
        """Send Bind, Execute and Sync for a prepared statement (text parameters and results);
        `read_rows` collects the answer."""
        body = bytearray(b"\0" + _cstring(statement) + b"\0\0" + struct.pack("!h", len(params)))
        for param in params:
            if param is None:
                body += _INT32.pack(-1)
            else:
                body += _INT32.pack(len(param)) + param
        body += b"\0\0"
        await self._send(_message(b"B", bytes(body)) + _EXECUTE_UNNAMED + _SYNC)

    async def read_rows(self) -> list[Row]:
        """The rows of the statement sent last, once the server is ready again; raises
        `WireError` if the statement failed (it was rolled back).

        Cancelling this leaves the connection in step (nothing half-read is lost), but the
        statement still running: `cancel` stops it."""
        return await self._finish_exchange()

    async def cancel(self) -> None:
        """Ask the server to cancel the statement in flight (on a connection of its own, as the
        protocol has it), then read to the end of its answer, so the session can be used again.

        The statement may have finished before the request arrived; then it stands."""
        stream = await _open(self._endpoint)
        try:
            request = _INT32.pack(16) + _INT32.pack(_CANCEL_REQUEST_CODE) + self._cancel_key
            await stream.send_all(request)
        finally:
            await trio.aclose_forcefully(stream)
        with contextlib.suppress(WireError):
            await self._finish_exchange()

    # -- the session ------------------------------------------------------------------------

    async def _start(self, application_name: str, time_zone: str) -> None:
        endpoint = self._endpoint
        if endpoint.ssl is not None and not isinstance(endpoint.address, str):
            await self._negotiate_tls(endpoint)
        settings = {
            "user": endpoint.user,
            "database": endpoint.database,
            "application_name": application_name,
            "client_encoding": "UTF8",
            "DateStyle": "ISO",
            "TimeZone": time_zone,
        }
        body = _INT32.pack(_PROTOCOL_VERSION)
        body += b"".join(_cstring(key) + _cstring(value) for key, value in settings.items())
        await self._send(_INT32.pack(len(body) + 5) + body + b"\0")
        await self._authenticate(endpoint)
        await self._finish_exchange()

    async def _negotiate_tls(self, endpoint: Endpoint) -> None:
        assert endpoint.ssl is not None and not isinstance(endpoint.address, str)
        await self._send(_INT32.pack(8) + _INT32.pack(_SSL_REQUEST_CODE))
        answer = await self._stream.receive_some(1)
        if answer == b"S":
            stream = trio.SSLStream(self._stream, endpoint.ssl, server_hostname=endpoint.address[0])
            await stream.do_handshake()
            self._stream = stream
        elif answer == b"N":
            if endpoint.ssl_required:
                raise WireBroken("the server does not accept TLS, and sslmode requires it")
        else:
            raise WireBroken(f"unexpected answer to SSLRequest: {answer!r}")

    async def _authenticate(self, endpoint: Endpoint) -> None:
        scram: _Scram | None = None
        while True:
            kind, payload = await self._receive()
            if kind == b"E":
                raise _error_from(payload)
            if kind != b"R":
                raise WireBroken(f"unexpected {kind!r} during authentication")
            (code,) = _INT32.unpack_from(payload)
            if code == _AUTH_OK:
                return
            password = endpoint.password
            if password is None:
                raise WireBroken("the server asks for a password and the DSN has none")
            if code == _AUTH_CLEARTEXT:
                await self._send(_message(b"p", _cstring(password)))
            elif code == _AUTH_MD5:
                digest = _md5(endpoint.user, password, payload[4:8])
                await self._send(_message(b"p", _cstring(digest)))
            elif code == _AUTH_SASL:
                mechanisms = payload[4:].split(b"\0")
                if b"SCRAM-SHA-256" not in mechanisms:
                    raise WireUnsupported(f"SASL mechanisms {mechanisms!r}")
                scram = _Scram(password)
                first = scram.client_first()
                body = _cstring("SCRAM-SHA-256") + _INT32.pack(len(first)) + first
                await self._send(_message(b"p", body))
            elif code == _AUTH_SASL_CONTINUE and scram is not None:
                final = await trio.to_thread.run_sync(scram.client_final, payload[4:])
                await self._send(_message(b"p", final))
            elif code == _AUTH_SASL_FINAL and scram is not None:
                scram.verify_server(payload[4:])
            else:
                raise WireUnsupported(f"authentication request {code}")

    async def _finish_exchange(self) -> list[Row]:
        """Read until ReadyForQuery: the DataRows, or the ErrorResponse raised as `WireError`."""
        rows: list[Row] = []
        error: WireError | None = None
        while True:
            kind, payload = await self._receive()
            if kind == b"D":
                rows.append(_data_row(payload))
            elif kind == b"E":
                error = _error_from(payload)
            elif kind == b"K":
                self._cancel_key = payload
            elif kind == b"Z":
                if error is not None:
                    raise error
                return rows
            # ParseComplete, BindComplete, CommandComplete, ParameterStatus, notices and
            # notifications carry nothing the writer needs.

    # -- framing ----------------------------------------------------------------------------

    async def _send(self, data: bytes) -> None:
        if self._broken:
            raise WireBroken("the connection is closed")
        try:
            await self._stream.send_all(data)
        except _IO_ERRORS as exc:
            self._broken = True
            raise WireBroken(f"send failed: {exc!r}") from exc

    async def _receive(self) -> tuple[bytes, bytes]:
        """The next backend message: its type byte and its payload."""
        try:
            while True:
                buffer = self._buffer
                if len(buffer) >= 5:
                    kind, length = _HEADER.unpack_from(buffer)
                    end = length + 1
                    if length < 4:
                        self._broken = True
                        raise WireBroken(f"bad message length {length}")
                    if len(buffer) >= end:
                        payload = bytes(buffer[5:end])
                        del buffer[:end]
                        return kind, payload
                data = await self._stream.receive_some(_RECEIVE_BYTES)
                if not data:
                    self._broken = True
                    raise WireBroken("the server closed the connection")
                buffer += data
        except _IO_ERRORS as exc:
            self._broken = True
            raise WireBroken(f"receive failed: {exc!r}") from exc
        except trio.Cancelled:
            # A plain socket gives up no data when a receive is cancelled, so the buffer is still
            # in step; a TLS stream may be left mid-record.
            if isinstance(self._stream, trio.SSLStream):
                self._broken = True
            raise


async def _open(endpoint: Endpoint) -> trio.abc.Stream:
    if isinstance(endpoint.address, str):
        return await trio.open_unix_socket(endpoint.address)
    host, port = endpoint.address
    return await trio.open_tcp_stream(host, port)


def _cstring(text: str) -> bytes:
    return text.encode() + b"\0"


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + _INT32.pack(len(body) + 4) + body


_SYNC = _message(b"S", b"")
_EXECUTE_UNNAMED = _message(b"E", b"\0" + _INT32.pack(0))


def _data_row(payload: bytes) -> Row:
    (count,) = struct.unpack_from("!h", payload)
    offset = 2
    row: Row = []
    for _ in range(count):
        (length,) = _INT32.unpack_from(payload, offset)
        offset += 4
        if length < 0:
            row.append(None)
        else:
            row.append(payload[offset : offset + length])
            offset += length
    return row


def _error_from(payload: bytes) -> WireError:
    fields: dict[str, str] = {}
    for part in payload.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return WireError(fields.get("C", "XX000"), fields.get("M", "unknown error"))


def _md5(user: str, password: str, salt: bytes) -> str:
    inner = hashlib.md5((password + user).encode()).hexdigest()
    return "md5" + hashlib.md5(inner.encode() + salt).hexdigest()


class _Scram:
    """SCRAM-SHA-256 without channel binding (RFC 5802, RFC 7677). PostgreSQL takes the user name
    from the startup message, so the client-first message leaves it empty, as libpq's does; the
    password is used as given (no SASLprep: non-ASCII passwords may not match)."""

    def __init__(self, password: str, *, user: str = "", nonce: str | None = None) -> None:
        self._password = password.encode()
        self._nonce = nonce or base64.b64encode(secrets.token_bytes(18)).decode()
        name = user.replace("=", "=3D").replace(",", "=2C")
        self._first_bare = f"n={name},r={self._nonce}"
        self._server_signature = b""

    def client_first(self) -> bytes:
        return f"n,,{self._first_bare}".encode()

    def client_final(self, server_first: bytes) -> bytes:
        """The proof, from the server's nonce, salt and iteration count (CPU work: PBKDF2)."""
        text = server_first.decode()
        attributes = dict(part.split("=", 1) for part in text.split(","))
        nonce, salt, iterations = attributes["r"], attributes["s"], int(attributes["i"])
        if not nonce.startswith(self._nonce):
            raise WireBroken("the server's SCRAM nonce does not extend ours")
        salted = hashlib.pbkdf2_hmac("sha256", self._password, base64.b64decode(salt), iterations)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        final_without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self._first_bare},{text},{final_without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        self._server_signature = hmac.digest(server_key, auth_message, "sha256")
        return f"{final_without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify_server(self, server_final: bytes) -> None:
        attributes = dict(part.split("=", 1) for part in server_final.decode().split(","))
        if "e" in attributes:
            raise WireBroken(f"SCRAM authentication failed: {attributes['e']}")
        if not hmac.compare_digest(base64.b64decode(attributes["v"]), self._server_signature):
            raise WireBroken("the server's SCRAM signature is wrong")
