"""The rules a whole `Settings` must keep; a broken one fails start-up naming the setting."""

from __future__ import annotations

import dataclasses
import string
import urllib.parse

from parley.config.sections import (
    MESSAGE_BODY_CEILING_CHARS,
    MIN_JWT_KEY_BYTES,
    ConfigError,
    Settings,
    section_type,
)


def validate(settings: Settings) -> None:
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
        (settings.cluster.flush_linger_ms >= 0, "cluster.flush_linger_ms: must be >= 0"),
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
        *_debug_checks(settings),
    ]
    for section in dataclasses.fields(Settings):
        for setting in dataclasses.fields(section_type(section.name)):
            if setting.name.endswith(("_mailbox", "_size")) or setting.name == "mailbox":
                value = getattr(getattr(settings, section.name), setting.name)
                checks.append((value >= 1, f"{section.name}.{setting.name}: must be >= 1"))
    for setting in dataclasses.fields(settings.integrations):
        value = getattr(settings.integrations, setting.name)
        least = 0 if setting.name in ("secret_grace_seconds", "app_cache_seconds") else 1
        checks.append((value >= least, f"integrations.{setting.name}: must be >= {least}"))
    for setting in dataclasses.fields(settings.pusher):
        value = getattr(settings.pusher, setting.name)
        checks.append((value > 0, f"pusher.{setting.name}: must be > 0"))
    checks += _webhook_checks(settings)
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


def _webhook_checks(settings: Settings) -> list[tuple[bool, str]]:
    hooks = settings.webhooks
    checks = [
        (getattr(hooks, f.name) > 0, f"webhooks.{f.name}: must be > 0")
        for f in dataclasses.fields(hooks)
    ]
    # A claimed row must be answered within its lease: one request per round at most per app.
    checks.append(
        (
            hooks.lease_seconds > 2 * hooks.request_timeout_seconds,
            "webhooks.lease_seconds: must be more than twice webhooks.request_timeout_seconds",
        )
    )
    checks.append(
        (
            hooks.backoff_max_seconds >= hooks.backoff_base_seconds,
            "webhooks.backoff_max_seconds: must be >= webhooks.backoff_base_seconds",
        )
    )
    return checks


def _debug_checks(settings: Settings) -> list[tuple[bool, str]]:
    debug = settings.debug
    return [
        (debug.session_ttl_seconds > 0, "debug.session_ttl_seconds: must be > 0"),
        (
            debug.session_max_seconds >= debug.session_ttl_seconds,
            "debug.session_max_seconds: must be >= debug.session_ttl_seconds",
        ),
        (debug.max_sessions >= 1, "debug.max_sessions: must be >= 1"),
        (
            1 <= debug.page_default_limit <= debug.page_max_limit,
            "debug.page_default_limit: must be >= 1 and <= debug.page_max_limit",
        ),
        (debug.mailbox_peek_max >= 0, "debug.mailbox_peek_max: must be >= 0"),
        (debug.presence_keys_max >= 0, "debug.presence_keys_max: must be >= 0"),
        (debug.reason_max_chars >= 1, "debug.reason_max_chars: must be >= 1"),
        (debug.drain_seconds >= 0, "debug.drain_seconds: must be >= 0"),
        (debug.sample_seconds > 0, "debug.sample_seconds: must be > 0"),
        (debug.history_samples >= 1, "debug.history_samples: must be >= 1"),
        (
            0 < debug.loop_lag_probe_seconds <= debug.sample_seconds,
            "debug.loop_lag_probe_seconds: must be > 0 and <= debug.sample_seconds",
        ),
        (settings.actors.recent_errors >= 0, "actors.recent_errors: must be >= 0"),
        (
            settings.supervision.describe_max_children >= 0,
            "supervision.describe_max_children: must be >= 0",
        ),
    ]


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
