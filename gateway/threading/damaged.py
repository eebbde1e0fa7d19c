"""Rebuild thread tokens that mail clients and people damaged.

Damage seen in replies: a line break inside the token (wrapped lines, with
the quote marker of the next line), a quoted-printable soft break (``=`` at
the end of a line) left in the text, HTML tags or entities inside it
(``ref_<b>00D…</b>``, ``ref&#95;00D…``), and a lost ``ref_`` prefix or
``:ref`` end. Each candidate is only a guess: it reaches a case only when a
stored token is exactly equal to it, so the guesses can be generous.

A token without its ``ref_`` or ``:ref`` frame is taken only when the
installation's own ``<org>`` part anchors it, because a bare run of
letters and digits could be anything. A tag or an entity that splits the
word ``ref`` or the ``<org>`` part itself is not repaired.
"""

from __future__ import annotations

import html
import re

from gateway.threading.tokens import CASE_PART_LENGTH, TOKEN_PATTERN

# Texts are cut to this many characters before the repairs, because a token
# sits in the subject, the new text or near the top of a quote.
MAX_TEXT_CHARS = 200_000
_SOFT_BREAK = re.compile(r"=\r?\n")
_TAG = re.compile(r"<[^<>]{0,300}>")
_QP_ESCAPE = re.compile(r"=(5[Ff]|3[Aa])")
_LINE_BREAK = re.compile(r"[ \t]*\r?\n[ \t>|]*")
# The frame with blanks around its separators, which some clients insert.
_SPACED_TOKEN = re.compile(
    r"ref\s{0,3}_\s{0,3}([A-Za-z0-9]+)\s{0,3}_\s{0,3}([A-Za-z0-9]+)\s{0,3}:\s{0,3}ref"
)
_MIN_CASE_PART = 6
_MAX_CASE_PART = 40


def find_damaged_tokens(text: str, org_ids: list[str]) -> list[str]:
    """Return the tokens that repairs of ``text`` yield, in order, once each.

    The well-formed tokens of the text as it is are included too.
    """
    if not text:
        return []
    text = text[:MAX_TEXT_CHARS]
    soft_broken = "=\n" in text or "=\r\n" in text
    if not soft_broken and not _may_hold_token(text, org_ids):
        return []
    repaired = _repair(text)
    joined = _LINE_BREAK.sub("", repaired)
    found: dict[str, None] = {}
    for variant in (text, repaired, joined):
        for match in TOKEN_PATTERN.finditer(variant):
            found.setdefault(match.group(0), None)
        for match in _SPACED_TOKEN.finditer(variant):
            found.setdefault(f"ref_{match.group(1)}_{match.group(2)}:ref", None)
        for org_id in filter(None, org_ids):
            for token in _unframed(variant, org_id):
                found.setdefault(token, None)
    return list(found)


def _may_hold_token(text: str, org_ids: list[str]) -> bool:
    """Return False when the text has neither ``ref`` nor an ``<org>`` part.

    Most mail has neither, so the repairs are skipped for it.
    """
    return "ref" in text.lower() or any(org_id in text for org_id in org_ids)


def _repair(text: str) -> str:
    """Undo soft breaks, escaped characters, tags and entities."""
    text = _SOFT_BREAK.sub("", text)
    text = _QP_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    if "<" in text:
        text = _TAG.sub("", text)
    if "&" in text:
        text = html.unescape(text)
    return text


def _unframed(text: str, org_id: str) -> list[str]:
    """Return tokens for ``<org>_<case>`` runs that lack ``ref_`` or ``:ref``.

    When the case part runs on into a following word (a lost ``:ref`` on a
    joined line), its first CASE_PART_LENGTH characters are tried as well.
    """
    pattern = re.compile(
        rf"(?<![A-Za-z0-9]){re.escape(org_id)}_"
        rf"([A-Za-z0-9]{{{_MIN_CASE_PART},{_MAX_CASE_PART}}})"
    )
    tokens: list[str] = []
    for match in pattern.finditer(text):
        case_part = match.group(1)
        tokens.append(f"ref_{org_id}_{case_part}:ref")
        if len(case_part) > CASE_PART_LENGTH:
            tokens.append(f"ref_{org_id}_{case_part[:CASE_PART_LENGTH]}:ref")
    return tokens
