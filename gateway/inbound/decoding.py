"""Decode mail text: charsets with fallbacks, RFC 2047 encoded words, 8-bit headers.

Every function here returns text and never raises on bad input. What had to be
guessed is appended to the caller's ``defects`` list as a readable sentence.
"""

import binascii
import codecs
import re

from charset_normalizer import from_bytes

#: Charsets tried, in order, when the declared one is unknown or does not fit
#: the bytes. cp1252 is a superset of the printable part of latin-1, and
#: latin-1 decodes every byte, so the chain always ends with text.
FALLBACK_CHARSETS = ("utf-8", "cp1252", "latin-1")

# Labels that mail clients write but Python does not recognize, or maps to a
# narrower charset than the one the senders really use. ISO-8859-1 is read as
# windows-1252, as browsers do (WHATWG Encoding Standard), because mail labelled
# latin-1 often contains cp1252 quotes and dashes in the 0x80-0x9F range.
_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "x-mac-roman": "mac-roman",
    "unicode-1-1-utf-7": "utf-7",
    "x-sjis": "shift_jis",
    "windows-874": "cp874",
    "utf8": "utf-8",
}

# Python codecs that decode bytes to text but are no mail charsets.
_NOT_CHARSETS = frozenset(
    {"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape"}
)

# Charset labels that mean "unknown" rather than name a charset.
_UNKNOWN_CHARSETS = frozenset({"unknown-8bit", "x-unknown", "unknown", "8bit", ""})

# Codecs that accept more characters than the one a sender declared, such as
# the vendor extensions that Windows clients write under the standard name.
ISO2022JP_AS_CP932 = "iso2022_jp+cp932"
_SUPERSETS: dict[str, tuple[str, ...]] = {
    "shift_jis": ("cp932",),
    "euc_jp": ("euc_jis_2004",),
    # Windows clients write the NEC and IBM rows of CP932 (such as "№" or
    # "①") under the ISO-2022-JP label; no Python codec decodes those.
    "iso2022_jp": ("iso2022_jp_2", "iso2022_jp_ext", ISO2022JP_AS_CP932),
    "big5": ("big5hkscs", "cp950"),
    "euc_kr": ("cp949",),
}
_ISO2022JP_MODES = {
    b"\x1b(B": "ascii",
    b"\x1b(J": "ascii",
    b"\x1b$@": "jis",
    b"\x1b$B": "jis",
    b"\x1b(I": "katakana",
}
# Single-byte charsets that webmail and scripts often write on UTF-8 text.
# Valid multi-byte UTF-8 almost never arises by chance from them, so such
# bytes are read as UTF-8.
_OFTEN_MISLABELLED = frozenset(
    {"cp1252", "iso8859_15", "iso8859_2", "cp1250", "mac_roman"}
)
#: The charset detector reads at most this many bytes.
DETECTOR_SAMPLE_BYTES = 64 * 1024
# The detector's guesses are trusted only for these scripts. For Latin text it
# often picks a Baltic or Central European code page where cp1252 is right.
_DETECTABLE_ALPHABETS = frozenset(
    {
        "Cyrillic",
        "Greek and Coptic",
        "Hebrew",
        "Arabic",
        "Thai",
        "CJK Unified Ideographs",
        "Hiragana",
        "Katakana",
        "Hangul Syllables",
    }
)
_MAX_DETECTOR_CHAOS = 0.1
_NON_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
_LINE_BREAKS = re.compile(r"[\r\n]+")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_WHITESPACE_ONLY = re.compile(r"[ \t\r\n]*")


def _decode_iso2022jp_as_cp932(data: bytes) -> str:
    """Decode ISO-2022-JP with the CP932 extensions (Microsoft's CP50220 family).

    Each JIS X 0208 pair is converted to its Shift_JIS bytes, then the whole
    is decoded as CP932, which includes the extension rows. Raises
    UnicodeDecodeError for bytes that are not ISO-2022-JP.
    """
    converted = bytearray()
    mode = "ascii"
    index = 0
    while index < len(data):
        if data[index] == 0x1B:
            sequence = data[index : index + 3]
            mode = _ISO2022JP_MODES.get(sequence, "")
            if not mode:
                raise UnicodeDecodeError("iso2022_jp", data, index, index + 3, "escape")
            index += 3
        elif mode == "jis":
            first, second = data[index], data[index + 1 : index + 2]
            if not second:
                raise UnicodeDecodeError("iso2022_jp", data, index, index + 1, "odd")
            converted += _jis_to_shift_jis(first, second[0])
            index += 2
        elif mode == "katakana":
            converted.append(data[index] + 0x80)
            index += 1
        else:
            converted.append(data[index])
            index += 1
    return bytes(converted).decode("cp932")


def _jis_to_shift_jis(first: int, second: int) -> bytes:
    lead = ((first + 1) >> 1) + (0x70 if first < 0x5F else 0xB0)
    if first & 1:
        trail = second + (0x1F if second < 0x60 else 0x20)
    else:
        trail = second + 0x7E
    return bytes([lead, trail])


def lookup_charset(label: str | None) -> str | None:
    """Return the Python codec name for a MIME charset label, or None if unknown."""
    if label is None:
        return None
    # RFC 2231 allows a language suffix: "utf-8*de".
    name = label.split("*", 1)[0].strip().strip("\"'").lower()
    if name in _UNKNOWN_CHARSETS:
        return None
    name = _CHARSET_ALIASES.get(name, name)
    try:
        codec = codecs.lookup(name).name
    except (LookupError, ValueError):
        # ValueError: the label contains a NUL character.
        return None
    if codec in _NOT_CHARSETS:
        return None
    return codec


def decode_bytes(
    data: bytes, charset: str | None, defects: list[str], item: str = "text"
) -> str:
    """Decode ``data`` with ``charset``, falling back when that fails.

    The fallbacks are tried in this order:

    - utf-8, unless the bytes are plain ASCII, because a 7-bit charset such as
      ISO-2022-JP produces ASCII bytes too;
    - a superset of the declared charset;
    - the declared charset with replacement characters, so that CJK text with a
      few vendor-specific characters keeps its script;
    - a charset detector, whose guess is taken only for non-Latin scripts;
    - cp1252, then latin-1.

    Bytes labelled with a Western single-byte charset that are valid UTF-8
    with non-ASCII characters are read as UTF-8.

    ``item`` names the decoded item in defect messages ("body", "header
    Subject"). A missing charset is not a defect: mail without one is common and
    is tried as utf-8 first.
    """
    codec = lookup_charset(charset)
    problem = ""
    if codec is not None:
        try:
            text = data.decode(codec)
        except UnicodeError:
            problem = f"bytes are not valid {charset}"
        except LookupError:
            # codecs.lookup accepts bytes-to-bytes codecs such as "base64".
            problem = f"charset {charset!r} is no text encoding"
            codec = None
        else:
            if codec in _OFTEN_MISLABELLED and not data.isascii():
                utf8 = _decode_utf8(data)
                if utf8 is not None:
                    defects.append(f"{item}: labelled {charset}, decoded as utf-8")
                    return utf8
            return text
    elif charset is not None and charset.strip():
        problem = f"unknown charset {charset!r}"

    candidates = [] if data.isascii() else ["utf-8"]
    candidates += _SUPERSETS.get(codec or "", ())
    for candidate in candidates:
        if candidate == codec:
            continue
        try:
            if candidate == ISO2022JP_AS_CP932:
                text = _decode_iso2022jp_as_cp932(data)
            else:
                text = data.decode(candidate)
        except UnicodeDecodeError:
            continue
        if problem:
            defects.append(f"{item}: {problem}, decoded as {candidate}")
        return text
    if codec is not None and codec not in ("ascii", "utf-8"):
        try:
            text = data.decode(codec, errors="replace")
        except (UnicodeError, LookupError, ValueError):
            pass
        else:
            defects.append(f"{item}: {problem}, undecodable bytes replaced")
            return text
    detected = _detect(data)
    if detected is not None:
        encoding, text = detected
        defects.append(f"{item}: {problem or 'no charset'}, detected as {encoding}")
        return text
    for fallback in FALLBACK_CHARSETS:
        try:
            text = data.decode(fallback)
        except UnicodeDecodeError:
            continue
        if problem:
            defects.append(f"{item}: {problem}, decoded as {fallback}")
        return text
    # Unreachable, because latin-1 decodes every byte. It is kept so that a
    # change to the fallback list can never make this function raise.
    return data.decode("latin-1", errors="replace")


def _decode_utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _detect(data: bytes) -> tuple[str, str] | None:
    """Guess the charset of non-UTF-8 bytes in a non-Latin script, or None."""
    if data.isascii():
        return None
    best = from_bytes(data[:DETECTOR_SAMPLE_BYTES]).best()
    if best is None or best.chaos > _MAX_DETECTOR_CHAOS:
        return None
    if not _DETECTABLE_ALPHABETS.intersection(best.alphabets):
        return None
    try:
        return best.encoding, data.decode(best.encoding)
    except (UnicodeError, LookupError):
        return None


def decode_base64(data: bytes) -> tuple[bytes, bool]:
    """Decode base64 leniently, and tell whether the input needed repair.

    Characters outside the base64 alphabet are skipped, missing padding is
    added, and a single dangling character (length 1 mod 4) is dropped.
    """
    try:
        return binascii.a2b_base64(data), False
    except binascii.Error:
        pass
    compact = _NON_BASE64.sub(b"", data)
    if len(compact) % 4 == 1:
        compact = compact[:-1]
    compact += b"=" * (-len(compact) % 4)
    try:
        return binascii.a2b_base64(compact), True
    except binascii.Error:
        return b"", True


def decode_8bit_header(value: str, defects: list[str], name: str) -> str:
    """Turn raw 8-bit bytes in a header value into text (utf-8, else cp1252).

    The email package parses bytes with the ``surrogateescape`` error handler,
    so a byte above 0x7F arrives as a lone surrogate. Such surrogates are turned
    back into the original bytes first.
    """
    if value.isascii():
        return value
    try:
        raw = value.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        # A surrogate outside the escape range cannot come from parsed bytes.
        raw = value.encode("utf-8", errors="replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    defects.append(f"header {name}: raw 8-bit bytes are not utf-8")
    return decode_bytes(raw, "cp1252", defects, f"header {name}")


def _decode_encoded_word_bytes(encoding: str, text: str) -> bytes | None:
    """Return the bytes an encoded word carries, or None if they are undecodable."""
    if encoding in "qQ":
        return binascii.a2b_qp(text.encode("utf-8", errors="replace"), header=True)
    data, repaired = decode_base64(text.encode("ascii", errors="ignore"))
    if repaired and not data:
        return None
    return data


def decode_rfc2047(value: str, defects: list[str], name: str = "value") -> str:
    """Decode the RFC 2047 encoded words in an unfolded header value.

    Adjacent encoded words of the same charset are joined at the byte level
    before decoding, because some clients split one UTF-8 character across two
    words. Whitespace between encoded words is dropped (RFC 2047 section 6.2).
    Encoded words inside quoted strings or glued to other text are decoded too,
    as most mail readers do.
    """
    if "=?" not in value:
        return value
    pieces: list[str] = []
    pending: bytearray | None = None
    pending_charset = ""
    position = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[position : match.start()]
        charset, encoding, text = match.groups()
        word_bytes = _decode_encoded_word_bytes(encoding, text)
        if word_bytes is None:
            defects.append(f"header {name}: invalid base64 in encoded word")
            word_bytes = match.group(0).encode("ascii", errors="replace")
            charset = "us-ascii"
        separated = bool(between) and not _WHITESPACE_ONLY.fullmatch(between)
        if (
            pending is not None
            and not separated
            and charset.lower() == pending_charset.lower()
        ):
            pending += word_bytes
        else:
            if pending is not None:
                item = f"header {name}"
                pieces.append(
                    decode_bytes(bytes(pending), pending_charset, defects, item)
                )
            if pending is None or separated:
                pieces.append(between)
            pending = bytearray(word_bytes)
            pending_charset = charset
        position = match.end()
    if pending is not None:
        pieces.append(
            decode_bytes(bytes(pending), pending_charset, defects, f"header {name}")
        )
    pieces.append(value[position:])
    return "".join(pieces)


def unfold(value: str) -> str:
    """Remove the line breaks of a folded header value (RFC 5322 section 2.2.3)."""
    if "\r" in value or "\n" in value:
        return value.replace("\r", "").replace("\n", "")
    return value


def decode_header_value(name: str, value: str, defects: list[str]) -> str:
    """Unfold and decode one raw header value (8-bit bytes and RFC 2047 words)."""
    text = decode_8bit_header(unfold(value), defects, name)
    text = decode_rfc2047(text, defects, name)
    if "\r" in text or "\n" in text:
        # An encoded word may carry line breaks; a header value must not.
        text = _LINE_BREAKS.sub(" ", text)
    if "\x00" in text:
        defects.append(f"header {name}: NUL characters removed")
        text = text.replace("\x00", "")
    return text
