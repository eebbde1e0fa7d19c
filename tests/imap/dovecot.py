"""A throwaway Dovecot IMAP server on loopback, for the IMAP ingestion tests.

Each server gets its own folder: a config that Dovecot reads instead of the
system-wide one, a passwd-file with one plain-text user, a Maildir, and its
runtime, state and log files. The master runs in the foreground (``-F``)
as a child of the test process and is stopped by its pid.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

USER = "desk@mail.example.net"
PASSWORD = "correct-horse-battery"
# Dovecot refuses to run mail processes as root, so the mail files belong to
# this uid when the tests run as root (as under CI).
MAIL_UID = 5000

CONFIG_TEMPLATE = """\
protocols = imap
listen = 127.0.0.1
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
info_log_path = {folder}/dovecot.log
{internal_users}
ssl = {ssl}
{ssl_files}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {folder}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={folder}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
"""


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if os.access("/usr/sbin/dovecot", os.X_OK) else None
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class TlsFiles:
    """A self-signed certificate for 127.0.0.1 and its key."""

    cert: Path
    key: Path


def make_certificate(folder: Path) -> TlsFiles:
    """Create a self-signed certificate for 127.0.0.1 and localhost with openssl."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return TlsFiles(cert, key)


class Dovecot:
    """A Dovecot master process serving one user, plain IMAP and optionally IMAPS."""

    def __init__(self, tls: TlsFiles | None = None, extra_config: str = "") -> None:
        binary = dovecot_binary()
        if binary is None:
            raise FileNotFoundError("dovecot is not installed")
        # A folder of its own directly under the temp folder: the auth and mail
        # processes run as other users, and pytest's tmp_path parents are 0700.
        folder = Path(tempfile.mkdtemp(prefix="gateway-dovecot-"))
        folder.chmod(0o755)
        self.folder = folder
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        self.tls = tls
        (folder / "home").mkdir()
        (folder / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        uid, gid, internal_users = self._identity()
        os.chown(folder / "home", uid, gid)
        ssl_files = ""
        if tls:
            ssl_files = f"ssl_cert = <{tls.cert}\nssl_key = <{tls.key}"
        self.config = folder / "dovecot.conf"
        self.config.write_text(
            CONFIG_TEMPLATE.format(
                folder=folder,
                port=self.port,
                tls_port=self.tls_port,
                ssl="yes" if tls else "no",
                ssl_files=ssl_files,
                uid=uid,
                gid=gid,
                internal_users=internal_users,
            )
            + extra_config
        )
        self.process = subprocess.Popen(
            [binary, "-F", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_listening()

    def _identity(self) -> tuple[int, int, str]:
        if os.geteuid() == 0:
            return MAIL_UID, MAIL_UID, ""
        # NOTE: running Dovecot without root is untested here; these settings
        # let its internal processes run as the calling user.
        name = pwd.getpwuid(os.getuid()).pw_name
        users = f"default_internal_user = {name}\ndefault_login_user = {name}"
        return os.getuid(), os.getgid(), users

    def _wait_listening(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = (
                    self.process.stderr.read().decode() if self.process.stderr else ""
                )
                raise RuntimeError(f"dovecot exited early: {error}{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not listen in {timeout} s: {self.log()}")

    def log(self) -> str:
        path = self.folder / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def imap_pids(self) -> list[int]:
        """Return the pids of the master's ``imap`` children: one per session."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = [int(word) for word in children.read_text().split()]
        return [
            pid
            for pid in pids
            if Path(f"/proc/{pid}/comm").read_text().strip() == "imap"
        ]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stderr:
            self.process.stderr.close()
        shutil.rmtree(self.folder, ignore_errors=True)
