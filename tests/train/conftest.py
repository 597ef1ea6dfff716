from tests.train.test_trainer import tiny_data  # noqa: F401  (shared session fixture)
