"""Typed settings: one frozen object built from `config/parley.toml` and the environment.

Precedence, lowest first: the dataclass defaults below, `config/parley.toml` (or the file named by
`PARLEY_CONFIG`), then the environment. Every setting `key` of section `section` can be overridden
by
`PARLEY_<SECTION>_<KEY>` (e.g. `PARLEY_SOCKET_MAX_FRAME_BYTES=65536`); a few well-known names are
honoured too: `DATABASE_URL`, `PORT`, `HOST`, `PARLEY_ENV` and `PARLEY_DATA_DIR`.

A value that does not parse, or breaks a rule checked in `_validate`, fails at start-up with a
`ConfigError` naming the setting, never later at run time. So does an unknown key in the file or an
unknown `PARLEY_*` name in the environment (a misspelt override would otherwise be ignored without
a word); the message names the closest setting. The `PARLEY_*` names that are not settings are
listed in `NOT_SETTINGS`. Every bound in Parley (mailbox sizes,
batches, buffers, pages, limits) lives here with its default.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import secrets
import string
import tomllib
import types
import typing
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Environment = Literal["dev", "test", "prod"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
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
    One core is left to the event loop: with every core hashing, heartbeat gaps reached ~115 ms
    during 20 concurrent logins on 2 cores, for no gain in logins/s."""
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


@dataclass(frozen=True)
class SupervisionSettings:
    max_restarts: int = 3
    restart_window_seconds: float = 5.0
    child_shutdown_seconds: float = 5.0
    restart_backoff_seconds: float = 0.05


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
    operator_token: Secret | None = None
    """Bearer token for /debug and /metrics; an admin JWT works too."""


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

    @property
    def data_dir(self) -> Path:
        path = Path(self.server.data_dir)
        return path if path.is_absolute() else PROJECT_ROOT / path

    @property
    def is_dev(self) -> bool:
        return self.server.env != "prod"


_ALIASES: dict[str, tuple[str, str]] = {
    "DATABASE_URL": ("database", "url"),
    "PORT": ("server", "port"),
    "HOST": ("server", "host"),
    "PARLEY_ENV": ("server", "env"),
    "PARLEY_DATA_DIR": ("server", "data_dir"),
}

NOT_SETTINGS: dict[str, str] = {
    "PARLEY_CONFIG": "the settings file to read instead of config/parley.toml",
    "PARLEY_LOG_LEVEL": "the default of `parley --log-level`",
    "PARLEY_URL": "the server the conformance suite connects to (tests/conformance)",
    "PARLEY_CONFORMANCE_FIXTURE": "the conformance suite's fixture file (tests/conformance)",
    "PARLEY_SCHEMATHESIS_REPORT": "where tests/api/test_schemathesis.py writes its summary; the "
    "server it starts inherits the environment",
}
"""The `PARLEY_*` environment names that are read, but not as settings: every other `PARLEY_*`
name must be a setting or an alias, or start-up fails (see `_check_environment_names`)."""


def load_settings(
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Build the settings: defaults < TOML file < environment < `overrides` (used by tests)."""
    environ = os.environ if environ is None else environ
    _check_environment_names(environ)
    if config_file is None:
        config_file = Path(environ.get("PARLEY_CONFIG", DEFAULT_CONFIG_FILE))
    raw: dict[str, dict[str, Any]] = {}
    if config_file.exists():
        with config_file.open("rb") as fh:
            try:
                loaded = tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{config_file}: {exc}") from None
        for section, values in loaded.items():
            if not isinstance(values, dict):
                raise ConfigError(f"{section}: expected a [{section}] table in {config_file}")
            raw.setdefault(section, {}).update(values)
    for section, key, env_name in _environment_names():
        if env_name in environ:
            raw.setdefault(section, {})[key] = environ[env_name]
    for env_name, (section, key) in _ALIASES.items():
        if environ.get(env_name):
            raw.setdefault(section, {})[key] = environ[env_name]
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    settings = _with_public_url(_build(raw))
    _validate(settings)
    return settings


def with_jwt_secret(settings: Settings) -> Settings:
    """Return settings with a JWT secret: the configured one, or outside prod one kept in the data
    dir.

    The generated secret is written once (mode 0600) so tokens survive restarts in development.
    """
    if settings.auth.jwt_secret is not None:
        return settings
    if settings.server.env == "prod":
        raise ConfigError("auth.jwt_secret: required when PARLEY_ENV=prod (PARLEY_AUTH_JWT_SECRET)")
    path = settings.data_dir / "jwt_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    secret = Secret(path.read_text().strip())
    auth = dataclasses.replace(settings.auth, jwt_secret=secret)
    return dataclasses.replace(settings, auth=auth)


def _with_public_url(settings: Settings) -> Settings:
    """Fill an empty `server.public_url` from `host` and `port`."""
    server = settings.server
    if server.public_url:
        return settings
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(server.host, server.host)
    if ":" in host:
        host = f"[{host}]"
    public_url = f"http://{host}:{server.port}"
    return dataclasses.replace(settings, server=dataclasses.replace(server, public_url=public_url))


def _environment_names() -> list[tuple[str, str, str]]:
    names = []
    for section in dataclasses.fields(Settings):
        for setting in dataclasses.fields(_section_type(section.name)):
            env_name = f"PARLEY_{section.name}_{setting.name}".upper()
            names.append((section.name, setting.name, env_name))
    return names


def _check_environment_names(environ: Mapping[str, str]) -> None:
    """Refuse a `PARLEY_*` name that is neither a setting, an alias nor in `NOT_SETTINGS`."""
    settings = {env_name: f"{section}.{key}" for section, key, env_name in _environment_names()}
    known = settings.keys() | _ALIASES.keys() | NOT_SETTINGS.keys()
    for name in sorted(environ):
        if name.startswith("PARLEY_") and name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            if close:
                meant = close[0]
                setting = f" ({settings[meant]})" if meant in settings else ""
                hint = f"did you mean {meant}{setting}?"
            else:
                hint = "no setting has a similar name (settings: config/parley.toml)"
            raise ConfigError(f"{name}: unknown environment name, {hint}")


def _did_you_mean(name: str, candidates: Iterable[str], shown: str = "{}") -> str:
    """`, did you mean x?` for the closest of `candidates`, or nothing when none is close."""
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f", did you mean {shown.format(close[0])}?" if close else ""


def _section_type(name: str) -> type[Any]:
    hints = typing.get_type_hints(Settings)
    section_type: type[Any] = hints[name]
    return section_type


def _build(raw: Mapping[str, Mapping[str, Any]]) -> Settings:
    sections: dict[str, Any] = {}
    known_sections = {f.name for f in dataclasses.fields(Settings)}
    for section_name, values in raw.items():
        if section_name not in known_sections:
            hint = _did_you_mean(section_name, known_sections, "[{}]")
            raise ConfigError(f"{section_name}: unknown section{hint}")
        section_type = _section_type(section_name)
        hints = typing.get_type_hints(section_type)
        kwargs = {}
        for key, value in values.items():
            if key not in hints:
                hint = _did_you_mean(key, hints, f"{section_name}.{{}}")
                raise ConfigError(f"{section_name}.{key}: unknown setting{hint}")
            kwargs[key] = _coerce(f"{section_name}.{key}", hints[key], value)
        sections[section_name] = section_type(**kwargs)
    return Settings(**sections)


def _coerce(name: str, hint: Any, value: Any) -> Any:
    """Turn a TOML or environment value into the declared type, or fail naming the setting."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if (value is None or value == "") and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, inner[0], value)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{name}: {value!r} is not one of {', '.join(map(str, args))}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        return tuple(_coerce(name, args[0], item) for item in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        lowered = str(value).strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        try:
            return hint(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if hint in (str, Secret):
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return hint(value)
    raise ConfigError(f"{name}: unsupported setting type {hint!r}")  # pragma: no cover


def _validate(settings: Settings) -> None:
    checks: list[tuple[bool, str]] = [
        (
            0 <= settings.server.port < 65536,
            "server.port: must be between 0 and 65535 (0: any free port)",
        ),
        (settings.server.shutdown_grace_seconds > 0, "server.shutdown_grace_seconds: must be > 0"),
        (settings.server.listen_backlog >= 1, "server.listen_backlog: must be >= 1"),
        (
            settings.database.embedded_start_seconds > 0,
            "database.embedded_start_seconds: must be > 0",
        ),
        (
            settings.database.embedded_stop_seconds > 0,
            "database.embedded_stop_seconds: must be > 0",
        ),
        (
            1 <= settings.database.pool_min_size <= settings.database.pool_max_size,
            "database.pool_min_size: must be >= 1 and <= database.pool_max_size",
        ),
        (settings.auth.access_ttl_seconds > 0, "auth.access_ttl_seconds: must be > 0"),
        (settings.auth.refresh_ttl_seconds > 0, "auth.refresh_ttl_seconds: must be > 0"),
        (settings.auth.argon2_memory_kib >= 8, "auth.argon2_memory_kib: must be >= 8"),
        (settings.auth.argon2_time_cost >= 1, "auth.argon2_time_cost: must be >= 1"),
        (settings.writer.batch_max_rows >= 1, "writer.batch_max_rows: must be >= 1"),
        (settings.writer.batch_max_wait_ms >= 0, "writer.batch_max_wait_ms: must be >= 0"),
        (
            settings.writer.batch_max_linger_ms >= settings.writer.batch_max_wait_ms,
            "writer.batch_max_linger_ms: must be >= writer.batch_max_wait_ms",
        ),
        (
            1 <= settings.messages.body_max_chars <= MESSAGE_BODY_CEILING_CHARS,
            f"messages.body_max_chars: must be 1 to {MESSAGE_BODY_CEILING_CHARS}",
        ),
        (
            1 <= settings.marketplace.page_default_limit <= settings.marketplace.page_max_limit,
            "marketplace.page_default_limit: must be >= 1 and <= marketplace.page_max_limit",
        ),
        (settings.marketplace.q_max_chars >= 1, "marketplace.q_max_chars: must be >= 1"),
        (
            settings.marketplace.relevance_window >= 1,
            "marketplace.relevance_window: must be >= 1",
        ),
        (
            settings.marketplace.search_timeout_seconds > 0,
            "marketplace.search_timeout_seconds: must be > 0",
        ),
        (settings.socket.max_frame_bytes >= 1024, "socket.max_frame_bytes: must be >= 1024"),
        (settings.socket.pushes_per_second > 0, "socket.pushes_per_second: must be > 0"),
        (
            settings.socket.longpoll_window_seconds > 0,
            "socket.longpoll_window_seconds: must be > 0",
        ),
        (
            settings.socket.longpoll_session_timeout_seconds > 0,
            "socket.longpoll_session_timeout_seconds: must be > 0",
        ),
        (settings.socket.longpoll_max_lines >= 1, "socket.longpoll_max_lines: must be >= 1"),
        (
            1 <= settings.socket.longpoll_max_body_bytes <= settings.server.max_request_body_bytes,
            "socket.longpoll_max_body_bytes: must be >= 1 and <= server.max_request_body_bytes",
        ),
        (
            1
            <= settings.socket.longpoll_max_sessions_per_user
            <= settings.socket.longpoll_max_sessions,
            "socket.longpoll_max_sessions_per_user: must be 1 to socket.longpoll_max_sessions",
        ),
        (settings.supervision.max_restarts >= 0, "supervision.max_restarts: must be >= 0"),
        (
            len(settings.server.gc_thresholds) <= 3
            and all(t >= 0 for t in settings.server.gc_thresholds),
            "server.gc_thresholds: at most three non-negative integers",
        ),
    ]
    for section in dataclasses.fields(Settings):
        for setting in dataclasses.fields(_section_type(section.name)):
            if setting.name.endswith(("_mailbox", "_size")) or setting.name == "mailbox":
                value = getattr(getattr(settings, section.name), setting.name)
                checks.append((value >= 1, f"{section.name}.{setting.name}: must be >= 1"))
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    _validate_urls(settings)
    secret = settings.auth.jwt_secret
    if secret is not None and len(secret.encode()) < MIN_JWT_KEY_BYTES:
        raise ConfigError(f"auth.jwt_secret: must be at least {MIN_JWT_KEY_BYTES} bytes")
    for entry in settings.auth.jwt_previous_keys:
        kid, sep, key = entry.partition(":")
        if not sep or not kid or len(key.encode()) < MIN_JWT_KEY_BYTES:
            raise ConfigError(
                f"auth.jwt_previous_keys: each entry is kid:secret with a secret of at least "
                f"{MIN_JWT_KEY_BYTES} bytes"
            )


_LINK_FIELDS = frozenset({"public_url", "token"})


def _validate_urls(settings: Settings) -> None:
    """`server.public_url`, the mail link templates and `http.cors_origins`."""
    if not _is_http_url(settings.server.public_url):
        raise ConfigError(
            "server.public_url: must be an http:// or https:// URL, e.g. https://chat.example.org"
        )
    for name in ("confirm_link_template", "reset_link_template"):
        template = getattr(settings.mail, name)
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            example = template.format(public_url=settings.server.public_url, token="t")
        except (ValueError, IndexError, KeyError):
            fields, example = set(), ""
        if "token" not in fields or not fields <= _LINK_FIELDS or not _is_http_url(example):
            raise ConfigError(
                f"mail.{name}: must be an http(s) URL with {{token}} in it, and no placeholder "
                "but {public_url} and {token}"
            )
    origins = settings.http.cors_origins
    if "*" in origins and len(origins) > 1:
        raise ConfigError('http.cors_origins: "*" stands alone (any origin, no credentials)')
    for origin in origins:
        if origin != "*" and not _is_origin(origin):
            raise ConfigError(
                f"http.cors_origins: {origin!r} is not an origin; write scheme://host[:port] in "
                "lower case with no path or trailing slash, e.g. https://app.example.org"
            )
    if settings.http.cors_max_age_seconds < 0:
        raise ConfigError("http.cors_max_age_seconds: must be >= 0")


def _is_http_url(value: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _is_origin(value: str) -> bool:
    """`scheme://host[:port]` as a browser serializes it: lower case, no default port, no path."""
    if not _is_http_url(value):
        return False
    parts = urllib.parse.urlsplit(value)
    default_port = {"http": 80, "https": 443}[parts.scheme]
    return (
        value == f"{parts.scheme}://{parts.netloc}".lower()
        and "@" not in parts.netloc
        and parts.port != default_port
    )
