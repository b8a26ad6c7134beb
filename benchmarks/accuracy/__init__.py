"""The accuracy harness (``harness``) and the paired jobs built on it: ablation, sensitivity, tuning, compare_jobs."""
