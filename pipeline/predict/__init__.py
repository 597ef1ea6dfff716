"""Predict, the library behind ``python -m pipeline predict``: a trained model on new,
unlabeled studies -> ``predictions.csv``, ``rejected.csv`` and the same case report.

Each input goes through the ingest preprocessing recorded in the model card, then the model
and Grad-CAM, with the threshold, test-time augmentation and explanation settings the pipeline
validated for that model.

- :mod:`pipeline.predict.inputs`: files, folders (recursive) and CSVs of paths -> studies.
- :mod:`pipeline.predict.worker`: one study hashed and decoded, in the decoding pool.
- :mod:`pipeline.predict.predictor`: the model and its validated settings.
- :mod:`pipeline.predict.pages`: a study's heatmaps and case record.
- :mod:`pipeline.predict.journal`, :mod:`pipeline.predict.case_store`: what a killed run
  resumes from.
- :mod:`pipeline.predict.run`: orchestration; :mod:`pipeline.predict.outputs`: the folder.
"""

from pipeline.predict.journal import JournalMismatch
from pipeline.predict.outputs import PREDICTIONS, REJECTED
from pipeline.predict.predictor import NO_HEATMAPS
from pipeline.predict.run import Prediction, run_predict
from pipeline.predict.worker import study_id

__all__ = ["NO_HEATMAPS", "PREDICTIONS", "REJECTED", "JournalMismatch", "Prediction", "run_predict",
           "study_id"]
