"""IMAP over TLS: implicit TLS and STARTTLS against Dovecot with a test CA."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import build_mail, make_env, missing_service
from tests.imap.conftest import Mailbox, add_imap, imap_table
from tests.imap.dovecot import Dovecot, make_certificate
from tests.imap.test_imap_poll import poll


def require_openssl() -> None:
    if shutil.which("openssl") is None:
        missing_service("openssl is not installed; it makes the test certificate")


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_tls_modes_read_mail(
    tmp_path: Path, dovecot_factory: Callable[..., Dovecot], tls: str
) -> None:
    require_openssl()
    certificate = make_certificate(tmp_path)
    server = dovecot_factory(tls=certificate)
    port = server.tls_port if tls == "implicit" else server.port
    env = add_imap(
        make_env(tmp_path / "gw"),
        imap_table(port, tls=tls, extra=f'ca_file = "{certificate.cert}"'),
    )
    poll(env)
    # Dovecot marks a login over TLS with "TLS" in its log line.
    assert ", TLS," in server.log()
    mailbox = Mailbox(server)
    mailbox.append(build_mail(subject=f"Über {tls}"))

    assert poll(env)[0]["stored"] == 1

    assert env.json("cases", "--json")[0]["subject"] == f"Über {tls}"
    mailbox.logout()


def test_untrusted_certificate_is_rejected(
    tmp_path: Path, dovecot_factory: Callable[..., Dovecot]
) -> None:
    require_openssl()
    server = dovecot_factory(tls=make_certificate(tmp_path))
    env = add_imap(
        make_env(tmp_path / "gw"), imap_table(server.tls_port, tls="implicit")
    )

    result = poll(env, check=False)[0]

    assert "CERTIFICATE_VERIFY_FAILED" in result["error"]
    assert result["stored"] == 0
