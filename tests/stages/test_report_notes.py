"""The report's sentences about how the heatmap method was chosen and what the audit found."""

from __future__ import annotations

from pipeline.report.notes import explanation_notes

SELECTION = {"method": "layercam-fusion", "layer": "conv4_block2_out", "n_cases": 29, "n_masked": 29,
             "rule": "highest IoU among the candidates within one standard error (0.08) of the best "
                     "pointing game (0.79) on validation", "candidates": [{}, {}, {}]}


def _summary(warning: str | None) -> dict:
    part = {"share": 0.4, "chance": 0.05}
    return {"warning": warning, "n_flagged": 7 if warning else 0, "n_cases": 20,
            "flagged_regions": ["markers"] if warning else [], "border": part, "marker": part,
            "outside_body": part}


def test_the_choice_and_a_shortcut_warning_are_stated():
    notes = explanation_notes({"selection": SELECTION, "audit": {"summary": _summary(
        "The model may be reading markers, not anatomy")}}, None)
    assert any("LayerCAM (fused over several layers) at layer conv4_block2_out was chosen on the "
               "validation split (29 cases, 29 with lesion masks) among 3 candidates" in n for n in notes)
    assert any(n.startswith("Shortcut warning: The model may be reading markers") and "7 of 20" in n
               for n in notes)


def test_a_clean_audit_and_the_body_restricted_localization_are_stated():
    notes = explanation_notes({"audit": {"summary": _summary(None)}},
                              {"pointing_game": 0.6, "iou": 0.25, "heat_outside_body": 0.2})
    assert any("no sign that the heatmaps rest on" in n and "border 40% (chance 5%)" in n for n in notes)
    assert any("Within the body" in n and "pointing game 0.60" in n and "20%" in n for n in notes)


def test_nothing_is_said_about_what_was_not_computed():
    assert explanation_notes({}, None) == []
