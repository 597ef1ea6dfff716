"""Decoder plugins side by side, per transfer syntax, on the cxr demo's compressed files.

Prints the total decode time of each installed pydicom plugin (best of 3 per file) and of
pydicom's default choice, so ``pipeline.io.dicom_pixels.PREFERRED_PLUGINS`` can be checked::

    python bench/decoders.py [--patients 100]

The demo writes no JPEG Lossless files (pydicom cannot encode them), which are common in real
CR/DX archives; the bench transcodes some of the demo's uncompressed radiographs to JPEG Lossless
(Process 14 and SV1) with GDCM, so the GDCM decoder (the default) and the opt-in GPL
``pylibjpeg-libjpeg`` (``pip install -e ".[jpeg-gpl]"``) can be compared when both are installed.
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
    parser.add_argument("--transcode", type=int, default=10,
                        help="uncompressed radiographs transcoded to JPEG Extended/Lossless with GDCM")
    args = parser.parse_args()

    import pydicom

    from pipeline.demo import generate_demo
    from pipeline.io.dicom_pixels import PREFERRED_PLUGINS

    totals: dict[str, dict[str, float]] = collections.defaultdict(lambda: collections.defaultdict(float))
    counts: collections.Counter[str] = collections.Counter()
    extra: list[Path] = []
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
                if counts["transcoded"] < args.transcode and ds.get("BitsAllocated") == 16:
                    counts["transcoded"] += 1
                    extra.extend(_transcode(path, Path(tmp) / "jpeg"))
                continue
            _time_plugins(ds, totals, counts)
        for path in extra:
            _time_plugins(pydicom.dcmread(path), totals, counts)
    print(f"installed: pylibjpeg-libjpeg (GPL-3.0) {'yes' if _has_libjpeg() else 'no'}")
    for ts, by_plugin in totals.items():
        print(f"{ts.name} ({counts[ts]} files), preferred: {PREFERRED_PLUGINS.get(str(ts), ())}")
        for plugin, seconds in sorted(by_plugin.items(), key=lambda kv: kv[1]):
            print(f"    {plugin:20s} {1000 * seconds / counts[ts]:7.2f} ms/file")


def _time_plugins(ds, totals, counts) -> None:
    """Add the best-of-3 decode time of every installed plugin (and pydicom's choice) for ``ds``."""
    from pydicom.pixels.decoders.base import get_decoder

    ts = ds.file_meta.TransferSyntaxUID
    decoder = get_decoder(ts)
    counts[ts] += 1
    for plugin in (*decoder.available_plugins, ""):
        try:
            totals[ts][plugin or "(pydicom default)"] += best_of(
                lambda d=decoder, s=ds, p=plugin: d.as_array(s, decoding_plugin=p, as_rgb=True))
        except Exception:
            totals[ts][plugin or "(pydicom default)"] = float("nan")


def _has_libjpeg() -> bool:
    try:
        import libjpeg  # noqa: F401  (pylibjpeg-libjpeg)
    except ImportError:
        return False
    return True


def _transcode(path: Path, out_dir: Path) -> list[Path]:
    """``path`` re-encoded with GDCM as JPEG Lossless (Process 14) and Lossless SV1. (GDCM's
    JPEG Extended output from these 12-bit files is rejected by every decoder, GDCM included,
    so that syntax is not benchmarked here.)"""
    import gdcm

    out_dir.mkdir(parents=True, exist_ok=True)
    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    if not reader.Read():
        return []
    written = []
    for syntax in (gdcm.TransferSyntax.JPEGLosslessProcess14, gdcm.TransferSyntax.JPEGLosslessProcess14_1):
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(syntax))
        change.SetInput(reader.GetImage())
        if not change.Change():
            continue
        writer = gdcm.ImageWriter()
        target = out_dir / f"{path.stem}_{int(syntax)}.dcm"
        writer.SetFileName(str(target))
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        if writer.Write():
            written.append(target)
    return written


if __name__ == "__main__":
    main()
