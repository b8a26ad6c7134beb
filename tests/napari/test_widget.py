"""The dock widget headless (Qt offscreen): segment an image with a tiny model, check the layers.

The widget works on a ``ViewerModel`` (napari's viewer without its OpenGL canvas), so the tests need Qt but
no display or GL. Skipped cleanly where napari, Qt or pytest-qt is missing (the plain suite does not install
the napari extra).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("napari")
pytest.importorskip("qtpy")
pytest.importorskip("pytestqt")

from napari.components import ViewerModel

from gains.napari.widget import GainsWidget

pytestmark = pytest.mark.slow


def wait(qtbot, widget: GainsWidget) -> None:
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)


def test_widget_segments_an_image_into_layers(qtbot, tiny_run) -> None:
    viewer = ViewerModel()
    pixels = (np.random.default_rng(0).random((96, 96)) * 255).astype(np.uint8)
    viewer.add_image(pixels, name="img")
    widget = GainsWidget(viewer)
    assert widget.image.value is viewer.layers["img"]
    widget.model.value = str(tiny_run)
    widget.score.value = 0.0  # a one-iteration model: keep whatever it finds
    widget.run()
    assert widget.worker is not None and not widget.run_button.enabled
    wait(qtbot, widget)
    labels = [x for x in viewer.layers if x.metadata.get("gains_image") == "img" and x._type_string == "labels"]
    assert labels and all(x.data.shape == (96, 96) for x in labels)
    index = sorted(i for x in labels for i in x.features["index"])
    assert index == list(range(1, len(index) + 1))
    assert all({"score", "area", "category"} <= set(x.features.columns) for x in labels)
    for x in labels:  # each features row describes the pixels of its label value
        for value, area in zip(x.features["index"], x.features["area"], strict=True):
            assert np.count_nonzero(x.data == value) == area
    assert widget.status.value == f"{len(index)} instances in {len(labels)} label layer(s)"
    assert widget.progress.value == widget.progress.max == 1 and widget.run_button.enabled
    if index:
        ga = viewer.layers["img GA"]
        assert ga.data.shape == (96, 96) and ga.data.min() >= 1.0 and ga.colormap.name == "inferno"
    before = len(viewer.layers)
    widget.run()  # again: the previous results are replaced, not duplicated
    wait(qtbot, widget)
    assert len(viewer.layers) == before


def test_widget_says_what_is_missing(qtbot) -> None:
    viewer = ViewerModel()
    widget = GainsWidget(viewer)
    widget.run()
    assert widget.worker is None and widget.status.value.startswith("choose a model")
    widget.model.value = "/nonexistent/model.pt"
    widget.run()
    assert widget.worker is None and widget.status.value == "add or choose an image layer to segment"


def test_bad_model_is_reported_in_the_widget(qtbot, tmp_path) -> None:
    viewer = ViewerModel()
    viewer.add_image(np.zeros((32, 32), np.uint8), name="img")
    widget = GainsWidget(viewer)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    widget.model.value = str(bad)
    widget.run()
    wait(qtbot, widget)
    assert str(bad) in widget.status.value and [x.name for x in viewer.layers] == ["img"]


def test_manifest_declares_the_widget_and_reader() -> None:
    npe2 = pytest.importorskip("npe2")
    pm = npe2.PluginManager.instance()
    pm.discover()
    try:
        manifest = pm.get_manifest("gains-seg")
    except KeyError:
        pytest.skip("gains-seg is not installed (its napari.manifest entry point is missing)")
    assert [w.display_name for w in manifest.contributions.widgets] == ["Segment", "Train"]  # Plugins > GAInS > ...
    assert pm.get_command("gains-seg.segment").python_name == "gains.napari.widget:GainsWidget"
    assert pm.get_command(manifest.contributions.readers[0].command).python_name == "gains.napari.reader:get_reader"
    assert manifest.contributions.readers[0].accepts_directories
    assert manifest.contributions.readers[0].filename_patterns == []  # folders only: no file is claimed
    writer = manifest.contributions.writers[0]  # File > Save Selected Layers: image + its Labels -> training set
    assert pm.get_command(writer.command).python_name == "gains.napari.writer:write_training_set"
    assert writer.layer_types == ["image", "labels+"]


def test_a_shipped_name_set_in_code_stays_a_name(qtbot, tmp_path, monkeypatch) -> None:
    from gains.napari.widget import shipped_name

    monkeypatch.chdir(tmp_path)
    widget = GainsWidget(ViewerModel())
    widget.model.value = "nuclei"  # FileEdit stores <cwd>/nuclei
    assert str(widget.model.value) == str(tmp_path / "nuclei") and shipped_name(str(widget.model.value)) == "nuclei"
    (tmp_path / "nuclei").mkdir()  # a user's own folder of that name wins, as on the command line
    assert shipped_name(str(tmp_path / "nuclei")) == str(tmp_path / "nuclei")
    assert shipped_name(str(tmp_path / "no-such-model")) == str(tmp_path / "no-such-model")


def test_a_stack_is_segmented_at_the_shown_plane(qtbot, tiny_run) -> None:
    viewer = ViewerModel()
    rng = np.random.default_rng(0)
    stack = (rng.random((3, 96, 96)) * 255).astype(np.uint8)
    viewer.add_image(stack, name="stack", scale=(2.0, 0.5, 0.5))
    viewer.dims.set_current_step(0, 1)  # the plane z = 1 (world 2.0)
    widget = GainsWidget(viewer)
    widget.model.value, widget.score.value = str(tiny_run), 0.0
    widget.run()
    wait(qtbot, widget)
    results = [x for x in viewer.layers if x.metadata.get("gains_image") == "stack"]
    assert results and all(x.name.startswith("stack [1]") for x in results)
    labels = [x for x in results if x._type_string == "labels"]
    assert all(x.data.shape == (1, 96, 96) for x in labels)
    assert all(list(x.translate) == [2.0, 0.0, 0.0] and list(x.scale) == [2.0, 0.5, 0.5] for x in results)
    from gains.napari.segment import segment  # the same plane segmented alone gives the same labels

    gen = segment(str(tiny_run), stack[1], "alone", score_thresh=0.0, device="cpu")
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        alone = [data for data, _, kind in stop.value if kind == "labels"]
    assert [np.array_equal(x.data[0], a) for x, a in zip(labels, alone, strict=True)] == [True] * len(alone)
    viewer.dims.set_current_step(0, 2)
    widget.run()
    wait(qtbot, widget)
    names = {x.name for x in viewer.layers}
    assert any(n.startswith("stack [2]") for n in names) and any(n.startswith("stack [1]") for n in names)


def test_status_is_cleared_with_the_results(qtbot, tiny_run) -> None:
    viewer = ViewerModel()
    viewer.add_image((np.random.default_rng(2).random((64, 64)) * 255).astype(np.uint8), name="img")
    widget = GainsWidget(viewer)
    widget.model.value, widget.score.value = str(tiny_run), 0.0
    widget.run()
    wait(qtbot, widget)
    assert widget.status.value.endswith("label layer(s)")
    for layer in [x for x in viewer.layers if "gains_image" in x.metadata]:
        viewer.layers.remove(layer)
    assert widget.status.value == "" and widget.progress.value == 0
