"""Convert mail HTML to plain text with inscriptis, leaving out hidden content.

The HTML is parsed with lxml (the parser inscriptis itself uses), pruned of
content that mail clients do not display, given "text (URL)" link targets, and
rendered by inscriptis. Paragraphs, line breaks and list items ("- item") stay as lines.
"""

import logging
import re
from typing import Any

import lxml.html
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.html_engine import Inscriptis
from inscriptis.html_properties import Display
from inscriptis.model.config import ParserConfig
from inscriptis.model.html_element import HtmlElement
from inscriptis.model.tag import CustomHtmlTagHandlerMapping
from lxml.etree import ParserError

log = logging.getLogger(__name__)

# Inline styles that hide an element in mail clients: preheaders, tracking
# spans and Outlook's mso-hide blocks.
_HIDDEN_STYLE = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*hidden|mso-hide\s*:\s*all"
    r"|(?<![\w-])opacity\s*:\s*0(?:\.0+)?\s*(?:;|$|!)"
    r"|(?<![\w-])font-size\s*:\s*0(?:px|pt|em|rem|%)?\s*(?:;|$|!)",
    re.IGNORECASE,
)
_ZERO_MAX_HEIGHT = re.compile(r"max-height\s*:\s*0(?:px)?\s*(?:;|$|!)", re.IGNORECASE)
_OVERFLOW_HIDDEN = re.compile(r"overflow\s*:\s*hidden", re.IGNORECASE)
_HIDDEN_CLASSES = ("preheader", "preview-text", "previewtext")
_INVISIBLE_TAGS = ("head", "script", "style", "title", "template", "meta", "link")
_INVISIBLE_CHARS = re.compile("[\u200b\ufeff\u034f\u00ad]")
_LINK_SCHEMES = ("http://", "https://", "ftp://", "mailto:")
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_RUN = re.compile(r"\n{3,}")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _ul_start_handler(state: Any, _attrs: dict[str, str]) -> None:
    # Every level of an unordered list gets "- " (inscriptis cycles * + o -).
    state.li_counter.append("- ")


def _ol_start_handler(state: Any, _attrs: dict[str, str]) -> None:
    # Ordered list items become plain lines, without "1." markers, so that a
    # step such as "Open the login page" can be found as a line of its own.
    state.li_counter.append("")


def _build_config() -> ParserConfig:
    css = dict(CSS_PROFILES["strict"])
    # Two columns of padding right-align the "- " bullet at column 0 and indent
    # nested lists and wrapped items by two spaces.
    css["ul"] = HtmlElement(display=Display.block, padding_inline=2)
    css["ol"] = HtmlElement(display=Display.block, padding_inline=0)
    handlers = CustomHtmlTagHandlerMapping(
        start_tag_mapping={"ul": _ul_start_handler, "ol": _ol_start_handler},
        end_tag_mapping={},
    )
    # Link targets are written into the tree by _add_link_targets, so that they
    # read "text (URL)" rather than inscriptis' "[text](URL)".
    return ParserConfig(
        css=css, display_links=False, custom_html_tag_handler_mapping=handlers
    )


_CONFIG = _build_config()


def parse_html(html: str) -> Any | None:
    """Parse ``html`` into an lxml document, or return None if it has none."""
    html = _CONTROL_CHARS.sub("", html).strip()
    if html.startswith("<?xml"):
        # lxml refuses str input that carries an encoding declaration.
        html = html.split("?>", 1)[-1]
    if not html:
        return None
    try:
        return lxml.html.document_fromstring(html)
    except (ParserError, ValueError) as exc:
        log.debug("html parsing failed error=%r", exc)
        return None


def tree_to_text(tree: Any) -> str:
    """Render an lxml document (changed in place) as text, or "" on failure."""
    try:
        _remove_hidden(tree)
        _add_link_targets(tree)
        text = Inscriptis(tree, _CONFIG).get_text()
    except (ValueError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        # inscriptis documents no exceptions; these are the ones a malformed
        # tree could plausibly cause inside its renderer.
        log.warning("html to text conversion failed error=%r", exc)
        return ""
    return _tidy(text)


def html_to_text(html: str) -> str:
    """Return the visible text of ``html``, or "" when it cannot be parsed."""
    tree = parse_html(html)
    if tree is None:
        return ""
    return tree_to_text(tree)


def _is_hidden(element: Any) -> bool:
    if element.tag in _INVISIBLE_TAGS or "hidden" in element.attrib:
        return True
    style = element.get("style")
    if style:
        if _HIDDEN_STYLE.search(style):
            return True
        if _ZERO_MAX_HEIGHT.search(style) and _OVERFLOW_HIDDEN.search(style):
            return True
    classes = element.get("class")
    return bool(classes) and any(name in classes.lower() for name in _HIDDEN_CLASSES)


def _remove_hidden(tree: Any) -> None:
    hidden = [
        element
        for element in tree.iter()
        if isinstance(element.tag, str) and _is_hidden(element)
    ]
    for element in hidden:
        if element.getparent() is not None:
            # drop_tree keeps the text after the element, which is visible.
            element.drop_tree()


def _comparable_url(text: str) -> str:
    text = text.strip().lower()
    for prefix in _LINK_SCHEMES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    if text.startswith("www."):
        text = text[4:]
    return text.rstrip("/")


def _add_link_targets(tree: Any) -> None:
    for anchor in tree.iter("a"):
        href = (anchor.get("href") or "").strip()
        if not href.lower().startswith(_LINK_SCHEMES):
            continue
        label = anchor.text_content().strip()
        if not label or _comparable_url(label) == _comparable_url(href):
            continue
        anchor.tail = f" ({href})" + (anchor.tail or "")


def _tidy(text: str) -> str:
    text = text.replace("\xa0", " ").replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE_CHARS.sub("", text)
    text = _TRAILING_SPACE.sub("", text)
    text = _BLANK_RUN.sub("\n\n", text)
    return text.strip()
