"""gains.core.images: every input kind of docs/INPUTS.md, each from its own small synthetic file."""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from gains.cli import main
from gains.core.images import check_input, read_planes
from gains.core.planes import PlaneChoice, parse_channels, parse_plane
from gains.errors import InputError
from gains.intensity import Normalisation

RNG = np.random.default_rng(0)
H, W = 24, 32


def noise(*shape: int, dtype: type = np.uint16, high: int = 4000) -> np.ndarray:
    return (RNG.random(shape) * high).astype(dtype)


def one(path: Path, choice: PlaneChoice | None = None) -> np.ndarray:
    choice = choice or PlaneChoice()
    planes = read_planes(path, choice)
    assert [p.label for p in planes] == [""] == check_input(path, choice)
    return planes[0].pixels


# 2-D images, bit depths and pixel types -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.int8, np.int16, np.int32, np.float32,
                                   np.float64])
def test_2d_tiff_of_every_depth_keeps_values_and_dtype(tmp_path: Path, dtype: type) -> None:
    img = (RNG.random((H, W)) * 100).astype(dtype)
    tifffile.imwrite(tmp_path / "a.tif", img)
    out = one(tmp_path / "a.tif")
    assert out.dtype == np.dtype(dtype) and out.shape == (H, W)
    np.testing.assert_array_equal(out, img)
    tifffile.imwrite(tmp_path / "big_endian.tif", img, byteorder=">")
    swapped = one(tmp_path / "big_endian.tif")
    assert swapped.dtype.isnative and swapped.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(swapped, img)


def test_float16_tiff_is_widened_to_float32(tmp_path: Path) -> None:
    img = RNG.random((H, W)).astype(np.float16)
    tifffile.imwrite(tmp_path / "h.tif", img)
    out = one(tmp_path / "h.tif")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, img.astype(np.float32))


def test_png_modes_grey_16bit_rgb_rgba_la_palette_1bit(tmp_path: Path) -> None:
    grey = noise(H, W, dtype=np.uint8, high=255)
    Image.fromarray(grey).save(tmp_path / "l.png")
    np.testing.assert_array_equal(one(tmp_path / "l.png"), grey)
    g16 = noise(H, W)
    Image.fromarray(g16).save(tmp_path / "i16.png")
    assert one(tmp_path / "i16.png").dtype == np.uint16
    np.testing.assert_array_equal(one(tmp_path / "i16.png"), g16)
    rgba = noise(H, W, 4, dtype=np.uint8, high=255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(one(tmp_path / "rgba.png"), rgba[..., :3])  # alpha dropped
    Image.fromarray(rgba[..., :3]).save(tmp_path / "rgb.jpg", quality=100)
    assert one(tmp_path / "rgb.jpg").shape == (H, W, 3)
    Image.fromarray(rgba[..., :2], "LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(one(tmp_path / "la.png"), rgba[..., 0])  # grey + alpha -> grey
    Image.fromarray(grey).convert("P").save(tmp_path / "p.png")
    assert one(tmp_path / "p.png").shape == (H, W, 3)
    Image.fromarray(grey > 128).save(tmp_path / "bits.png")
    bits = one(tmp_path / "bits.png")
    assert bits.dtype == np.uint8 and set(np.unique(bits)) == {0, 1}
    np.testing.assert_array_equal(bits, (grey > 128).astype(np.uint8))


# channels --------------------------------------------------------------------------------------------------------


def test_channels_last_first_and_rgba_tiff(tmp_path: Path) -> None:
    rgb = noise(H, W, 3, dtype=np.uint8, high=255)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb)  # YXS
    np.testing.assert_array_equal(one(tmp_path / "rgb.tif"), rgb)
    for c in (2, 3, 4):  # (C, H, W) saved without metadata: taken as channels first
        first = noise(c, H, W)
        tifffile.imwrite(tmp_path / f"first{c}.tif", first, photometric="minisblack")
        out = one(tmp_path / f"first{c}.tif", PlaneChoice(channels=(0, 1, 2)) if c == 4 else PlaneChoice())
        np.testing.assert_array_equal(out, np.moveaxis(first, 0, -1)[..., :3])
    rgba = noise(H, W, 4, dtype=np.uint8, high=255)
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    np.testing.assert_array_equal(one(tmp_path / "rgba.tif"), rgba[..., :3])


def test_five_channels_need_channels_and_map_to_three_inputs(tmp_path: Path) -> None:
    five = noise(5, H, W)
    tifffile.imwrite(tmp_path / "five.ome.tif", five, ome=True, metadata={"axes": "CYX"})
    with pytest.raises(InputError, match=r"five.ome.tif: 5 channels; pass --channels with up to 3 of them"):
        read_planes(tmp_path / "five.ome.tif")
    pair = one(tmp_path / "five.ome.tif", PlaneChoice(channels=(0, 2)))
    np.testing.assert_array_equal(pair, np.stack([five[0], five[2]], axis=-1))
    seen = Normalisation()(pair)  # what the model sees: (c0, c2, c0)
    np.testing.assert_array_equal(seen[..., 0], seen[..., 2])
    np.testing.assert_allclose(seen[..., 1], Normalisation()(five[2])[..., 0])
    single = one(tmp_path / "five.ome.tif", PlaneChoice(channels=(4,)))
    np.testing.assert_array_equal(single, five[4])  # one channel: grey, replicated by the normalisation
    swapped = one(tmp_path / "five.ome.tif", PlaneChoice(channels=(3, 1, 0)))
    np.testing.assert_array_equal(swapped, np.stack([five[3], five[1], five[0]], axis=-1))
    with pytest.raises(InputError, match=r"--channels 5 but the image has 5 channel\(s\) \(0..4\)"):
        check_input(tmp_path / "five.ome.tif", PlaneChoice(channels=(0, 5)))
    rgb = noise(H, W, 3, dtype=np.uint8, high=255)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(one(tmp_path / "rgb.png", PlaneChoice(channels=(1,))), rgb[..., 1])


def test_parse_channels_and_planes() -> None:
    assert parse_channels("0,2") == (0, 2) and parse_channels("3") == (3,)
    for bad in ("", "a", "0,1,2,3", "-1"):
        with pytest.raises(InputError, match="--channels"):
            parse_channels(bad)
    assert parse_plane("all", "--z") is None and parse_plane("7", "--t") == 7
    with pytest.raises(InputError, match=r"--z 'x': give a plane index \(0, 1, ...\) or all"):
        parse_plane("x", "--z")


# z-stacks and time series ---------------------------------------------------------------------------------------


def test_ome_tczyx_planes_are_labelled_and_chosen(tmp_path: Path) -> None:
    stack = noise(2, 3, 4, H, W)  # T, C, Z, Y, X
    tifffile.imwrite(tmp_path / "s.ome.tif", stack, ome=True, metadata={"axes": "TCZYX"})
    planes = read_planes(tmp_path / "s.ome.tif")
    assert [p.label for p in planes] == [f"z{z}_t{t}" for z in range(4) for t in range(2)]
    assert check_input(tmp_path / "s.ome.tif") == [p.label for p in planes]
    by_label = {p.label: p.pixels for p in planes}
    np.testing.assert_array_equal(by_label["z3_t1"], np.moveaxis(stack[1, :, 3], 0, -1))
    picked = read_planes(tmp_path / "s.ome.tif", PlaneChoice(z=2, t=0, channels=(2,)))
    assert [p.label for p in picked] == ["z2_t0"]
    np.testing.assert_array_equal(picked[0].pixels, stack[0, 2, 2])
    with pytest.raises(InputError, match=r"s.ome.tif: --z 4 but the image has 4 Z planes \(0..3\)"):
        check_input(tmp_path / "s.ome.tif", PlaneChoice(z=4))


def test_length_one_axes_are_dropped_and_imagej_hyperstacks_read(tmp_path: Path) -> None:
    zstack = noise(1, 1, 5, H, W)
    tifffile.imwrite(tmp_path / "z.ome.tif", zstack, ome=True, metadata={"axes": "TCZYX"})
    assert [p.label for p in read_planes(tmp_path / "z.ome.tif")] == [f"z{i}" for i in range(5)]
    hyper = noise(3, 2, 2, H, W)  # T, Z, C
    tifffile.imwrite(tmp_path / "ij.tif", hyper, imagej=True, metadata={"axes": "TZCYX"})
    planes = read_planes(tmp_path / "ij.tif", PlaneChoice(t=2))
    assert [p.label for p in planes] == ["z0_t2", "z1_t2"]
    np.testing.assert_array_equal(planes[1].pixels, np.moveaxis(hyper[2, 1], 0, -1))


def test_stack_without_metadata_asks_for_axes(tmp_path: Path) -> None:
    stack = noise(7, H, W)
    tifffile.imwrite(tmp_path / "plain.tif", stack)
    with pytest.raises(InputError) as info:
        read_planes(tmp_path / "plain.tif")
    assert str(info.value) == (f"{tmp_path / 'plain.tif'}: cannot tell the axes of shape (7, {H}, {W}) (file says "
                               "'QYX'); pass --axes with one letter per axis, e.g. --axes ZYX, TYX, CYX or YXC")
    planes = read_planes(tmp_path / "plain.tif", PlaneChoice(axes="tyx", t=6))
    assert [p.label for p in planes] == ["t6"]
    np.testing.assert_array_equal(planes[0].pixels, stack[6])
    last = noise(H, W, 5)  # channels last without metadata: tifffile cannot know it either
    tifffile.imwrite(tmp_path / "last.tif", last)
    with pytest.raises(InputError, match="pass --axes"):
        read_planes(tmp_path / "last.tif")
    np.testing.assert_array_equal(one(tmp_path / "last.tif", PlaneChoice(axes="YXC", channels=(4,))), last[..., 4])
    with pytest.raises(InputError, match=r"last.tif: --axes 'ZX' does not fit shape \(24, 32, 5\); give one "):
        read_planes(tmp_path / "last.tif", PlaneChoice(axes="ZX"))


# refused ----------------------------------------------------------------------------------------------------------


def test_tiny_images_are_refused(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "dot.tif", np.ones((1, 1), np.uint16))
    with pytest.raises(InputError, match=r"dot.tif: image is 1x1 pixels; gains needs at least 16 on each side"):
        check_input(tmp_path / "dot.tif")
    Image.fromarray(np.zeros((8, 300), np.uint8)).save(tmp_path / "strip.png")
    with pytest.raises(InputError, match=r"strip.png: image is 8x300 pixels"):
        read_planes(tmp_path / "strip.png")


def _patch_tiff_size(path: Path, height: int, width: int) -> None:
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        spots = [(tags[name].valueoffset, tags[name].dtype) for name in ("ImageWidth", "ImageLength")]
    data = bytearray(path.read_bytes())
    for (offset, dtype), value in zip(spots, (width, height), strict=True):
        fmt = "<I" if int(dtype) == 4 else "<H"
        data[offset:offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    path.write_bytes(bytes(data))


def test_decompression_bombs_are_refused_from_the_header(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.tif"
    tifffile.imwrite(bomb, np.zeros((32, 32), np.uint16))
    _patch_tiff_size(bomb, 200_000, 150_000)
    assert bomb.stat().st_size < 10_000
    with pytest.raises(InputError, match=r"bomb.tif: header promises 200,000 x 150,000 uint16 \(55.9 GiB decoded\), "
                                         r"over the 4 GiB limit; crop it, or pass --max-input-gib if you mean it"):
        read_planes(bomb)
    png = tmp_path / "bomb.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(png)
    data = bytearray(png.read_bytes())  # IHDR: width and height at bytes 16..24, CRC of type + data after them
    data[16:24] = struct.pack(">II", 100_000, 100_000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    png.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"bomb.png: header promises 100,000 x 100,000 uint8 \(9.3 GiB decoded\)"):
        read_planes(png)
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's own limit is restored after reading
    small = tmp_path / "ok.tif"
    tifffile.imwrite(small, np.zeros((512, 512), np.uint16))
    with pytest.raises(InputError, match=r"512 x 512 uint16 \(0.5 MiB decoded\), over the 0.0001 GiB limit"):
        check_input(small, PlaneChoice(max_bytes=int(0.0001 * (1 << 30))))


def test_unusable_files_give_one_line(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "c.tif", np.ones((H, W), np.complex64))
    with pytest.raises(InputError, match=r"c.tif: pixel type complex64 is not supported"):
        read_planes(tmp_path / "c.tif")
    (tmp_path / "junk.tif").write_bytes(b"II*\x00 not really a tiff")
    with pytest.raises(InputError, match=r"junk.tif: unreadable image"):
        read_planes(tmp_path / "junk.tif")
    with pytest.raises(InputError, match=r"gone.png: image file not found"):
        check_input(tmp_path / "gone.png")


# through gains predict -------------------------------------------------------------------------------------------


def test_predict_runs_every_plane_and_names_outputs(tiny_run: Path, tmp_path: Path, capsys) -> None:
    stack = noise(1, 2, 3, 64, 64)  # T, C, Z
    tifffile.imwrite(tmp_path / "cells.tif", stack, ome=True, metadata={"axes": "TCZYX"})
    out = tmp_path / "out"
    assert main(["predict", str(tiny_run), str(tmp_path / "cells.tif"), "--out", str(out), "--format",
                 "coco,overlay", "--device", "cpu", "--quiet", "--channels", "1,0"]) == 0
    assert "in 3 images" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("*.png")) == [f"cells_z{z}_overlay.png" for z in range(3)]
    images = json.loads((out / "images.json").read_text())["images"]
    assert [(im["plane"], im["height"], im["width"]) for im in images] == [(f"z{z}", 64, 64) for z in range(3)]
    assert main(["predict", str(tiny_run), str(tmp_path / "cells.tif"), "--out", str(tmp_path / "one"), "--format",
                 "overlay", "--device", "cpu", "--quiet", "--z", "2"]) == 0
    assert [p.name for p in (tmp_path / "one").glob("*.png")] == ["cells_z2_overlay.png"]


@pytest.mark.parametrize(("make", "args", "message"), [
    (lambda d: tifffile.imwrite(d / "five.tif", noise(5, 32, 32), metadata={"axes": "CYX"}), [],
     "five.tif: 5 channels; pass --channels"),
    (lambda d: tifffile.imwrite(d / "dot.tif", np.ones((1, 1), np.uint8)), [], "dot.tif: image is 1x1 pixels"),
    (lambda d: tifffile.imwrite(d / "z.tif", noise(3, 32, 32), photometric="minisblack",
                                     metadata={"axes": "ZYX"}), ["--z", "5"],
     "z.tif: --z 5 but the image has 3 Z planes"),
    (lambda d: tifffile.imwrite(d / "q.tif", noise(9, 32, 32)), [], "q.tif: cannot tell the axes"),
    (lambda d: tifffile.imwrite(d / "ok.tif", noise(32, 32)), ["--channels", "x"], "--channels 'x'"),
    (lambda d: [tifffile.imwrite(d / "s.tif", noise(2, 32, 32), photometric="minisblack", metadata={"axes": "ZYX"}),
                tifffile.imwrite(d / "s_z1.tif", noise(32, 32))], [], "s_z1: two inputs (or planes) give the same"),
])
def test_predict_refuses_bad_inputs_in_one_line_and_writes_nothing(tiny_run: Path, tmp_path: Path, capsys, make,
                                                                   args: list[str], message: str) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    tifffile.imwrite(inputs / "a_good.tif", noise(32, 32))  # a good file first: still nothing may be written
    make(inputs)
    assert main(["predict", str(tiny_run), str(inputs), "--out", str(tmp_path / "out"), "--device", "cpu",
                 "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()


def test_predict_names_the_plane_with_non_finite_pixels(tiny_run: Path, tmp_path: Path, capsys) -> None:
    stack = np.ones((2, 32, 32), np.float32)
    stack[1, 3, 3] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", stack, metadata={"axes": "ZYX"})
    assert main(["predict", str(tiny_run), str(tmp_path / "nan.tif"), "--out", str(tmp_path / "out"), "--device",
                 "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nan.tif z1: 1 non-finite pixel" in err[0]
    assert not (tmp_path / "out").exists()


def test_inputs_doc_table_names_only_real_tests() -> None:
    root = Path(__file__).resolve().parents[1]
    doc = (root.parent / "docs" / "INPUTS.md").read_text()
    named = set(re.findall(r"`([TP])::(test_\w+)`", doc))
    sources = {"T": Path(__file__).read_text(), "P": (root / "inference" / "test_predict.py").read_text()}
    assert len(named) > 15
    assert [f"{k}::{n}" for k, n in sorted(named) if f"def {n}(" not in sources[k]] == []
