"""Reading the settings: defaults < `config/parley.toml` < environment < test overrides."""

from __future__ import annotations

import dataclasses
import difflib
import os
import secrets
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from parley.config.sections import (
    DEFAULT_CONFIG_FILE,
    ConfigError,
    Secret,
    Settings,
    section_type,
)
from parley.config.validation import validate

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
    "PARLEY_TEST_REDIS_URL": "a Redis server for the cluster tests instead of their own",
    "PARLEY_CONFORMANCE_FIXTURE": "the conformance suite's fixture file (tests/conformance)",
    "PARLEY_SCHEMATHESIS_REPORT": "where drill F1 (tests/drills/test_api_fuzzing.py) writes its "
    "summary; the server it starts inherits the environment",
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
    validate(settings)
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
        for setting in dataclasses.fields(section_type(section.name)):
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


def _build(raw: Mapping[str, Mapping[str, Any]]) -> Settings:
    sections: dict[str, Any] = {}
    known_sections = {f.name for f in dataclasses.fields(Settings)}
    for section_name, values in raw.items():
        if section_name not in known_sections:
            hint = _did_you_mean(section_name, known_sections, "[{}]")
            raise ConfigError(f"{section_name}: unknown section{hint}")
        section_class = section_type(section_name)
        hints = typing.get_type_hints(section_class)
        kwargs = {}
        for key, value in values.items():
            if key not in hints:
                hint = _did_you_mean(key, hints, f"{section_name}.{{}}")
                raise ConfigError(f"{section_name}.{key}: unknown setting{hint}")
            kwargs[key] = _coerce(f"{section_name}.{key}", hints[key], value)
        sections[section_name] = section_class(**kwargs)
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
