"""Dataset-level logic: labels.csv parsing, patient-level splits, the array store."""
