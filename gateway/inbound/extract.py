"""Extract the new text of a reply: drop quoted mail, attributions and signatures.

The rules work line by line on plain text:

- An attribution ("On <date>, <name> wrote:", "Am <date> schrieb <name>:" and
  the like in other languages, wrapped over up to five lines) that introduces
  a ">" quote is dropped together with the quoted lines. The text after the
  quote is kept, so bottom-posted replies survive. When the writer answered
  between quoted lines, the quotes above each answer stay with it.
- An attribution followed by unquoted text, an Outlook header block
  ("From:/Sent:/To:/Subject:" in several languages) or a separator
  ("-----Original Message-----", a line of underscores) starts the old mail:
  everything from there on is cut.
- A forwarded mail is kept whole, because the sender's request is
  about its content. Only the forwarder's own signature above it is removed.
- A "-- " signature, and "Sent from my iPhone" and similar lines at the end,
  are removed.

HTML replies first lose their quoted elements (Gmail, Apple Mail,
Thunderbird, Outlook markers), and are then converted and run through the
same rules. When nothing would remain, the whole text is returned instead.
"""

import copy
import re
from typing import Any

import lxml.html

from gateway.inbound.htmltext import parse_html, tree_to_text
from gateway.inbound.message import ParsedMessage

#: Lines joined at most when looking for a wrapped attribution.
MAX_ATTRIBUTION_LINES = 5
_MAX_ATTRIBUTION_CHARS = 400
_MAX_BARE_ATTRIBUTION_CHARS = 200
# Supercite (Emacs) quotes with the author's initials: "JD> text".
_SUPERCITE_QUOTE = re.compile(r"[A-Z][A-Za-z]{0,2}>(?:\s|$)")

_ATTRIBUTION_VERB = re.compile(
    r"(?:\b(?:wrote|writes|schrieb|schreibt|a\s+écrit|écrit|escribió|escribio"
    r"|escreveu|ha\s+scritto|scrisse|schreef|geschreven|skrev|skrevet|kirjoitti"
    r"|napisał(?:\(a\))?|napisal|napsal(?:\(a\))?|написал(?:\(а\)|а)?|написав"
    r"|пише|yazdı|έγραψε|quoting|zitat\s+von|citando)|写道|寫道)"
    r"[^\n]{0,80}?[:：]\s*$",
    re.IGNORECASE,
)
_EMAIL_ADDRESS = re.compile(r"[^\s@<>\"'()\[\]]+@[\w-]+(?:\.[\w-]+)+")
_ATTRIBUTION_EVIDENCE = re.compile(
    r"[^\s@]@[\w-]+\.\w|\b\d{1,2}[:.]\d{2}\b|\b(?:19|20)\d{2}\b|\d{4}年|^\d",
    re.IGNORECASE,
)
_DATED_ADDRESS_LINE = re.compile(
    r"^(?:\d|\S*\d{4}年|(?=.*\b\d{1,2}:\d{2}\b)).{0,250}"
    r"<?[^\s<>]+@[^\s<>]+>?\s*[:：]$"
)
_ATTRIBUTION_START = re.compile(
    r"^(?:on|am|le|el|il|op|em|den|dnia|dne|w\s+dniu|at|quoting|zitat)\s", re.IGNORECASE
)
_GMAIL_ISO_DATE_LINE = re.compile(
    r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}\b.{0,150}(?:GMT[+-]\d|<[^<>\s]+@[^<>\s]+>)"
)
_ZOHO_ATTRIBUTION = re.compile(r"^-{2,}\s*On\b.{0,250}\bwrote\s*-{2,}$", re.IGNORECASE)

_ORIGINAL_MESSAGE = re.compile(
    r"^[\s*_]*-{2,}\s*(?:original\s+message|ursprüngliche\s+nachricht"
    r"|originalnachricht|message\s+d'origine|mensaje\s+original|messaggio\s+originale"
    r"|oorspronkelijk\s+bericht|originalmeddelande|oprindelig\s+meddelelse"
    r"|opprinnelig\s+melding|wiadomość\s+oryginalna|původní\s+zpráva"
    r"|исходное\s+сообщение|alkuperäinen\s+viesti|mensagem\s+original)"
    r"\s*-{2,}[\s*_]*$",
    re.IGNORECASE,
)
_UNDERSCORE_LINE = re.compile(r"^\s*_{20,}\s*$")
_FORWARD_MARKER = re.compile(
    r"^[\s>]*(?:-{2,}\s*(?:forwarded\s+message|weitergeleitete\s+nachricht"
    r"|message\s+transféré|mensaje\s+reenviado|messaggio\s+inoltrato"
    r"|doorgestuurd\s+bericht|vidarebefordrat\s+meddelande|videresendt\s+meddelelse"
    r"|wiadomość\s+przekazana|přeposlaná\s+zpráva|пересылаемое\s+сообщение)"
    r"\s*-{2,}\s*"
    r"|-{2,}\s*forwarded\s+by\b.*-{2,}\s*"
    r"|(?:begin\s+forwarded\s+message|anfang\s+der\s+weitergeleiteten\s+nachricht"
    r"|début\s+du\s+message\s+réexpédié|comienzo\s+del\s+mensaje\s+reenviado"
    r"|inizio\s+messaggio\s+inoltrato|begin\s+doorgestuurd\s+bericht)\s*[:：]\s*)$",
    re.IGNORECASE,
)
_FORWARD_SUBJECT = re.compile(
    r"^\s*(?:\[[^\]]*\]\s*)?(?:fwd?|wg|tr|rv|enc|doorst|vs|vb|fs)\s*:", re.IGNORECASE
)

# Labels of the header block that Outlook and webmail clients write above the
# old mail, by the field they name.
_HEADER_LABELS = {
    "from": "from|von|de|da|van|från|fra|od|от|lähettäjä|feladó|发件人|寄件者|差出人",
    "sent": "sent|gesendet|envoyé|enviado|enviada|inviato|verzonden|skickat|sendt"
    "|wysłano|odesláno|отправлено|lähetetty|发送时间|送信日時",
    "date": "date|datum|fecha|data|dato|дата|日期",
    "to": "to|an|à|a|para|aan|till|til|do|komu|кому|vastaanottaja|收件人|宛先",
    "cc": "cc|kopie|kopia|копия|抄送",
    "subject": "subject|betreff|objet|asunto|oggetto|onderwerp|ämne|emne|temat"
    "|předmět|тема|aihe|assunto|主题|件名",
}
_HEADER_FIELD = re.compile(
    r"^\s*[*_]*\s*("
    + "|".join(f"(?P<{key}>{labels})" for key, labels in _HEADER_LABELS.items())
    + r")\s*[*_]*\s*[:：]",
    re.IGNORECASE,
)
_MAX_HEADER_BLOCK_LINES = 10

_SIGNATURE_DELIMITER = re.compile(r"^\s*--\s*$")
_MOBILE_SIGNATURE = re.compile(
    r"^\W{0,3}(?:"
    r"(?:sent|envoyé|enviado|inviato|verzonden|sendt|skickat|gesendet|wysłano"
    r"|odesláno|отправлено)\s+(?:from|with|via|depuis|de|desde|con|da"
    r"|vanaf|met|fra|från|von|mit|z|с|из)\b.{0,70}"
    r"|(?:von|vom)\s+meine[mr]?\s+.{1,40}\s+gesendet\.?"
    r"|diese\s+nachricht\s+wurde\s+von\s+meinem\s+.{1,60}\s+gesendet\.?"
    r"|get\s+\[?outlook\s+for\b.{0,60}"
    r"|<<\s*sent\s+by\b.{1,30}>>"
    r"|.{0,20}\bfrom\s+(?:my\s+)?(?:mobile|iphone|ipad|android|phone|cell|smartphone"
    r"|blackberry|galaxy)\b.{0,20}"
    r"|從我的.{1,20}傳送|从我的.{1,20}发送"
    r")\W{0,3}$",
    re.IGNORECASE,
)
#: Lines after a "Sent from my ..." line that may still be cut with it.
_MAX_LINES_AFTER_MOBILE_SIGNATURE = 40
_MAX_SIGNATURE_LINE_CHARS = 100
_SEPARATOR_ONLY = re.compile(r"^\s*[-_=*~#+]{2,}\s*$")
_BLANK_RUN = re.compile(r"\n{3,}")

# HTML elements that contain only the quoted mail, and Thunderbird's
# attribution line above it.
_QUOTE_CLASSES = ("gmail_quote", "yahoo_quoted")
_ATTRIBUTION_CLASSES = ("moz-cite-prefix",)
# Elements that start the quoted mail: they and everything after them go.
_QUOTE_START_IDS = ("divrplyfwdmsg", "appendonsend", "stopspelling", "zwchr")
_HEADER_HINT = re.compile(
    r"^\s*(?:from|von|de|van|da|från|fra)\s*:.{0,400}?"
    r"\b(?:sent|gesendet|envoyé|enviado|verzonden|inviato|skickat|sendt|date|datum)\s*:",
    re.IGNORECASE | re.DOTALL,
)


def extract_new_text(text: str) -> str:
    """Return only what the person wrote this time in a plain text body."""
    return _extract_text(text, forward=False)


def extract_new_text_from_html(html: str) -> str:
    """Return the new text of an HTML body, quoted elements removed first."""
    return _extract_html(html, forward=False)


def extract_reply(message: ParsedMessage) -> str:
    """Return the new text of a parsed message.

    A subject starting with "Fwd:", "WG:", "TR:" and the like marks a forward,
    which is kept whole even when the forwarded part looks like a quote.
    """
    forward = bool(_FORWARD_SUBJECT.match(message.subject))
    if message.text_from_html and message.html is not None:
        return _extract_html(message.html, forward)
    return _extract_text(message.text, forward)


def _extract_text(text: str, forward: bool) -> str:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    split = _first_split(lines)
    if forward or (split is not None and split[1] == "forward"):
        result = _keep_forward(lines, split[0] if split else None)
    else:
        result = _finish(_drop_quotes(_strip_signature(_remove_quoted(lines))))
    return result or _finish(lines)


def _extract_html(html: str, forward: bool) -> str:
    tree = parse_html(html)
    if tree is None:
        return ""
    whole_text = tree_to_text(tree)
    if forward or _is_forward(whole_text):
        return _extract_text(whole_text, forward=True)
    tree = parse_html(html)
    _remove_quoted_elements(tree)
    new_text = _extract_text(tree_to_text(tree), forward=False)
    return new_text or _finish(whole_text.split("\n"))


# Plain text rules


def _is_quoted(line: str) -> bool:
    stripped = line.lstrip()
    return stripped.startswith(">") or bool(_SUPERCITE_QUOTE.match(stripped))


def _first_split(lines: list[str]) -> tuple[int, str] | None:
    """Find the first unquoted line that starts a quote or a forward."""
    seen_quote = False
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        if _is_quoted(line):
            # Apple Mail quotes the whole forward, marker line included.
            if not seen_quote and _FORWARD_MARKER.match(line):
                return index, "forward"
            seen_quote = True
            continue
        if _FORWARD_MARKER.match(line):
            return index, "forward"
        if _attribution_end(lines, index) is not None:
            return index, "reply"
        if _is_separator(line) or _header_block_at(lines, index):
            return index, "reply"
    return None


def _is_forward(text: str) -> bool:
    split = _first_split(text.split("\n"))
    return split is not None and split[1] == "forward"


def _keep_forward(lines: list[str], marker: int | None) -> str:
    if marker is None:
        return _finish(lines)
    note = _strip_signature(lines[:marker])
    return _finish(note + [""] + lines[marker:])


def _remove_quoted(lines: list[str]) -> list[str]:
    """Drop attributions and the old mail after a cut; keep ">" lines for now."""
    new_lines: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if _is_quoted(line):
            new_lines.append(line)
            index += 1
            continue
        end = _attribution_end(lines, index)
        if end is not None:
            following = _next_nonblank(lines, end)
            introduces_quote = following is not None and _is_quoted(lines[following])
            if introduces_quote or not _has_content(new_lines):
                # Bottom-posted or inline reply: drop the attribution only.
                index = end
                continue
            break
        if _is_separator(line) or _header_block_at(lines, index):
            break
        if _bare_attribution_before_quote(lines, index):
            # "Lena Berger wrote:" with no date or address, right above the
            # quote it introduces.
            index += 1
            continue
        new_lines.append(line)
        index += 1
    return new_lines


def _drop_quotes(lines: list[str]) -> list[str]:
    """Remove ">" quotes, except those that inline answers refer to.

    A quote with new text both before and after it means the writer replied
    between the quoted lines. Then every quote followed by new text is kept,
    because the replies below it make no sense without it. Quotes after the
    last new text, and all quotes of a top- or bottom-posted reply, go.
    """
    blocks: list[tuple[bool, list[str]]] = []
    for line in lines:
        if not line.strip():
            if blocks:
                blocks[-1][1].append(line)
            continue
        quoted = _is_quoted(line)
        if blocks and blocks[-1][0] == quoted:
            blocks[-1][1].append(line)
        else:
            blocks.append((quoted, [line]))
    new_indexes = [index for index, (quoted, _) in enumerate(blocks) if not quoted]
    if not new_indexes:
        return []
    first_new, last_new = new_indexes[0], new_indexes[-1]
    inline = any(
        quoted and first_new < index < last_new
        for index, (quoted, _) in enumerate(blocks)
    )
    kept: list[str] = []
    for index, (quoted, block) in enumerate(blocks):
        if not quoted or (inline and index < last_new):
            kept.extend(block)
    return kept


def _bare_attribution_before_quote(lines: list[str], index: int) -> bool:
    line = lines[index].strip()
    if len(line) > _MAX_BARE_ATTRIBUTION_CHARS or not _ATTRIBUTION_VERB.search(line):
        return False
    following = _next_nonblank(lines, index + 1)
    return following is not None and _is_quoted(lines[following])


def _attribution_end(lines: list[str], start: int) -> int | None:
    """Return the end (exclusive) of an attribution starting at ``start``."""
    first = lines[start].strip()
    if not first or len(first) > _MAX_ATTRIBUTION_CHARS:
        return None
    # A wrapped attribution starts like one, or with the sender's address.
    has_address = "@" in first and bool(_EMAIL_ADDRESS.search(first))
    may_wrap = _begins_attribution(first) or has_address
    last = start + MAX_ATTRIBUTION_LINES if may_wrap else start + 1
    without_colon: int | None = None
    for end in range(start + 1, min(last, len(lines)) + 1):
        if not lines[end - 1].strip():
            continue
        joined = _join(lines[start:end])
        if len(joined) > _MAX_ATTRIBUTION_CHARS:
            break
        if not _looks_like_attribution(joined):
            continue
        if end - start > 1 and _later_attribution(lines, start, end):
            return None
        if joined.endswith((":", "：")):
            return end
        if without_colon is None:
            # A Gmail date line may still wrap into "<address>:" below.
            without_colon = end
        elif end - without_colon > 2:
            break
    return without_colon


def _begins_attribution(line: str) -> bool:
    line = line.lstrip("> ")
    return bool(_ATTRIBUTION_START.match(line)) or line[:1].isdigit()


def _later_attribution(lines: list[str], start: int, end: int) -> bool:
    # "Thanks, John <john@example.org>" above "On ... wrote:" is no part of it.
    return any(
        _begins_attribution(lines[later].strip())
        and _looks_like_attribution(_join(lines[later:end]))
        for later in range(start + 1, end)
    )


def _looks_like_attribution(joined: str) -> bool:
    joined = joined.lstrip("> ")
    ends_with_colon = joined.endswith((":", "："))
    if ends_with_colon and _ATTRIBUTION_VERB.search(joined):
        return bool(_ATTRIBUTION_EVIDENCE.search(joined))
    # The cheap tests first keep these patterns from backtracking over long
    # lines that cannot match anyway.
    if ends_with_colon and "@" in joined and _DATED_ADDRESS_LINE.match(joined):
        return True
    if joined[:1].isdigit() and _GMAIL_ISO_DATE_LINE.match(joined):
        return True
    return joined.startswith("--") and bool(_ZOHO_ATTRIBUTION.match(joined))


def _header_block_at(lines: list[str], start: int) -> bool:
    """Tell whether an Outlook-style header block starts at ``start``."""
    fields: set[str] = set()
    for line in lines[start : start + _MAX_HEADER_BLOCK_LINES]:
        if not line.strip():
            break
        match = _HEADER_FIELD.match(line)
        if match is None:
            if not fields:
                return False
            continue
        fields.update(key for key, value in match.groupdict().items() if value)
    if "from" in fields and fields & {"sent", "date", "subject"}:
        return True
    return {"sent", "to", "subject"} <= fields


def _is_separator(line: str) -> bool:
    return bool(_ORIGINAL_MESSAGE.match(line) or _UNDERSCORE_LINE.match(line))


def _strip_signature(lines: list[str]) -> list[str]:
    # NOTE: a sign-off without a delimiter ("Thanks,\nNoam", or a name with a
    # phone number) is kept, because telling it from the message needs the
    # sender's name and is often wrong.
    for index, line in enumerate(lines):
        if _SIGNATURE_DELIMITER.match(line):
            return lines[:index]
    # Only a line among the last few non-blank ones can have few enough lines
    # after it, so only those are tried: the scan stays linear.
    nonblank = [
        index
        for index, line in enumerate(lines)
        if line.strip() and not _is_quoted(line)
    ]
    for index in nonblank[-(_MAX_LINES_AFTER_MOBILE_SIGNATURE + 1) :]:
        if _MOBILE_SIGNATURE.match(lines[index].strip()) and _only_short_lines_after(
            lines, index
        ):
            return lines[:index]
    return lines


def _only_short_lines_after(lines: list[str], index: int) -> bool:
    rest = [line for line in lines[index + 1 :] if line.strip()]
    if len(rest) > _MAX_LINES_AFTER_MOBILE_SIGNATURE:
        return False
    return all(len(line) <= _MAX_SIGNATURE_LINE_CHARS for line in rest)


def _next_nonblank(lines: list[str], start: int) -> int | None:
    for index in range(start, len(lines)):
        if lines[index].strip():
            return index
    return None


def _has_content(lines: list[str]) -> bool:
    return any(line.strip() for line in lines)


def _join(lines: list[str]) -> str:
    return " ".join(line.strip() for line in lines if line.strip())


def _finish(lines: list[str]) -> str:
    stripped = [line.rstrip() for line in lines]
    while stripped and (not stripped[-1] or _SEPARATOR_ONLY.match(stripped[-1])):
        stripped.pop()
    text = _BLANK_RUN.sub("\n\n", "\n".join(stripped))
    return text.strip()


# HTML rules


def _remove_quoted_elements(tree: Any) -> None:
    quotes: list[Any] = []
    for element in list(tree.iter()):
        if not isinstance(element.tag, str) or element.getparent() is None:
            continue
        classes = (element.get("class") or "").lower()
        element_id = (element.get("id") or "").lower()
        starts_quote = (
            element_id in _QUOTE_START_IDS
            or "olk_src_body_section" in element_id
            or _is_outlook_header(element)
        )
        if starts_quote:
            _remove_from(element)
        elif any(name in classes for name in _ATTRIBUTION_CLASSES):
            # drop_tree keeps the element's tail, which is text after it.
            element.drop_tree()
        elif any(name in classes for name in _QUOTE_CLASSES) or (
            element.tag == "blockquote" and element.get("type", "").lower() == "cite"
        ):
            quotes.append(element)
    # Inner quotes first, so that an outer one shows them with "> > ".
    for element in reversed(quotes):
        if element.getroottree().getroot() is tree:
            _mark_as_quote(element)


def _mark_as_quote(element: Any) -> None:
    """Replace a quote element by its text with ">" before every line.

    The text rules then treat it like a plain text quote: dropped, unless
    the writer answered between quotes.
    """
    quoted = copy.deepcopy(element)
    # The copy keeps the tail, the text after the element, which is no quote.
    quoted.tail = None
    text = tree_to_text(quoted)
    marked = lxml.html.Element("pre")
    marked.text = "\n".join(f"> {line}" for line in text.split("\n"))
    marked.tail = element.tail
    element.getparent().replace(element, marked)


def _is_outlook_header(element: Any) -> bool:
    style = (element.get("style") or "").lower().replace(" ", "")
    if "border-top:solid" not in style and "border-top-style:solid" not in style:
        return False
    return bool(_HEADER_HINT.match(element.text_content()[:600]))


def _remove_from(element: Any) -> None:
    """Remove ``element`` and everything after it in document order."""
    node = element
    while node is not None and node.getparent() is not None:
        parent = node.getparent()
        while node.getnext() is not None:
            parent.remove(node.getnext())
        if node is element:
            parent.remove(node)
        else:
            node.tail = None
        node = parent
