"""Thread tokens: ``ref_<org>_<case>:ref`` in the subject and body of every mail.

``<org>`` names the installation and ``<case>`` the case. The case part is
random (10 characters from 62, about 60 bits), stored with the case and
matched by lookup, so it cannot be derived from the case number or from
another case's token.
"""

from __future__ import annotations

import re
import secrets
import string

CASE_PART_LENGTH = 10
_ALPHABET = string.ascii_letters + string.digits
TOKEN_PATTERN = re.compile(r"ref_([A-Za-z0-9]+)_([A-Za-z0-9]+):ref")


def mint_token(org_id: str) -> str:
    """Return a new token for a case of the installation ``org_id``."""
    case_part = "".join(secrets.choice(_ALPHABET) for _ in range(CASE_PART_LENGTH))
    return f"ref_{org_id}_{case_part}:ref"


def find_tokens(text: str) -> list[str]:
    """Return the well-formed tokens in ``text``, in order of appearance, once each."""
    seen: dict[str, None] = {}
    for match in TOKEN_PATTERN.finditer(text):
        seen.setdefault(match.group(0), None)
    return list(seen)


def is_token(value: str) -> bool:
    return TOKEN_PATTERN.fullmatch(value) is not None
