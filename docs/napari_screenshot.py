"""Make docs/img/napari.png: a synthetic overlap scene opened in napari with the plugin's layers.

Shown: the ground truth read by the plugin's reader (one Labels layer per overlap layer) and, as the GA map,
the GAMM training target computed from that ground truth (what a GAInS model learns to predict), with the
dock widget open. Needs the napari extra and an OpenGL context (a display, or ``xvfb-run``):

    xvfb-run -a python docs/napari_screenshot.py docs/img/napari.png
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np


def gt_ga_map(annotations: Path) -> np.ndarray:
    """Per-pixel maximum of the GAMM target maps (isbi variant) of the first image's instances, (H, W)."""
    from gains.data.dataset import InstanceDataset
    from gains.gamm import GammParams

    _, target = InstanceDataset(annotations, gamm=GammParams.for_variant("isbi"), cache=False)[0]
    return target["ga_maps"].numpy().max(axis=0).astype(np.float32)


def main(out: str) -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    from gains.data.synth import write_synthetic
    from gains.napari.layers import ga_layer
    from gains.napari.reader import read_folder
    from gains.napari.widget import GainsWidget

    with tempfile.TemporaryDirectory() as tmp:
        ann = write_synthetic("overlap", 1, 256, seed=4, out=Path(tmp) / "overlap")
        layers = read_folder(str(ann.parent))
        data, kwargs, _ = ga_layer(gt_ga_map(ann), layers[0][1]["name"])
        layers.append((data, {**kwargs, "name": kwargs["name"] + " (GAMM target)"}, "image"))
    viewer = napari.Viewer(show=False)
    for data, kwargs, kind in layers:
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = GainsWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment (GAInS)", area="right")
    viewer.window.resize(1400, 800)
    QApplication.processEvents()  # lay the window out, so the view fits the canvas's final size
    viewer.reset_view()
    viewer.camera.center, viewer.camera.zoom = (70, 165), viewer.camera.zoom * 1.8  # on the cluster
    shot = viewer.screenshot(out, canvas_only=False, flash=False)
    print(f"{out}: {shot.shape[1]}x{shot.shape[0]}; layers:", ", ".join(x.name for x in viewer.layers))
    viewer.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/img/napari.png")
