"""winmail.dat containers: the files and body inside become the mail's own."""

import base64
import struct
import time

from gateway.inbound.parse import parse_message
from gateway.inbound.tnef import MAX_ATTRIBUTES, unpack_tnef
from tests.inbound.tnef_builder import MESSAGE_LEVEL, SIGNATURE, attribute, container


def mail_with_tnef(tnef: bytes, body: str = "Bitte sehen Sie die Anlagen.\n") -> bytes:
    encoded = base64.encodebytes(tnef).decode("ascii")
    text_part = (
        f"--b1\nContent-Type: text/plain; charset=utf-8\n\n{body}\n" if body else ""
    )
    return (
        "From: Jana Feld <jana.feld@example.org>\n"
        "To: support@example.com\n"
        "Subject: Lieferschein\n"
        "Message-ID: <tnef-1@client.example.org>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="b1"\n\n'
        f"{text_part}"
        "--b1\n"
        'Content-Type: application/ms-tnef; name="winmail.dat"\n'
        "Content-Transfer-Encoding: base64\n"
        'Content-Disposition: attachment; filename="winmail.dat"\n\n'
        f"{encoded}\n"
        "--b1--\n"
    ).encode()


def test_files_inside_become_attachments() -> None:
    tnef = container(
        files=[
            ("Prüfbericht.pdf".encode("cp1252"), b"%PDF-1.4 report"),
            (b"photo.jpg", b"\xff\xd8\xff\xe0 jpeg"),
        ]
    )
    parsed = parse_message(mail_with_tnef(tnef))

    names = [attachment.filename for attachment in parsed.attachments]
    assert names == ["Prüfbericht.pdf", "photo.jpg"]
    assert parsed.attachments[0].content == b"%PDF-1.4 report"
    assert parsed.attachments[0].content_type == "application/pdf"
    assert parsed.attachments[1].content_type == "image/jpeg"
    assert parsed.text.strip() == "Bitte sehen Sie die Anlagen."


def test_body_inside_used_when_mail_has_none() -> None:
    tnef = container(body="Die Lieferung kam beschädigt an.".encode("cp1252"))
    parsed = parse_message(mail_with_tnef(tnef, body=""))

    assert parsed.text == "Die Lieferung kam beschädigt an."
    assert parsed.attachments == []


def test_rtf_body_converted_to_text() -> None:
    rtf = (
        rb"{\rtf1\ansi\ansicpg1252{\fonttbl{\f0 Arial;}}"
        rb"\f0 Gr\'fc\'dfe\par Zweite Zeile\par}"
    )
    parsed = parse_message(mail_with_tnef(container(rtf=rtf), body=""))

    assert parsed.text.split("\n")[:2] == ["Grüße", "Zweite Zeile"]


def test_mail_body_wins_over_container_body() -> None:
    tnef = container(body=b"Text im Container")
    parsed = parse_message(mail_with_tnef(tnef, body="Text der Mail"))

    assert parsed.text.strip() == "Text der Mail"


def test_octet_stream_container_recognised_by_signature() -> None:
    tnef = container(files=[(b"notes.txt", b"line one\n")])
    raw = mail_with_tnef(tnef).replace(
        b"application/ms-tnef", b"application/octet-stream"
    )
    parsed = parse_message(raw)

    assert [attachment.filename for attachment in parsed.attachments] == ["notes.txt"]


def test_truncated_container_kept_packed_with_defect() -> None:
    tnef = container(files=[(b"big.bin", b"x" * 500)])[:-300]
    parsed = parse_message(mail_with_tnef(tnef))

    assert [attachment.filename for attachment in parsed.attachments] == ["winmail.dat"]
    assert parsed.attachments[0].content == tnef
    assert any("TNEF container not unpacked" in defect for defect in parsed.defects)


def test_forged_property_count_rejected_quickly() -> None:
    # One MAPI list that claims four billion short values.
    properties = struct.pack("<IHHI", 1, 0x1002, 0x0001, 0xFFFFFFFF)
    tnef = (
        SIGNATURE + b"\x00\x00" + attribute(MESSAGE_LEVEL, 0x9003, 0x0006, properties)
    )
    defects: list[str] = []
    started = time.monotonic()

    assert unpack_tnef(tnef, defects, "part 2") is None
    assert time.monotonic() - started < 1.0
    assert "exceeds the data" in defects[0]


def test_too_many_attributes_kept_packed() -> None:
    tiny = attribute(MESSAGE_LEVEL, 0x8008, 0x0007, b"")
    tnef = SIGNATURE + b"\x00\x00" + tiny * (MAX_ATTRIBUTES + 1)
    defects: list[str] = []

    assert unpack_tnef(tnef, defects, "part 2") is None
    assert f"more than {MAX_ATTRIBUTES} attributes" in defects[0]


def test_random_bytes_with_signature_never_raise() -> None:
    for seed in range(200):
        noise = bytes((seed * 37 + index * 11) % 256 for index in range(seed + 20))
        defects: list[str] = []
        unpack_tnef(SIGNATURE + noise, defects, "part 2")
