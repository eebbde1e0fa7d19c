"""Logging set-up for the gateway's processes."""

import logging
import os

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str | None = None) -> None:
    """Log to stderr at ``level`` (default: GATEWAY_LOG_LEVEL, else INFO)."""
    chosen = (level or os.environ.get("GATEWAY_LOG_LEVEL") or "INFO").upper()
    logging.basicConfig(level=chosen, format=LOG_FORMAT)
