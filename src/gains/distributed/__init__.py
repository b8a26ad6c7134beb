"""Dask as the engine beyond one process: ``gains predict --dask`` (``run``), its cluster (``cluster``) and its
worker tasks (``tasks``). Above ``gains.inference``; the CLI calls ``run.predict_files_dask``."""
