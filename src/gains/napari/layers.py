"""napari layers from plain arrays, with no napari or Qt import (testable without a viewer).

A layer is napari's "layer data tuple" ``(data, kwargs, layer_type)``, the form readers return and
``viewer.add_<layer_type>(data, **kwargs)`` takes. Instances become Labels layers, not Shapes outlines:
a Labels layer keeps every pixel of a mask exactly (holes, thin parts), can be edited with napari's
paint tools and exported as a label image, while polygon outlines would need contour tracing that loses
pixels and grows slow with thousands of objects. A label image holds one value per pixel, so overlapping
instances are split into the fewest layers in which none overlap (``gains.formats.labels.label_layers``);
instance k (score order) has label value k + 1 in whichever layer it lands, so values are unique across
layers, and each layer's ``features`` table holds its own instances: ``index`` (the label value, as napari
needs) and the columns of ``gains predict --format csv`` (``gains.formats.measurements.measure``: id, category,
score, area, centroid, bbox, shape, intensities where the pixels are given, overlaps, touches).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gains.core.masks import Instance
from gains.formats.ga import ga_image
from gains.formats.labels import label_layers
from gains.formats.measurements import measure

LayerData = tuple[Any, dict[str, Any], str]


def image_layer(pixels: np.ndarray, name: str) -> LayerData:
    """The image: (H, W) grey, (H, W, 3|4) RGB(A), or (H, W, C) other channels split into one layer each."""
    kwargs: dict[str, Any] = {"name": name}
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
        kwargs["rgb"] = True
    elif pixels.ndim == 3:
        kwargs["channel_axis"] = 2
        kwargs["name"] = [f"{name} [{c}]" for c in range(pixels.shape[-1])]
    return pixels, kwargs, "image"


def layer_of_instances(instances: list[Instance], layers: list[np.ndarray]) -> list[int]:
    """Which of ``layers`` (from ``label_layers``) holds each instance: the layer with value k + 1 at the
    instance's first mask pixel."""
    found = []
    for k, inst in enumerate(instances):
        m = inst.mask
        r, c = np.argwhere(m.mask)[0]
        found.append(next(j for j, layer in enumerate(layers) if layer[m.y0 + r, m.x0 + c] == k + 1))
    return found


def instance_layers(instances: list[Instance], height: int, width: int, categories: list[dict[str, Any]],
                    name: str, scores: bool = True, pixels: np.ndarray | None = None) -> list[LayerData]:
    """Labels layers of (possibly overlapping) instances, each with its features table (module docstring).

    Args:
        instances: by descending score (as a ``Predictor`` returns them); mask crops in image pixels.
        categories: [{id, name}] to name ``category_id``s (unknown ids are named by their number).
        name: layer name stem: ``"<name> instances"``, or ``"<name> instances <k>"`` for k = 0, 1, ...
            when overlaps need more than one layer. Each layer's ``metadata["gains_categories"]`` keeps
            ``categories``, so the training-set writer can map the ``category`` column back to ids.
        scores: False for ground truth, which has no score column.
        pixels: the image, (H, W) or (H, W, C), for the intensity columns; None: none.
    """
    table = measure(instances, categories, pixels=pixels, scored=scores)
    arrays = label_layers(instances, height, width)
    where = layer_of_instances(instances, arrays)
    out = []
    for j, array in enumerate(arrays):
        members = [k for k, w in enumerate(where) if w == j]
        features: dict[str, Any] = {"index": np.array([k + 1 for k in members], dtype=np.int64)}
        for column, values in table.items():
            features[column] = values[members] if isinstance(values, np.ndarray) else [values[k] for k in members]
        label = f"{name} instances" if len(arrays) == 1 else f"{name} instances {j}"
        out.append((array, {"name": label, "features": features, "opacity": 0.5,
                            "metadata": {"gains_categories": [dict(c) for c in categories]}}, "labels"))
    return out


def ga_contrast(ga: np.ndarray) -> list[float]:
    """Contrast limits [low, high] that show where instances meet, not whole boxes.

    A model predicts a GA map over each instance's box, and most of a box sits a little above 1 (the ``nuclei``
    model gives 1.00-1.15), so limits of [1, max] paint every detection as a bright rectangle. ``low`` is the
    median of the values above 1 and ``high`` their 99.9th percentile: the upper half, where neighbours' fields
    conflict, stays visible. All values 1 (no anomaly): [1, 2].
    """
    above = ga[ga > 1.0]
    if not above.size:
        return [1.0, 2.0]
    low, high = (float(v) for v in np.percentile(above, [50.0, 99.9]))
    return [low, high] if high > low else [1.0, float(above.max())]


def ga_layer(ga: np.ndarray, name: str) -> LayerData:
    """The GA map (float32 (H, W), 1 = no anomaly) as an additive inferno Image layer named ``"<name> GA"``,
    hidden at first (it is an aid to read contacts, not the result) with ``ga_contrast``'s limits."""
    kwargs = {"name": f"{name} GA", "colormap": "inferno", "blending": "additive", "visible": False,
              "contrast_limits": ga_contrast(ga)}
    return ga, kwargs, "image"


def result_layers(pixels: np.ndarray | None, instances: list[Instance], categories: list[dict[str, Any]],
                  name: str, height: int, width: int, ga: np.ndarray | None = None, scores: bool = True,
                  with_image: bool = True) -> list[LayerData]:
    """Image (when ``pixels`` is given and ``with_image``), instance Labels layers (their intensity features from
    ``pixels`` when it is (height, width[, C])) and GA map (when any) of one image.

    ``ga`` defaults to the per-pixel maximum of the instances' predicted GA maps (``gains.formats.ga.ga_image``).
    ``with_image`` False: the image is in the viewer already (the widget).
    """
    out = [image_layer(pixels, name)] if pixels is not None and with_image else []
    known = pixels is not None and pixels.shape[:2] == (height, width)  # else not the image predicted: no intensities
    out += instance_layers(instances, height, width, categories, name, scores=scores, pixels=pixels if known else None)
    if ga is None:
        ga = ga_image(instances, height, width)
    if ga is not None:
        out.append(ga_layer(ga, name))
    return out
