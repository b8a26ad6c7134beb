"""Release and machine tooling: reproducing and packing the shipped models (``zoo``), the GPU-machine scripts."""
