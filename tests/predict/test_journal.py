"""pipeline.predict.journal and case_store: what a killed predict run resumes from."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.predict.case_store import load_case, save_case
from pipeline.predict.journal import Journal, JournalMismatch

HEADER = {"model": "abc", "inputs": "def", "settings": {"chunk": 2, "thresholds": [0.25]}}

_row = st.one_of(
    st.fixed_dictionaries({"sample_id": st.from_regex(r"S[0-9a-f]{16}", fullmatch=True),
                           "predicted_label": st.sampled_from(["normal", "opacity"]),
                           "probability": st.floats(0, 1),
                           "probabilities": st.fixed_dictionaries({"normal": st.floats(0, 1)})}),
    st.fixed_dictionaries({"sample_id": st.just(""), "reason": st.text(max_size=30),
                           "code": st.sampled_from(["not_found", "duplicate"])}))


@settings(max_examples=30, deadline=None)
@given(chunks=st.lists(st.lists(_row, min_size=1, max_size=4), max_size=6), order=st.randoms())
def test_journal_round_trips_chunks_in_any_order(tmp_path_factory, chunks, order):
    path = tmp_path_factory.mktemp("j") / ".predict" / "journal.jsonl"
    numbered = [(k, [{**row, "position": 10 * k + i} for i, row in enumerate(rows)])
                for k, rows in enumerate(chunks)]
    order.shuffle(numbered)
    with Journal.open(path, HEADER) as journal:
        for k, rows in numbered:
            journal.append(k, rows)
        written = journal.rows
    with Journal.open(path, HEADER) as again:
        assert again.rows == written  # floats and text exactly
        assert set(again.chunks) == {k for k, _ in numbered}
        assert written == {r["position"]: r for _, rows in numbered for r in rows}


def test_a_torn_last_line_is_dropped_and_appending_continues(tmp_path):
    path = tmp_path / "journal.jsonl"
    with Journal.open(path, HEADER) as journal:
        journal.append(0, [{"position": 0, "sample_id": "S1", "reason": "x", "code": "y"}])
    with path.open("ab") as fh:  # killed in the middle of writing chunk 1
        fh.write(b'{"chunk": 1, "rows": [{"posi')
    with Journal.open(path, HEADER) as journal:
        assert set(journal.chunks) == {0}
        journal.append(1, [{"position": 2, "sample_id": "S2", "reason": "x", "code": "y"}])
    with Journal.open(path, HEADER) as journal:
        assert sorted(journal.rows) == [0, 2]
    lines = path.read_text().splitlines()  # a corrupted (not torn) line ends the journal too
    lines[1] = lines[1].replace('"S1"', '"S9"')
    path.write_text("\n".join(lines) + "\n")
    with Journal.open(path, HEADER) as journal:
        assert journal.chunks == {}


def test_another_model_or_setting_is_refused_unless_restarting(tmp_path):
    path = tmp_path / "out" / ".predict" / "journal.jsonl"
    with Journal.open(path, HEADER) as journal:
        journal.append(0, [{"position": 0, "sample_id": "S1", "reason": "x", "code": "y"}])
    other = {**HEADER, "model": "xyz", "settings": {"chunk": 2, "thresholds": [0.5]}}
    with pytest.raises(JournalMismatch, match=r"1 studies done\) made with a different model, settings: "
                                              r"rerun with the same .* --restart"):
        Journal.open(path, other)
    with Journal.open(path, other, restart=True) as journal:
        assert journal.chunks == {}
    with Journal.open(path, other) as journal:  # the new run's journal now
        assert journal.chunks == {}


def test_case_store_round_trip(tmp_path):
    from pipeline.report import CaseRecord
    from pipeline.report.case import Intensity

    rng = np.random.default_rng(0)
    case = CaseRecord(
        sample_id="S0123456789abcdef", split="new", true_label=None, predicted_label="opacity",
        probability=0.7123456789, image=rng.integers(0, 255, (5, 7), dtype=np.uint8),
        heatmap=rng.random((5, 7), dtype=np.float32),
        probabilities={"normal": 0.2876543211, "opacity": 0.7123456789},
        threshold=0.4, attributes={"Modality": "CR"}, method="Grad-CAM", spacing=(0.5, 0.25),
        intensity=Intensity(values=rng.integers(0, 4095, (5, 7), dtype=np.uint16), offset=0.0, scale=0.1,
                            unit="%", window=(50.0, 100.0), exact=False, presets={"lung": (1.0, 2.0)}),
        orientation=("L", "F"), label_heatmaps={"b|c": rng.random((5, 7)), "a": rng.random((5, 7))})
    back = load_case(save_case(tmp_path, case))
    for name in ("image", "heatmap"):
        np.testing.assert_array_equal(getattr(back, name), getattr(case, name))
        assert getattr(back, name).dtype == getattr(case, name).dtype
    assert back.mask is None and list(back.label_heatmaps) == ["b|c", "a"]
    np.testing.assert_array_equal(back.label_heatmaps["b|c"], case.label_heatmaps["b|c"])
    np.testing.assert_array_equal(back.intensity.values, case.intensity.values)
    shown = (back.intensity.window, back.intensity.presets, back.intensity.exact)
    assert shown == ((50.0, 100.0), {"lung": (1.0, 2.0)}, False)
    for name in ("sample_id", "probability", "probabilities", "threshold", "attributes", "spacing",
                 "orientation", "field_of_view", "true_label"):
        assert getattr(back, name) == getattr(case, name)
