"""Exported models: the inference graph of a gains model as a TorchScript or ONNX file, with a sidecar JSON
(``FILE.json``) that holds what a host does around it. See ``graph`` (what is inside), ``host`` (what is not,
in Python), ``torchscript`` and ``onnx`` (the two formats) and ``export_run`` (``gains export-model``)."""
