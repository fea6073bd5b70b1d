from __future__ import annotations

from pathlib import Path

import pytest

from herald_common.config import (
    DEV_JWT_SECRET,
    ConfigError,
    Settings,
    load_settings,
    render_effective,
    render_reference,
)

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_match_the_contract() -> None:
    s = load_settings({})
    assert s == Settings()
    assert (s.gateway_host, s.gateway_port, s.gateway_path) == ("127.0.0.1", 8080, "/ws")
    assert (s.api_host, s.api_port) == ("127.0.0.1", 8000)
    assert s.nats_url == "nats://127.0.0.1:4222"
    assert s.jwt_secret == DEV_JWT_SECRET


def test_environment_overrides_and_converts() -> None:
    s = load_settings(
        {
            "HERALD_GATEWAY_PORT": "9000",
            "HERALD_AUTH_TIMEOUT": "1.5",
            "HERALD_JWT_ALGORITHMS": "HS256, RS256",
            "HERALD_LOG_LEVEL": "debug",
            "PATH": "/bin",
        }
    )
    assert s.gateway_port == 9000
    assert s.auth_timeout == 1.5
    assert s.jwt_algorithms == ["HS256", "RS256"]
    assert s.log_level == "debug"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"HERALD_GATEWAY_PORTT": "1"}, "unknown setting(s) HERALD_GATEWAY_PORTT"),
        ({"HERALD_API_PORT": "eighty"}, "HERALD_API_PORT='eighty' is invalid"),
        ({"HERALD_API_PORT": "70000"}, "<= 65535"),
        ({"HERALD_AUTH_TIMEOUT": "0"}, "HERALD_AUTH_TIMEOUT"),
        ({"HERALD_LOG_LEVEL": "loud"}, "HERALD_LOG_LEVEL"),
        ({"HERALD_MAX_FRAME_BYTES": "-1"}, "HERALD_MAX_FRAME_BYTES"),
    ],
)
def test_bad_settings_fail_clearly(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert fragment in str(info.value)


def test_every_setting_is_documented() -> None:
    reference = render_reference()
    for name in Settings.__struct_fields__:
        assert f"`HERALD_{name.upper()}`" in reference
    for line in reference.splitlines()[2:]:
        assert line.rstrip().endswith("|") and not line.rstrip().endswith("|  |"), line


def test_docs_reference_is_generated_from_the_types() -> None:
    """docs/configuration.md embeds exactly the table the code generates (`herald config`)."""
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert render_reference() in doc, "docs/configuration.md is stale: regenerate with `herald config --reference`"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"HERALD_LOG_LEVEL": "loud"}, "valid: debug, info, warning, error"),
        ({"HERALD_ACCESS_LOG": "sometimes"}, "valid: true, false"),
        ({"HERALD_NATS_PASSWORD": "pw"}, "HERALD_NATS_PASSWORD is set but HERALD_NATS_USER is not"),
        ({"HERALD_NATS_TLS_CERT": "c.pem"}, "HERALD_NATS_TLS_CERT is set but HERALD_NATS_TLS_KEY is not"),
        ({"HERALD_NATS_TLS_KEY": "k.pem"}, "HERALD_NATS_TLS_KEY is set but HERALD_NATS_TLS_CERT is not"),
        ({"HERALD_NATS_CREDS": "a.creds", "HERALD_NATS_USER": "api"}, "pick one"),
    ],
)
def test_bad_choices_and_incomplete_pairs_are_explained(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert fragment in str(info.value)


def test_effective_configuration_masks_secrets_and_marks_the_environment() -> None:
    env = {"HERALD_NATS_USER": "gateway", "HERALD_NATS_PASSWORD": "pw-123", "HERALD_DATABASE_URL": "sqlite:///x.db"}
    text = render_effective(load_settings(env), env)
    assert "HERALD_NATS_PASSWORD=********  # from the environment\n" in text
    assert "HERALD_DATABASE_URL=sqlite:///x.db  # from the environment\n" in text
    assert "HERALD_JWT_SECRET=********  # the development default: set it in production\n" in text
    assert "pw-123" not in text and DEV_JWT_SECRET not in text
    assert len(text.splitlines()) == len(Settings.__struct_fields__)
