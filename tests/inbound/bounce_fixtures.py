"""Bounce mails written for the tests: a DSN builder and a few vendor shapes."""

from __future__ import annotations


def dsn(
    recipient: str,
    status: str,
    *,
    action: str = "failed",
    original_recipient: str | None = None,
    returned_message_id: str = "<note-1@mail.desk.example.com>",
    returned_subject: str = "Case 00000001 updated",
    returned_body: str = "A new comment on your case.\r\n",
    returned_as: str = "message/rfc822",
    reporter: str = "MAILER-DAEMON@mx.kunde.example.org",
    report_id: str = "<dsn-7@mx.kunde.example.org>",
) -> bytes:
    """Build an RFC 3464 report about one recipient, returning a copy of our mail."""
    original = (
        f"Original-Recipient: rfc822; {original_recipient}\r\n"
        if original_recipient
        else ""
    )
    returned_headers = (
        f"Message-ID: {returned_message_id}\r\n"
        "From: Customer Support <help@desk.example.com>\r\n"
        f"To: {original_recipient or recipient}\r\n"
        f"Subject: {returned_subject}\r\n"
    )
    if returned_as == "message/rfc822":
        returned = returned_headers + "\r\n" + returned_body
    else:
        returned = returned_headers
    return (
        f"From: Mail Delivery System <{reporter}>\r\n"
        "To: help@desk.example.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: {report_id}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        ' boundary="REPORT"\r\n'
        "\r\n"
        "--REPORT\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
        "Your message could not be delivered to one recipient.\r\n"
        "\r\n"
        "--REPORT\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; mx.kunde.example.org\r\n"
        "\r\n"
        f"{original}"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} mailbox problem\r\n"
        "\r\n"
        "--REPORT\r\n"
        f"Content-Type: {returned_as}\r\n"
        "\r\n"
        f"{returned}"
        "\r\n"
        "--REPORT--\r\n"
    ).encode()


# A single text part from a postmaster: no report, the address in the text,
# and the copy of the returned mail after a marker line.
PLAIN_TEXT_BOUNCE = (
    b"From: Postmaster <postmaster@mx.kunde.example.org>\r\n"
    b"To: help@desk.example.com\r\n"
    b"Subject: Undeliverable Mail\r\n"
    b"Message-ID: <pt-1@mx.kunde.example.org>\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"\r\n"
    b"Delivery failed after 5 attempts: paul.weg@kunde.example.org\r\n"
    b"\r\n"
    b"Original message follows.\r\n"
    b"\r\n"
    b"Message-ID: <note-2@mail.desk.example.com>\r\n"
    b"From: help@desk.example.com\r\n"
    b"To: paul.weg@kunde.example.org\r\n"
    b"Subject: Case 00000002 updated\r\n"
    b"\r\n"
    b"A new comment on your case.\r\n"
)

# The qmail text format, which flufl.bounce reads; sent by a mail server
# account that is no mailer-daemon, under a failure subject.
QMAIL_STYLE_BOUNCE = (
    b"From: Mail Server <mailsrv@mx.kunde.example.org>\r\n"
    b"To: help@desk.example.com\r\n"
    b"Subject: failure notice\r\n"
    b"Message-ID: <qm-1@mx.kunde.example.org>\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"\r\n"
    b"Hi. This is the qmail-send program at mx.kunde.example.org.\r\n"
    b"I'm afraid I wasn't able to deliver your message to the following "
    b"addresses.\r\n"
    b"This is a permanent error; I've given up. Sorry it didn't work out.\r\n"
    b"\r\n"
    b"<ines.alt@kunde.example.org>:\r\n"
    b"Sorry, no mailbox here by that name. (#5.1.1)\r\n"
    b"\r\n"
    b"--- Below this line is a copy of the message.\r\n"
    b"\r\n"
    b"Subject: Case 00000003 updated\r\n"
    b"\r\n"
    b"A new comment on your case.\r\n"
)

# A customer who forwards a report as an attachment, asking what it means.
FORWARDED_BOUNCE = (
    b"From: Erika Beispiel <erika@kunde.example.org>\r\n"
    b"To: help@desk.example.com\r\n"
    b"Subject: Fwd: Undelivered Mail Returned to Sender\r\n"
    b"Message-ID: <fwd-1@kunde.example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="OUTER"\r\n'
    b"\r\n"
    b"--OUTER\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hallo, was bedeutet diese Meldung? Unser Lager bekommt keine Mails.\r\n"
    b"\r\n"
    b"--OUTER\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n" + dsn("lager@kunde.example.org", "5.1.1") + b"\r\n--OUTER--\r\n"
)
