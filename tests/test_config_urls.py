"""The settings for the edges: `server.public_url` (derived from HOST and PORT when unset), the
mail link templates and `http.cors_origins`, each checked at start-up."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from parley.config import ConfigError, load_settings

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("environ", "public_url"),
    [
        ({"PORT": "4555"}, "http://127.0.0.1:4555"),
        ({"PORT": "8080", "HOST": "0.0.0.0"}, "http://127.0.0.1:8080"),
        ({"HOST": "::"}, "http://[::1]:4000"),
        ({"HOST": "chat.internal"}, "http://chat.internal:4000"),
        (
            {"PORT": "4555", "PARLEY_SERVER_PUBLIC_URL": "https://chat.example.org"},
            "https://chat.example.org",
        ),
    ],
)
def test_public_url_follows_host_and_port_unless_set(
    tmp_path: Path, environ: dict[str, str], public_url: str
) -> None:
    settings = load_settings(environ=environ, config_file=tmp_path / "absent.toml")
    assert settings.server.public_url == public_url


def test_the_shipped_file_derives_public_url_from_port() -> None:
    assert load_settings(environ={"PORT": "4555"}).server.public_url == "http://127.0.0.1:4555"


def test_cors_origins_come_as_a_list_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"PARLEY_HTTP_CORS_ORIGINS": "http://localhost:3000, https://app.example.org"},
        config_file=tmp_path / "absent.toml",
    )
    assert settings.http.cors_origins == ("http://localhost:3000", "https://app.example.org")
    assert load_settings(environ={}).http.cors_origins == ()


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"PARLEY_SERVER_PUBLIC_URL": "chat.example.org"}, "server.public_url"),
        ({"PARLEY_SERVER_PUBLIC_URL": "ftp://chat.example.org"}, "server.public_url"),
        ({"PARLEY_MAIL_CONFIRM_LINK_TEMPLATE": "{public_url}/confirm"}, "mail.confirm_link"),
        ({"PARLEY_MAIL_RESET_LINK_TEMPLATE": "{public_url}/r/{token}/{user}"}, "mail.reset_link"),
        ({"PARLEY_MAIL_RESET_LINK_TEMPLATE": "/reset?token={token}"}, "mail.reset_link"),
        ({"PARLEY_MAIL_RESET_LINK_TEMPLATE": "{public_url}/{token"}, "mail.reset_link"),
        ({"PARLEY_HTTP_CORS_ORIGINS": "https://app.example.org/"}, "http.cors_origins"),
        ({"PARLEY_HTTP_CORS_ORIGINS": "https://App.example.org"}, "http.cors_origins"),
        ({"PARLEY_HTTP_CORS_ORIGINS": "https://app.example.org:443"}, "http.cors_origins"),
        ({"PARLEY_HTTP_CORS_ORIGINS": "app.example.org"}, "http.cors_origins"),
        ({"PARLEY_HTTP_CORS_ORIGINS": "*, https://app.example.org"}, "http.cors_origins"),
        ({"PARLEY_HTTP_CORS_MAX_AGE_SECONDS": "-1"}, "http.cors_max_age_seconds"),
    ],
)
def test_a_bad_url_setting_fails_naming_it(
    tmp_path: Path, environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_settings(environ=environ, config_file=tmp_path / "absent.toml")


def test_mail_public_url_moved_to_server(tmp_path: Path) -> None:
    config = tmp_path / "parley.toml"
    config.write_text('[mail]\npublic_url = "https://chat.example.org"\n')
    with pytest.raises(ConfigError, match=r"mail\.public_url: unknown setting"):
        load_settings(environ={}, config_file=config)
