"""Preprocessing: intensity windowing and geometry (resize/pad, resample, crop) as pure functions."""
