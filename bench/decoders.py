"""Decoder plugins side by side, per transfer syntax, on the cxr demo's compressed files.

Prints the total decode time of each installed pydicom plugin (best of 3 per file) and of
pydicom's default choice, so ``pipeline.io.dicom.PREFERRED_PLUGINS`` can be checked::

    python bench/decoders.py [--patients 100]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def best_of(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100, help="demo size (patients)")
    args = parser.parse_args()

    import pydicom
    from pydicom.pixels.decoders.base import get_decoder

    from pipeline.demo import generate_demo
    from pipeline.io.dicom import PREFERRED_PLUGINS

    totals: dict[str, dict[str, float]] = collections.defaultdict(lambda: collections.defaultdict(float))
    counts: collections.Counter[str] = collections.Counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cxr"
        generate_demo("cxr", folder, seed=0, n_patients=args.patients)
        for path in sorted(folder.rglob("*.dcm")):
            try:
                ds = pydicom.dcmread(path)
                ts = ds.file_meta.TransferSyntaxUID
            except Exception:  # the demo's deliberately broken files
                continue
            if not ts.is_compressed:
                continue
            decoder = get_decoder(ts)
            counts[ts] += 1
            for plugin in (*decoder.available_plugins, ""):
                try:
                    totals[ts][plugin or "(pydicom default)"] += best_of(
                        lambda d=decoder, s=ds, p=plugin: d.as_array(s, decoding_plugin=p, as_rgb=True))
                except Exception:
                    totals[ts][plugin or "(pydicom default)"] = float("nan")
    for ts, by_plugin in totals.items():
        print(f"{ts.name} ({counts[ts]} files), preferred: {PREFERRED_PLUGINS.get(str(ts), ())}")
        for plugin, seconds in sorted(by_plugin.items(), key=lambda kv: kv[1]):
            print(f"    {plugin:20s} {1000 * seconds / counts[ts]:7.2f} ms/file")


if __name__ == "__main__":
    main()
