"""Settings: defaults, the config file, environment overrides, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import SECTIONS, Settings, load_settings
from gateway.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_shipped_config_states_the_defaults() -> None:
    shipped = load_settings(REPO / "config.toml", environ={})
    defaults = Settings()
    for section in SECTIONS:
        for key, value in vars(getattr(defaults, section)).items():
            if key not in ("url", "data_dir"):
                assert getattr(getattr(shipped, section), key) == value, (
                    f"[{section}] {key}"
                )
    assert shipped.smtp.port == 2525
    assert shipped.smtp.max_message_size == 25 * 1024 * 1024
    assert shipped.store.url == f"sqlite:///{REPO}/store/gateway.db"
    assert shipped.store.data_dir == REPO / "store"
    assert shipped.embedded


def test_environment_overrides_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[smtp]\nport = 2600\n[desk]\nsupport_addresses = ["a@x.example"]\n'
    )
    settings = load_settings(
        config,
        environ={
            "GATEWAY_SMTP_PORT": "0",
            "GATEWAY_DESK_SUPPORT_ADDRESSES": "b@x.example, c@x.example",
            "GATEWAY_STORE_URL": "postgresql+psycopg://u@db.example/gw",
            "GATEWAY_RELAY_STARTTLS": "true",
        },
    )
    assert settings.smtp.port == 0
    assert settings.desk.support_addresses == ["b@x.example", "c@x.example"]
    assert settings.store.url == "postgresql+psycopg://u@db.example/gw"
    assert settings.relay.starttls is True


def test_list_override_accepts_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        None, environ={"GATEWAY_DESK_STAFF_DOMAINS": '["staff.example"]'}
    )
    assert settings.desk.staff_domains == ["staff.example"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[desk]\nlanguage = "fr"\n', "[desk] language 'fr' is invalid"),
        ('[desk]\norg_id = "has space"\n', "[desk] org_id 'has space' is invalid"),
        ("[smtp]\nport = 70000\n", "[smtp] port 70000 is outside"),
        ('[smtp]\nport = "25"\n', "[smtp] port must be of type int"),
        (
            "[smtp]\nportt = 25\n",
            "unknown key 'portt' in [smtp] (did you mean 'port'?)",
        ),
        ("[relay]\ntls = true\nstarttls = true\n", "tls and starttls are both true"),
        ("[smpt]\nport = 25\n", "unknown section(s)"),
        ('[broker]\nurl = "amqp://x"\n', "[broker] url 'amqp://x' is not supported"),
        ("[desk]\nsupport_addresses = []\n", "support_addresses is empty"),
        ("not toml at all [", "is not valid TOML"),
        (
            '[desk]\nstaff_domains = ["@staff.example.com"]\n',
            "[desk] staff domain '@staff.example.com' is invalid",
        ),
        ('[store]\nurl = "nonsense"\n', "[store] url 'nonsense' is invalid"),
        (
            '[store]\nurl = "mysql://desk@127.0.0.1/desk"\n',
            "[store] url 'mysql://desk@127.0.0.1/desk' is not supported",
        ),
    ],
)
def test_invalid_setting_names_key(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(content)
    with pytest.raises(ConfigError) as error:
        load_settings(config, environ={})
    assert message in str(error.value)


def test_invalid_environment_value_names_variable(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("")
    with pytest.raises(ConfigError) as error:
        load_settings(config, environ={"GATEWAY_SMTP_PORT": "abc"})
    assert "GATEWAY_SMTP_PORT='abc' is invalid" in str(error.value)


def test_named_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(tmp_path / "absent.toml", environ={})
    assert "not found" in str(error.value)


def test_environment_value_error_names_variable(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[smtp]\nport = 2525\n")
    with pytest.raises(ConfigError) as error:
        load_settings(config, environ={"GATEWAY_SMTP_PORT": "70000"})
    assert "set by the environment variable GATEWAY_SMTP_PORT" in str(error.value)


def test_misspelt_environment_variable_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as error:
        load_settings(None, environ={"GATEWAY_SMTP_PROT": "1"})
    assert "GATEWAY_SMTP_PROT names no setting" in str(error.value)


def test_named_environment_config_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(None, environ={"GATEWAY_CONFIG": str(tmp_path / "absent.toml")})
    assert "not found" in str(error.value)


def test_empty_config_variable_means_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, environ={"GATEWAY_CONFIG": ""})
    assert settings.config_path is None


@pytest.mark.parametrize(
    ("key", "value"),
    [("rate_limit_count", "0"), ("rate_limit_minutes", "0"), ("bounce_limit", "0")],
)
def test_routing_limits_must_be_positive(tmp_path: Path, key: str, value: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"[routing]\n{key} = {value}\n")
    with pytest.raises(ConfigError, match=rf"\[routing\] {key}"):
        load_settings(config, environ={})
