"""Gradient Anomaly Mapping (GAMM): per-instance GA maps from instance annotations.

numpy/scipy only; never imports torch (nor matplotlib: masks follow its point-in-polygon rule exactly). Entry points:

- ``image_maps(instances, height, width, params)``: the maps of one image (reference semantics).
- ``run_gamm(annotations, image_dir, params, out=...)``: a whole COCO dataset into a compact store.
- ``GammStore(path).load(ann_id)``: a stored map as float32 (H, W).
"""

from gains.gamm.gamap import GaMap
from gains.gamm.maps import InstanceInput, image_maps
from gains.gamm.params import VARIANT_DEFAULTS, VARIANTS, GammParams
from gains.gamm.pipeline import GammRun, run_gamm
from gains.gamm.store import GammStore, StoreKey

__all__ = [
    "VARIANTS",
    "VARIANT_DEFAULTS",
    "GaMap",
    "GammParams",
    "GammRun",
    "GammStore",
    "InstanceInput",
    "StoreKey",
    "image_maps",
    "run_gamm",
]
