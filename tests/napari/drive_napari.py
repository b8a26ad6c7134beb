"""Run the real ``napari`` command in this process, act as a user once its window is up, report, quit.

    python drive_napari.py REPORT.json ACTION [--image PNG] [--model SPEC] [--train-set DIR] [--screenshot PNG]
        -- NAPARI_ARGS...

``napari._main:main`` (the ``napari`` console script) runs with ``NAPARI_ARGS`` as its command line; a Qt
timer set before it starts does ``ACTION`` once the viewer exists:
- ``open``: wait for the layers that the command line's paths gave (the reader path);
- ``menu``: open ``--image`` with napari's own reader, click Plugins > GAInS > Segment in the menu bar, set the
  model, click Segment and wait for the result layers (the widget path);
- ``save``: ``open`` (a dataset folder through the gains reader), erase the first instance of the first image's
  first Labels layer (a correction), select that image's layers and save them with the gains writer into the
  training-set folder ``--train-set`` (what File > Save Selected Layers does once a path is chosen);
- ``loop``: ``menu``, then Plugins > GAInS > Train: add the image and its result layers to the training set
  ``--train-set``, fine-tune for ``--minutes`` into ``--new-model`` and wait for the Segment widget to take it.
It then writes ``REPORT.json`` (layers with name, type, visible, shape, features; the widget's status line; any
modal dialog or error), saves ``--screenshot`` of the whole window if asked, and closes the viewer. Nothing
here imports torch: the plugin must do that safely itself. Exit status: napari's own (0 when it closed cleanly).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from typing import Any

import napari
import numpy as np
from napari.qt import get_qapp
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

TIMEOUT_S = 240.0


def layer_report(layer: Any) -> dict[str, Any]:
    features = getattr(layer, "features", None)
    return {"name": layer.name, "type": layer._type_string, "visible": bool(layer.visible),
            "shape": list(layer.data.shape) if hasattr(layer.data, "shape") else None,
            "features": list(features.columns) if features is not None else [],
            "rows": len(features) if features is not None else 0,
            "contrast_limits": [float(v) for v in layer.contrast_limits] if layer._type_string == "image" else None}


def find_action(widget: Any, path: str) -> Any:
    """The menu action at ``path`` (texts without '&' joined by ' > ', e.g. ``"GAInS > Segment"``) among the
    menus under ``widget``, or None."""
    first, _, rest = path.partition(" > ")
    for action in widget.actions():
        if action.text().replace("&", "") != first:
            continue
        if not rest:
            return action
        menu = action.menu()
        if menu is not None:
            menu.aboutToShow.emit()  # napari fills plugin menus when they open
            return find_action(menu, rest)
    for action in widget.actions():  # not at this level: look one menu down (Plugins > ...)
        menu = action.menu()
        if menu is not None and first != "":
            menu.aboutToShow.emit()
            if (found := find_action(menu, path)) is not None:
                return found
    return None


class Driver:
    """Polls the running napari every 200 ms and does one action (module docstring)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.report = args, {"action": args.action, "steps": []}
        self.started, self.stage, self.widget, self.trainer = time.monotonic(), "start", None, None

    def step(self) -> None:
        try:
            done = self._step()
        except Exception:
            self.report["error"] = traceback.format_exc()
            done = True
        if not done and time.monotonic() - self.started > TIMEOUT_S:
            self.report["error"] = f"timed out at stage {self.stage}"
            done = True
        if done:
            self.finish()
        else:
            QTimer.singleShot(200, self.step)

    def _step(self) -> bool:
        viewer = napari.current_viewer()
        modal = QApplication.activeModalWidget()
        if modal is not None:
            self.report["dialog"] = type(modal).__name__
            modal.reject()
            return True
        if viewer is None or not viewer.window._qt_window.isVisible():
            return False
        if self.args.action == "open":
            return len(viewer.layers) > 0
        if self.args.action == "save":
            return len(viewer.layers) > 0 and self._save(viewer)
        if self.stage == "start":
            viewer.open(self.args.image)
            action = find_action(viewer.window._qt_window.menuBar(), "GAInS > Segment")
            self.report["menu_item"] = action is not None
            if action is None:
                return True
            action.trigger()
            self.stage = "dock"
        elif self.stage == "dock":
            docks = [w for name, w in viewer.window.dock_widgets.items() if "GAInS" in name]
            if not docks:
                return False
            self.widget = docks[0]
            self.widget.model.line_edit.value = self.args.model  # typed into the field, as a user does
            self.widget.image.value = viewer.layers[0]
            self.widget.run_button.native.click()
            self.stage = "segment"
        elif self.stage == "segment":
            if self.widget.worker is not None or self.widget.status.value == "starting":
                return False
            if self.args.action == "menu":
                return True
            find_action(viewer.window._qt_window.menuBar(), "GAInS > Train").trigger()
            self.stage = "train"
        elif self.stage == "train":
            docks = [w for name, w in viewer.window.dock_widgets.items() if "Train" in name]
            if not docks:
                return False
            self.trainer = docks[0]
            self.trainer.folder.value, self.trainer.run_dir.value = self.args.train_set, self.args.new_model
            self.trainer.minutes.value = self.args.minutes
            self.trainer.add_button.native.click()
            self.report["added"] = self.trainer.status.value
            self.trainer.train_button.native.click()
            self.stage = "training"
        elif self.stage == "training":
            return self.trainer.worker is None
        return False

    def _save(self, viewer: Any) -> bool:
        first = viewer.layers[0].metadata["gains_image"]
        mine = [x for x in viewer.layers if x.metadata.get("gains_image") == first and not x.name.endswith(" GA")]
        labels = next(x for x in mine if x._type_string == "labels")
        value = int(labels.features["index"].iloc[0])
        labels.data = np.where(labels.data == value, 0, labels.data)
        self.report["erased"] = [labels.name, value]
        viewer.layers.selection = set(mine)
        self.report["saved"] = viewer.layers.save(self.args.train_set, selected=True, plugin="gains-seg")
        return True

    def finish(self) -> None:
        viewer = napari.current_viewer()
        if viewer is not None:
            self.report["layers"] = [layer_report(x) for x in viewer.layers]
            if self.widget is not None:
                self.report["status"] = self.widget.status.value
                self.report["model"] = str(self.widget.model.value)
            if self.trainer is not None:
                self.report["train_status"] = self.trainer.status.value
            if self.args.screenshot:
                viewer.window._qt_window.resize(1280, 860)
                QApplication.processEvents()  # lay the window out, then fit the image to the canvas
                viewer.reset_view()
                viewer.screenshot(self.args.screenshot, canvas_only=False, flash=False)
        with open(self.args.report, "w") as fh:
            json.dump(self.report, fh, indent=1)
        if viewer is not None:
            viewer.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("report")
    parser.add_argument("action", choices=["open", "menu", "save", "loop"])
    parser.add_argument("--image")
    parser.add_argument("--model")
    parser.add_argument("--screenshot")
    parser.add_argument("--train-set")
    parser.add_argument("--new-model")
    parser.add_argument("--minutes", type=float, default=0.2)
    mine, napari_args = (sys.argv[1 : sys.argv.index("--")], sys.argv[sys.argv.index("--") + 1 :]
                         ) if "--" in sys.argv else (sys.argv[1:], [])
    args = parser.parse_args(mine)
    get_qapp()
    driver = Driver(args)
    QTimer.singleShot(200, driver.step)
    sys.argv = ["napari", *napari_args]
    from napari._main import main as napari_main

    napari_main()


if __name__ == "__main__":
    main()
