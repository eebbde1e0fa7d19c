"""Commands that a customer writes into a reply: close, escalate, follow, unfollow.

A command is the subject of the reply, or the first non-empty line of its
new text, when that line contains nothing but a keyword (in German or
English) besides reply prefixes, the case marker and the thread token. So
"Close" or "AW: Eskalieren [Case 00000042] ref_..:ref" is a command, while
"Close call: the printer is down again" is a plain comment.
"""

from __future__ import annotations

import enum
import re
from urllib.parse import quote


class Command(enum.StrEnum):
    CLOSE = "close"
    ESCALATE = "escalate"
    FOLLOW = "follow"
    UNFOLLOW = "unfollow"


KEYWORDS: dict[Command, tuple[str, ...]] = {
    Command.CLOSE: (
        "close",
        "close case",
        "close the case",
        "please close",
        "please close the case",
        "request to close",
        "schließen",
        "schliessen",
        "fall schließen",
        "fall schliessen",
        "bitte schließen",
        "bitte schliessen",
        "abschließen",
        "abschliessen",
    ),
    Command.ESCALATE: (
        "escalate",
        "escalate case",
        "escalate the case",
        "please escalate",
        "eskalieren",
        "fall eskalieren",
        "bitte eskalieren",
        "eskalation",
    ),
    Command.FOLLOW: ("follow", "follow case", "folgen", "fall folgen", "verfolgen"),
    Command.UNFOLLOW: (
        "unfollow",
        "unfollow case",
        "stop following",
        "nicht mehr folgen",
        "entfolgen",
        "nicht mehr verfolgen",
    ),
}
_PHRASES = {phrase: command for command, words in KEYWORDS.items() for phrase in words}

# The word the mailto links write into the subject, per language.
LINK_WORDS = {
    "en": {
        Command.CLOSE: "CLOSE",
        Command.ESCALATE: "ESCALATE",
        Command.FOLLOW: "FOLLOW",
        Command.UNFOLLOW: "UNFOLLOW",
    },
    "de": {
        Command.CLOSE: "SCHLIESSEN",
        Command.ESCALATE: "ESKALIEREN",
        Command.FOLLOW: "FOLGEN",
        Command.UNFOLLOW: "ENTFOLGEN",
    },
}

TOKEN_PATTERN = re.compile(r"ref_[A-Za-z0-9]+_[A-Za-z0-9]+:ref", re.IGNORECASE)
CASE_MARKER_PATTERN = re.compile(r"\[(?:case|fall)\s+\d+\]", re.IGNORECASE)
REPLY_PREFIX_PATTERN = re.compile(
    r"^(?:(?:re|aw|wg|fw|fwd|antw)\s*(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE
)
# Characters around a keyword that do not change its meaning: "Close!",
# "*close*", "#close".
DECORATION = " \t.!:;,-*#_\"'()"


def _normalize(line: str) -> str:
    text = TOKEN_PATTERN.sub(" ", line)
    text = CASE_MARKER_PATTERN.sub(" ", text)
    text = REPLY_PREFIX_PATTERN.sub("", text.strip())
    return " ".join(text.split()).strip(DECORATION).lower()


def command_in_line(line: str) -> Command | None:
    """Return the command that ``line`` consists of, or None."""
    return _PHRASES.get(_normalize(line))


def find_command(subject: str, new_text: str, case_subject: str = "") -> Command | None:
    """Return the command of a reply: its subject, else its first text line.

    A subject that only repeats ``case_subject`` is no command, because every
    reply to a case named "Eskalation" or "Close" carries that subject.
    """
    if _normalize(subject) != _normalize(case_subject):
        found = command_in_line(subject)
        if found is not None:
            return found
    for line in new_text.splitlines():
        if line.strip():
            return command_in_line(line)
    return None


def mailto_link(address: str, word: str, case_number: str, token: str) -> str:
    """Return a mailto URL whose mail carries ``word`` and the token."""
    subject = f"{word} [Case {case_number}] {token}"
    body = f"{word}\n\n{token}\n"
    return f"mailto:{address}?subject={quote(subject)}&body={quote(body)}"


def command_links(
    language: str, address: str, case_number: str, token: str
) -> dict[str, str]:
    """Return the mailto link of every command, keyed by the command's name."""
    words = LINK_WORDS.get(language, LINK_WORDS["en"])
    return {
        command.value: mailto_link(address, words[command], case_number, token)
        for command in Command
    }
