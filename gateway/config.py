"""Settings of the gateway: config.toml, overridden by environment variables.

Every key of ``config.toml`` can be overridden by ``GATEWAY_<SECTION>_<KEY>``
(``GATEWAY_STORE_URL``, ``GATEWAY_SMTP_PORT``). A list value in the
environment is a JSON array or a comma-separated string. Relative paths are
taken relative to the folder of the config file.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from gateway.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_CONFIG_FILE = "config.toml"
CONFIG_ENV_VAR = "GATEWAY_CONFIG"
ORG_ID_PATTERN = re.compile(r"^[A-Za-z0-9]{1,32}$")
DOMAIN_PATTERN = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
LANGUAGES = ("de", "en")


@dataclass
class DeskSettings:
    org_id: str = "00DGw4tWy"
    support_addresses: list[str] = field(default_factory=lambda: ["support@localhost"])
    staff_domains: list[str] = field(default_factory=list)
    message_id_domain: str = "localhost"
    language: str = "en"
    portal_url: str = "http://localhost/cases"
    from_name: str = "Customer Support"


@dataclass
class StoreSettings:
    url: str = "sqlite:///store/gateway.db"
    data_dir: Path = Path("store")


@dataclass
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 2525
    max_message_size: int = 25 * 1024 * 1024
    # Concurrent sessions whose raw mails are written in one commit at most.
    group_commit_max: int = 64


@dataclass
class RelaySettings:
    host: str = ""
    port: int = 25
    starttls: bool = False
    tls: bool = False
    username: str = ""
    password: str = field(default="", repr=False)
    timeout_seconds: float = 30.0
    max_attempts: int = 8
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 3600.0


@dataclass
class BrokerSettings:
    url: str = ""
    namespace: str = "gateway"


@dataclass
class WorkerSettings:
    threads: int = 2
    sweep_seconds: float = 5.0
    max_process_attempts: int = 5


IMAP_TLS_MODES = ("implicit", "starttls", "none")


@dataclass
class ImapSettings:
    """One mailbox that the gateway reads mail from: one ``[[imap]]`` table."""

    host: str = ""
    port: int = 993
    tls: str = "implicit"
    user: str = ""
    password: str = field(default="", repr=False)
    password_file: str = ""
    # PEM file of the certificate authorities to trust; empty = the system's.
    ca_file: str = ""
    folder: str = "INBOX"
    processed_folder: str = ""
    poll_seconds: float = 60.0
    ingest_existing: bool = False

    @property
    def label(self) -> str:
        """The mailbox as log lines and the store name it: user@host:port/folder."""
        return f"{self.user}@{self.host}:{self.port}/{self.folder}"


@dataclass
class LifecycleSettings:
    pending_after_days: float = 7.0
    close_after_days: float = 14.0
    tick_seconds: float = 60.0


@dataclass
class SlaSettings:
    critical_hours: float = 2.0
    urgent_hours: float = 4.0
    standard_hours: float = 16.0
    low_hours: float = 40.0


@dataclass
class EscalationSettings:
    # Managers of escalation levels 1 to 4; empty = no notice for that level.
    level_1: str = ""
    level_2: str = ""
    level_3: str = ""
    level_4: str = ""
    # Notified when a Critical case opens; empty = the level 1 manager.
    critical: str = ""


# Mail domains that many unrelated people share, so sharing one is no sign
# that a sender may write into a case.
PUBLIC_MAIL_DOMAINS = [
    "aol.com",
    "freenet.de",
    "gmail.com",
    "gmx.at",
    "gmx.ch",
    "gmx.de",
    "gmx.net",
    "googlemail.com",
    "hotmail.com",
    "icloud.com",
    "live.com",
    "mail.ru",
    "mailbox.org",
    "me.com",
    "msn.com",
    "outlook.com",
    "outlook.de",
    "posteo.de",
    "proton.me",
    "protonmail.com",
    "t-online.de",
    "web.de",
    "yahoo.com",
    "yahoo.de",
    "yandex.ru",
]


@dataclass
class RoutingSettings:
    # A sender with more than this many mails in rate_limit_minutes is a loop.
    rate_limit_count: int = 20
    rate_limit_minutes: float = 60.0
    # Notifications to an address stop after this many permanent failures.
    bounce_limit: int = 3
    public_mail_domains: list[str] = field(
        default_factory=lambda: list(PUBLIC_MAIL_DOMAINS)
    )


@dataclass
class Settings:
    desk: DeskSettings = field(default_factory=DeskSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    relay: RelaySettings = field(default_factory=RelaySettings)
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    imap: list[ImapSettings] = field(default_factory=list)
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    sla: SlaSettings = field(default_factory=SlaSettings)
    escalation: EscalationSettings = field(default_factory=EscalationSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    templates_dir: Path = Path(__file__).resolve().parent.parent / "templates"
    config_path: Path | None = None

    @property
    def embedded(self) -> bool:
        """Whether jobs run in-process, with no broker server."""
        return not self.broker.url

    def is_support_address(self, address: str) -> bool:
        wanted = address.strip().lower()
        return any(wanted == known.lower() for known in self.desk.support_addresses)

    def is_staff_address(self, address: str) -> bool:
        domain = address.rpartition("@")[2].strip().lower()
        return any(domain == known.lower() for known in self.desk.staff_domains)

    @property
    def sender_address(self) -> str:
        """The From address of outbound mail: the first support address."""
        return self.desk.support_addresses[0]


SECTIONS = {
    "desk": DeskSettings,
    "store": StoreSettings,
    "smtp": SmtpSettings,
    "relay": RelaySettings,
    "broker": BrokerSettings,
    "worker": WorkerSettings,
    "lifecycle": LifecycleSettings,
    "sla": SlaSettings,
    "escalation": EscalationSettings,
    "routing": RoutingSettings,
}


def default_config_path(environ: dict[str, str] | None = None) -> tuple[Path, bool]:
    """Return the config path and whether it was named (by GATEWAY_CONFIG)."""
    named = (os.environ if environ is None else environ).get(CONFIG_ENV_VAR, "")
    if named.strip():
        return Path(named), True
    return Path(DEFAULT_CONFIG_FILE), False


def load_settings(
    path: Path | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Load ``path`` (or the default file), apply environment overrides, validate.

    A file named by ``path`` or GATEWAY_CONFIG must exist. A missing
    ``./config.toml`` gives the built-in defaults, with a warning.
    """
    environ = dict(os.environ if environ is None else environ)
    explicit = path is not None
    if path is None:
        path, explicit = default_config_path(environ)
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    elif explicit:
        raise ConfigError(
            f"config file {path} not found; pass an existing --config or "
            f"{CONFIG_ENV_VAR}"
        )
    else:
        log.warning(
            "config file %s not found in %s; using the built-in defaults",
            path,
            Path.cwd(),
        )
    _check_environment_names(environ)
    base = path.resolve().parent
    settings = Settings(config_path=path.resolve() if path.is_file() else None)
    unknown_sections = set(data) - set(SECTIONS) - {"templates_dir", "imap"}
    if unknown_sections:
        names = ", ".join(sorted(unknown_sections))
        raise ConfigError(f"unknown section(s) in {path}: {names}")
    for name, cls in SECTIONS.items():
        values = data.get(name, {})
        if not isinstance(values, dict):
            raise ConfigError(f"[{name}] in {path} must be a table")
        section = _build_section(name, cls, values, environ)
        setattr(settings, name, section)
    settings.imap = load_imap_tables(data.get("imap", []), environ, base)
    templates = environ.get("GATEWAY_TEMPLATES_DIR", data.get("templates_dir"))
    if templates:
        settings.templates_dir = Path(templates)
    _resolve_paths(settings, base)
    try:
        _validate(settings)
    except ConfigError as exc:
        raise ConfigError(_name_environment_source(str(exc), environ)) from exc
    return settings


def _name_environment_source(message: str, environ: dict[str, str]) -> str:
    """Add the variable's name to a message about a key that the environment set."""
    match = re.match(r"\[(\w+)\] (\w+)", message)
    if match:
        env_name = f"GATEWAY_{match.group(1).upper()}_{match.group(2).upper()}"
        if env_name in environ:
            return f"{message} (set by the environment variable {env_name})"
    return message


def _check_environment_names(environ: dict[str, str]) -> None:
    """Raise ConfigError for a GATEWAY_<SECTION>_<KEY> variable that names no key."""
    for name in environ:
        for section, cls in SECTIONS.items():
            prefix = f"GATEWAY_{section.upper()}_"
            if not name.startswith(prefix):
                continue
            key = name[len(prefix) :].lower()
            known = [f.name for f in dataclasses.fields(cls)]
            if key not in known:
                raise ConfigError(
                    f"environment variable {name} names no setting: [{section}] has "
                    f"no key {key!r}{_suggestion(key, known)}"
                )


def _suggestion(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _build_section(
    name: str,
    cls: type,
    values: dict[str, Any],
    environ: dict[str, str],
    label: str | None = None,
) -> Any:
    """Build the dataclass ``cls`` from a table and its environment overrides.

    ``label`` names the table in messages (default ``[name]``); the
    environment variables are ``GATEWAY_<NAME>_<KEY>``.
    """
    label = label or f"[{name}]"
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        hint = _suggestion(unknown[0], sorted(known))
        raise ConfigError(f"unknown key {unknown[0]!r} in {label}{hint}")
    converted: dict[str, Any] = {}
    for key in known:
        env_name = f"GATEWAY_{name.upper()}_{key.upper()}"
        if env_name in environ:
            converted[key] = _from_env(env_name, environ[env_name], hints[key])
        elif key in values:
            converted[key] = _check_type(f"{label} {key}", values[key], hints[key])
    return cls(**converted)


def _from_env(env_name: str, raw: str, hint: Any) -> Any:
    try:
        if hint is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError("use true or false (also 1/0, yes/no, on/off)")
        if hint is int:
            return int(raw)
        if hint is float:
            return float(raw)
        if hint is Path:
            return Path(raw)
        if hint == list[str]:
            text = raw.strip()
            if text.startswith("["):
                items = json.loads(text)
                if not all(isinstance(item, str) for item in items):
                    raise ValueError(raw)
                return items
            return [item.strip() for item in text.split(",") if item.strip()]
        return raw
    except ValueError as exc:
        expected = "true or false" if hint is bool else getattr(hint, "__name__", hint)
        raise ConfigError(
            f"environment variable {env_name}={raw!r} is invalid: expected {expected}"
        ) from exc


def _check_type(label: str, value: Any, hint: Any) -> Any:
    if hint is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{label} must be a path string, got {value!r}")
        return Path(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint == list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{label} must be a list of strings, got {value!r}")
        return value
    expected = hint if isinstance(hint, type) else str
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{label} must be of type {expected.__name__}, got {value!r}")
    return value


def _resolve_paths(settings: Settings, base: Path) -> None:
    if not settings.store.data_dir.is_absolute():
        settings.store.data_dir = base / settings.store.data_dir
    if not settings.templates_dir.is_absolute():
        settings.templates_dir = base / settings.templates_dir
    url = settings.store.url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        relative = url[len(prefix) :]
        if relative and relative != ":memory:":
            settings.store.url = prefix + str(base / relative)


def _validate(settings: Settings) -> None:
    desk = settings.desk
    if not ORG_ID_PATTERN.match(desk.org_id):
        raise ConfigError(
            f"[desk] org_id {desk.org_id!r} is invalid: use 1 to 32 ASCII letters "
            "and digits"
        )
    if not desk.support_addresses:
        raise ConfigError("[desk] support_addresses is empty: list at least one")
    for address in desk.support_addresses:
        if "@" not in address or any(c.isspace() for c in address):
            raise ConfigError(f"[desk] support address {address!r} is not an address")
    for domain in desk.staff_domains:
        if not DOMAIN_PATTERN.match(domain):
            raise ConfigError(
                f"[desk] staff domain {domain!r} is invalid: write the domain "
                "alone, such as staff.example.com (no @, no spaces)"
            )
    _validate_store_url(settings.store.url)
    if desk.language not in LANGUAGES:
        raise ConfigError(
            f"[desk] language {desk.language!r} is invalid: use one of "
            + ", ".join(LANGUAGES)
        )
    if not desk.message_id_domain or "@" in desk.message_id_domain:
        raise ConfigError(
            f"[desk] message_id_domain {desk.message_id_domain!r} is invalid: "
            "use a domain name such as mail.example.com"
        )
    if not 0 <= settings.smtp.port <= 65535:
        raise ConfigError(f"[smtp] port {settings.smtp.port} is outside 0..65535")
    if settings.smtp.max_message_size < 1024:
        raise ConfigError(
            f"[smtp] max_message_size {settings.smtp.max_message_size} is too "
            "small: use at least 1024 bytes"
        )
    if settings.relay.host and not 0 < settings.relay.port <= 65535:
        raise ConfigError(f"[relay] port {settings.relay.port} is outside 1..65535")
    if settings.relay.tls and settings.relay.starttls:
        raise ConfigError(
            "[relay] tls and starttls are both true: use tls for port 465 or "
            "starttls for port 587, not both"
        )
    if settings.relay.max_attempts < 1:
        raise ConfigError("[relay] max_attempts must be at least 1")
    url = settings.broker.url
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"[broker] url {url!r} is not supported: leave it empty for the "
            "in-process worker or give a redis:// URL"
        )
    if settings.worker.threads < 0:
        raise ConfigError("[worker] threads must be 0 or more")
    _validate_lifecycle(settings)
    _validate_routing(settings.routing)


def _validate_store_url(url: str) -> None:
    fix = "use sqlite:///path/gateway.db or postgresql+psycopg://user@host/database"
    try:
        parsed = make_url(url)
        parsed.get_dialect()
    except ArgumentError:
        raise ConfigError(f"[store] url {url!r} is invalid: {fix}") from None
    except NoSuchModuleError:
        raise ConfigError(
            f"[store] url {url!r} names a database driver that is not installed: {fix}"
        ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(f"[store] url {url!r} is not supported: {fix}")


def _validate_lifecycle(settings: Settings) -> None:
    lifecycle = settings.lifecycle
    for key in ("pending_after_days", "close_after_days", "tick_seconds"):
        if getattr(lifecycle, key) <= 0:
            raise ConfigError(f"[lifecycle] {key} must be more than 0")
    for key in ("critical_hours", "urgent_hours", "standard_hours", "low_hours"):
        if getattr(settings.sla, key) <= 0:
            raise ConfigError(f"[sla] {key} must be more than 0 business hours")
    for item in dataclasses.fields(EscalationSettings):
        address = getattr(settings.escalation, item.name)
        if address and ("@" not in address or any(c.isspace() for c in address)):
            raise ConfigError(
                f"[escalation] {item.name} {address!r} is not a mail address"
            )


IMAP_ENV_PATTERN = re.compile(r"^GATEWAY_IMAP_(\d+)_(\w+)$")


def load_imap_tables(
    tables: Any, environ: dict[str, str], base: Path
) -> list[ImapSettings]:
    """Build and check the ``[[imap]]`` tables, with their environment overrides.

    ``GATEWAY_IMAP_<N>_<KEY>`` overrides a key of the N-th table (counted
    from 1), such as ``GATEWAY_IMAP_1_PASSWORD``. The environment cannot add
    a table, because a mailbox needs several keys at once.
    """
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(
            "imap must be a list of tables: write each mailbox as an [[imap]] table"
        )
    _check_imap_environment_names(environ, len(tables))
    mailboxes = []
    for number, values in enumerate(tables, start=1):
        label = f"[[imap]] {number}"
        mailbox = _build_section(
            f"imap_{number}", ImapSettings, values, environ, label=label
        )
        _resolve_imap_paths(mailbox, base)
        _validate_imap(mailbox, label)
        mailboxes.append(mailbox)
    labels = [mailbox.label for mailbox in mailboxes]
    for label in labels:
        if labels.count(label) > 1:
            raise ConfigError(
                f"[[imap]] tables name the mailbox {label} twice: remove one, "
                "because both would read and move the same mail"
            )
    return mailboxes


def _check_imap_environment_names(environ: dict[str, str], count: int) -> None:
    known = [f.name for f in dataclasses.fields(ImapSettings)]
    for name in environ:
        if not name.startswith("GATEWAY_IMAP_"):
            continue
        match = IMAP_ENV_PATTERN.match(name)
        if match is None or not 1 <= int(match.group(1)) <= count:
            raise ConfigError(
                f"environment variable {name} names no [[imap]] table: use "
                f"GATEWAY_IMAP_<N>_<KEY> with N from 1 to {count} (the tables in "
                "the config file, in order)"
            )
        key = match.group(2).lower()
        if key not in known:
            raise ConfigError(
                f"environment variable {name} names no setting: [[imap]] has no "
                f"key {key!r}{_suggestion(key, known)}"
            )


def _resolve_imap_paths(mailbox: ImapSettings, base: Path) -> None:
    if mailbox.password_file and not Path(mailbox.password_file).is_absolute():
        mailbox.password_file = str(base / mailbox.password_file)
    if mailbox.ca_file and not Path(mailbox.ca_file).is_absolute():
        mailbox.ca_file = str(base / mailbox.ca_file)


def is_loopback_host(host: str) -> bool:
    """Return whether ``host`` is this machine: localhost or a loopback address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _validate_imap(mailbox: ImapSettings, label: str) -> None:
    if not mailbox.host:
        raise ConfigError(
            f"{label} host is empty: set the IMAP server, such as imap.example.com"
        )
    if not 0 < mailbox.port <= 65535:
        raise ConfigError(f"{label} port {mailbox.port} is outside 1..65535")

    if mailbox.tls not in IMAP_TLS_MODES:
        raise ConfigError(
            f"{label} tls {mailbox.tls!r} is invalid: use implicit (port 993), "
            "starttls (port 143) or none (loopback hosts only)"
        )
    # Without TLS the password and the mail cross the network in clear text.
    if mailbox.tls == "none" and not is_loopback_host(mailbox.host):
        raise ConfigError(
            f"{label} tls 'none' is allowed only for a loopback host, not "
            f"{mailbox.host!r}: use implicit (port 993) or starttls (port 143)"
        )

    if not mailbox.user:
        raise ConfigError(f"{label} user is empty: set the mailbox's login name")
    if mailbox.password and mailbox.password_file:
        raise ConfigError(
            f"{label} sets both password and password_file: keep one of them"
        )
    if not mailbox.password and not mailbox.password_file:
        raise ConfigError(
            f"{label} has no password: set password_file (a file that contains "
            "only the password) or password"
        )
    # password_file is read at each login, where a missing file is an error
    # of that mailbox alone: checked here, it would stop the SMTP listener
    # and every command of a user who may not read the secret.
    path = mailbox.ca_file
    if path and not (os.path.isfile(path) and os.access(path, os.R_OK)):
        raise ConfigError(
            f"{label} ca_file {path} is not a readable file: create it or fix "
            "the path (relative paths start at the config file's folder)"
        )

    if not mailbox.folder:
        raise ConfigError(f"{label} folder is empty: name a folder, such as INBOX")
    for key in ("folder", "processed_folder"):
        name = getattr(mailbox, key)
        # IMAP sends other names in modified UTF-7 (RFC 3501 section 5.1.3),
        # which the gateway does not encode.
        if not name.isascii():
            raise ConfigError(
                f"{label} {key} {name!r} is not ASCII: rename the folder on the "
                "server to an ASCII name"
            )
    if mailbox.processed_folder == mailbox.folder:
        raise ConfigError(
            f"{label} processed_folder is the folder itself ({mailbox.folder!r}): "
            "name another folder, or leave it empty to only flag mail as read"
        )
    if mailbox.poll_seconds <= 0:
        raise ConfigError(
            f"{label} poll_seconds {mailbox.poll_seconds} must be more than 0"
        )


def _validate_routing(routing: RoutingSettings) -> None:
    if routing.rate_limit_count < 1:
        raise ConfigError("[routing] rate_limit_count must be at least 1")
    if routing.rate_limit_minutes <= 0:
        raise ConfigError("[routing] rate_limit_minutes must be more than 0")
    if routing.bounce_limit < 1:
        raise ConfigError("[routing] bounce_limit must be at least 1")
