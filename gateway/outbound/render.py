"""Rendering of notification mails from the Jinja templates of one language.

Each language folder contains three templates per kind of mail
(``<kind>.subject.j2``, ``<kind>.txt.j2``, ``<kind>.html.j2``), the layouts
``layout.txt.j2`` and ``layout.html.j2`` that the text and HTML templates of
every kind extend, and any file the layouts import (``de/terms.j2`` contains the
German names of statuses and severities).

The HTML environment autoescapes, so customer text cannot add markup. The
environment of subjects and plain text does not. Both use StrictUndefined, so
a context key that a template needs but the caller did not pass raises
instead of rendering as empty text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from gateway.errors import ConfigError

log = logging.getLogger(__name__)

# A language is a folder name below templates_dir, and a kind is the first
# part of a template file name, so neither may contain path separators or dots.
LANGUAGE_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
KIND_PATTERN = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class RenderedMail:
    """The rendered subject, plain-text body and HTML body of one mail."""

    subject: str  # one line, no CR or LF
    text: str
    html: str


class TemplateRenderer:
    """Renderer of the mail templates in ``templates_dir/language``."""

    def __init__(self, templates_dir: Path, language: str) -> None:
        if not LANGUAGE_PATTERN.fullmatch(language):
            raise ConfigError(
                f"template language {language!r} is invalid: use a folder name "
                f"below {templates_dir} such as 'en' or 'de'"
            )
        folder = templates_dir / language
        if not folder.is_dir():
            raise ConfigError(
                f"template folder {folder} not found: create it or set "
                f"[desk] language to a folder that exists in {templates_dir}"
            )
        self.folder = folder
        self.language = language
        loader = jinja2.FileSystemLoader(folder, encoding="utf-8")
        options: dict[str, Any] = {
            "loader": loader,
            "undefined": jinja2.StrictUndefined,
            "trim_blocks": True,
            "lstrip_blocks": True,
            "keep_trailing_newline": True,
        }
        self._text_env = jinja2.Environment(autoescape=False, **options)
        self._html_env = jinja2.Environment(autoescape=True, **options)

    def render(self, kind: str, context: Mapping[str, Any]) -> RenderedMail:
        """Render the subject, text and HTML templates of ``kind``.

        Raises ConfigError naming the file when a template is missing, is
        not valid Jinja, or uses a value that ``context`` does not contain.
        Raises ValueError when ``kind`` is not a plain name.
        """
        if not KIND_PATTERN.fullmatch(kind):
            raise ValueError(
                f"mail kind {kind!r} is invalid: use lowercase letters, digits "
                "and underscores"
            )
        subject = self._render_file(self._text_env, f"{kind}.subject.j2", context)
        text = self._render_file(self._text_env, f"{kind}.txt.j2", context)
        html = self._render_file(self._html_env, f"{kind}.html.j2", context)
        log.debug("mail rendered kind=%s language=%s", kind, self.language)
        return RenderedMail(subject=_single_line(subject), text=text, html=html)

    def _render_file(
        self, env: jinja2.Environment, name: str, context: Mapping[str, Any]
    ) -> str:
        try:
            template = env.get_template(name)
            return template.render(context)
        except jinja2.TemplateNotFound as exc:
            # The missing file may be a layout or import that ``name`` refers to.
            raise ConfigError(
                f"template {self.folder / str(exc.name)} not found: add it to "
                f"{self.folder}"
            ) from exc
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(
                f"template {exc.filename or self.folder / name} is invalid at "
                f"line {exc.lineno}: {exc.message}"
            ) from exc
        except jinja2.UndefinedError as exc:
            raise ConfigError(
                f"template {self.folder / name} uses a value that the context "
                f"does not contain: {exc.message}"
            ) from exc


def _single_line(value: str) -> str:
    """Collapse every run of whitespace, line breaks included, to one space.

    ``str.split`` splits on all line breaks of ``str.splitlines`` (CR, LF, VT,
    FF, NEL, U+2028, U+2029 and the rest), so the result has none of them.
    Other control characters stay, and compose.clean_header_value removes them.
    """
    return " ".join(value.split())
