"""Settings: file < environment < overrides, typed, and a bad value names its setting at
start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.config import ConfigError, Secret, load_settings, with_jwt_secret


def test_defaults_file_and_environment_layer_in_order(tmp_path: Path) -> None:
    config = tmp_path / "parley.toml"
    config.write_text("[socket]\nmax_frame_bytes = 2048\n[server]\nport = 5000\n")
    settings = load_settings(
        environ={"PARLEY_SOCKET_MAX_FRAME_BYTES": "4096", "HOST": "0.0.0.0"}, config_file=config
    )
    assert settings.socket.max_frame_bytes == 4096
    assert settings.server.port == 5000
    assert settings.server.host == "0.0.0.0"
    assert settings.writer.batch_max_rows == 500


def test_environment_values_are_typed(tmp_path: Path) -> None:
    settings = load_settings(
        environ={
            "PARLEY_SOCKET_COMPRESSION": "yes",
            "PARLEY_SOCKET_ALLOWED_ORIGINS": "https://a.example, https://b.example",
            "DATABASE_URL": "postgresql://u:p@db/x",
            "PARLEY_WRITER_BATCH_MAX_WAIT_MS": "0.5",
        },
        config_file=tmp_path / "absent.toml",
    )
    assert settings.socket.compression is True
    assert settings.socket.allowed_origins == ("https://a.example", "https://b.example")
    assert isinstance(settings.database.url, Secret)
    assert "p@db" not in repr(settings.database)
    assert settings.writer.batch_max_wait_ms == 0.5


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"PORT": "eighty"}, "server.port"),
        ({"PORT": "70000"}, "server.port"),
        ({"PARLEY_ENV": "staging"}, "server.env"),
        ({"PARLEY_SOCKET_COMPRESSION": "maybe"}, "socket.compression"),
        ({"PARLEY_WRITER_BATCH_MAX_ROWS": "0"}, "writer.batch_max_rows"),
        ({"PARLEY_ACTORS_CONVERSATION_MAILBOX": "0"}, "actors.conversation_mailbox"),
        ({"PARLEY_AUTH_JWT_SECRET": "short"}, "auth.jwt_secret"),
    ],
)
def test_a_bad_value_fails_naming_the_setting(
    tmp_path: Path, environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_settings(environ=environ, config_file=tmp_path / "absent.toml")


def test_unknown_keys_in_the_file_are_errors(tmp_path: Path) -> None:
    config = tmp_path / "parley.toml"
    config.write_text("[socket]\nmax_frame_byte = 2048\n")
    with pytest.raises(ConfigError, match=r"socket\.max_frame_byte: unknown setting"):
        load_settings(environ={}, config_file=config)


def test_the_shipped_defaults_file_loads() -> None:
    settings = load_settings(environ={})
    assert settings.server.port == 4000


def test_development_generates_a_jwt_secret_once_and_prod_requires_one(tmp_path: Path) -> None:
    environ = {"PARLEY_DATA_DIR": str(tmp_path)}
    first = with_jwt_secret(load_settings(environ=environ, config_file=tmp_path / "absent.toml"))
    second = with_jwt_secret(load_settings(environ=environ, config_file=tmp_path / "absent.toml"))
    assert first.auth.jwt_secret is not None
    assert len(first.auth.jwt_secret) >= 32
    assert first.auth.jwt_secret == second.auth.jwt_secret
    assert (tmp_path / "jwt_secret").stat().st_mode & 0o777 == 0o600
    prod = load_settings(
        environ={**environ, "PARLEY_ENV": "prod"}, config_file=tmp_path / "absent.toml"
    )
    with pytest.raises(ConfigError, match=r"auth\.jwt_secret"):
        with_jwt_secret(prod)


def test_a_misspelled_environment_override_fails_naming_the_closest_setting(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(
            environ={"PARLEY_SOCKET_MAX_FRAM_BYTES": "131072"},
            config_file=tmp_path / "absent.toml",
        )
    message = str(raised.value)
    assert message.startswith("PARLEY_SOCKET_MAX_FRAM_BYTES: unknown")
    assert "PARLEY_SOCKET_MAX_FRAME_BYTES (socket.max_frame_bytes)" in message


def test_an_unknown_environment_name_with_no_close_setting_still_fails(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^PARLEY_ZZZ: unknown"):
        load_settings(environ={"PARLEY_ZZZ": "1"}, config_file=tmp_path / "absent.toml")


def test_parley_names_that_are_not_settings_are_allowed(tmp_path: Path) -> None:
    config = tmp_path / "parley.toml"
    config.write_text("[server]\nport = 4321\n")
    allowed = {
        "PARLEY_CONFIG": str(config),
        "PARLEY_ENV": "test",
        "PARLEY_DATA_DIR": str(tmp_path),
        "PARLEY_LOG_LEVEL": "WARNING",
        "PARLEY_SCHEMATHESIS_REPORT": str(tmp_path / "report.txt"),
        "PARLEY_URL": "ws://127.0.0.1:4000/socket",
        "PARLEY_CONFORMANCE_FIXTURE": str(tmp_path / "fixture.json"),
        "PARLEYX": "not ours",
        "DATABASE_URL": "postgresql://db/x",
    }
    settings = load_settings(environ=allowed)
    assert settings.server.port == 4321
    assert settings.server.env == "test"


def test_unknown_keys_and_sections_in_the_file_name_the_closest_setting(tmp_path: Path) -> None:
    config = tmp_path / "parley.toml"
    config.write_text("[socket]\nmax_fram_bytes = 2048\n")
    with pytest.raises(ConfigError, match=r"did you mean socket\.max_frame_bytes\?"):
        load_settings(environ={}, config_file=config)
    config.write_text("[sockets]\nmax_frame_bytes = 2048\n")
    with pytest.raises(ConfigError, match=r"^sockets: unknown section.*did you mean \[socket\]\?"):
        load_settings(environ={}, config_file=config)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"page_default_limit": 600},
            r"debug\.page_default_limit: must be >= 1 and <= debug\.page_max_limit",
        ),
        ({"session_ttl_seconds": 0}, r"debug\.session_ttl_seconds: must be > 0"),
        ({"loop_lag_probe_seconds": 5}, r"debug\.loop_lag_probe_seconds"),
        ({"drain_seconds": -1}, r"debug\.drain_seconds: must be >= 0"),
    ],
)
def test_console_settings_keep_their_rules(
    tmp_path: Path, override: dict[str, float], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(
            environ={}, config_file=tmp_path / "absent.toml", overrides={"debug": override}
        )
