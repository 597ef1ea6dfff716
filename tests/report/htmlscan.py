"""A tiny HTML scanner for the report tests (stdlib ``html.parser``): elements, attributes,
script/style contents and text, exactly as a browser's tokenizer would see them."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    text: str = ""


@dataclass
class Page:
    elements: list[Element] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def find(self, tag: str) -> list[Element]:
        return [e for e in self.elements if e.tag == tag]

    def by_id(self, element_id: str) -> Element:
        (hit,) = [e for e in self.elements if e.attrs.get("id") == element_id]
        return hit

    def links(self) -> list[str]:
        """Every href/src value."""
        return [v for e in self.elements for k, v in e.attrs.items() if k in ("href", "src") and v]


class _Scanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._raw: Element | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs))
        self.page.elements.append(element)
        if tag in ("script", "style"):
            self._raw = element

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._raw = None

    def handle_data(self, data: str) -> None:
        if self._raw is not None:
            self._raw.text += data
        else:
            self.page.text.append(data)


def scan(path: Path) -> Page:
    scanner = _Scanner()
    scanner.feed(path.read_text(encoding="utf-8"))
    scanner.close()
    return scanner.page
