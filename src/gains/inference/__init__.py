"""Inference: loading trained models, predicting (tiled for large images) and writing the outputs."""
