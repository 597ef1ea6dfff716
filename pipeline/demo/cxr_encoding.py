"""How each file of the chest X-ray demo (:mod:`pipeline.demo.cxr`) stores its image.

Each image is rendered in a physical intensity (see :mod:`pipeline.demo.xray_phantom`), then
converted to stored values by that file's :class:`Encoding`: photometric interpretation, bit
depth (with garbage in unused high bits for some 12-bit files), signedness, rescale
slope/intercept (including negative slopes), window / VOI LUT / SIGMOID, transfer syntax,
multi-frame and RGB secondary captures. A correct reader (stored -> modality LUT -> VOI ->
MONOCHROME1 inversion) sees look-alike images whatever the encoding; a reader that skips a step
sees visibly wrong ones.

:func:`draw_encoding` draws a file's encoding (:data:`FORCED` puts every pitfall on the first
images) and :func:`encode_pixels` turns physical frames into the stored values and header
arguments of :func:`pipeline.demo.dicom_writer.make_image_dataset`.

Negative-slope files never carry a window: ``pydicom.pixels.apply_voi_lut`` (3.0) derives the
window's output range from the rescaled stored range, which a negative slope turns upside down,
so pydicom would return the image inverted although the file is valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.demo import dicom_writer as dw

#: Physical intensity mapped to the top of each file's used stored range.
NOMINAL_MAX = 1.25

_BITS = {"8": (8, 8, False), "12": (16, 12, False), "14": (16, 14, False),
         "16": (16, 16, False), "16s": (16, 16, True)}
_UNCOMPRESSED = (dw.EXPLICIT_VR_LITTLE_ENDIAN, dw.IMPLICIT_VR_LITTLE_ENDIAN)
_TS_CHOICES = (dw.EXPLICIT_VR_LITTLE_ENDIAN, dw.IMPLICIT_VR_LITTLE_ENDIAN, dw.RLE_LOSSLESS,
               dw.JPEG_2000_LOSSLESS, dw.JPEG_2000, dw.JPEG_LS_LOSSLESS, dw.JPEG_BASELINE_8BIT)
_TS_PROBS = (0.52, 0.14, 0.07, 0.08, 0.05, 0.08, 0.06)


@dataclass(frozen=True)
class Encoding:
    """How one file stores its image.

    Attributes:
        modality: ``"CR"`` or ``"DX"`` (with the matching SOP class; RGB files are Secondary
            Capture).
        photometric: ``"MONOCHROME1"``, ``"MONOCHROME2"`` or ``"RGB"``.
        bits: Key of the bit layout: ``"8"``, ``"12"``, ``"14"``, ``"16"``, ``"16s"``
            (signed 16-bit with a rescale intercept shifting back).
        garbage: Random bits in the unused high bits (12-bit, uncompressed only).
        rescale: ``"none"`` (absent), ``"positive"`` or ``"negative"`` slope.
        voi: ``"none"``, ``"window"``, ``"lut"`` (VOI LUT Sequence) or ``"sigmoid"``.
        transfer_syntax: Transfer Syntax UID.
        frames: Number of frames (1-3).
    """

    modality: str
    photometric: str
    bits: str
    garbage: bool
    rescale: str
    voi: str
    transfer_syntax: str
    frames: int


#: Encodings forced onto the first images (in shuffled order) so even a tiny demo shows every
#: pitfall; the rest are drawn with realistic proportions.
FORCED: tuple[dict[str, Any], ...] = (
    {"photometric": "MONOCHROME1", "voi": "window"},
    {"rescale": "negative", "bits": "12", "transfer_syntax": dw.EXPLICIT_VR_LITTLE_ENDIAN},
    {"bits": "12", "garbage": True, "transfer_syntax": dw.EXPLICIT_VR_LITTLE_ENDIAN},
    {"bits": "16s", "transfer_syntax": dw.IMPLICIT_VR_LITTLE_ENDIAN},
    {"voi": "lut", "bits": "12"},
    {"voi": "sigmoid", "photometric": "MONOCHROME1"},
    {"transfer_syntax": dw.JPEG_2000_LOSSLESS},
    {"transfer_syntax": dw.JPEG_2000},
    {"transfer_syntax": dw.JPEG_LS_LOSSLESS, "photometric": "MONOCHROME1"},
    {"transfer_syntax": dw.RLE_LOSSLESS},
    {"transfer_syntax": dw.JPEG_BASELINE_8BIT, "bits": "8"},
    {"frames": 3},
    {"photometric": "RGB", "transfer_syntax": dw.EXPLICIT_VR_LITTLE_ENDIAN},
)


def draw_encoding(rng: np.random.Generator, force: dict[str, Any] | None = None) -> Encoding:
    """Draw a file encoding with realistic proportions, then apply ``force`` and constraints.

    Constraints: JPEG Baseline only for 8-bit; garbage bits only for 12-bit uncompressed; RGB
    files are 8-bit, unrescaled, without VOI and never JPEG 2000/JPEG-LS; signed files always
    carry a rescale; negative-slope files carry no window; a VOI LUT is only used with an
    identity (or absent) rescale so it is indexed by integers and covers the data.
    """
    drawn: dict[str, Any] = {
        "modality": "CR" if rng.random() < 0.4 else "DX",
        "photometric": choice(rng, ("MONOCHROME2", "MONOCHROME1", "RGB"), (0.68, 0.3, 0.02)),
        "bits": choice(rng, ("8", "12", "14", "16", "16s"), (0.14, 0.45, 0.15, 0.15, 0.11)),
        "garbage": rng.random() < 0.45,  # ~1/3 of all 12-bit files (compressed ones can't)
        "rescale": choice(rng, ("none", "positive", "negative"), (0.45, 0.5, 0.05)),
        "voi": choice(rng, ("none", "window", "lut", "sigmoid"), (0.45, 0.47, 0.04, 0.04)),
        "transfer_syntax": choice(rng, _TS_CHOICES, _TS_PROBS),
        "frames": int(choice(rng, (1, 2, 3), (0.97, 0.015, 0.015))),
    }
    drawn.update(force or {})
    if drawn["transfer_syntax"] == dw.JPEG_BASELINE_8BIT:
        drawn["bits"] = "8"
    if drawn["photometric"] == "RGB":
        drawn.update(bits="8", rescale="none", voi="none")
        if drawn["transfer_syntax"] not in (*_UNCOMPRESSED, dw.RLE_LOSSLESS,
                                            dw.JPEG_BASELINE_8BIT):
            drawn["transfer_syntax"] = dw.EXPLICIT_VR_LITTLE_ENDIAN
    if drawn["bits"] == "16s":
        drawn["rescale"] = "positive"
    if drawn["rescale"] == "negative":
        drawn["voi"] = "none"  # see the module docstring: pydicom windows these inverted
    drawn["garbage"] = bool(drawn["garbage"] and drawn["bits"] == "12"
                            and drawn["transfer_syntax"] in _UNCOMPRESSED)
    return Encoding(**drawn)


def choice(rng: np.random.Generator, options: tuple[Any, ...], probs: tuple[float, ...]) -> Any:
    """One of ``options``, drawn with the weights ``probs`` (normalised to sum 1)."""
    return options[int(rng.choice(len(options), p=np.asarray(probs) / sum(probs)))]


def encode_pixels(physical: np.ndarray, enc: Encoding,
                  rng: np.random.Generator) -> dict[str, Any]:
    """Physical frames ``(F, rows, cols)`` -> keyword arguments of ``make_image_dataset``.

    Stored values use a random sub-range of the file's bit depth; MONOCHROME1 stores the
    inverted image; a negative slope stores it flipped so the rescaled values are right.
    """
    t = np.clip(physical / NOMINAL_MAX, 0.0, 1.0)
    if enc.photometric == "RGB":
        return {"pixels": _screenshot(t[0] if enc.frames == 1 else t), "photometric": "RGB",
                "bits_allocated": 8, "sop_class_uid": dw.SECONDARY_CAPTURE_STORAGE}
    allocated, stored_bits, signed = _BITS[enc.bits]
    if enc.photometric == "MONOCHROME1":
        t = 1.0 - t
    s_lo, s_hi = _stored_range(enc.bits, rng)
    slope, intercept = _rescale(enc, s_lo, s_hi, rng)
    frac = t if slope > 0 else 1.0 - t  # a negative slope stores the data flipped
    stored = np.rint(s_lo + frac * (s_hi - s_lo)).astype(np.int32)
    v_ends = sorted((slope * s_lo + intercept, slope * s_hi + intercept))
    kwargs: dict[str, Any] = {
        "pixels": stored[0] if enc.frames == 1 else stored,
        "photometric": enc.photometric, "bits_allocated": allocated,
        "bits_stored": stored_bits, "signed": signed,
        "rescale": None if enc.rescale == "none" else (slope, intercept),
        "unused_bits_rng": rng if enc.garbage else None,
        "sop_class_uid": dw.CR_IMAGE_STORAGE if enc.modality == "CR" else dw.DX_IMAGE_STORAGE,
    }
    kwargs.update(_voi(enc, v_ends, rng))
    return kwargs


def _stored_range(bits: str, rng: np.random.Generator) -> tuple[int, int]:
    """The part of the stored range this file uses (detectors rarely fill all 16 bits)."""
    if bits == "16s":
        return -int(rng.integers(1500, 16000)), int(rng.integers(1500, 16000))
    top = 2 ** _BITS[bits][1] - 1
    hi_frac = rng.uniform(0.35, 0.9) if bits == "16" else rng.uniform(0.85, 1.0)
    return int(rng.uniform(0.0, 0.06) * top), int(hi_frac * top)


def _rescale(enc: Encoding, s_lo: int, s_hi: int,
             rng: np.random.Generator) -> tuple[float, float]:
    if enc.bits == "16s":
        return 1.0, float(-s_lo + int(rng.integers(0, 100)))
    if enc.rescale == "negative":
        return -1.0, float(s_hi)
    if enc.rescale == "none":
        return 1.0, 0.0
    if enc.voi == "lut":
        return 1.0, 0.0  # integer rescaled values: a VOI LUT is indexed by them
    slope = float(choice(rng, (0.25, 0.5, 1.0, 2.0, 4.0), (1, 2, 3, 2, 1)))
    return slope, float(rng.integers(-1024, 1025))


def _voi(enc: Encoding, v_ends: list[float], rng: np.random.Generator) -> dict[str, Any]:
    """Window / VOI LUT / SIGMOID in rescaled units covering the used data range."""
    lo, hi = v_ends
    center = lo + (hi - lo) * rng.uniform(0.42, 0.55)
    width = (hi - lo) * rng.uniform(0.8, 1.05)
    if enc.voi == "window":
        return {"window": (round(center, 1), round(max(width, 2.0), 1))}
    if enc.voi == "sigmoid":
        return {"window": (round(center, 1), round(max(width * 0.6, 2.0), 1)),
                "extra_voi": {"VOILUTFunction": "SIGMOID"}}
    if enc.voi == "lut":
        first = max(0, int(np.floor(lo)))
        n = min(65536, int(np.ceil(hi)) - first + 1)
        x = np.linspace(-1.0, 1.0, n)
        curve = 0.5 + 0.5 * np.tanh(2.0 * x) / np.tanh(2.0)
        return {"voi_lut": np.rint(curve * 65535).astype(np.uint16),
                "voi_lut_first_mapped": first}
    return {}


def _screenshot(t: np.ndarray) -> np.ndarray:
    """An RGB "screen capture" of the displayed chest: slight tint, border, side marker."""
    g = np.rint(t * 255.0).astype(np.float32)
    rgb = np.stack([g, g * 0.97 + 4.0, g * 0.92 + 10.0], axis=-1)
    rgb[..., :2, :, :] = rgb[..., -2:, :, :] = rgb[..., :, :2, :] = rgb[..., :, -2:, :] = 90.0
    rgb[..., 6:16, 6:12, :] = 250.0  # the burnt-in "R" marker of a screenshot
    return np.clip(rgb, 0, 255).astype(np.uint8)
