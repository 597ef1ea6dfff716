"""Image readers. One module per format, one contract: ``(array, metadata)``.

- 2D images (:mod:`pipeline.io.dicom_image`): float32 ``(H, W)`` in [0, 1] after the modality LUT,
  VOI LUT/window and MONOCHROME1 inversion.
- 3D volumes (:mod:`pipeline.io.series`, :mod:`pipeline.io.nifti`): float32 ``(D, H, W)`` in the
  file's physical units (Hounsfield units for CT), reoriented so that increasing D, H and W
  point to patient Superior, Posterior and Left (axial slices in radiological display
  convention), with ``metadata["spacing"]`` in millimetres as ``(D, H, W)``.

Readers raise :class:`pipeline.io.errors.InputRejected` for unusable input. Its message is a
single line that never contains header values (no PHI).
"""
