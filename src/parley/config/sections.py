"""The settings sections: one frozen dataclass per `[section]` of `config/parley.toml`.

Every bound in Parley (mailbox sizes, batches, buffers, pages, limits) lives here with its default;
`docs/settings.md` keeps the measurements behind the measured defaults.
"""

from __future__ import annotations

import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Environment = Literal["dev", "test", "prod"]

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "config" / "parley.toml"
MIN_JWT_KEY_BYTES = 32
MESSAGE_BODY_CEILING_CHARS = 100_000
"""The most `messages.body_max_chars` may be: the database's CHECK on message bodies (0005)."""


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it (e.g. `socket.max_frame_bytes`)."""


class Secret(str):
    """A string that keeps itself out of reprs, logs and tracebacks."""

    def __repr__(self) -> str:
        return "Secret('**********')"


@dataclass(frozen=True)
class ServerSettings:
    env: Environment = "dev"
    host: str = "127.0.0.1"
    port: int = 4000
    data_dir: str = ".parley"
    public_url: str = ""
    """Where people reach this server: mailed links point here (`/confirm`, `/reset`). Set it to
    the address users see (behind a proxy, e.g. https://chat.example.org). Empty: derived from
    `host` and `port` when the settings load (http://127.0.0.1:4000; a wildcard host such as
    0.0.0.0 reads as the loopback address). Never taken from a request's Host header, which
    whoever asks for a password-reset mail controls."""
    shutdown_grace_seconds: float = 10.0
    trusted_proxies: tuple[str, ...] = ()
    """Peers whose X-Forwarded-For is believed; anybody else's is ignored."""
    max_request_body_bytes: int = 1_048_576
    access_log: bool = True
    """One line per HTTP request and socket upgrade on the `parley.access` logger (method, path
    with query parameter names but no values, status, milliseconds); false: none."""
    listen_backlog: int = 1024
    """Connections the kernel completes and queues for the listener before it drops handshakes
    (capped by `net.core.somaxconn`); Hypercorn's 100 overflows in a login burst, each overflow
    a client waiting a one-second SYN retry (docs/settings.md). Cowboy's (Phoenix's) default."""
    gc_freeze: bool = True
    """Freeze the start-up objects out of the garbage collector (off in tests, which run many
    servers in one process)."""
    gc_thresholds: tuple[int, ...] = (10_000, 5, 100)
    """`gc.set_threshold` for the server process (CPython's default is 700, 10, 10). A pause is
    as long as the generation it scans: gen0 holds up to the first number of surviving objects,
    gen1 up to first x second, and a connection storm makes every object survive. These keep
    gen1 pauses short and full collections rare under fan-out and reconnect storms, where the
    defaults ran long full collections that freed almost nothing (docs/settings.md)."""


@dataclass(frozen=True)
class HttpSettings:
    cors_origins: tuple[str, ...] = ()
    """Origins (`scheme://host[:port]`, exactly as browsers send `Origin`) whose pages may call
    the REST API, with credentials (the refresh cookie). Empty: no cross-origin access. `["*"]`,
    alone, lets pages of any origin call it without credentials (Bearer tokens only)."""
    cors_max_age_seconds: int = 600
    """How long a browser may reuse a preflight answer (Chromium caps it at 7200)."""


@dataclass(frozen=True)
class DatabaseSettings:
    url: Secret | None = None
    """`DATABASE_URL`; unset means an embedded PostgreSQL (pgserver) under the data dir."""
    pool_min_size: int = 2
    pool_max_size: int = 8
    command_timeout_seconds: float = 30.0
    connect_timeout_seconds: float = 10.0
    pool_acquire_timeout_seconds: float = 5.0
    """How long a query waits for a pooled connection when all are busy; past it the request gets
    503 with Retry-After instead of queueing behind the others without end (drill D3)."""
    embedded_start_seconds: float = 60.0
    """How long initdb, and then `pg_ctl start`, may each take before the embedded PostgreSQL's
    start counts as failed (a loaded machine is slow at both)."""
    embedded_stop_seconds: float = 10.0
    """How long the embedded PostgreSQL gets for its fast shutdown before it is killed (the kill
    gets as long again). It bounds the last step of Parley's shutdown."""


@dataclass(frozen=True)
class AuthSettings:
    jwt_secret: Secret | None = None
    """Signing key of the current `kid`. Generated once into the data dir outside prod."""
    jwt_kid: str = "k1"
    jwt_previous_keys: tuple[str, ...] = ()
    """Older keys still accepted for verification, as `kid:secret` pairs (key rotation)."""
    issuer: str = "parley"
    audience: str = "parley"
    access_ttl_seconds: int = 900
    refresh_ttl_seconds: int = 4 * 24 * 3600
    channel_token_ttl_seconds: int = 180
    confirm_ttl_seconds: int = 48 * 3600
    password_reset_ttl_seconds: int = 3600
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19_456
    argon2_parallelism: int = 1
    argon2_max_concurrency: int = max(1, (os.cpu_count() or 2) - 1)
    """Hashes run at once (each holds `argon2_memory_kib`); a login storm queues behind this.
    One core is left to the event loop: heartbeats stay on time, at no cost in logins/s
    (docs/settings.md)."""
    password_min_length: int = 10
    password_max_length: int = 256
    login_failures_per_account: int = 10
    login_failure_window_seconds: int = 15 * 60
    per_ip_requests_per_hour: int = 100
    exempt_loopback_in_dev: bool = True
    cookie_name: str = "parley_refresh"


@dataclass(frozen=True)
class ActorSettings:
    call_timeout_seconds: float = 5.0
    registry_mailbox: int = 1024
    conversation_mailbox: int = 512
    conversation_idle_seconds: float = 300.0
    idle_check_seconds: float = 1.0
    """How often one task looks for actors past their idle timeout (`IdleWatch`): an idle actor
    stops between its timeout and its timeout plus this."""
    membership_cache_seconds: float = 30.0
    client_id_cache_size: int = 1024
    presence_broadcast_ms: float = 100.0
    """Presence changes of a topic are merged and broadcast once per this period (0: at once)."""
    session_mailbox: int = 64
    """Inbound frames a socket's session holds before the reader waits (backpressure on the
    client)."""
    channel_mailbox: int = 64
    """Inbound pushes one joined channel holds before its session waits."""
    recent_errors: int = 10
    """Errors (crashes and kills) each actor remembers, newest last, for the operator's detail
    view (`GET /debug/actors/{id}`); `last_error` is always kept."""


@dataclass(frozen=True)
class SupervisionSettings:
    max_restarts: int = 3
    restart_window_seconds: float = 5.0
    child_shutdown_seconds: float = 5.0
    restart_backoff_seconds: float = 0.05
    describe_max_children: int = 100
    """Children the sessions' and conversations' supervisors list in their descriptions (`GET
    /debug/tree`); the rest are only counted (`children_total`): a node with 10,000 sessions must
    not describe them all to draw its tree. The actors view pages through every one of them."""


@dataclass(frozen=True)
class WriterSettings:
    mailbox: int = 8192
    batch_max_rows: int = 500
    batch_max_wait_ms: float = 0.0
    """A batch takes every message queued while the previous commit was in flight, then waits for
    more until none has arrived for this long (0: it does not wait)... Not waiting keeps acks
    several times faster at chat rates, for more and smaller commits (docs/settings.md)."""
    batch_max_linger_ms: float = 20.0
    """...or this long after its first message, whichever comes first (bounds the added latency)."""


@dataclass(frozen=True)
class MessageSettings:
    body_max_chars: int = 4000
    history_default_limit: int = 15
    history_max_limit: int = 100
    recovery_max_messages: int = 100
    page_default_limit: int = 20
    page_max_limit: int = 100
    title_max_chars: int = 200
    group_max_members: int = 1000


@dataclass(frozen=True)
class MarketplaceSettings:
    page_default_limit: int = 20
    """Listings (and replies, and audit entries) per page when `limit` is not given."""
    page_max_limit: int = 100
    q_max_chars: int = 200
    """The longest search text `q`: longer is a 422, not a query over thousands of terms."""
    relevance_window: int = 200
    """`sort=relevance` ranks the newest this many listings that match `q`: ranking every match
    of a common word costs in proportion to the matches, so a bounded set keeps every search fast
    whatever the word (docs/settings.md, docs/marketplace.md)."""
    search_timeout_seconds: float = 2.0
    """A search still running after this is cancelled by the database (503): a query that would
    run long never holds a pooled connection for long."""
    reason_max_chars: int = 500
    """The longest reason a moderator may give for a hide, unhide or delete."""


@dataclass(frozen=True)
class SocketSettings:
    path: str = "/socket/websocket"
    max_frame_bytes: int = 65_536
    heartbeat_timeout_seconds: float = 60.0
    outbound_max_messages: int = 1024
    outbound_max_bytes: int = 4_194_304
    pushes_per_second: float = 50.0
    push_burst: int = 100
    max_channels_per_socket: int = 100
    allowed_origins: tuple[str, ...] = ()
    """Allowed `Origin` values; empty allows any origin in dev/test and same-host only in prod."""
    compression: bool = False
    fast_path: bool = True
    """`parley serve` answers upgrades to `path` on its own listener (wsproto, one pre-built
    frame per broadcast, docs/fast_path.md); false: everything through Hypercorn and ASGI."""
    longpoll_window_seconds: float = 10.0
    """How long a long poll (`GET` on the sibling path `.../longpoll`) is held when there is
    nothing to send before it is answered 204 (Phoenix's `window_ms`)."""
    longpoll_session_timeout_seconds: float = 15.0
    """A long-poll session with no poll outstanding for this long ends (Phoenix: 1.5 windows);
    the client gets 410 on its next request and rejoins."""
    longpoll_max_lines: int = 100
    """Frames one long-poll `POST` may carry (phoenix.js never sends more); more: 400."""
    longpoll_max_body_bytes: int = 1_048_576
    """The largest long-poll `POST` body (at most `server.max_request_body_bytes`); more: 413."""
    longpoll_max_sessions: int = 10_000
    """Long-poll sessions alive at once; they outlive requests, so they are counted (503)."""
    longpoll_max_sessions_per_user: int = 32
    """Long-poll sessions of one user at once (429): one account cannot take the whole count."""


@dataclass(frozen=True)
class MailSettings:
    backend: Literal["dev", "smtp"] = "dev"
    from_address: str = "Parley <no-reply@parley.local>"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: Secret | None = None
    smtp_starttls: bool = False
    poll_seconds: float = 5.0
    batch_size: int = 20
    confirm_link_template: str = "{public_url}/confirm?token={token}"
    """The link in confirmation mails (sign-up, a new address, an account made by staff).
    `{public_url}` is `server.public_url`, `{token}` the URL-encoded token; point it at an app's
    own page with e.g. "https://app.example.org/#/confirm/{token}"."""
    reset_link_template: str = "{public_url}/reset?token={token}"
    """The link in password-reset mails; placeholders as in `confirm_link_template`."""


@dataclass(frozen=True)
class DebugSettings:
    """The operator console at `/debug`, its JSON views and actions, and `/metrics`
    (docs/operators.md)."""

    operator_token: Secret | None = None
    """Signs in to the console, or is sent as `Authorization: Bearer` to the JSON views and
    `/metrics` (an admin's e-mail and password, or access token, work too). Unset: admins only."""
    session_ttl_seconds: float = 900.0
    """A console session ends after this long without a request (its cookie lives as long and is
    renewed as it is used)."""
    session_max_seconds: float = 12 * 3600.0
    """...and this long after sign-in, however busy."""
    max_sessions: int = 64
    """Console sessions held at once; signing in past it ends the least recently used one."""
    allow_insecure_console: bool = False
    """In prod, signing in to the console over plain HTTP is refused (its cookie would travel in
    clear) unless this is set, e.g. behind a proxy that terminates TLS but is not listed in
    `server.trusted_proxies`."""
    page_default_limit: int = 50
    """Rows per page of the actors and sockets views when `limit` is not given."""
    page_max_limit: int = 500
    """The most rows a page may ask for; more is refused (422), not clamped."""
    mailbox_peek_max: int = 20
    """Queued messages the actor detail view names (their kinds and types, never their bodies)."""
    presence_keys_max: int = 200
    """Presence keys one topic's detail lists; the rest are counted."""
    reason_max_chars: int = 200
    """The longest reason an operator may give for an action (kept in the audit log)."""
    drain_seconds: float = 30.0
    """A drain closes this node's sockets (1012) spread over this long, so clients reconnect to
    other nodes gradually rather than all at once; 0 closes them at once."""
    sample_seconds: float = 1.0
    """The overview's charts get one sample per period (rates, latencies, lag, GC, memory)."""
    history_samples: int = 300
    """Samples kept for the overview's charts (300 at 1 s: the last five minutes)."""
    loop_lag_probe_seconds: float = 0.25
    """How often the event-loop lag is measured (how late a sleep of this length wakes up)."""


@dataclass(frozen=True)
class IntegrationsSettings:
    """Organizations, applications, triggers and end-user sockets (docs/integrations.md)."""

    secret_grace_seconds: int = 3600
    """After `POST .../secret` rotates an application's secret, the old one keeps signing
    triggers and end-user tokens this long; then the sockets opened with it close."""
    app_cache_seconds: float = 60.0
    """How long a node trusts its in-memory copy of an application (key, secrets, archive) before
    it reads the row again. Changes made through this node apply at once; this bounds how long
    another node's change (a cluster) takes to reach this one."""
    unknown_app_cache_size: int = 10_000
    """Unknown application keys remembered (for `app_cache_seconds`) so that requests naming
    them cost no query each."""
    max_data_bytes: int = 10_240
    """A trigger's data, encoded, at most this many bytes (Pusher's 10 KB): more is a 413."""
    max_channels_per_trigger: int = 100
    """Channels one trigger may name (Pusher's 100): more is a 422 (a 400 on Pusher's HTTP API)."""
    max_batch_events: int = 10
    """Events one `POST /apps/{app_id}/batch_events` may carry (Pusher's 10): more is a 400."""
    max_channel_name_chars: int = 200
    """Channel names longer than this are refused (the Pusher SDKs allow 200)."""
    timestamp_window_seconds: int = 600
    """A signed request's `auth_timestamp` may be this far from the server's clock (Pusher's
    600 s), either way."""
    end_user_token_max_seconds: int = 86_400
    """An application-signed end-user token whose `exp` is further ahead is refused (24 h)."""
    max_subject_chars: int = 128
    """The longest end-user id (`sub` of an end-user token; Pusher's user id limit)."""
    max_user_info_bytes: int = 1024
    """The largest `user_info` an end-user token may carry (Pusher's 1 KB), encoded."""
    max_token_channels: int = 100
    """Channel names (or prefixes) one end-user token may list in `channels`."""
    max_applications_per_organization: int = 100
    max_organizations_per_user: int = 100
    """Organizations one user may create; each is at most this many applications (409 past)."""


@dataclass(frozen=True)
class PusherSettings:
    """The Pusher protocol's WebSocket at `/app/{app_key}` (docs/pusher.md)."""

    activity_timeout_seconds: int = 120
    """Sent in `pusher:connection_established`: the client pings after this much silence
    (Pusher's 120 s; must be non-zero, pusher-js refuses 0)."""
    pong_wait_seconds: float = 30.0
    """A client silent for `activity_timeout_seconds` plus this long is closed with 4201."""
    client_events_per_second: float = 10.0
    """Client events one connection may send per second (Pusher's 10): more get 4301."""
    max_presence_members: int = 100
    """Users on one presence channel (Pusher's 100): one more is a subscription_error."""
    max_watchlist: int = 100
    """User ids one sign-in may watch (Pusher's 100): more is a `pusher:error` 4302."""
    cache_seconds: float = 1800.0
    """A cache channel remembers its last event this long (Pusher's 30 minutes)."""
    cache_max_channels: int = 10_000
    """Cache channels remembered per node; past it the least recently written goes first."""


@dataclass(frozen=True)
class WebhookSettings:
    """Pusher webhooks of the applications (docs/pusher.md, "Webhooks"): how they are recorded
    into the `webhook_outbox` table and delivered from it."""

    hold_seconds: float = 3.0
    """`channel_vacated` and `member_removed` wait this long (Pusher's 3 s), and are dropped if
    the channel is occupied again or the user is back by then."""
    record_flush_ms: float = 100.0
    """The recorder writes what it gathered at most this long after the first event of a batch
    (one INSERT for all of them)."""
    record_batch_max: int = 500
    """Events one INSERT of the recorder carries at most."""
    record_max_pending: int = 100_000
    """Events waiting to be written (or held); past it new ones are dropped and counted."""
    request_timeout_seconds: float = 5.0
    """One POST to a webhook URL (connect, send, answer): longer is a failed attempt."""
    concurrency: int = 16
    """Applications whose webhooks are being POSTed at once (one request at a time each)."""
    claim_size: int = 200
    """Due outbox rows one claim takes (all nodes share the table: FOR UPDATE SKIP LOCKED)."""
    batch_size: int = 50
    """Events per request for an application with `webhook_batching`; else one per request."""
    lease_seconds: float = 60.0
    """A claimed row is another node's to retry after this long if its claimer went silent."""
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    """A failed attempt is retried after base, 2 x base, 4 x base, ... at most this."""
    give_up_seconds: float = 300.0
    """An event not delivered this long after it was recorded is given up (Pusher's 5 minutes);
    the row stays, marked, for the debug view."""
    poll_seconds: float = 2.0
    """How often a node looks for due rows it was not woken for (other nodes', retries)."""
    keep_seconds: float = 86_400.0
    """Delivered and given-up rows are deleted this long after they were recorded."""


@dataclass(frozen=True)
class ClusterSettings:
    """More than one node (DESIGN §8, docs/cluster.md): the bus under pubsub and presence."""

    adapter: Literal["none", "postgres", "redis"] = "none"
    """`none`: one node, no bus code on any path; `postgres`: LISTEN/NOTIFY on the database
    already there; `redis`: Redis pub/sub at `redis_url`."""
    node_name: str = ""
    """This node's name in the cluster (unique per node); empty: the host name and the port."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    channel: str = "parley_cluster"
    """The NOTIFY channel or Redis pub/sub channel every node of one cluster shares."""
    envelope_batch_max_bytes: int = 7500
    """One NOTIFY (or PUBLISH) carries envelopes up to this size (PostgreSQL's payload limit is
    8000 bytes); an envelope bigger than this alone travels by reference."""
    heartbeat_seconds: float = 1.0
    """How often a node announces itself (and probes the bus with its own announcement)."""
    probe_timeout_seconds: float = 5.0
    """A node that has not heard its own announcement for this long is degraded and reconnects."""
    node_timeout_seconds: float = 10.0
    """A node not heard for this long is gone: its presence entries leave (leave diffs)."""
    flush_linger_ms: float = 2.0
    """The flusher waits this long after a node's first queued envelope before it sends, so the
    envelopes of the next moment share one NOTIFY or PUBLISH (docs/settings.md); 0 sends at once."""
    gap_wait_ms: float = 100.0
    """A conversation message that arrives ahead of its predecessor waits this long for it,
    then the gap is filled from PostgreSQL."""
    reconnect_min_seconds: float = 0.1
    reconnect_max_seconds: float = 5.0
    """Reconnecting to the bus backs off from the first to the second, doubling."""
    outgoing_max_envelopes: int = 100_000
    """Envelopes queued for the bus while a send is in flight; more are dropped (counted)."""
    ordered_streams_max: int = 100_000
    """(topic, conversation) pairs whose last delivered seq a node remembers (least recently
    used go first; a forgotten one starts again from the next message)."""


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    actors: ActorSettings = field(default_factory=ActorSettings)
    supervision: SupervisionSettings = field(default_factory=SupervisionSettings)
    writer: WriterSettings = field(default_factory=WriterSettings)
    messages: MessageSettings = field(default_factory=MessageSettings)
    marketplace: MarketplaceSettings = field(default_factory=MarketplaceSettings)
    socket: SocketSettings = field(default_factory=SocketSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    debug: DebugSettings = field(default_factory=DebugSettings)
    integrations: IntegrationsSettings = field(default_factory=IntegrationsSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    pusher: PusherSettings = field(default_factory=PusherSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)

    @property
    def data_dir(self) -> Path:
        path = Path(self.server.data_dir)
        return path if path.is_absolute() else PROJECT_ROOT / path

    @property
    def is_dev(self) -> bool:
        return self.server.env != "prod"


def section_type(name: str) -> type[Any]:
    """The dataclass of settings section `name` (e.g. `SocketSettings` for `socket`)."""
    hints = typing.get_type_hints(Settings)
    section_type: type[Any] = hints[name]
    return section_type
