"""The [[imap]] tables: defaults, paths, environment overrides, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.config import load_settings
from gateway.errors import ConfigError

TABLE = """
[[imap]]
host = "imap.example.net"
user = "desk@example.net"
password_file = "secrets/imap"
"""


def write_config(folder: Path, text: str) -> Path:
    (folder / "secrets").mkdir(exist_ok=True)
    (folder / "secrets" / "imap").write_text("app-password\n")
    config = folder / "config.toml"
    config.write_text(text)
    return config


def test_imap_table_defaults_and_paths(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, TABLE), environ={})

    (mailbox,) = settings.imap
    assert mailbox.port == 993
    assert mailbox.tls == "implicit"
    assert mailbox.folder == "INBOX"
    assert mailbox.processed_folder == ""
    assert mailbox.ingest_existing is False
    assert mailbox.password_file == str(tmp_path / "secrets" / "imap")
    assert mailbox.label == "desk@example.net@imap.example.net:993/INBOX"
    assert "app-password" not in repr(mailbox)


def test_no_imap_table_means_no_mailbox(tmp_path: Path) -> None:
    assert load_settings(write_config(tmp_path, ""), environ={}).imap == []


def test_imap_environment_override(tmp_path: Path) -> None:
    config = write_config(tmp_path, TABLE + 'folder = "Support"\n')

    settings = load_settings(
        config,
        environ={
            "GATEWAY_IMAP_1_PORT": "1993",
            "GATEWAY_IMAP_1_INGEST_EXISTING": "yes",
        },
    )

    assert settings.imap[0].port == 1993
    assert settings.imap[0].ingest_existing is True
    assert settings.imap[0].folder == "Support"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"GATEWAY_IMAP_2_HOST": "x"}, "GATEWAY_IMAP_2_HOST names no [[imap]] table"),
        ({"GATEWAY_IMAP_HOST": "x"}, "GATEWAY_IMAP_<N>_<KEY>"),
        ({"GATEWAY_IMAP_1_HOTS": "x"}, "did you mean 'host'?"),
    ],
)
def test_imap_environment_names_checked(
    tmp_path: Path, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path, TABLE), environ=environ)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('hots = "x"\n', "unknown key 'hots' in [[imap]] 1 (did you mean 'host'?)"),
        ('tls = "ssl"\n', "[[imap]] 1 tls 'ssl' is invalid"),
        ('tls = "none"\n', "tls 'none' is allowed only for a loopback host"),
        ('password = "x"\n', "sets both password and password_file"),
        ("port = 0\n", "[[imap]] 1 port 0 is outside 1..65535"),
        ('processed_folder = "INBOX"\n', "processed_folder is the folder itself"),
        ("poll_seconds = 0\n", "poll_seconds 0.0 must be more than 0"),
        ('ca_file = "missing.pem"\n', "ca_file"),
        (
            'processed_folder = "Erledigt/Geprüft"\n',
            "processed_folder 'Erledigt/Geprüft' is not ASCII",
        ),
        ("port = true\n", "[[imap]] 1 port must be of type int"),
    ],
)
def test_invalid_imap_table_named(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path, TABLE + extra), environ={})
    assert message in str(caught.value)


def test_imap_table_needs_a_password(tmp_path: Path) -> None:
    text = TABLE.replace('password_file = "secrets/imap"\n', "")
    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path, text), environ={})
    assert "[[imap]] 1 has no password" in str(caught.value)


def test_missing_password_file_loads(tmp_path: Path) -> None:
    # The file is read at login, so the rest of the gateway still starts.
    text = TABLE.replace("secrets/imap", "secrets/absent")
    settings = load_settings(write_config(tmp_path, text), environ={})
    assert settings.imap[0].password_file == f"{tmp_path}/secrets/absent"


def test_tls_none_allowed_on_loopback(tmp_path: Path) -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        text = TABLE.replace("imap.example.net", host) + 'tls = "none"\n'
        settings = load_settings(write_config(tmp_path, text), environ={})
        assert settings.imap[0].host == host


def test_same_mailbox_twice_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path, TABLE + TABLE), environ={})
    assert "name the mailbox desk@example.net@imap.example.net:993/INBOX twice" in (
        str(caught.value)
    )


def test_imap_must_be_tables(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path, 'imap = "imap.example.net"\n'), environ={})
    assert "write each mailbox as an [[imap]] table" in str(caught.value)


def test_shipped_imap_example_loads(tmp_path: Path) -> None:
    shipped = (Path(__file__).resolve().parents[2] / "config.toml").read_text()
    example = shipped[shipped.index("# [[imap]]") :]
    lines = [line.removeprefix("# ") for line in example.splitlines()]
    table = "\n".join(
        line for line in lines if re.match(r"\w+ = ", line) or line == "[[imap]]"
    )
    # Exactly one of the two is allowed; the example shows both.
    table = table.replace('password = ""\n', "")

    config = write_config(tmp_path, table)
    (tmp_path / "secrets" / "imap-password").write_text("app-password\n")
    settings = load_settings(config, environ={})

    assert settings.imap[0].host == "imap.example.com"
    assert settings.imap[0].password_file == str(tmp_path / "secrets/imap-password")
