"""The folder scan behind the quarantine's ``unlisted`` rows: what ``rglob`` + ``is_file`` listed,
in the same order, links included."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ingest.run import folder_files

#: Names that sort differently as strings and as path parts ("a-b" < "a/b" < "a0" as strings).
NAMES = st.sampled_from(["a", "a-b", "a0", "b", "A", "a.dcm", "é", "z z", "a b"])


def _reference(root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in sorted(p for p in root.rglob("*") if p.is_file())]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(NAMES, min_size=1, max_size=3), min_size=1, max_size=12))
def test_same_files_in_the_same_order_as_rglob(tmp_path_factory, paths):
    root = tmp_path_factory.mktemp("tree")
    for parts in paths:
        target = root.joinpath(*parts)
        if any(p.is_file() for p in [*target.parents, target] if p != root and p.is_relative_to(root)):
            continue  # a file already sits where a folder would go
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"x")
    assert folder_files(root) == _reference(root)


def test_links_count_as_rglob_counts_them(tmp_path):
    root = tmp_path / "ds"
    (root / "series").mkdir(parents=True)
    (root / "series" / "1.dcm").write_bytes(b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.dcm").write_bytes(b"x")
    os.symlink(outside / "secret.dcm", root / "linked.dcm")  # a link to a file: a file
    os.symlink(outside, root / "linked_folder")  # a linked folder: not entered
    os.symlink(tmp_path / "gone.dcm", root / "broken.dcm")  # a broken link: no file
    assert folder_files(root) == _reference(root) == ["linked.dcm", "series/1.dcm"]
