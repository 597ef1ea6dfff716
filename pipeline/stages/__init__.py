"""Stage entry points: one thin module per stage, each with ``main(args)``.

``demo``, ``ingest``, ``train``, ``explain``, ``evaluate``, ``report``, ``validate`` (the DVC
stages), plus ``predict`` and ``export-dicom`` (in ``report``). A stage module loads params, calls
its library (:mod:`pipeline.ingest`, :mod:`pipeline.train`, :mod:`pipeline.explain`,
:mod:`pipeline.evaluate`, :mod:`pipeline.report`, :mod:`pipeline.validate`) and writes its
outputs. Libraries never import this package, and stages do not import each other: what they
share lives in the libraries.
"""
