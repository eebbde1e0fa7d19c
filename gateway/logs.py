"""Logging set-up for the gateway's processes."""

import logging
import os
import time

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# UTC with a Z, so that lines from several hosts sort and compare.
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# aiosmtpd logs every session's end ("Connection lost") and its AUTH
# mechanisms at INFO, and aioimaplib every untagged IMAP response it does
# not use; the gateway logs what matters about each mail itself.
QUIET_LOGGERS = ("mail.log", "aioimaplib")


def setup_logging(level: str | None = None) -> None:
    """Log to stderr at ``level`` (default: GATEWAY_LOG_LEVEL, else INFO)."""
    chosen = (level or os.environ.get("GATEWAY_LOG_LEVEL") or "INFO").upper()
    formatter = logging.Formatter(LOG_FORMAT, DATE_FORMAT)
    formatter.converter = time.gmtime
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(chosen)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
