"""Tests of html_to_text: layout kept, hidden content dropped, never raises."""

from gateway.inbound.htmltext import html_to_text


def test_paragraphs_and_line_breaks_kept() -> None:
    text = html_to_text("<p>Hallo Support,<br>zweite Zeile</p><p>Absatz zwei</p>")
    assert text == "Hallo Support,\nzweite Zeile\n\nAbsatz zwei"


def test_divs_become_lines() -> None:
    assert html_to_text("<div>eins</div><div>zwei</div>") == "eins\nzwei"


def test_unordered_list_items_become_dash_lines() -> None:
    text = html_to_text(
        "<ul><li>Raum 2.17</li><li>Raum 3<ul><li>Flur</li></ul></li></ul>"
    )
    assert text.split("\n") == ["- Raum 2.17", "- Raum 3", "  - Flur"]


def test_ordered_list_items_become_plain_lines() -> None:
    text = html_to_text(
        "<ol><li>Anmeldeseite öffnen</li><li>Passwort eingeben</li></ol>"
    )
    assert text.split("\n") == ["Anmeldeseite öffnen", "Passwort eingeben"]


def test_link_target_shown_after_text() -> None:
    text = html_to_text(
        '<p>siehe <a href="https://portal.example.com/log">Log</a>.</p>'
    )
    assert text == "siehe Log (https://portal.example.com/log)."


def test_url_link_text_not_repeated() -> None:
    html = (
        '<a href="https://www.example.com/">www.example.com</a> '
        '<a href="mailto:help@example.com">help@example.com</a>'
    )
    assert html_to_text(html) == "www.example.com help@example.com"


def test_image_link_without_text_omitted() -> None:
    html = '<p>Text</p><a href="https://t.example.net/c"><img src="x.png"></a>'
    assert html_to_text(html) == "Text"


def test_hidden_content_removed() -> None:
    html = (
        '<span style="display: none !important">preheader one</span>'
        '<div class="preheader">preheader two</div>'
        '<div style="max-height:0;overflow:hidden">preheader three</div>'
        "<div hidden>hidden attribute</div>"
        '<span style="mso-hide:all">outlook only</span>'
        "<p>Visible</p>"
    )
    assert html_to_text(html) == "Visible"


def test_text_after_hidden_element_kept() -> None:
    html = '<p>before <span style="display:none">x</span>after</p>'
    assert html_to_text(html) == "before after"


def test_head_style_and_script_removed() -> None:
    html = (
        "<html><head><title>Title</title><style>p {color: red}</style></head>"
        "<body><script>alert(1)</script><p>Body</p></body></html>"
    )
    assert html_to_text(html) == "Body"


def test_tracking_pixel_not_shown() -> None:
    html = (
        '<p>Hi</p><img src="https://t.example.net/p.gif" width="1" height="1"'
        ' alt="pixel">'
    )
    assert html_to_text(html) == "Hi"


def test_entities_decoded() -> None:
    assert html_to_text("<p>Firefox &amp; Edge&nbsp;&quot;neu&quot;</p>") == (
        'Firefox & Edge "neu"'
    )


def test_blank_line_runs_collapsed() -> None:
    text = html_to_text("<p>a</p><p></p><p></p><br><br><br><p>b</p>")
    assert "\n\n\n" not in text
    assert text.startswith("a")
    assert text.endswith("b")


def test_empty_input_gives_empty_text() -> None:
    assert html_to_text("") == ""
    assert html_to_text("   \n ") == ""


def test_hopeless_input_does_not_raise() -> None:
    assert html_to_text("\x00\x01<<<>>>") == "<<<>>>"
    assert html_to_text("<?xml version='1.0' encoding='utf-8'?><p>x</p>") == "x"
