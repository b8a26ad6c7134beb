"""The dock widget: pick a model, an image layer, score threshold, object size and tiling; segment on a worker thread.

A thin shell over ``gains.napari.segment`` (no Qt there): the work runs in a ``thread_worker`` so the
viewer stays responsive; its progress fills the widget's bar, and the returned layers replace the
previous results of the same image (layers whose ``metadata["gains_image"]`` names it).
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
from gains.napari.segment import segment

DEVICES = ("auto", "cpu", "cuda")


def shipped_name(model: str) -> str:
    """``model``, or the shipped model's name when ``model`` is that name made absolute against the working
    folder (``FileEdit.value = "nuclei"`` stores ``<cwd>/nuclei``) and no such file or folder exists."""
    path = Path(model)
    if path.is_absolute() and path.parent == Path.cwd() and not path.exists() and zoo.is_name(path.name):
        return path.name
    return model


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
        self.image.reset_choices()

    def _image_choices(self, _widget: Any = None) -> list[tuple[str, Image]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def _settings(self) -> tuple[str, Image, np.ndarray]:
        """(model text, image layer, its pixels (H, W) or (H, W, C)) or an InputError saying what is missing."""
        model = str(self.model.value or "").strip()
        if model in ("", "."):
            raise InputError("choose a model: a shipped model name, a run folder or a .pt checkpoint")
        return shipped_name(model), *self._image()

    def _image(self) -> tuple[Image, np.ndarray]:
        """(the chosen image layer, its pixels) or an InputError saying what is missing."""
        layer = self.image.value
        if layer is None:
            raise InputError("add or choose an image layer to segment")
        pixels = np.asarray(layer.data[0] if layer.multiscale else layer.data)
        if pixels.ndim != (3 if layer.rgb else 2):
            raise InputError(f"layer {layer.name!r}: a 2-D image is needed, got shape {pixels.shape}")
        return layer, pixels

    def run(self) -> None:
        """Start segmenting the chosen image (does nothing while a run is in progress)."""
        if self.worker is not None:
            return
        try:
            model, layer, pixels = self._settings()
        except InputError as exc:
            self._failed(exc)
            return
        tile = int(self.tile.value) or None
        work = thread_worker(segment, start_thread=False, ignore_errors=True)  # _failed reports them
        self.worker = work(model, pixels, layer.name, float(self.score.value), tile, int(self.overlap.value),
                           str(self.device.value), float(self.object_size.value) or None)
        self.worker.yielded.connect(self._on_progress)
        self.worker.returned.connect(lambda layers: self._on_done(layers, layer))
        self.worker.errored.connect(self._failed)
        self.worker.finished.connect(self._on_finished)
        self.run_button.enabled = False
        self.status.value = "starting"
        self.worker.start()

    def _on_progress(self, step: tuple[int, int, str]) -> None:
        done, total, what = step
        self.progress.max = max(total, 0)  # max 0: a busy bar
        self.progress.value = done if total else 0
        self.status.value = what if not total else f"{what}: tile {done}/{total}"

    def _on_done(self, layers: list[LayerData], source: Image) -> None:
        for old in [x for x in self.viewer.layers if x.metadata.get("gains_image") == source.name]:
            self.viewer.layers.remove(old)
        for data, kwargs, kind in layers:
            kwargs = {**kwargs, "metadata": {"gains_image": source.name}, "scale": source.scale,
                      "translate": source.translate}
            getattr(self.viewer, f"add_{kind}")(data, **kwargs)
        n = sum(len(kw["features"]["index"]) for _, kw, kind in layers if kind == "labels")
        self.progress.max, self.progress.value = 1, 1
        self.status.value = f"{n} instances in {sum(kind == 'labels' for *_, kind in layers)} label layer(s)"

    def _failed(self, exc: BaseException) -> None:
        """A user mistake (InputError) as one line; anything else also to napari with its traceback."""
        self.status.value = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
        self.progress.max, self.progress.value = 1, 0
        if isinstance(exc, InputError):
            show_error(self.status.value)
        else:
            notification_manager.receive_error(type(exc), exc, exc.__traceback__)

    def _on_finished(self) -> None:
        self.worker = None
        self.run_button.enabled = True
