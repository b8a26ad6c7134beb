"""Make docs/img/napari.png: a shipped model's prediction on a synthetic overlap scene, in napari.

The scene is ``gains synth overlap`` scene 0 of seed 4 (not among the model's training or held-out scenes,
seeds 100 and 200). It is segmented by ``gains.napari.segment.segment``, the work the dock widget runs, driven
to completion here without a worker thread; the viewer shows the image, the predicted instances (one Labels
layer per overlap layer) and the predicted GA map, with the dock widget open and the model named in it.
Needs the napari extra and an OpenGL context (a display, or ``xvfb-run``):

    xvfb-run -a python docs/napari_screenshot.py docs/img/napari.png [--model overlap]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def predicted_layers(model: str, pixels, name: str) -> list:
    """Run the widget's segmentation generator to its end; its return value, the result layers."""
    from gains.napari.segment import segment

    steps = segment(model, pixels, name, score_thresh=0.5, device="cpu")
    try:
        while True:
            _, total, what = next(steps)
            if total == 0:
                print(what, flush=True)
    except StopIteration as stop:
        return stop.value


def main(out: str, model: str) -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    from gains.data.synth import make_sample
    from gains.napari.layers import image_layer
    from gains.napari.widget import GainsWidget

    pixels = make_sample("overlap", 0, 256, seed=4).image
    name = "overlap_00000"
    layers = [image_layer(pixels, name), *predicted_layers(model, pixels, name)]
    viewer = napari.Viewer(show=False)
    for data, kwargs, kind in layers:
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = GainsWidget(viewer)
    widget.model.line_edit.value = model  # as typed: the field shows the name
    viewer.window.add_dock_widget(widget, name="Segment (GAInS)", area="right")
    viewer.window.resize(1400, 800)
    QApplication.processEvents()  # lay the window out, so the view fits the canvas's final size
    viewer.reset_view()
    viewer.camera.center, viewer.camera.zoom = (70, 165), viewer.camera.zoom * 1.8  # on the cluster
    shot = viewer.screenshot(out, canvas_only=False, flash=False)
    print(f"{out}: {shot.shape[1]}x{shot.shape[0]}; layers:", ", ".join(x.name for x in viewer.layers))
    viewer.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", default="docs/img/napari.png")
    p.add_argument("--model", default="overlap", help="a shipped model name, a run folder or a .pt")
    args = p.parse_args()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    main(args.out, args.model)
