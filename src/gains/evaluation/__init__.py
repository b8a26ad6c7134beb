"""Evaluation: metric maths (numpy), the COCO adapter, and the evaluator that runs a model."""
