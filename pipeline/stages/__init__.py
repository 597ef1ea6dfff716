"""Stage orchestration after training: explain -> evaluate -> report, and ``predict``.

Each module wires params, files and the libraries (:mod:`pipeline.explain`,
:mod:`pipeline.evaluate`, :mod:`pipeline.report`) together; the CLI calls one function per stage.
"""
