"""Training engine: device and distributed helpers, checkpoints, the training loop."""
