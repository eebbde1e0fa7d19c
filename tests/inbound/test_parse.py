"""Tests of parse_message: header decoding, body choice, attachments, broken MIME."""

import base64
import hashlib
from datetime import UTC, datetime, timedelta, timezone

from gateway.inbound.decoding import decode_bytes
from gateway.inbound.parse import (
    Address,
    ParsedMessage,
    normalize_message_id,
    parse_message,
    parse_message_id_list,
)

HEADERS = (
    "From: Eva Beispiel <eva@Example.ORG>\n"
    "To: Support <support@example.com>\n"
    "Subject: Drucker\n"
    "Date: Tue, 03 Dec 2024 10:15:00 +0100\n"
    "Message-ID: <m1@client.example.org>\n"
)


def mail(headers: str, body: str = "Hallo\n") -> bytes:
    """Build a raw mail with CRLF line ends from LF-separated text."""
    text = headers.rstrip("\n") + "\n\n" + body
    return text.replace("\n", "\r\n").encode("utf-8", errors="surrogateescape")


def mime(content_type: str, body: str, extra: str = "") -> bytes:
    return mail(HEADERS + "MIME-Version: 1.0\n" + extra + content_type, body)


# Headers


def test_split_utf8_subject_decoded() -> None:
    # "ö" is 0xC3 0xB6; the first encoded word ends after 0xC3.
    first = base64.b64encode("Größe ".encode()[:3]).decode()
    second = base64.b64encode("Größe ".encode()[3:] + b"passt").decode()
    raw = mail(f"Subject: =?UTF-8?B?{first}?=\n =?UTF-8?B?{second}?=\n")
    message = parse_message(raw)
    assert message.subject == "Größe passt"
    assert message.defects == []


def test_unknown_charset_subject_falls_back() -> None:
    message = parse_message(mail("Subject: =?x-bogus?Q?Gr=C3=BC=C3=9Fe?=\n"))
    assert message.subject == "Grüße"
    assert any("unknown charset 'x-bogus'" in defect for defect in message.defects)


def test_wrong_charset_subject_falls_back() -> None:
    message = parse_message(mail("Subject: =?us-ascii?Q?Gr=C3=BC=C3=9Fe?=\n"))
    assert message.subject == "Grüße"
    assert any("not valid us-ascii" in defect for defect in message.defects)


def test_raw_utf8_header_decoded() -> None:
    raw = "Subject: Rückfrage zu Bestellung\r\n\r\nx\r\n".encode()
    assert parse_message(raw).subject == "Rückfrage zu Bestellung"


def test_raw_latin1_header_decoded_as_cp1252() -> None:
    raw = "Subject: Grüße – Störung\r\n\r\nx\r\n".encode("cp1252")
    message = parse_message(raw)
    assert message.subject == "Grüße – Störung"
    assert any("not utf-8" in defect for defect in message.defects)


def test_invalid_base64_encoded_word_does_not_raise() -> None:
    message = parse_message(mail("Subject: =?utf-8?B?!!!?= rest\n"))
    assert message.subject.endswith("rest")


def test_folded_subject_unfolded() -> None:
    raw = mail("Subject: Upgrade of my pass\n (Opened) [ref_1:ref]\n")
    assert parse_message(raw).subject == "Upgrade of my pass (Opened) [ref_1:ref]"


def test_encoded_line_break_removed_from_subject() -> None:
    message = parse_message(mail("Subject: =?utf-8?Q?one=0D=0Atwo?=\n"))
    assert message.subject == "one two"


def test_sender_display_name_decoded() -> None:
    raw = mail("From: =?iso-8859-1?Q?J=FCrgen_M=FCller?= <Juergen@Example.COM>\n")
    assert parse_message(raw).sender == Address("Juergen@example.com", "Jürgen Müller")


def test_quoted_name_with_comma_kept() -> None:
    raw = mail('To: "Müller, Hans" <hans@example.com>, bob@example.net\n')
    message = parse_message(raw)
    assert message.to == [
        Address("hans@example.com", "Müller, Hans"),
        Address("bob@example.net", ""),
    ]


def test_quoted_encoded_display_name_decoded() -> None:
    raw = mail('From: "=?utf-8?q?Bj=C3=B6rn?=" <bjoern@example.org>\n')
    assert parse_message(raw).sender == Address("bjoern@example.org", "Björn")


def test_cc_and_reply_to_parsed() -> None:
    raw = mail(
        "From: a@example.org\nCc: C One <c1@example.org>, c2@example.org\n"
        "Reply-To: Desk <desk@example.net>\n"
    )
    message = parse_message(raw)
    assert [address.email for address in message.cc] == [
        "c1@example.org",
        "c2@example.org",
    ]
    assert message.reply_to == [Address("desk@example.net", "Desk")]


def test_group_without_members_gives_no_address() -> None:
    assert parse_message(mail("To: undisclosed-recipients:;\n")).to == []


def test_missing_from_gives_no_sender() -> None:
    assert parse_message(mail("Subject: x\n")).sender is None


def test_message_id_normalized() -> None:
    raw = mail("Message-ID:\n <abc.123@\n client.example.org> (comment)\n")
    assert parse_message(raw).message_id == "<abc.123@client.example.org>"


def test_message_id_without_brackets_normalized() -> None:
    assert normalize_message_id(" abc@example.org ") == "<abc@example.org>"


def test_empty_message_id_is_none() -> None:
    assert normalize_message_id("  <> ") is None
    assert parse_message(mail("Subject: x\n")).message_id is None


def test_references_parsed_in_order() -> None:
    raw = mail("References: <a@example.com>\n <b@example.com>  <c@example.com>\n")
    assert parse_message(raw).references == [
        "<a@example.com>",
        "<b@example.com>",
        "<c@example.com>",
    ]


def test_message_ids_without_brackets_tolerated() -> None:
    assert parse_message_id_list("a@example.com b@example.com") == [
        "<a@example.com>",
        "<b@example.com>",
    ]


def test_in_reply_to_prose_ignored() -> None:
    value = 'Your message of "Tue, 3 Dec" <x1@example.com>'
    assert parse_message_id_list(value) == ["<x1@example.com>"]
    assert parse_message_id_list(None) == []


def test_date_parsed_timezone_aware() -> None:
    message = parse_message(mail("Date: Tue, 03 Dec 2024 10:15:00 +0100\n"))
    expected = datetime(2024, 12, 3, 10, 15, tzinfo=timezone(timedelta(hours=1)))
    assert message.date == expected
    assert message.date is not None and message.date.tzinfo is not None


def test_date_without_zone_taken_as_utc() -> None:
    message = parse_message(mail("Date: Tue, 03 Dec 2024 10:15:00 -0000\n"))
    assert message.date == datetime(2024, 12, 3, 10, 15, tzinfo=UTC)


def test_unparseable_date_is_none_with_defect() -> None:
    message = parse_message(mail("Date: next Tuesday, probably\n"))
    assert message.date is None
    assert any("header Date" in defect for defect in message.defects)


def test_headers_listed_in_order_decoded() -> None:
    raw = mail(
        "X-One: 1\nSubject: =?utf-8?q?S=C3=BC?=\nAuto-Submitted:\n auto-replied\n"
    )
    message = parse_message(raw)
    assert message.headers == [
        ("X-One", "1"),
        ("Subject", "Sü"),
        ("Auto-Submitted", " auto-replied"),
    ]


def test_header_lookup_ignores_case() -> None:
    message = parse_message(mail("Precedence: bulk\nPrecedence: list\n"))
    assert message.header("PRECEDENCE") == "bulk"
    assert message.header("X-Missing") is None


# Body


ALTERNATIVE = (
    "--b1\n"
    "Content-Type: text/plain; charset=utf-8\n\n"
    "Plain Grüße\n"
    "--b1\n"
    "Content-Type: text/html; charset=utf-8\n\n"
    "<p>HTML Grüße</p>\n"
    "--b1--\n"
)


def test_plain_part_chosen_from_alternative() -> None:
    message = parse_message(
        mime('Content-Type: multipart/alternative; boundary="b1"\n', ALTERNATIVE)
    )
    assert message.text == "Plain Grüße"
    # The line break before a boundary belongs to the boundary (RFC 2046).
    assert message.html == "<p>HTML Grüße</p>"
    assert message.text_from_html is False
    assert message.content_type == "multipart/alternative"
    assert message.defects == []


def test_html_only_mail_gives_derived_text() -> None:
    body = "<html><body><p>Login geht nicht</p><ul><li>Schritt eins</li></ul></body>"
    message = parse_message(mime("Content-Type: text/html; charset=utf-8\n", body))
    assert message.text == "Login geht nicht\n\n- Schritt eins"
    assert message.text_from_html is True
    assert message.html is not None and message.html.startswith("<html>")


def test_empty_plain_alternative_uses_html() -> None:
    body = (
        "--b1\nContent-Type: text/plain\n\n\n"
        "--b1\nContent-Type: text/html\n\n<p>Nur hier</p>\n--b1--\n"
    )
    message = parse_message(
        mime('Content-Type: multipart/alternative; boundary="b1"\n', body)
    )
    assert message.text == "Nur hier"
    assert message.text_from_html is True


def test_declared_latin1_quoted_printable_decoded() -> None:
    message = parse_message(
        mime(
            "Content-Type: text/plain; charset=iso-8859-1\n",
            "st=FCrzt beim =D6ffnen ab =96 gro=DF\n",
            "Content-Transfer-Encoding: quoted-printable\n",
        )
    )
    assert message.text == "stürzt beim Öffnen ab – groß\n"


def test_wrong_body_charset_falls_back() -> None:
    raw = mime("Content-Type: text/plain; charset=utf-8\n", "x").replace(
        b"\r\n\r\nx", "\r\n\r\nGrüße".encode("cp1252")
    )
    message = parse_message(raw)
    assert message.text == "Grüße"
    assert any("not valid utf-8" in defect for defect in message.defects)


def test_unknown_body_charset_falls_back() -> None:
    message = parse_message(
        mime("Content-Type: text/plain; charset=x-martian\n", "Grüße\n")
    )
    assert message.text == "Grüße\n"
    assert any("unknown charset 'x-martian'" in defect for defect in message.defects)


def test_body_without_charset_read_as_utf8() -> None:
    message = parse_message(mime("Content-Type: text/plain\n", "Grüße\n"))
    assert message.text == "Grüße\n"
    assert message.defects == []


def test_broken_base64_body_repaired() -> None:
    encoded = base64.b64encode(b"Hallo Welt").decode().rstrip("=") + "!x"
    message = parse_message(
        mime(
            "Content-Type: text/plain; charset=utf-8\n",
            encoded + "\n",
            "Content-Transfer-Encoding: base64\n",
        )
    )
    assert message.text.startswith("Hallo Welt")
    assert any("base64" in defect for defect in message.defects)


def test_broken_quoted_printable_does_not_raise() -> None:
    message = parse_message(
        mime(
            "Content-Type: text/plain; charset=utf-8\n",
            "a=ZZb=\nc=C3\n",
            "Content-Transfer-Encoding: quoted-printable\n",
        )
    )
    assert message.text.startswith("a=ZZbc")


def test_bare_cr_and_lf_line_ends_normalized() -> None:
    raw = b"Subject: x\r\nContent-Type: text/plain\r\n\r\none\rtwo\r\nthree\n"
    assert parse_message(raw).text == "one\ntwo\nthree\n"


def test_nul_characters_removed_from_text() -> None:
    message = parse_message(mime("Content-Type: text/plain\n", "a\x00b\n"))
    assert message.text == "ab\n"
    assert any("NUL" in defect for defect in message.defects)


# Attachments


def attachment_mail(part_headers: str, part_body: str = "data\n") -> bytes:
    body = (
        "--b1\nContent-Type: text/plain\n\nBody text\n"
        f"--b1\n{part_headers}\n{part_body}--b1--\n"
    )
    return mime('Content-Type: multipart/mixed; boundary="b1"\n', body)


def test_rfc2231_filename_decoded() -> None:
    raw = attachment_mail(
        "Content-Type: application/pdf\n"
        "Content-Disposition: attachment; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf\n"
    )
    message = parse_message(raw)
    assert [attachment.filename for attachment in message.attachments] == [
        "Rechnung März.pdf"
    ]
    assert message.text == "Body text"


def test_rfc2231_continued_filename_decoded() -> None:
    raw = attachment_mail(
        "Content-Type: application/pdf\n"
        "Content-Disposition: attachment;\n"
        " filename*0*=UTF-8''Sehr%20langer%20;\n filename*1*=Name%C3%9F.pdf\n"
    )
    assert parse_message(raw).attachments[0].filename == "Sehr langer Nameß.pdf"


def test_rfc2047_filename_decoded() -> None:
    raw = attachment_mail(
        'Content-Type: image/jpeg; name="=?ks_c_5601-1987?B?u+fB+C5KUEc=?="\n'
        "Content-Disposition: attachment;\n"
        ' filename="=?ks_c_5601-1987?B?u+fB+C5KUEc=?="\n'
    )
    assert parse_message(raw).attachments[0].filename == "사진.JPG"


def test_filename_path_separators_replaced() -> None:
    raw = attachment_mail(
        "Content-Type: text/plain\n"
        'Content-Disposition: attachment; filename="../..\\\\etc/pass\x01wd"\n'
    )
    assert parse_message(raw).attachments[0].filename == ".._.._etc_pass_wd"


def test_dots_only_filename_replaced() -> None:
    raw = attachment_mail(
        "Content-Type: application/pdf\n"
        'Content-Disposition: attachment; filename=".."\n'
    )
    assert parse_message(raw).attachments[0].filename == "attachment-1.pdf"


def test_raw_utf8_filename_decoded() -> None:
    raw = attachment_mail(
        "Content-Type: application/pdf\n"
        'Content-Disposition: attachment; filename="Bericht für März.pdf"\n'
    )
    assert parse_message(raw).attachments[0].filename == "Bericht für März.pdf"


def test_nul_in_rfc2231_charset_ignored() -> None:
    raw = attachment_mail(
        "Content-Type: text/plain; charset*=ut\x00f-8''x\n"
        "Content-Disposition: attachment; filename*=ut\x00f-8''a.txt\n",
        "data\n",
    )
    message = parse_message(raw)
    assert [attachment.filename for attachment in message.attachments] == [
        "attachment-1.txt"
    ]
    assert any("invalid RFC 2231" in defect for defect in message.defects)


def test_nul_in_boundary_charset_retried_without_nul() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary*=ut\x00f-8''x\r\n\r\n"
        b"--x\r\n\r\nhi\r\n--x--\r\n"
    )
    message = parse_message(raw)
    assert message.text == "hi"
    assert message.defects[0] == "NUL bytes removed, because parsing failed on them"


def test_long_filename_cut_to_byte_limit() -> None:
    raw = attachment_mail(
        "Content-Type: application/pdf\n"
        f'Content-Disposition: attachment; filename="{"ä" * 300}.pdf"\n'
    )
    filename = parse_message(raw).attachments[0].filename
    assert len(filename.encode("utf-8")) <= 200
    assert filename.endswith("ä.pdf")


def test_unnamed_attachment_gets_generated_name() -> None:
    raw = attachment_mail(
        "Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n",
        base64.b64encode(b"%PDF-1.4 fake").decode() + "\n",
    )
    attachment = parse_message(raw).attachments[0]
    assert attachment.filename == "attachment-1.pdf"
    assert attachment.content == b"%PDF-1.4 fake"
    assert attachment.size == 13
    assert attachment.sha256 == hashlib.sha256(b"%PDF-1.4 fake").hexdigest()
    assert attachment.inline is False


def test_named_text_attachment_not_body() -> None:
    raw = attachment_mail(
        "Content-Type: text/plain; charset=utf-8\n"
        'Content-Disposition: attachment; filename="log.txt"\n',
        "error 42\n",
    )
    message = parse_message(raw)
    assert message.text == "Body text"
    assert [(a.filename, a.content_type) for a in message.attachments] == [
        ("log.txt", "text/plain")
    ]
    assert message.attachments[0].content == b"error 42"


def test_inline_cid_image_marked_inline() -> None:
    body = (
        "--r1\nContent-Type: text/html; charset=utf-8\n\n"
        '<p>Screenshot:</p><img src="cid:shot.1@example.org">\n'
        "--r1\nContent-Type: image/png\nContent-ID: <shot.1@example.org>\n"
        "Content-Transfer-Encoding: base64\n\n"
        + base64.b64encode(b"\x89PNG fake").decode()
        + "\n--r1--\n"
    )
    message = parse_message(
        mime('Content-Type: multipart/related; boundary="r1"\n', body)
    )
    image = message.attachments[0]
    assert image.inline is True
    assert image.content_id == "shot.1@example.org"
    assert image.content == b"\x89PNG fake"
    assert image.filename == "attachment-1.png"
    assert message.text_from_html is True
    assert message.text == "Screenshot:"


def test_nested_rfc822_stored_as_eml_attachment() -> None:
    inner = (
        "From: Marc Sample <marc@example.net>\n"
        "Subject: =?utf-8?q?Rechnung_f=C3=BCr_M=C3=A4rz?=\n\n"
        "Inner text that is not the body\n"
    )
    body = (
        "--b1\nContent-Type: text/plain\n\nPlease see the attached mail.\n"
        f"--b1\nContent-Type: message/rfc822\n\n{inner}--b1--\n"
    )
    message = parse_message(
        mime('Content-Type: multipart/mixed; boundary="b1"\n', body)
    )
    assert message.text == "Please see the attached mail."
    assert len(message.attachments) == 1
    enclosed = message.attachments[0]
    assert enclosed.filename == "Rechnung für März.eml"
    assert enclosed.content_type == "message/rfc822"
    assert enclosed.content.startswith(b"From: Marc Sample <marc@example.net>\r\n")
    assert b"Inner text that is not the body" in enclosed.content


def test_nested_rfc822_without_subject_named() -> None:
    body = (
        "--b1\nContent-Type: text/plain\n\nFYI\n"
        "--b1\nContent-Type: message/rfc822\n\nFrom: x@example.net\n\nhi\n--b1--\n"
    )
    message = parse_message(
        mime('Content-Type: multipart/mixed; boundary="b1"\n', body)
    )
    assert message.attachments[0].filename == "message.eml"


def test_base64_encoded_rfc822_decoded() -> None:
    inner = base64.b64encode(b"Subject: Inner\r\n\r\nInner body\r\n").decode()
    body = (
        "--b1\nContent-Type: text/plain\n\nSee attached.\n"
        "--b1\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n"
        f"{inner}\n--b1--\n"
    )
    message = parse_message(
        mime('Content-Type: multipart/mixed; boundary="b1"\n', body)
    )
    assert message.attachments[0].content == b"Subject: Inner\r\n\r\nInner body\r\n"
    assert message.attachments[0].filename == "Inner.eml"


def test_signed_mail_signature_is_attachment() -> None:
    body = (
        "This is an OpenPGP/MIME signed message\n"
        "--s1\nContent-Type: text/plain; charset=us-ascii\n\nSigned text\n"
        '--s1\nContent-Type: application/pgp-signature; name="signature.asc"\n\n'
        "-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n"
        "--s1--\n"
    )
    message = parse_message(
        mime(
            "Content-Type: multipart/signed; micalg=pgp-sha256;\n"
            ' protocol="application/pgp-signature"; boundary="s1"\n',
            body,
        )
    )
    assert message.text == "Signed text"
    assert [(a.filename, a.content_type) for a in message.attachments] == [
        ("signature.asc", "application/pgp-signature")
    ]


def test_unnamed_smime_signature_named_p7s() -> None:
    body = (
        "--s1\nContent-Type: text/plain\n\nSigned\n"
        "--s1\nContent-Type: application/pkcs7-signature\n"
        "Content-Transfer-Encoding: base64\n\nMIIB\n--s1--\n"
    )
    message = parse_message(
        mime('Content-Type: multipart/signed; boundary="s1"\n', body)
    )
    assert message.attachments[0].filename == "attachment-1.p7s"


# Broken input


def test_empty_input_gives_empty_message() -> None:
    message = parse_message(b"")
    assert isinstance(message, ParsedMessage)
    assert message.text == ""
    assert message.subject == ""
    assert message.attachments == []


def test_garbage_bytes_give_message() -> None:
    message = parse_message(bytes(range(256)) * 4)
    assert isinstance(message, ParsedMessage)
    assert not any(defect.startswith("parsing failed") for defect in message.defects)


def test_missing_boundary_recovered_from_body() -> None:
    body = (
        "--guess\nContent-Type: text/plain\n\nFound me\n"
        "--guess\nContent-Type: application/pdf\n"
        'Content-Disposition: attachment; filename="a.pdf"\n\n'
        "pdf\n--guess--\n"
    )
    message = parse_message(mime("Content-Type: multipart/mixed\n", body))
    assert message.text == "Found me"
    assert [attachment.filename for attachment in message.attachments] == ["a.pdf"]
    assert any("boundary" in defect for defect in message.defects)


def test_recovered_parts_keep_8bit_text() -> None:
    body = "--real\nContent-Type: text/plain; charset=utf-8\n\nGrüße\n--real--\n"
    message = parse_message(mime("Content-Type: multipart/mixed\n", body))
    assert message.text == "Grüße"


def test_wrong_boundary_recovered_from_body() -> None:
    body = "--real\nContent-Type: text/plain\n\nFound me\n--real--\n"
    message = parse_message(
        mime('Content-Type: multipart/mixed; boundary="declared"\n', body)
    )
    assert message.text == "Found me"


def test_unrecoverable_multipart_kept_as_text() -> None:
    message = parse_message(mime("Content-Type: multipart/mixed\n", "just text\n"))
    assert message.text == "just text\n"
    assert message.defects != []


def test_missing_final_boundary_keeps_text() -> None:
    body = "--b1\nContent-Type: text/plain\n\nCut off\n"
    message = parse_message(
        mime('Content-Type: multipart/mixed; boundary="b1"\n', body)
    )
    assert message.text.startswith("Cut off")


def test_headers_without_body_separator_parsed() -> None:
    message = parse_message(b"Subject: only headers\r\nFrom: a@example.org")
    assert message.subject == "only headers"
    assert message.sender == Address("a@example.org", "")


def test_windows_iso2022jp_extension_rows_decode() -> None:
    # JIS 0x2D62 is "№" and 0x2D21 is "①" in the NEC row that CP932 adds.
    data = b"Nr \x1b$B-b-!\x1b(B 12"
    defects: list[str] = []
    assert decode_bytes(data, "iso-2022-jp", defects) == "Nr №① 12"
    assert defects


def test_plain_iso2022jp_still_decodes() -> None:
    text = "日本語のテキスト"
    defects: list[str] = []
    assert decode_bytes(text.encode("iso2022_jp"), "iso-2022-jp", defects) == text
    assert defects == []


def test_control_characters_removed_from_address() -> None:
    message = parse_message(
        b"From: x\x00y\x07@kunde.example.org\r\nSubject: a\r\n\r\nb\r\n"
    )
    assert message.sender is not None
    assert message.sender.email == "xy@kunde.example.org"


def test_encoded_name_cannot_pose_as_sender() -> None:
    raw = (
        b"From: =?utf-8?q?x:<agent@staff.example.com>?= <eve@kunde.example.org>\r\n"
        b"Subject: s\r\n\r\nb\r\n"
    )
    message = parse_message(raw)
    assert message.sender is not None
    assert message.sender.email == "eve@kunde.example.org"


def test_encoded_name_with_colon_decoded() -> None:
    raw = b"From: =?utf-8?q?M=C3=BCller:_Support?= <m@kunde.example.org>\r\n\r\nb\r\n"
    message = parse_message(raw)
    assert message.sender is not None
    assert message.sender.name == "Müller: Support"


def test_encrypted_mail_kept_as_attachments_with_defect() -> None:
    raw = (
        b"From: Ida Kern <ida.kern@example.org>\n"
        b"To: support@example.com\n"
        b"Subject: Vertraulich\n"
        b"MIME-Version: 1.0\n"
        b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";'
        b' boundary="e"\n\n'
        b"--e\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n\n"
        b'--e\nContent-Type: application/octet-stream; name="encrypted.asc"\n\n'
        b"-----BEGIN PGP MESSAGE-----\nhQEMA\n-----END PGP MESSAGE-----\n\n"
        b"--e--\n"
    )
    message = parse_message(raw)

    assert [attachment.filename for attachment in message.attachments][1] == (
        "encrypted.asc"
    )
    assert message.defects == ["part 1: encrypted content, kept as attachments unread"]


def test_unknown_charset_in_quoted_name_gives_storable_text() -> None:
    message = parse_message(b'From: "=?x-bogus?q?J=C3=B6rg?=" <joerg@example.org>\n\n')

    assert message.sender is not None
    assert message.sender.email == "joerg@example.org"
    message.sender.name.encode("utf-8")
