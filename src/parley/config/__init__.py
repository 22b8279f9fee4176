"""Typed settings: one frozen object built from `config/parley.toml` and the environment.

Precedence, lowest first: the dataclass defaults in `sections.py`, `config/parley.toml` (or the file
named by `PARLEY_CONFIG`), then the environment. Every setting `key` of section `section` can be
overridden by `PARLEY_<SECTION>_<KEY>` (e.g. `PARLEY_SOCKET_MAX_FRAME_BYTES=65536`); a few
well-known names are honoured too: `DATABASE_URL`, `PORT`, `HOST`, `PARLEY_ENV` and
`PARLEY_DATA_DIR`.

A value that does not parse, or breaks a rule checked in `validation.py`, fails at start-up with a
`ConfigError` naming the setting, never later at run time. So does an unknown key in the file or an
unknown `PARLEY_*` name in the environment (a misspelt override would otherwise be ignored without
a word); the message names the closest setting. The `PARLEY_*` names that are not settings are
listed in `NOT_SETTINGS`. Every bound in Parley (mailbox sizes, batches, buffers, pages, limits)
lives in `sections.py` with its default.

The package: `sections.py` (the dataclasses), `loading.py` (file and environment), `validation.py`
(the rules across settings).
"""

from parley.config.loading import NOT_SETTINGS, load_settings, with_jwt_secret
from parley.config.sections import (
    DEFAULT_CONFIG_FILE,
    MESSAGE_BODY_CEILING_CHARS,
    MIN_JWT_KEY_BYTES,
    PROJECT_ROOT,
    ActorSettings,
    AuthSettings,
    ClusterSettings,
    ConfigError,
    DatabaseSettings,
    DebugSettings,
    Environment,
    HttpSettings,
    IntegrationsSettings,
    MailSettings,
    MarketplaceSettings,
    MessageSettings,
    PusherSettings,
    Secret,
    ServerSettings,
    Settings,
    SocketSettings,
    SupervisionSettings,
    WebhookSettings,
    WriterSettings,
    section_type,
)

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "MESSAGE_BODY_CEILING_CHARS",
    "MIN_JWT_KEY_BYTES",
    "NOT_SETTINGS",
    "PROJECT_ROOT",
    "ActorSettings",
    "AuthSettings",
    "ClusterSettings",
    "ConfigError",
    "DatabaseSettings",
    "DebugSettings",
    "Environment",
    "HttpSettings",
    "IntegrationsSettings",
    "MailSettings",
    "MarketplaceSettings",
    "MessageSettings",
    "PusherSettings",
    "Secret",
    "ServerSettings",
    "Settings",
    "SocketSettings",
    "SupervisionSettings",
    "WebhookSettings",
    "WriterSettings",
    "load_settings",
    "section_type",
    "with_jwt_secret",
]
