"""gains: gradient-anomaly-aware instance segmentation (GAInS) for touching, crossing and overlapping objects."""

__version__ = "0.1.0"
