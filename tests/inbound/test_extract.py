"""Tests of reply extraction from plain text and HTML bodies."""

from gateway.inbound.extract import (
    extract_new_text,
    extract_new_text_from_html,
    extract_reply,
)
from gateway.inbound.parse import ParsedMessage, parse_message

# Attributions


def test_english_attribution_cut() -> None:
    text = (
        "Thanks, it works now.\n\n"
        "On Tue, Dec 3, 2024 at 10:15 AM Support Team <support@example.com> wrote:\n"
        "> Please restart the printer.\n"
    )
    assert extract_new_text(text) == "Thanks, it works now."


def test_german_attribution_cut() -> None:
    text = (
        "Danke, jetzt geht es.\n\n"
        "Am 03.12.2024 um 10:15 schrieb Support Team:\n"
        "> Bitte starten Sie den Drucker neu.\n"
    )
    assert extract_new_text(text) == "Danke, jetzt geht es."


def test_german_gmail_attribution_cut() -> None:
    text = (
        "Passt, danke.\n\n"
        "Support Team <support@example.com> schrieb am Di., 3. Dez. 2024 "
        "um 10:15 Uhr:\n"
        "> Alte Nachricht\n"
    )
    assert extract_new_text(text) == "Passt, danke."


def test_wrapped_attribution_cut() -> None:
    text = (
        "Here is the log you asked for.\n\n"
        "On Tue, Dec 3, 2024 at 10:15 AM Support Team via Help Desk <\n"
        "support@example.com> wrote:\n\n"
        "> Could you send the log?\n"
    )
    assert extract_new_text(text) == "Here is the log you asked for."


def test_attribution_wrapped_before_colon_cut() -> None:
    text = (
        "Es klappt wieder.\n\n"
        'Am 21.04.2024 17:48 schrieb "Support Team" <support@example.com\n'
        ">:\n\n"
        "> Bitte trennen Sie den Router vom Strom.\n"
    )
    assert extract_new_text(text) == "Es klappt wieder."


def test_french_attribution_cut() -> None:
    text = (
        "Merci, c'est réglé.\n\n"
        "Le 4 janv. 2024 19:03, Support <support@example.com> a écrit :\n"
        "> Ancien message\n"
    )
    assert extract_new_text(text) == "Merci, c'est réglé."


def test_spanish_attribution_cut() -> None:
    text = (
        "Gracias.\n\nEl jueves, 21 de noviembre de 2024, Soporte escribió:\n"
        "> Mensaje anterior\n"
    )
    assert extract_new_text(text) == "Gracias."


def test_dutch_attribution_cut() -> None:
    text = (
        "Bedankt!\n\n"
        'Op 16 aug. 2024 05:13 schreef "Support" <support@example.com> het\n'
        "volgende:\n\n> Oud bericht\n"
    )
    assert extract_new_text(text) == "Bedankt!"


def test_unquoted_old_text_cut_at_attribution() -> None:
    text = (
        "Thank you.\n\n"
        "On Sun, Feb 7, 2024 at 12:12 AM, Support <support@example.com> wrote:\n\n"
        "Hi Eva,\n\nthe server is updated.\n"
    )
    assert extract_new_text(text) == "Thank you."


def test_signoff_above_attribution_kept() -> None:
    text = (
        "It works.\n\nThanks,\nEva Beispiel <eva@example.org>\n"
        "On Tue, Dec 3, 2024 at 10:15 AM Support <support@example.com> wrote:\n"
        "> old\n"
    )
    assert (
        extract_new_text(text) == "It works.\n\nThanks,\nEva Beispiel <eva@example.org>"
    )


def test_sentence_ending_in_wrote_not_cut() -> None:
    text = "I tried what the guide wrote:\n\n  run setup\n\nbut it fails."
    assert extract_new_text(text) == text


# Outlook header blocks and separators


def test_outlook_english_header_block_cut() -> None:
    text = (
        "Please see my answer above.\n\n"
        "From: Support Team <support@example.com>\n"
        "Sent: Tuesday, December 3, 2024 10:15 AM\n"
        "To: Eva Beispiel <eva@example.org>\n"
        "Subject: Your case\n\n"
        "Dear Eva, ...\n"
    )
    assert extract_new_text(text) == "Please see my answer above."


def test_outlook_german_header_block_cut() -> None:
    text = (
        "Der Fehler tritt weiterhin auf.\n\n"
        "Von: Support Team <support@example.com>\n"
        "Gesendet: Dienstag, 3. Dezember 2024 10:15\n"
        "An: Eva Beispiel <eva@example.org>\n"
        "Betreff: Ihr Fall\n\n"
        "Hallo Frau Beispiel, ...\n"
    )
    assert extract_new_text(text) == "Der Fehler tritt weiterhin auf."


def test_bold_outlook_header_block_cut() -> None:
    text = (
        "Reply from the phone app.\n\n ------------------------------\n\n"
        "*From:* Support\n*Sent:* 2024-01-27\n*To:* eva@example.org\n"
        "*Subject:* Your case\n\nold text\n"
    )
    assert extract_new_text(text) == "Reply from the phone app."


def test_from_and_to_lines_alone_not_cut() -> None:
    text = "The firewall blocks this:\n\nFrom: 10.0.0.1\nTo: 10.0.0.2\n\nWhy?"
    assert extract_new_text(text) == text


def test_original_message_separator_cut() -> None:
    text = (
        "Same problem again.\n\n-----Original Message-----\n"
        "From: support@example.com\nold text\n"
    )
    assert extract_new_text(text) == "Same problem again."


def test_german_original_message_separator_cut() -> None:
    text = "Gruß\nEva\n\n-----Ursprüngliche Nachricht-----\nVon: Support\nalter Text\n"
    assert extract_new_text(text) == "Gruß\nEva"


def test_underscore_separator_cut() -> None:
    text = (
        "Antwort über der Linie.\n"
        "________________________________\n"
        "Von: Support <support@example.com>\nalter Text\n"
    )
    assert extract_new_text(text) == "Antwort über der Linie."


# Quoting


def test_quoted_lines_removed() -> None:
    text = "> Did the restart help?\n> Please tell us.\n\nNo, it did not."
    assert extract_new_text(text) == "No, it did not."


def test_inline_answers_keep_the_questions_they_answer() -> None:
    text = (
        "On Tue, Dec 3, 2024 at 10:15 AM Support <support@example.com> wrote:\n"
        "> Which model do you have?\n"
        "LaserJet 4000\n\n"
        "> Since when does it fail?\n"
        "Since Monday.\n\n"
        "> Kind regards, your support team\n"
        "> ref_00DEx4mPl_aB3dE5gH7j:ref\n"
    )
    assert extract_new_text(text) == (
        "> Which model do you have?\n"
        "LaserJet 4000\n\n"
        "> Since when does it fail?\n"
        "Since Monday."
    )


def test_answer_between_quotes_of_an_embedded_mail() -> None:
    text = (
        "See my notes below.\n"
        "On Tue, 2024-12-03 at 10:15 +0100, Lena Berger wrote:\n"
        "> The export stops at 80 percent.\n\n"
        "That happens with files over 2 GB.\n\n"
        "LB>\n"
        "LB> The log is attached.\n"
    )
    assert extract_new_text(text) == (
        "See my notes below.\n"
        "> The export stops at 80 percent.\n\n"
        "That happens with files over 2 GB."
    )


def test_quote_followed_only_by_a_signature_goes() -> None:
    text = (
        "Thanks, that fixed it.\n\n"
        "On Tue, Dec 3, 2024 at 10:15 AM Support <support@example.com> wrote:\n"
        "> Please restart the service.\n\n"
        "Sent from my iPhone\n"
    )
    assert extract_new_text(text) == "Thanks, that fixed it."


def test_bottom_posted_reply_kept() -> None:
    text = (
        "On Mon, May 20, 2024 at 07:48:03AM +0000, Support wrote:\n"
        "> Your request has been logged.\n\n"
        "One more detail: my booking code is BK-20931.\n\n"
        "-- \nAlex | https://alex.example.net\n"
    )
    assert extract_new_text(text) == "One more detail: my booking code is BK-20931."


def test_whole_quote_returns_full_text() -> None:
    assert extract_new_text("> only a quote\n") == "> only a quote"


# Signatures


def test_signature_after_delimiter_removed() -> None:
    text = "Please call me back.\n\n-- \nEva Beispiel\nPhone +49 30 1234567\n"
    assert extract_new_text(text) == "Please call me back."


def test_signature_delimiter_without_space_removed() -> None:
    assert extract_new_text("Done.\n\n--\nEva\n") == "Done."


def test_double_dash_list_items_not_signature() -> None:
    text = "Prizes:\n\n-- four gift cards\n-- eight mugs"
    assert extract_new_text(text) == text


def test_sent_from_iphone_removed() -> None:
    text = (
        "Hello\n\nSent from my iPhone\n\nOn Apr 3, 2024, at 4:19 PM, Bob wrote:\n> Hi\n"
    )
    assert extract_new_text(text) == "Hello"


def test_german_mobile_signature_removed() -> None:
    assert extract_new_text("Passt so.\n\nVon meinem iPhone gesendet\n") == "Passt so."


def test_sent_by_sentence_not_signature() -> None:
    assert extract_new_text("The parcel was\nsent by courier") == (
        "The parcel was\nsent by courier"
    )


def test_mobile_signature_before_long_text_kept() -> None:
    long_line = "The device still fails after the update, " * 4
    text = f"Sent from my iPhone\n{long_line.strip()}"
    assert extract_new_text(text) == text


# Forwards


def test_gmail_forward_kept_whole() -> None:
    text = (
        "Could you check which amount is right?\n\n"
        "---------- Forwarded message ---------\n"
        "From: Marc Sample <marc@example.net>\n"
        "Date: Tue, Apr 9, 2024 at 10:02 AM\n"
        "Subject: Invoice 2024-117\n"
        "To: Priya <priya@example.org>\n\n"
        "The contract says 1,020.00 EUR.\n"
    )
    assert extract_new_text(text) == text.strip()


def test_forwarder_signature_removed_forward_kept() -> None:
    text = (
        "FYI\n\n-- \nPriya\n\n"
        "-------- Weitergeleitete Nachricht --------\n"
        "Betreff: Rechnung\nDatum: Tue, 9 Apr 2024 10:02:00 +0200\n"
        "Von: Marc <marc@example.net>\n\nBetrag falsch.\n"
    )
    assert extract_new_text(text) == (
        "FYI\n\n-------- Weitergeleitete Nachricht --------\n"
        "Betreff: Rechnung\nDatum: Tue, 9 Apr 2024 10:02:00 +0200\n"
        "Von: Marc <marc@example.net>\n\nBetrag falsch."
    )


def test_apple_quoted_forward_kept() -> None:
    text = (
        "See below.\n\n> Begin forwarded message:\n>\n"
        "> From: Marc <marc@example.net>\n> Subject: Invoice\n>\n> Amount is wrong.\n"
    )
    assert extract_new_text(text) == text.strip()


def test_forward_subject_keeps_outlook_block() -> None:
    text = (
        "Please handle this.\n\n"
        "From: Marc Sample <marc@example.net>\nSent: Tuesday, April 9, 2024 10:02\n"
        "To: Priya <priya@example.org>\nSubject: Invoice\n\nAmount is wrong.\n"
    )
    message = ParsedMessage(subject="FW: Invoice", text=text)
    assert extract_reply(message) == text.strip()


def test_reply_subject_cuts_outlook_block() -> None:
    text = "Done.\n\nFrom: Support\nSent: today\nSubject: Case\n\nold\n"
    assert extract_reply(ParsedMessage(subject="RE: Case", text=text)) == "Done."


# Output form


def test_output_whitespace_normalized() -> None:
    text = "\n\n  Line one   \n\n\n\n\nLine two\t\n\n"
    assert extract_new_text(text) == "Line one\n\nLine two"


def test_crlf_input_accepted() -> None:
    assert extract_new_text("Yes.\r\n\r\n> Works?\r\n") == "Yes."


def test_empty_text_gives_empty_result() -> None:
    assert extract_new_text("") == ""
    assert extract_new_text(" \n \n") == ""


# HTML


def test_html_gmail_quote_removed() -> None:
    html = (
        '<div dir="ltr">Hi. I am fine.<div><br></div><div>Thanks,</div><div>Alex</div>'
        '</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">'
        "On Tue, Dec 3, 2024 at 10:15 AM Support &lt;support@example.com&gt; wrote:<br>"
        '</div><blockquote class="gmail_quote">How are you?</blockquote></div>'
    )
    assert extract_new_text_from_html(html) == "Hi. I am fine.\n\nThanks,\nAlex"


def test_html_divrplyfwdmsg_and_rest_removed() -> None:
    html = (
        "<html><body><div><p>Der Neustart des Dienstes half nicht.</p></div>"
        '<hr style="display:inline-block;width:98%"><div id="divRplyFwdMsg">'
        "<b>Von:</b> Support<br><b>Gesendet:</b> Dienstag<br><b>Betreff:</b> Fall"
        "</div><div>Bitte starten Sie den Dienst neu.</div></body></html>"
    )
    assert extract_new_text_from_html(html) == "Der Neustart des Dienstes half nicht."


def test_html_blockquote_cite_removed() -> None:
    html = (
        "<div>Answer one</div><div>On Apr 3, 2024, at 4:19 PM, Bob wrote:</div>"
        '<blockquote type="cite"><div>Question</div></blockquote>'
    )
    assert extract_new_text_from_html(html) == "Answer one"


def test_html_inline_answers_keep_their_questions() -> None:
    html = (
        '<div class="moz-cite-prefix">On 03.12.2024 10:15, Support wrote:</div>'
        '<blockquote type="cite">Which model?</blockquote>LaserJet 4000<br>'
        '<blockquote type="cite">Since when?</blockquote>Since Monday.'
    )
    assert extract_new_text_from_html(html) == (
        "> Which model?\nLaserJet 4000\n> Since when?\nSince Monday."
    )


def test_html_outlook_border_top_header_removed() -> None:
    html = (
        '<div class="WordSection1"><p class="MsoNormal">Neue Antwort</p>'
        '<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm">'
        '<p class="MsoNormal"><b>From:</b> Support<br><b>Sent:</b> Tuesday<br>'
        "<b>Subject:</b> Case</p></div><p>Old text</p></div>"
    )
    assert extract_new_text_from_html(html) == "Neue Antwort"


def test_html_gmail_forward_kept() -> None:
    html = (
        "<div>Please check.</div><br>"
        '<div class="gmail_quote"><div class="gmail_attr">'
        "---------- Forwarded message ---------<br>From: Marc &lt;marc@example.net&gt;"
        "<br>Subject: Invoice<br></div><br><div>Amount is wrong.</div></div>"
    )
    text = extract_new_text_from_html(html)
    assert text.startswith("Please check.")
    assert text.endswith("Amount is wrong.")


def test_reply_extracted_from_html_body() -> None:
    raw = (
        b"Subject: Re: Case\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b'<p>New words</p><blockquote type="cite">old words</blockquote>\r\n'
    )
    message = parse_message(raw)
    assert message.text_from_html is True
    assert extract_reply(message) == "New words"


def test_reply_from_plain_text_part() -> None:
    raw = (
        b"Subject: Re: Case\r\nContent-Type: text/plain\r\n\r\n"
        b"New words\r\n\r\n> old words\r\n"
    )
    assert extract_reply(parse_message(raw)) == "New words"


def test_html_empty_input_gives_empty_text() -> None:
    assert extract_new_text_from_html("") == ""


def test_undated_attribution_before_quote_removed() -> None:
    text = "Thanks, fixed.\n\nOn Thu, Lena Berger wrote:\n> old text\n> more\n"
    assert extract_new_text(text) == "Thanks, fixed."


def test_bare_name_attribution_removed_in_german() -> None:
    text = "Danke.\n\nLena Berger schrieb:\n> alt\n"
    assert extract_new_text(text) == "Danke."


def test_wrote_line_without_quote_kept() -> None:
    text = "My colleague wrote:\nthe printer is fine now.\n"
    assert "My colleague wrote:" in extract_new_text(text)


def test_supercite_initials_quote_removed() -> None:
    text = "Agreed, let us do that.\n\nJD> Shall we restart the server?\nJD>\n"
    assert extract_new_text(text) == "Agreed, let us do that."


def test_comparison_with_greater_sign_kept() -> None:
    text = "Result: A>B holds for every input.\n"
    assert extract_new_text(text) == "Result: A>B holds for every input."


def test_html_quote_followed_by_signature_removed() -> None:
    html = (
        "<div>Danke, das hat geholfen.</div>"
        '<div class="gmail_quote"><div class="gmail_attr">Am Di., 3. Dez. 2024 '
        "um 10:15 schrieb Support &lt;support@example.com&gt;:</div>"
        "<blockquote>Bitte starten Sie neu.</blockquote></div>"
        "<div>-- <br>Nina Roth</div>"
    )
    assert extract_new_text_from_html(html) == "Danke, das hat geholfen."


def test_html_nested_inline_answers_keep_outer_quote() -> None:
    html = (
        "<div>Antworten unten.</div>"
        '<blockquote type="cite">Welche Version?'
        '<blockquote type="cite">alte Frage</blockquote></blockquote>'
        "<div>Version 5.2</div>"
        '<blockquote type="cite">Seit wann?</blockquote>'
        "<div>Seit gestern.</div>"
    )
    assert extract_new_text_from_html(html) == (
        "Antworten unten.\n> Welche Version?\n> > alte Frage\nVersion 5.2\n"
        "> Seit wann?\nSeit gestern."
    )
