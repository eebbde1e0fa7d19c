"""Attachment files, stored once per content digest under ``<data_dir>/attachments``."""

from __future__ import annotations

import os
from pathlib import Path


def attachment_path(data_dir: Path, sha256: str) -> Path:
    return data_dir / "attachments" / sha256[:2] / sha256[2:4] / sha256


def store_attachment(data_dir: Path, sha256: str, content: bytes) -> Path:
    """Write ``content`` under its digest unless a file is there already.

    The file is fsync'd before the rename, so a path that exists always
    contains the whole content.
    """
    final = attachment_path(data_dir, sha256)
    if final.exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f"{sha256}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, final)
    return final
