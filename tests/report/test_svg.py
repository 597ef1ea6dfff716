"""SVG charts: well-formed, accessible, every text escaped, data mapped onto the axes."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import pytest

from pipeline.report.svg import PALETTE, Axis, Guide, Marker, Series, line_chart

HOSTILE = '<script>alert(1)</script>"&\'<img src=x onerror=alert(2)>'


def chart(**overrides) -> str:
    kwargs = dict(chart_id="fig-t", title="ROC curve", description="AUROC 0.9.",
                  x_axis=Axis("False positive rate"), y_axis=Axis("True positive rate"),
                  series=[Series("opacity", ((0.0, 0.0), (0.2, 0.8), (1.0, 1.0)))],
                  guides=[Guide((0.0, 0.0), (1.0, 1.0), "Chance")],
                  markers=[Marker(0.2, 0.8, "t = 0.50", "threshold 0.500")])
    kwargs.update(overrides)
    return line_chart(**kwargs)


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # also proves the markup is well-formed


def texts(root: ET.Element) -> list[str]:
    return ["".join(e.itertext()) for e in root.iter("text")]


def test_accessible_image_with_title_desc_ticks_and_axis_labels() -> None:
    root = parse(chart())
    assert root.tag == "svg" and root.get("role") == "img" and root.get("id") == "fig-t"
    title, desc = root.find("title"), root.find("desc")
    assert title.text == "ROC curve" and desc.text == "AUROC 0.9."
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    shown = texts(root)
    for tick in ("0", "0.2", "0.4", "0.6", "0.8", "1"):
        assert shown.count(tick) == 2, tick  # once per axis
    assert "False positive rate" in shown and "True positive rate" in shown
    assert {"opacity", "Chance", "t = 0.50"} <= set(shown)
    assert any(t.startswith("Operating point") for t in shown)  # legend entry of the marker
    assert root.get("viewBox").startswith("0 0 360 ")


def test_every_text_is_escaped() -> None:
    svg = chart(title=HOSTILE, description=HOSTILE, x_axis=Axis(HOSTILE), y_axis=Axis(HOSTILE),
                series=[Series(HOSTILE, ((0.0, 0.0), (1.0, 1.0)))],
                guides=[Guide((0, 0), (1, 1), HOSTILE)],
                markers=[Marker(0.5, 0.5, HOSTILE, HOSTILE)])
    assert "<script" not in svg and "<img" not in svg
    root = parse(svg)
    assert root.find("title").text == HOSTILE  # the reader sees the text, not markup
    assert all(e.tag in {"svg", "title", "desc", "rect", "line", "text", "g", "path", "circle"}
               for e in root.iter())
    assert all(not k.startswith("on") and k != "style" for e in root.iter() for k in e.attrib)


def test_no_urls_styles_or_namespaces_that_the_csp_or_the_offline_rule_forbid() -> None:
    svg = chart(series=[Series("a", ((0, 0), (1, 1)), dots=(3.0, 4.0))])
    assert not re.search(r"(?i)url\(|https?://|xmlns|style=|<script|href", svg)


def test_points_map_onto_the_plot_area_and_are_clamped() -> None:
    root = parse(chart(x_axis=Axis("x", 0.0, 2.0, (0.0, 1.0, 2.0)),
                       series=[Series("s", ((0.0, 0.0), (2.0, 1.0), (5.0, -3.0)))], markers=[],
                       guides=[]))
    frame = root.find("rect")
    x0, y0 = float(frame.get("x")), float(frame.get("y"))
    w, h = float(frame.get("width")), float(frame.get("height"))
    path = root.find("g/path").get("d")
    coords = [tuple(map(float, pair)) for pair in re.findall(r"([\d.]+) ([\d.]+)", path)]
    assert coords[0] == pytest.approx((x0, y0 + h), abs=0.06)  # (0, 0): bottom left
    assert coords[1] == pytest.approx((x0 + w, y0), abs=0.06)  # (2, 1): top right
    assert coords[2] == pytest.approx((x0 + w, y0 + h), abs=0.06)  # (5, -3) clamped to the frame


def test_marker_is_drawn_at_its_point_in_its_series_colour() -> None:
    root = parse(chart(series=[Series("a", ((0, 0), (1, 1))), Series("b", ((0, 0), (1, 1)))],
                       markers=[Marker(0.25, 0.5, "t", "detail", series=1)], guides=[]))
    frame = root.find("rect")
    x0, y0 = float(frame.get("x")), float(frame.get("y"))
    w, h = float(frame.get("width")), float(frame.get("height"))
    (marker,) = [g for g in root.iter("g") if g.get("class") == "marker"]
    ring = marker.find("circle")
    assert float(ring.get("cx")) == pytest.approx(x0 + 0.25 * w, abs=0.06)
    assert float(ring.get("cy")) == pytest.approx(y0 + 0.5 * h, abs=0.06)
    assert ring.get("stroke") == PALETTE[1]
    assert marker.find("title").text == "detail"


def test_step_series_non_finite_gaps_and_dots() -> None:
    root = parse(chart(series=[Series("pr", ((0.0, 1.0), (0.5, 0.8), (math.nan, 0.1), (0.7, 0.6),
                                              (1.0, 0.4)), step=True, dots=(1, 2, 3, 4, 0))],
                       markers=[], guides=[]))
    d = root.find("g/path").get("d")
    assert d.count("M") == 2  # the NaN point breaks the line
    assert " V" in d and " H" in d and " L" not in d
    circles = [c for c in root.iter("circle")]
    assert [float(c.get("r")) for c in circles] == [1.0, 2.0, 4.0]  # none for NaN or radius 0


def test_long_legend_names_are_shortened_with_the_full_name_as_tooltip() -> None:
    name = "a very long class name " * 4
    root = parse(chart(series=[Series(name, ((0, 0), (1, 1)))], markers=[], guides=[]))
    (legend,) = [g for g in root.iter("g") if g.get("class") == "legend"]
    assert legend.find("title").text == name
    assert legend.find("text").text.endswith("…") and len(legend.find("text").text) < len(name)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"chart_id": "1bad id"}, "chart_id must be"),
    ({"chart_id": 'x" onload="y'}, "chart_id must be"),
    ({"x_axis": Axis("x", 1.0, 1.0)}, "x_axis needs finite low < high"),
    ({"series": [Series(str(i), ((0, 0),)) for i in range(len(PALETTE) + 1)]}, "at most"),
    ({"series": [Series("a", ((0, 0), (1, 1)), dots=(1.0,))]}, "one dot radius per point"),
    ({"width": 50}, "chart too small"),
])
def test_bad_arguments_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        chart(**overrides)
