"""The Train dock widget: corrected layers into a training set, then fine-tune the model on it (cellpose-style loop).

Segment an image with the Segment widget, correct its instance layers with napari's label tools (paint,
erase, fill; a new instance is a new label value; overlapping instances stay in separate layers), then here:
**Add to training set** writes the image and the chosen Labels layers into a canonical dataset folder, and
**Fine-tune** trains the chosen starting model on that folder for a time budget on a worker thread, with a
progress bar and the live loss; when it ends, the Segment widget's model becomes the new run. The work is in
``gains.napari.training`` (no Qt there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    Select,
)
from napari.layers import Image, Labels
from napari.qt.threading import thread_worker

from gains.errors import InputError
from gains.napari.native import load_torch
from gains.napari.planes import plane_pixels
from gains.napari.training import add_to_training_set, finetune, instances_of_layers, training_file_name
from gains.napari.widget import WIDTH, GainsWidget, report_failure, shipped_name


class TrainWidget(Container):
    """Add corrected images to a training set and fine-tune a model on it (module docstring).

    Args:
        napari_viewer: the viewer (napari passes it by this parameter name).

    Attributes:
        segment_widget: the Segment widget that gets the new model (found among the viewer's dock widgets when
            None).
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.segment_widget: GainsWidget | None = None
        self.image = ComboBox(label="image", choices=self._image_layers)
        self.instances = Select(label="instances", choices=self._label_layers,
                                tooltip="the Labels layers of the image's instances (one per label value per layer)")
        self.folder = FileEdit(label="dataset", mode="d", tooltip="a dataset folder (made on the first add)")
        self.add_button = PushButton(text="Add to training set")
        self.start = LineEdit(label="start from", value="", tooltip="a shipped model name, a run folder or a .pt; "
                              "empty: the Segment widget's model")
        self.minutes = FloatSpinBox(label="minutes", value=5.0, min=0.1, max=600.0, step=1.0)
        self.run_dir = FileEdit(label="new run", mode="d", tooltip="the run folder to write (empty: beside the "
                                "training set, '<training set>_model')")
        self.train_button = PushButton(text="Fine-tune")
        self.progress = ProgressBar(label="progress", value=0, min=0, max=1)
        self.status = Label(label="", value="")
        self.extend([self.image, self.instances, self.folder, self.add_button, self.start, self.minutes, self.run_dir,
                     self.train_button, self.progress, self.status])
        self.worker = None
        self.add_button.changed.connect(self.add)
        self.train_button.changed.connect(self.train)
        self.image.changed.connect(self._select_results)
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self.reset_choices)
        self.reset_choices()
        self._select_results()
        self.native.setMaximumWidth(WIDTH)
        self.status.native.setWordWrap(True)

    def _image_layers(self, _widget: Any = None) -> list[tuple[str, Image]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def _label_layers(self, _widget: Any = None) -> list[tuple[str, Labels]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Labels)]

    def _select_results(self, _value: Any = None) -> None:
        """Choose the Labels layers the Segment widget made for the chosen image (the user may change it)."""
        image = self.image.value
        if image is not None:
            self.instances.value = [x for _, x in self._label_layers() if x.metadata.get("gains_image") == image.name]

    def _folder(self) -> Path:
        text = str(self.folder.value or "").strip()
        if text in ("", "."):
            raise InputError("choose a training set folder (it is made on the first add)")
        return Path(text)

    def add(self) -> None:
        """Write the chosen image (its shown plane) and instance layers into the training set."""
        try:
            folder, image = self._folder(), self.image.value
            if image is None:
                raise InputError("add or choose an image layer")
            layers = list(self.instances.value)
            if not layers:
                raise InputError(f"choose the Labels layers of {image.name!r}'s instances")
            index = tuple(layers[0].metadata.get("gains_plane", ()))
            pixels = plane_pixels(image.data[0] if image.multiscale else image.data, image.rgb, index)
            masks = instances_of_layers([x.data for x in layers], pixels.shape[:2], [x.name for x in layers])
            _, n = add_to_training_set(folder, training_file_name(image.name, index), pixels, masks)
        except InputError as exc:
            self._failed(exc)
            return
        self.status.value = f"{len(masks)} instances of {image.name!r} added: {n} image(s) in {folder}"

    def _segment(self) -> GainsWidget | None:
        if self.segment_widget is not None:
            return self.segment_widget
        window = getattr(self.viewer, "window", None)
        docks = getattr(window, "dock_widgets", {}) if window is not None else {}
        return next((w for w in docks.values() if isinstance(w, GainsWidget)), None)

    def _start_model(self) -> str:
        text = str(self.start.value or "").strip()
        segment = self._segment()
        if not text and segment is not None:
            text = shipped_name(str(segment.model.value or "").strip())
            text = "" if text in (".", str(Path.cwd())) else text
        if not text:
            raise InputError("name a model to start from (or choose one in the Segment widget)")
        return text

    def train(self) -> None:
        """Start fine-tuning (does nothing while a run is in progress)."""
        if self.worker is not None:
            return
        try:
            folder, weights = self._folder(), self._start_model()
            if not (folder / "annotations.json").is_file():
                raise InputError(f"{folder}: add an image to the training set first")
        except InputError as exc:
            self._failed(exc)
            return
        text = str(self.run_dir.value or "").strip()
        run = Path(text) if text not in ("", ".") else folder.with_name(folder.name + "_model")
        self.status.value = f"fine-tuning {weights} on {folder}"
        load_torch()
        work = thread_worker(finetune, start_thread=False, ignore_errors=True)  # _failed reports them
        self.worker = work(folder, run, weights, float(self.minutes.value))
        self.worker.yielded.connect(self._on_progress)
        self.worker.returned.connect(self._on_done)
        self.worker.errored.connect(self._failed)
        self.worker.finished.connect(self._on_finished)
        self.train_button.enabled = self.add_button.enabled = False
        self.worker.start()

    def _on_progress(self, step: tuple[float, float, str]) -> None:
        done, total, what = step
        self.progress.max = int(np.ceil(total))  # max 0: a busy bar
        self.progress.value = int(done) if total else 0
        self.status.value = what

    def _on_done(self, run: Path) -> None:
        self.progress.max, self.progress.value = 1, 1
        segment = self._segment()
        if segment is not None:
            segment.model.line_edit.value = str(run)
        self.status.value = f"new model: {run}" + (" (now the Segment widget's model)" if segment else "")

    def _failed(self, exc: BaseException) -> None:
        report_failure(self.status, self.progress, exc)

    def _on_finished(self) -> None:
        self.worker = None
        self.train_button.enabled = self.add_button.enabled = True
