"""Small, dependency-free SVG line charts, rendered server-side for the report pages.

The page's Content-Security-Policy allows no script-made graphics libraries, no external
resources and no inline ``style`` attributes, so a chart is plain SVG markup built here: axes with
ticks and labels, dashed reference lines (the chance diagonal, perfect calibration), one line per
series (optionally with dots sized per point), highlighted markers (the operating point) and a
legend. Colours and fonts are presentation attributes, so a chart looks the same with or without
the report's stylesheet.

Every text that reaches the markup (titles, labels, legend entries, tooltips) is escaped here, so
the returned string can be inlined as markup. The chart is one accessible image: ``role="img"``,
with a ``<title>`` and a ``<desc>`` that should state what a sighted reader would take from it.
Inline SVG in HTML needs no ``xmlns``; none is written (the report holds no URLs at all).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

#: Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#999999")
INK, MUTED, GRID = "#111827", "#4b5563", "#e5e7eb"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"
_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_LEGEND_CHARS = 42
# Layout in px (the viewBox; the page may scale the chart).
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 16, 12, 44
_LEGEND_ROW = 17


@dataclass(frozen=True)
class Axis:
    """One axis: its label, data range and tick positions (data units)."""

    label: str
    low: float = 0.0
    high: float = 1.0
    ticks: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class Series:
    """One curve, in data units.

    Attributes:
        name: Legend text.
        points: ``(x, y)`` pairs in drawing order; non-finite pairs are skipped (the line breaks).
        step: Join points with a vertical then a horizontal segment (the precision-recall step
            function whose area is the average precision) instead of straight lines.
        dots: Radius in px of a dot at each point (e.g. from bin counts), or ``None`` for none.
    """

    name: str
    points: tuple[tuple[float, float], ...]
    step: bool = False
    dots: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Guide:
    """A dashed reference line from ``start`` to ``end`` (data units), named in the legend."""

    start: tuple[float, float]
    end: tuple[float, float]
    label: str


@dataclass(frozen=True)
class Marker:
    """A highlighted point: ``label`` is drawn next to it, ``detail`` is its tooltip;
    ``series`` is the index of the series whose colour it takes."""

    x: float
    y: float
    label: str
    detail: str = ""
    series: int = 0


def line_chart(*, chart_id: str, title: str, description: str, x_axis: Axis, y_axis: Axis,
               series: Sequence[Series], guides: Sequence[Guide] = (),
               markers: Sequence[Marker] = (), width: int = 360, plot_height: int = 250) -> str:
    """An accessible SVG line chart as a markup string (every text escaped).

    Args:
        chart_id: Unique id on the page (letters, digits, ``_``, ``-``; starts with a letter);
            the ``<title>`` and ``<desc>`` ids derive from it.
        title: Short name of the chart (the accessible name).
        description: What the chart shows, in words (the accessible description).
        x_axis, y_axis: Axis labels, ranges and ticks; data outside the range is clamped.
        series: The curves; colours follow :data:`PALETTE` in order (at most its length).
        guides: Dashed reference lines.
        markers: Highlighted points, e.g. the operating point.
        width: Width in px; ``plot_height``: height of the plotting area in px.

    Raises:
        ValueError: Bad id, empty axis range, too many series, or dots not matching points.
    """
    _check(chart_id, x_axis, y_axis, series, width, plot_height)
    frame = _Frame(x_axis, y_axis, width - _LEFT - _RIGHT, plot_height)
    legend = _legend(series, guides, markers, top=_TOP + plot_height + _BOTTOM)
    height = _TOP + plot_height + _BOTTOM + _LEGEND_ROW * len(legend) + 6
    parts = [
        f'<svg class="chart" id="{chart_id}" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'font-family="{escape(FONT)}" font-size="11" fill="{INK}">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
        *frame.axes(),
        *(frame.guide(g) for g in guides),
        *(frame.series(s, PALETTE[i]) for i, s in enumerate(series)),
        *(frame.marker(m, PALETTE[m.series % len(PALETTE)]) for m in markers),
        *legend,
        "</svg>",
    ]
    return "".join(parts)


def _check(chart_id: str, x_axis: Axis, y_axis: Axis, series: Sequence[Series], width: int,
           plot_height: int) -> None:
    if not isinstance(chart_id, str) or not _ID.fullmatch(chart_id):
        raise ValueError(f"chart_id must be a letter then letters, digits, '_' or '-'. "
                         f"Received: {chart_id!r}")
    for name, axis in (("x_axis", x_axis), ("y_axis", y_axis)):
        if not (math.isfinite(axis.low) and math.isfinite(axis.high) and axis.high > axis.low):
            raise ValueError(f"{name} needs finite low < high. Received: {axis.low}, {axis.high}")
    if len(series) > len(PALETTE):
        raise ValueError(f"at most {len(PALETTE)} series (one colour each). Received: {len(series)}")
    for s in series:
        if s.dots is not None and len(s.dots) != len(s.points):
            raise ValueError(f"series {s.name!r}: one dot radius per point needed. "
                             f"Received: {len(s.dots)} for {len(s.points)} points")
    if width < _LEFT + _RIGHT + 40 or plot_height < 40:
        raise ValueError(f"chart too small. Received: width={width}, plot_height={plot_height}")


def _num(v: float) -> str:
    return f"{v:.1f}"


def _tick_text(v: float) -> str:
    return f"{v:g}"


def _finite(p: tuple[float, float]) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in p)


class _Frame:
    """Data -> pixel mapping of the plotting area and the elements drawn in it."""

    def __init__(self, x_axis: Axis, y_axis: Axis, plot_width: int, plot_height: int) -> None:
        self.xa, self.ya, self.w, self.h = x_axis, y_axis, plot_width, plot_height

    def px(self, x: float, y: float) -> tuple[str, str]:
        fx = (min(max(x, self.xa.low), self.xa.high) - self.xa.low) / (self.xa.high - self.xa.low)
        fy = (min(max(y, self.ya.low), self.ya.high) - self.ya.low) / (self.ya.high - self.ya.low)
        return _num(_LEFT + fx * self.w), _num(_TOP + (1.0 - fy) * self.h)

    def axes(self) -> list[str]:
        out = [f'<rect x="{_LEFT}" y="{_TOP}" width="{self.w}" height="{self.h}" fill="#ffffff" '
               f'stroke="{MUTED}" stroke-width="1"></rect>']
        bottom, right = _TOP + self.h, _LEFT + self.w
        for t in self.xa.ticks:
            x, _ = self.px(t, self.ya.low)
            out.append(f'<line x1="{x}" y1="{_TOP}" x2="{x}" y2="{bottom}" stroke="{GRID}"></line>'
                       f'<line x1="{x}" y1="{bottom}" x2="{x}" y2="{bottom + 4}" stroke="{MUTED}"></line>'
                       f'<text x="{x}" y="{bottom + 15}" text-anchor="middle" fill="{MUTED}">'
                       f'{escape(_tick_text(t))}</text>')
        for t in self.ya.ticks:
            _, y = self.px(self.xa.low, t)
            out.append(f'<line x1="{_LEFT}" y1="{y}" x2="{right}" y2="{y}" stroke="{GRID}"></line>'
                       f'<line x1="{_LEFT - 4}" y1="{y}" x2="{_LEFT}" y2="{y}" stroke="{MUTED}"></line>'
                       f'<text x="{_LEFT - 7}" y="{y}" dy="0.35em" text-anchor="end" fill="{MUTED}">'
                       f'{escape(_tick_text(t))}</text>')
        mid_x, mid_y = _num(_LEFT + self.w / 2), _num(_TOP + self.h / 2)
        out.append(f'<text x="{mid_x}" y="{bottom + 33}" text-anchor="middle" font-size="12">'
                   f'{escape(self.xa.label)}</text>')
        out.append(f'<text x="14" y="{mid_y}" text-anchor="middle" font-size="12" '
                   f'transform="rotate(-90 14 {mid_y})">{escape(self.ya.label)}</text>')
        return out

    def guide(self, g: Guide) -> str:
        (x1, y1), (x2, y2) = self.px(*g.start), self.px(*g.end)
        return (f'<line class="guide" x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{MUTED}" '
                f'stroke-width="1" stroke-dasharray="4 3"><title>{escape(g.label)}</title></line>')

    def series(self, s: Series, colour: str) -> str:
        runs: list[list[tuple[str, str]]] = [[]]
        for p in s.points:
            if _finite(p):
                runs[-1].append(self.px(*p))
            elif runs[-1]:
                runs.append([])
        d = " ".join(self._path(run, s.step) for run in runs if run)
        out = [f'<g class="series"><title>{escape(s.name)}</title>']
        if d:
            out.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="2" '
                       f'stroke-linejoin="round"></path>')
        if s.dots is not None:
            for p, r in zip(s.points, s.dots, strict=True):
                if _finite(p) and math.isfinite(r) and r > 0:
                    x, y = self.px(*p)
                    out.append(f'<circle cx="{x}" cy="{y}" r="{_num(r)}" fill="{colour}" '
                               f'fill-opacity="0.75" stroke="#ffffff" stroke-width="1"></circle>')
        out.append("</g>")
        return "".join(out)

    @staticmethod
    def _path(run: list[tuple[str, str]], step: bool) -> str:
        head = f"M{run[0][0]} {run[0][1]}"
        if step:
            return head + "".join(f" V{y} H{x}" for x, y in run[1:])
        return head + "".join(f" L{x} {y}" for x, y in run[1:])

    def marker(self, m: Marker, colour: str) -> str:
        if not _finite((m.x, m.y)):
            return ""
        x, y = self.px(m.x, m.y)
        anchor = "end" if float(x) > _LEFT + 0.7 * self.w else "start"
        dx = "-9" if anchor == "end" else "9"
        dy = "14" if float(y) < _TOP + 14 else "-7"
        tip = f"<title>{escape(m.detail or m.label)}</title>"
        return (f'<g class="marker">{tip}<circle cx="{x}" cy="{y}" r="5.5" fill="#ffffff" '
                f'stroke="{colour}" stroke-width="2.5"></circle><circle cx="{x}" cy="{y}" r="2" '
                f'fill="{INK}"></circle><text x="{x}" y="{y}" dx="{dx}" dy="{dy}" '
                f'text-anchor="{anchor}" font-weight="600">{escape(m.label)}</text></g>')


def _legend(series: Sequence[Series], guides: Sequence[Guide], markers: Sequence[Marker], *,
            top: int) -> list[str]:
    """One legend row per series, guide and distinct marker label (long names shortened, the
    full name kept as the row's tooltip)."""
    rows: list[tuple[str, str]] = []
    for i, s in enumerate(series):
        rows.append((s.name, f'<line x1="0" y1="0" x2="22" y2="0" stroke="{PALETTE[i]}" '
                             f'stroke-width="2"></line>'))
    for g in guides:
        rows.append((g.label, f'<line x1="0" y1="0" x2="22" y2="0" stroke="{MUTED}" '
                              f'stroke-dasharray="4 3"></line>'))
    if markers:
        colour = PALETTE[markers[0].series % len(PALETTE)]
        rows.append(("Operating point (threshold from validation)",
                     f'<circle cx="11" cy="0" r="5" fill="#ffffff" stroke="{colour}" '
                     f'stroke-width="2.5"></circle>'))
    out = []
    for k, (text, swatch) in enumerate(rows):
        y = top + k * _LEGEND_ROW + 4
        short = text if len(text) <= _LEGEND_CHARS else text[:_LEGEND_CHARS - 1] + "…"
        out.append(f'<g class="legend" transform="translate({_LEFT} {y})"><title>{escape(text)}</title>'
                   f'{swatch}<text x="30" y="0" dy="0.35em">{escape(short)}</text></g>')
    return out
