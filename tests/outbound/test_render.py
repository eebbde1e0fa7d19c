from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import ConfigError
from gateway.outbound.render import TemplateRenderer

LANGUAGES = ("en", "de")
KINDS = ("confirmation", "comment_update")
SUBJECT_PREFIX = {"en": "[Case 00000042] ", "de": "[Fall 00000042] "}
# Status "In Progress" and severity "Urgent" as each language shows them.
STATUS_AND_SEVERITY = {
    "en": ("In Progress", "Urgent"),
    "de": ("In Bearbeitung", "Dringend"),
}
REPLY_REQUEST = {
    "en": "please keep the reference below in the subject and in",
    "de": "Bitte lassen Sie die folgende Kennung im Betreff und im Text stehen",
}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_render_shows_case_facts(
    templates_dir: Path, mail_context: dict[str, Any], language: str, kind: str
) -> None:
    token = mail_context["token"]
    mail_context["language"] = language
    rendered = TemplateRenderer(templates_dir, language).render(kind, mail_context)

    for part in (rendered.subject, rendered.text, rendered.html):
        assert token in part
        assert "00000042" in part
    status, severity = STATUS_AND_SEVERITY[language]
    for part in (rendered.text, rendered.html):
        assert "Drucker druckt nicht – Fehler 0x42" in part
        assert status in part
        assert severity in part
        assert "https://portal.example.com/cases/00000042" in part
        assert REPLY_REQUEST[language] in part


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_render_subject_format(
    templates_dir: Path, mail_context: dict[str, Any], language: str, kind: str
) -> None:
    token = mail_context["token"]
    rendered = TemplateRenderer(templates_dir, language).render(kind, mail_context)

    expected = f"{SUBJECT_PREFIX[language]}Drucker druckt nicht – Fehler 0x42 {token}"
    assert rendered.subject == expected


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_render_text_ends_with_token(
    templates_dir: Path, mail_context: dict[str, Any], language: str, kind: str
) -> None:
    rendered = TemplateRenderer(templates_dir, language).render(kind, mail_context)

    lines = rendered.text.rstrip("\n").splitlines()
    assert lines[-1] == mail_context["token"]
    assert REPLY_REQUEST[language] in lines[-3]


def test_render_unknown_status_shown_as_stored(
    templates_dir: Path, mail_context: dict[str, Any]
) -> None:
    mail_context["case"]["status"] = "Under Review"

    german = TemplateRenderer(templates_dir, "de").render("confirmation", mail_context)

    assert "Under Review" in german.text
    assert "Under Review" in german.html


@pytest.mark.parametrize("language", LANGUAGES)
def test_confirmation_shows_customer_reference(
    templates_dir: Path, mail_context: dict[str, Any], language: str
) -> None:
    renderer = TemplateRenderer(templates_dir, language)

    with_reference = renderer.render("confirmation", mail_context)
    mail_context["case"]["customer_reference"] = ""
    without_reference = renderer.render("confirmation", mail_context)

    assert "KD-7781" in with_reference.text
    assert "KD-7781" in with_reference.html
    label = "Your reference" if language == "en" else "Ihre Referenz"
    assert label in with_reference.text
    assert label not in without_reference.text
    assert label not in without_reference.html


@pytest.mark.parametrize("language", LANGUAGES)
def test_comment_update_shows_comment(
    templates_dir: Path, mail_context: dict[str, Any], language: str
) -> None:
    rendered = TemplateRenderer(templates_dir, language).render(
        "comment_update", mail_context
    )

    assert "Anna Schmidt" in rendered.text
    assert "Bitte starten Sie den Drucker neu.\nGrüße aus Köln" in rendered.text
    assert "Bitte starten Sie den Drucker neu.<br>" in rendered.html
    assert "Grüße aus Köln" in rendered.html


@pytest.mark.parametrize("language", LANGUAGES)
def test_greeting_without_contact_name(
    templates_dir: Path, mail_context: dict[str, Any], language: str
) -> None:
    mail_context["contact_name"] = ""

    rendered = TemplateRenderer(templates_dir, language).render(
        "confirmation", mail_context
    )

    greeting = "Hello," if language == "en" else "Guten Tag,"
    assert rendered.text.startswith(greeting + "\n")
    assert greeting in rendered.html


def test_html_escapes_customer_text(
    templates_dir: Path, mail_context: dict[str, Any]
) -> None:
    mail_context["comment"]["text"] = "<script>alert('x')</script> & more"
    mail_context["case"]["subject"] = "<b>bold</b> subject"

    rendered = TemplateRenderer(templates_dir, "en").render(
        "comment_update", mail_context
    )

    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in rendered.html
    assert "<b>bold</b>" not in rendered.html
    assert "&lt;b&gt;bold&lt;/b&gt; subject" in rendered.html
    # The plain-text part shows the text as written.
    assert "<script>alert('x')</script> & more" in rendered.text


def test_subject_collapsed_to_one_line(
    templates_dir: Path, mail_context: dict[str, Any]
) -> None:
    token = mail_context["token"]
    mail_context["case"]["subject"] = "Printer\r\nBcc: evil@attacker.example\u2028 x"

    rendered = TemplateRenderer(templates_dir, "en").render(
        "confirmation", mail_context
    )

    assert rendered.subject == (
        f"[Case 00000042] Printer Bcc: evil@attacker.example x {token}"
    )


def test_long_subject_keeps_token(
    templates_dir: Path, mail_context: dict[str, Any]
) -> None:
    token = mail_context["token"]
    mail_context["case"]["subject"] = "word " * 200

    rendered = TemplateRenderer(templates_dir, "en").render(
        "confirmation", mail_context
    )

    assert rendered.subject.endswith(f"… {token}")
    assert len(rendered.subject) < 160


def test_missing_language_folder_raises(templates_dir: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        TemplateRenderer(templates_dir, "fr")

    assert str(templates_dir / "fr") in str(caught.value)


def test_language_with_path_raises(templates_dir: Path) -> None:
    with pytest.raises(ConfigError, match="language"):
        TemplateRenderer(templates_dir, "../en")


def test_missing_template_raises(
    tmp_path: Path, templates_dir: Path, mail_context: dict[str, Any]
) -> None:
    shutil.copytree(templates_dir / "en", tmp_path / "en")
    (tmp_path / "en" / "confirmation.html.j2").unlink()
    renderer = TemplateRenderer(tmp_path, "en")

    with pytest.raises(ConfigError) as caught:
        renderer.render("confirmation", mail_context)

    assert str(tmp_path / "en" / "confirmation.html.j2") in str(caught.value)


def test_missing_layout_raises(
    tmp_path: Path, templates_dir: Path, mail_context: dict[str, Any]
) -> None:
    shutil.copytree(templates_dir / "en", tmp_path / "en")
    (tmp_path / "en" / "layout.txt.j2").unlink()
    renderer = TemplateRenderer(tmp_path, "en")

    with pytest.raises(ConfigError) as caught:
        renderer.render("confirmation", mail_context)

    assert str(tmp_path / "en" / "layout.txt.j2") in str(caught.value)


def test_unknown_kind_raises(templates_dir: Path, mail_context: dict[str, Any]) -> None:
    renderer = TemplateRenderer(templates_dir, "en")

    with pytest.raises(ConfigError) as caught:
        renderer.render("newsletter", mail_context)

    assert str(templates_dir / "en" / "newsletter.subject.j2") in str(caught.value)


def test_kind_with_path_raises(
    templates_dir: Path, mail_context: dict[str, Any]
) -> None:
    renderer = TemplateRenderer(templates_dir, "en")

    with pytest.raises(ValueError, match="kind"):
        renderer.render("../de/confirmation", mail_context)


def test_missing_context_key_raises(
    templates_dir: Path, mail_context: dict[str, Any]
) -> None:
    del mail_context["case_url"]
    renderer = TemplateRenderer(templates_dir, "en")

    with pytest.raises(ConfigError) as caught:
        renderer.render("confirmation", mail_context)

    assert "case_url" in str(caught.value)


def test_template_syntax_error_raises(
    tmp_path: Path, templates_dir: Path, mail_context: dict[str, Any]
) -> None:
    shutil.copytree(templates_dir / "en", tmp_path / "en")
    (tmp_path / "en" / "confirmation.subject.j2").write_text("{% if %}\n")
    renderer = TemplateRenderer(tmp_path, "en")

    with pytest.raises(ConfigError) as caught:
        renderer.render("confirmation", mail_context)

    assert "confirmation.subject.j2" in str(caught.value)
    assert "line 1" in str(caught.value)


@pytest.mark.parametrize("language", LANGUAGES)
def test_layouts_serve_new_kinds(
    tmp_path: Path, templates_dir: Path, mail_context: dict[str, Any], language: str
) -> None:
    token = mail_context["token"]
    # A later kind needs only its three small files on top of the layouts.
    folder = tmp_path / language
    shutil.copytree(templates_dir / language, folder)
    (folder / "survey.subject.j2").write_text("Survey {{ case.number }} {{ token }}")
    (folder / "survey.txt.j2").write_text(
        '{% extends "layout.txt.j2" %}\n{% block intro %}\nHow did we do?\n'
        "{% endblock %}\n"
    )
    (folder / "survey.html.j2").write_text(
        '{% extends "layout.html.j2" %}\n{% block intro %}\n<p>How did we do?</p>\n'
        "{% endblock %}\n"
    )

    rendered = TemplateRenderer(tmp_path, language).render("survey", mail_context)

    assert rendered.subject == f"Survey 00000042 {token}"
    assert "How did we do?" in rendered.text
    assert rendered.text.rstrip("\n").endswith(token)
    assert "<p>How did we do?</p>" in rendered.html
    assert token in rendered.html
