"""Exported models: the inference graph of a gains model as a TorchScript or ONNX file, with a sidecar JSON
(``FILE.json``, inside an ONNX file too) that holds what a host does around it. See ``graph`` (what is inside),
``host`` (what is not, in Python), ``full`` (an ONNX graph with all of it inside: raw pixels in, image-size
results out), ``torchscript`` and ``onnx`` (the two formats) and ``export_run`` (``gains export-model``)."""
