"""HTML rendering: the Jinja2 environment, the inline assets and the Content-Security-Policy.

Every page is one self-contained file. Its one stylesheet and one script are inlined and
allowed by their SHA-256 hashes; nothing else may run, load or connect:

    default-src 'none'; script-src 'sha256-…'; style-src 'sha256-…'; img-src data:;
    base-uri 'none'; form-action 'none'

Autoescaping is on for every template, so any string that reaches a page (DICOM attributes,
labels, notes, model-card values) is text, never markup.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from pipeline.report.tables import format_number

_PACKAGE = "pipeline.report"
_TEMPLATES = "templates"
STYLESHEET = "report.css"
INDEX_SCRIPT = "index.js"
CASE_SCRIPT = "case.js"


@dataclass(frozen=True)
class Asset:
    """An inline stylesheet or script and its CSP source expression (``'sha256-…'``)."""

    text: str
    source: str


@functools.cache
def asset(name: str) -> Asset:
    """Load a packaged ``.css``/``.js`` file and hash it for the CSP.

    Raises:
        ValueError: The file contains a closing tag that would end its element early.
    """
    text = resources.files(_PACKAGE).joinpath(_TEMPLATES, name).read_text(encoding="utf-8")
    if "</" in text:
        raise ValueError(f"inline asset {name!r} must not contain '</' (it would close its element)")
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    return Asset(text=text, source=f"'sha256-{digest}'")


def content_security_policy(script: Asset, style: Asset) -> str:
    """The page's CSP: nothing allowed but the one inline script and style, and data: images."""
    return (f"default-src 'none'; script-src {script.source}; style-src {style.source}; "
            "img-src data:; base-uri 'none'; form-action 'none'")


@functools.lru_cache(maxsize=1)
def environment() -> Any:
    """The Jinja2 environment (autoescape on for every template, undefined names are errors)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader(_PACKAGE, _TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = format_number
    env.filters["pct"] = lambda v: f"{100.0 * float(v):.0f}%"
    return env


def render(template: str, *, script: str, **context: Any) -> str:
    """Render ``template`` with the shared stylesheet, ``script`` inlined, and their CSP.

    Args:
        template: Template file name in ``pipeline/report/templates``.
        script: Name of the packaged script the page runs.
        **context: Template variables (strings are escaped by the template engine).
    """
    from markupsafe import Markup

    js, css = asset(script), asset(STYLESHEET)
    return environment().get_template(template).render(
        csp=content_security_policy(js, css), script=Markup(js.text), stylesheet=Markup(css.text),
        **context,
    )
