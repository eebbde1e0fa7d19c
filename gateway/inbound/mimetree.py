"""Walk a parsed MIME tree: pick the body parts and collect the attachments."""

import email
import logging
import re
from collections import Counter
from email.message import Message
from email.policy import compat32

from gateway.inbound.decoding import decode_bytes
from gateway.inbound.message import ParsedAttachment
from gateway.inbound.mimepart import (
    charset_of,
    content_id,
    decode_transfer_encoding,
    extension_for,
    part_bytes,
    part_filename,
    raw_payload,
    safe_filename,
    serialize,
    serialize_body,
    subject_of,
)
from gateway.inbound.tnef import is_tnef, unpack_tnef

log = logging.getLogger(__name__)

#: Parts nested deeper are skipped. Real mail nests a few levels, and hostile
#: mail nests thousands, which would exhaust the stack.
MAX_DEPTH = 40

# Further renderings of a multipart/alternative body, dropped when present.
_REDUNDANT_ALTERNATIVES = frozenset(
    {"text/enriched", "text/richtext", "text/watch-html"}
)
_ENCLOSED_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
# Re-parsing is tried with this many boundary candidates at most.
_MAX_BOUNDARY_GUESSES = 3
_BOUNDARY_LINE = re.compile(rb"^--([^\s\r\n]{1,200}?)(--)?[ \t]*\r?$", re.MULTILINE)


class MimeCollector:
    """The body parts and attachments found while walking one MIME (sub)tree."""

    def __init__(
        self,
        defects: list[str],
        linesep: str,
        content_types: dict[int, tuple[Message, str]] | None = None,
    ) -> None:
        self.defects = defects
        self.linesep = linesep
        # Message.get_content_type scans every header on each call, and the
        # walk calls it several times per part, so results are cached by part
        # id. The cache keeps the part too, which stops the id from being reused.
        self._content_types = {} if content_types is None else content_types
        self.text_parts: list[str] = []
        self.html: str | None = None
        self.attachments: list[ParsedAttachment] = []
        #: Text of the first named text/plain part shown inline, the body of
        #: last resort for mail that has no unnamed text part.
        self.inline_named_text: str | None = None
        #: Body found inside a winmail.dat container, for mail without another.
        self.tnef_text: str | None = None
        self.tnef_html: str | None = None

    def child(self) -> "MimeCollector":
        """Return an empty collector that shares this one's defects."""
        return MimeCollector(self.defects, self.linesep, self._content_types)

    def content_type(self, part: Message) -> str:
        """Return the lowercased "type/subtype" of ``part``."""
        cached = self._content_types.get(id(part))
        if cached is not None and cached[0] is part:
            return cached[1]
        content_type = part.get_content_type()
        self._content_types[id(part)] = (part, content_type)
        return content_type

    def text(self) -> str:
        """Return the text body: the text parts joined, with a newline between."""
        if len(self.text_parts) == 1:
            return self.text_parts[0]
        return "".join(
            part if part.endswith("\n") else part + "\n" for part in self.text_parts
        )

    def finish_attachments(self) -> list[ParsedAttachment]:
        """Give unnamed attachments a name from their position and content type."""
        for number, attachment in enumerate(self.attachments, start=1):
            if not attachment.filename:
                extension = extension_for(attachment.content_type)
                attachment.filename = f"attachment-{number}{extension}"
        return self.attachments


def collect_parts(msg: Message, collector: MimeCollector) -> None:
    """Walk ``msg`` and fill ``collector`` with its body parts and attachments."""
    _walk(msg, collector, path="1", depth=0, top_level=True)


def _walk(
    part: Message, collector: MimeCollector, path: str, depth: int, top_level: bool
) -> None:
    if depth > MAX_DEPTH:
        collector.defects.append(
            f"part {path}: nested deeper than {MAX_DEPTH}, skipped"
        )
        return
    try:
        _walk_part(part, collector, path, depth, top_level)
    except Exception as exc:
        # One undecodable part must not cost the rest of the mail. The email
        # package documents no exceptions here, so none can be named.
        log.warning("mime part skipped part=%s error=%r", path, exc)
        collector.defects.append(f"part {path}: skipped, {type(exc).__name__}: {exc}")
    _record_defects(part, collector, path)


def _walk_part(
    part: Message, collector: MimeCollector, path: str, depth: int, top_level: bool
) -> None:
    content_type = collector.content_type(part)
    maintype, _, subtype = content_type.partition("/")
    if content_type in _ENCLOSED_MESSAGE_TYPES:
        _add_enclosed_message(part, collector)
        return
    if maintype == "message":
        # message/delivery-status and similar types contain header blocks, which
        # compat32 parses into sub-messages. They become one attachment.
        _add_attachment(part, collector, serialize_body(part, collector.linesep))
        return
    if maintype != "multipart":
        _walk_leaf(part, collector, path, top_level)
        return

    payload = raw_payload(part)
    if isinstance(payload, list):
        children = [child for child in payload if isinstance(child, Message)]
    else:
        recovered = _recover_children(part, collector, path)
        if recovered is None:
            _add_text_or_html(part, collector, "text/plain", f"part {path}")
            return
        children = recovered
    if subtype == "alternative":
        _walk_alternative(children, collector, path, depth)
    elif subtype == "related":
        _walk_related(part, children, collector, path, depth)
    elif subtype == "signed" and children:
        # The first child is the signed content, and the rest is the signature.
        _walk(children[0], collector, f"{path}.1", depth + 1, top_level=False)
        for number, signature in enumerate(children[1:], start=2):
            _add_attachment(signature, collector, part_bytes(signature))
            _record_defects(signature, collector, f"{path}.{number}")
    else:
        if subtype == "encrypted":
            # The gateway has no keys, so the parts are kept as attachments.
            collector.defects.append(
                f"part {path}: encrypted content, kept as attachments unread"
            )
        for number, child in enumerate(children, start=1):
            _walk(child, collector, f"{path}.{number}", depth + 1, top_level=False)


def _walk_leaf(
    part: Message, collector: MimeCollector, path: str, top_level: bool
) -> None:
    content_type = collector.content_type(part)
    disposition = part.get_content_disposition()
    # A filename marks a text part as an attachment, except on a single-part
    # mail, whose only part is the body whatever it is called.
    is_text = content_type in ("text/plain", "text/html")
    if is_text and disposition != "attachment":
        if top_level or part_filename(part, collector.defects) is None:
            _add_text_or_html(part, collector, content_type, "body")
            return
        if content_type == "text/plain" and collector.inline_named_text is None:
            collector.inline_named_text = _decode_text(part, collector, "body")
    content = part_bytes(part)
    if is_tnef(content_type, content) and _add_tnef_content(content, collector, path):
        return
    _add_attachment(part, collector, content)


def _add_tnef_content(content: bytes, collector: MimeCollector, path: str) -> bool:
    """Add the files inside a winmail.dat part; False if it stays packed."""
    unpacked = unpack_tnef(content, collector.defects, f"part {path}")
    if unpacked is None:
        return False
    collector.attachments.extend(unpacked.attachments)
    if collector.tnef_text is None:
        collector.tnef_text = unpacked.text
    if collector.tnef_html is None:
        collector.tnef_html = unpacked.html
    return True


def _walk_alternative(
    children: list[Message], collector: MimeCollector, path: str, depth: int
) -> None:
    # Each alternative renders the same content, so only the first text and the
    # first HTML rendering are kept. Attachments of every branch are kept,
    # because the HTML branch carries the inline images.
    chosen_text: list[str] = []
    chosen_html: str | None = None
    for number, child in enumerate(children, start=1):
        child_path = f"{path}.{number}"
        child_type = collector.content_type(child)
        is_leaf = not child_type.startswith(("multipart/", "message/"))
        if is_leaf and child_type in _REDUNDANT_ALTERNATIVES:
            _record_defects(child, collector, child_path)
            continue
        branch = collector.child()
        _walk(child, branch, child_path, depth + 1, top_level=False)
        if not chosen_text:
            chosen_text = branch.text_parts
        if chosen_html is None:
            chosen_html = branch.html
        collector.attachments.extend(branch.attachments)
    collector.text_parts.extend(chosen_text)
    if collector.html is None:
        collector.html = chosen_html


def _walk_related(
    part: Message,
    children: list[Message],
    collector: MimeCollector,
    path: str,
    depth: int,
) -> None:
    root_index = 0
    start = part.get_param("start")
    if isinstance(start, str):
        start_id = start.strip().strip("<>")
        for index, child in enumerate(children):
            if content_id(child) == start_id:
                root_index = index
                break
    for index, child in enumerate(children):
        child_path = f"{path}.{index + 1}"
        is_multipart = collector.content_type(child).startswith("multipart/")
        if index == root_index or is_multipart:
            _walk(child, collector, child_path, depth + 1, top_level=False)
        else:
            # Resources of the root document: attachments even without a name.
            _add_attachment(child, collector, part_bytes(child))
            _record_defects(child, collector, child_path)


def _decode_text(part: Message, collector: MimeCollector, item: str) -> str:
    data = part_bytes(part)
    text = decode_bytes(
        data, charset_of(part, collector.defects), collector.defects, item
    )
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        collector.defects.append(f"{item}: NUL characters removed")
        text = text.replace("\x00", "")
    return text


def _add_text_or_html(
    part: Message, collector: MimeCollector, content_type: str, item: str
) -> None:
    if content_type == "text/html" and collector.html is not None:
        collector.attachments.append(
            ParsedAttachment("", "text/html", part_bytes(part))
        )
        return
    text = _decode_text(part, collector, item)
    if content_type == "text/html":
        collector.html = text
    else:
        collector.text_parts.append(text)


def _add_attachment(part: Message, collector: MimeCollector, content: bytes) -> None:
    collector.attachments.append(
        ParsedAttachment(
            filename=part_filename(part, collector.defects) or "",
            content_type=collector.content_type(part),
            content=content,
            inline=part.get_content_disposition() == "inline",
            content_id=content_id(part),
        )
    )


def _add_enclosed_message(part: Message, collector: MimeCollector) -> None:
    enclosed = raw_payload(part)
    inner = enclosed[0] if isinstance(enclosed, list) and enclosed else None
    if isinstance(inner, Message):
        content = serialize(inner, collector.linesep)
        subject = subject_of(inner, collector.defects)
    else:
        content = part_bytes(part)
        subject = ""
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if encoding in ("base64", "quoted-printable"):
        # Not allowed by RFC 2046, but sent. compat32 parses the still-encoded
        # text as a message, so the serialized form is decoded here.
        content = decode_transfer_encoding(content, encoding, collector.defects)
        decoded = email.message_from_bytes(content, policy=compat32)
        subject = subject_of(decoded, collector.defects)
    collector.attachments.append(
        ParsedAttachment(
            filename=safe_filename(f"{subject or 'message'}.eml"),
            content_type=collector.content_type(part),
            content=content,
            inline=False,
            content_id=content_id(part),
        )
    )


def _recover_children(
    part: Message, collector: MimeCollector, path: str
) -> list[Message] | None:
    """Re-parse a multipart part whose boundary is missing or wrong.

    Boundaries are guessed from "--token" lines that appear at least twice in
    the body, in order of appearance. Returns None when none of them works.
    """
    # For a part without sub-parts this returns the body's bytes as received.
    body = part.get_payload(decode=True)
    if not isinstance(body, bytes):
        return None
    declared = part.get_boundary()
    counts = Counter(match.group(1) for match in _BOUNDARY_LINE.finditer(body))
    candidates = [
        token.decode("ascii", errors="replace")
        for token, count in counts.items()
        if count >= 2
    ]
    # A line of dashes is a separator, not a boundary.
    candidates = [
        boundary
        for boundary in candidates
        if boundary != declared and any(char.isalnum() for char in boundary)
    ]
    for boundary in candidates[:_MAX_BOUNDARY_GUESSES]:
        content_type = collector.content_type(part)
        header = f'Content-Type: {content_type}; boundary="{boundary}"\n\n'
        reparsed = email.message_from_bytes(header.encode() + body, policy=compat32)
        reparsed_payload = reparsed.get_payload()
        children = (
            [child for child in reparsed_payload if isinstance(child, Message)]
            if isinstance(reparsed_payload, list)
            else []
        )
        if children:
            collector.defects.append(
                f"part {path}: multipart boundary missing or wrong, "
                f"used {boundary!r} found in the body"
            )
            return children
    collector.defects.append(f"part {path}: multipart without usable boundary")
    return None


def _record_defects(part: Message, collector: MimeCollector, path: str) -> None:
    for defect in part.defects:
        description = str(defect) or (type(defect).__doc__ or "").strip()
        collector.defects.append(f"part {path}: {type(defect).__name__}: {description}")
