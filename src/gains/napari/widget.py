"""The dock widget: pick a model, an image layer, score threshold, object size and tiling; segment on a worker thread.

A thin shell over ``gains.napari.segment`` (no Qt there): the work runs in a ``thread_worker`` so the
viewer stays responsive; its progress fills the widget's bar, and the returned layers replace the
previous results of the same image plane (layers whose ``metadata`` names that image and plane). A stack
(Z, T, ...) is segmented at the plane the viewer shows (``gains.napari.planes``). torch is imported on the
first Segment click, through ``gains.napari.native`` (a plain import crashes napari on Mesa's OpenGL).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, Label, ProgressBar, PushButton, SpinBox
from napari.layers import Image
from napari.qt.threading import thread_worker
from napari.utils.notifications import notification_manager, show_error

from gains import zoo
from gains.errors import InputError
from gains.napari.layers import LayerData
from gains.napari.native import load_torch
from gains.napari.planes import place, plane_index, plane_name, plane_pixels

DEVICES = ("auto", "cpu", "cuda")
WIDTH = 320  # the dock's maximum width in pixels: the canvas keeps most of the window


def shipped_name(model: str) -> str:
    """``model``, or the shipped model's name when ``model`` is that name made absolute against the working
    folder (``FileEdit.value = "nuclei"`` stores ``<cwd>/nuclei``) and no such file or folder exists."""
    path = Path(model)
    if path.is_absolute() and path.parent == Path.cwd() and not path.exists() and zoo.is_name(path.name):
        return path.name
    return model


def report_failure(status: Label, progress: ProgressBar, exc: BaseException) -> None:
    """Show a failure under a widget's bar: a user mistake (InputError) as one line; anything else also to napari
    with its traceback."""
    status.value = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
    progress.max, progress.value = 1, 0
    if isinstance(exc, InputError):
        show_error(status.value)
    else:
        notification_manager.receive_error(type(exc), exc, exc.__traceback__)


class GainsWidget(Container):
    """Segment an image layer with a gains model (a shipped model name, a run folder or a ``.pt`` file).

    Args:
        napari_viewer: the viewer (napari passes it by this parameter name).
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.model = FileEdit(label="model", mode="r", filter="*.pt",
                              tooltip="a shipped model name, a run folder or a .pt checkpoint")
        self.image = ComboBox(label="image", choices=self._image_choices)
        self.score = FloatSpinBox(label="score threshold", value=0.5, min=0.0, max=1.0, step=0.05)
        self.object_size = SpinBox(label="object size (0 = model's)", value=0, min=0, max=10000,
                                   tooltip="typical object diameter in pixels; the image is scaled to the model's")
        self.tile = SpinBox(label="tile (0 = whole)", value=1024, min=0, max=65536, step=64,
                            tooltip="tile side in network pixels; larger images are cut into overlapping tiles")
        self.overlap = SpinBox(label="tile overlap", value=128, min=0, max=8192, step=16,
                               tooltip="should exceed the largest object's half size")
        self.device = ComboBox(label="device", choices=list(DEVICES), value="auto")
        self.run_button = PushButton(text="Segment")
        self.progress = ProgressBar(label="progress", value=0, min=0, max=1)
        self.status = Label(label="", value="")
        self.extend([self.model, self.image, self.score, self.object_size, self.tile, self.overlap, self.device,
                     self.run_button, self.progress, self.status])
        self.worker = None
        self.run_button.changed.connect(self.run)
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self.image.reset_choices)
        self.viewer.layers.events.removed.connect(self._on_removed)
        self.image.reset_choices()
        self.native.setMaximumWidth(WIDTH)
        self.status.native.setWordWrap(True)

    def _image_choices(self, _widget: Any = None) -> list[tuple[str, Image]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def _settings(self) -> tuple[str, Image, np.ndarray, tuple[int, ...]]:
        """(model text, image layer, the pixels of its shown plane (H, W) or (H, W, C), the plane's index
        along the leading axes) or an InputError saying what is missing."""
        model = str(self.model.value or "").strip()
        if model in ("", "."):
            raise InputError("choose a model: a shipped model name, a run folder or a .pt checkpoint")
        return shipped_name(model), *self._image()

    def _image(self) -> tuple[Image, np.ndarray, tuple[int, ...]]:
        """(the chosen image layer, the pixels of the plane the viewer shows, its index) or an InputError."""
        layer = self.image.value
        if layer is None:
            raise InputError("add or choose an image layer to segment")
        data = layer.data[0] if layer.multiscale else layer.data
        spatial = len(data.shape) - (1 if layer.rgb else 0)
        if spatial > 2 and (self.viewer.dims.ndisplay != 2 or self.viewer.dims.displayed[-2:] != tuple(
                range(self.viewer.dims.ndim - 2, self.viewer.dims.ndim))):
            raise InputError(f"layer {layer.name!r}: show its last two axes in 2-D to segment a plane of it")
        index = plane_index(data.shape, layer.rgb, layer.world_to_data(self.viewer.dims.point))
        try:
            return layer, plane_pixels(data, layer.rgb, index), index
        except InputError as exc:
            raise InputError(f"layer {layer.name!r}: {exc}") from exc

    def run(self) -> None:
        """Start segmenting the chosen image's shown plane (does nothing while a run is in progress)."""
        if self.worker is not None:
            return
        try:
            model, layer, pixels, index = self._settings()
        except InputError as exc:
            self._failed(exc)
            return
        self.status.value = "starting"
        load_torch()
        from gains.napari.segment import segment  # torch: only now, after load_torch

        tile = int(self.tile.value) or None
        work = thread_worker(segment, start_thread=False, ignore_errors=True)  # _failed reports them
        self.worker = work(model, pixels, plane_name(layer.name, index), float(self.score.value), tile,
                           int(self.overlap.value), str(self.device.value), float(self.object_size.value) or None)
        self.worker.yielded.connect(self._on_progress)
        self.worker.returned.connect(lambda layers: self._on_done(layers, layer, index))
        self.worker.errored.connect(self._failed)
        self.worker.finished.connect(self._on_finished)
        self.run_button.enabled = False
        self.worker.start()

    def _on_progress(self, step: tuple[int, int, str]) -> None:
        done, total, what = step
        self.progress.max = max(total, 0)  # max 0: a busy bar
        self.progress.value = done if total else 0
        self.status.value = what if not total else f"{what}: tile {done}/{total}"

    def _on_done(self, layers: list[LayerData], source: Image, index: tuple[int, ...]) -> None:
        tag = {"gains_image": source.name, "gains_plane": list(index)}
        for old in [x for x in self.viewer.layers if {k: x.metadata.get(k) for k in tag} == tag]:
            self.viewer.layers.remove(old)
        scale = list(source.scale)
        for data, kwargs, kind in place(layers, index, scale, list(source.translate)):
            getattr(self.viewer, f"add_{kind}")(data, **{**kwargs, "metadata": {**kwargs.get("metadata", {}), **tag}})
        n = sum(len(kw["features"]["index"]) for _, kw, kind in layers if kind == "labels")
        self.progress.max, self.progress.value = 1, 1
        self.status.value = f"{n} instances in {sum(kind == 'labels' for *_, kind in layers)} label layer(s)"

    def _on_removed(self, _event: Any = None) -> None:
        """Clear the last run's line and bar once none of its result layers is left in the viewer."""
        if self.worker is None and not any("gains_image" in x.metadata for x in self.viewer.layers):
            self.status.value = ""
            self.progress.max, self.progress.value = 1, 0

    def _failed(self, exc: BaseException) -> None:
        report_failure(self.status, self.progress, exc)

    def _on_finished(self) -> None:
        self.worker = None
        self.run_button.enabled = True
