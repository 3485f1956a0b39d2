"""The conv-arithmetic pictures: counts and sizes by formula, pure frames, and the shaded
footprint read back from the pixels against a brute-force index computation."""

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest

from npconv import nn
from npconv.explain.animation import (Geometry, animate, frame, palette, receptive_field,
                                    receptive_field_image, receptive_field_png, trace_receptive_field)
from npconv.explain.footprint import explain_output, explain_transposed_output
from npconv.windows import tap_sources
from helpers import require

Image = require("PIL.Image", "reading the pictures' pixels back")
INSET = 4  # sample cells this far in from their top-left corner: clear of outlines and labels


def _pairs(value, n):
    return value if isinstance(value, tuple) else (value,) * n


def expected_picture(input_size, kernel_size=3, stride=1, padding=0, dilation=1, groups=1,
                     padding_mode="zeros", transposed=False, output_padding=0, in_channels=1,
                     out_channels=1, cell=28):
    """Frames and pixel size from first principles, worked out from first principles (not read from the code under test)."""
    size = _pairs(input_size, 1)
    n = len(size)
    k, s, p, d, op = (_pairs(v, n) for v in (kernel_size, stride, padding, dilation, output_padding))
    ek = [dd * (kk - 1) + 1 for kk, dd in zip(k, d)]
    if transposed:
        out = [(i - 1) * ss - 2 * pp + e + o for i, ss, pp, e, o in zip(size, s, p, ek, op)]
        frame_ = [o + e - 1 for o, e in zip(out, ek)]
    else:
        out = [(i + 2 * pp - e) // ss + 1 for i, pp, e, ss in zip(size, p, ek, s)]
        frame_ = [i + 2 * pp for i, pp in zip(size, p)]
    same_rule = len(set(zip(size, k, s, p, d, op))) == 1
    lines = 2 + transposed + (1 if same_rule else n)
    header = cell // 2 + lines * (2 * cell // 3)
    n_frames = out_channels * math.prod(out)
    if n == 1:
        width = cell * max(max(frame_[0], out[0]) + 2, 16)
        return n_frames, (width, header + cell * (2 * in_channels + 2 * out_channels + 1))
    body = max(in_channels * (frame_[0] + 1), out_channels * (out[0] + 1))
    return n_frames, (cell * max(frame_[1] + out[1] + 3, 16), header + cell * (body + 1))


CASES = {
    "stride2": dict(input_size=(5, 5), stride=2, padding=1),
    "dilation2": dict(input_size=(7, 7), dilation=2),
    "reflect": dict(input_size=(4, 4), padding=2, padding_mode="reflect"),
    "replicate": dict(input_size=(4, 5), padding=1, padding_mode="replicate"),
    "circular": dict(input_size=(4, 4), kernel_size=(3, 2), padding=1, padding_mode="circular"),
    "groups2": dict(input_size=(4, 4), padding=1, groups=2, in_channels=2, out_channels=2),
    "transposed": dict(input_size=(3, 3), stride=2, padding=1, transposed=True, output_padding=1),
    "conv1d": dict(input_size=7, stride=2, padding=1, in_channels=2, out_channels=2),
    "transposed1d": dict(input_size=(4,), kernel_size=2, stride=3, transposed=True, output_padding=1),
}


@pytest.mark.parametrize("name", ["stride2", "dilation2", "reflect", "groups2", "transposed", "conv1d"])
def test_gif_frames_and_size_follow_the_documented_formula(name, tmp_path):
    args = CASES[name]
    n_frames, size = expected_picture(**args)
    path = animate(tmp_path / f"{name}.gif", **args, cell=16, duration_ms=120)
    assert path.exists()
    with Image.open(path) as gif:
        assert (gif.n_frames, gif.size) == (n_frames, expected_picture(**args, cell=16)[1])
        assert gif.info["loop"] == 0 and gif.info["duration"] == 120
    geometry = Geometry.build(**args)
    assert (geometry.n_frames, geometry.size) == (n_frames, size)


@pytest.mark.parametrize("name", sorted(CASES))
def test_frame_size_and_count_per_spec(name):
    geometry = Geometry.build(**CASES[name])
    assert (geometry.n_frames, geometry.size) == expected_picture(**CASES[name])
    assert frame(geometry, geometry.n_frames - 1).size == geometry.size


def test_frames_are_pure_functions_of_geometry_and_step():
    geometry = Geometry.build(**CASES["reflect"])
    again = Geometry.build(**CASES["reflect"])
    assert geometry == again and hash(geometry) == hash(again)
    first = [frame(geometry, step).tobytes() for step in (0, 5, 15)]
    frame(geometry, 7)  # drawing another step in between changes nothing
    assert first == [frame(again, step).tobytes() for step in (0, 5, 15)]
    assert frame(geometry, 0).tobytes() != frame(geometry, 1).tobytes()


def test_title_shows_the_spec_and_the_shape_rule():
    geometry = Geometry.build((5, 5), 3, stride=2, padding=1)
    assert geometry.title == ("conv2d in 5x5 k=3x3 s=2 p=1 d=1 g=1 zeros",
                              "out = floor((5 + 1 + 1 - 3) / 2) + 1 = 3")
    transposed = Geometry.build(**CASES["transposed"])
    assert transposed.title[-1] == "out = (3 - 1) * 2 - 1 - 1 + 3 + 1 = 6"
    assert transposed.title[1].startswith("zeros: 1 between inputs, 1 before, 2 after")
    uneven = Geometry.build(**CASES["replicate"])
    assert [line.split(" = ")[0] for line in uneven.title[1:]] == ["out_h", "out_w"]


# ---- the pixels against brute force -----------------------------------------------------
def _pixel(image, box):
    return image.getpixel((box[0] + INSET, box[1] + INSET))


def shaded_cells(geometry, image, channel):
    """The input-frame cells of ``channel`` drawn in its group's tap colour."""
    tap = palette(geometry.input_group(channel), geometry.spec.groups).tap
    rows, cols = geometry.frame_shape
    return {(r, c) for r in range(rows) for c in range(cols)
            if _pixel(image, geometry.input_cell_box(channel, r, c)) == tap}


def brute_force_footprint(args, out_row, out_col):
    """Padded-frame cells under the taps: input position o*stride + k*dilation - lo, plus lo;
    transposed: a stride-1 window over the zero-inserted frame, q + k*dilation."""
    n = len(_pairs(args["input_size"], 1))
    k, s, p, d = (_pairs(args.get(key, default), n) for key, default in
                  (("kernel_size", 3), ("stride", 1), ("padding", 0), ("dilation", 1)))
    if args.get("transposed"):
        s = (1,) * n
    per_dim = [{oo * ss + kk * dd - pp + pp for kk in range(kernel)}
               for oo, ss, dd, pp, kernel in zip((out_row, out_col)[2 - n:], s, d, p, k)]
    rows = per_dim[0] if n == 2 else {0}
    return set(itertools.product(rows, per_dim[-1]))


@pytest.mark.parametrize("name", ["stride2", "dilation2", "reflect", "circular", "groups2", "transposed",
                                  "conv1d", "transposed1d"])
def test_shaded_footprint_is_exactly_the_cells_the_spec_reads(name):
    args = CASES[name]
    geometry = Geometry.build(**args)
    for step in range(geometry.n_frames):
        image = frame(geometry, step)
        channel_out, (row, col) = geometry.target(step)
        want = brute_force_footprint(args, row, col)
        for channel in range(geometry.in_channels):
            same_group = geometry.input_group(channel) == geometry.output_group(channel_out)
            assert shaded_cells(geometry, image, channel) == (want if same_group else set()), (step, channel)


def test_dilation_holes_are_not_shaded():
    geometry = Geometry.build((7, 7), 3, dilation=2)
    shaded = shaded_cells(geometry, frame(geometry, 0), 0)
    assert shaded == {(r, c) for r in (0, 2, 4) for c in (0, 2, 4)}
    assert (1, 1) not in shaded and (0, 1) not in shaded


@pytest.mark.parametrize("name", ["stride2", "groups2", "conv1d"])
def test_output_grid_fills_in_row_major_channel_by_channel(name):
    geometry = Geometry.build(**CASES[name])
    step = geometry.n_frames // 2 + 1
    image = frame(geometry, step)
    rows, cols = geometry.out_shape
    for channel in range(geometry.out_channels):
        colours = palette(geometry.output_group(channel), geometry.spec.groups)
        for r, c in itertools.product(range(rows), range(cols)):
            index = (channel * rows + r) * cols + c
            want = colours.output if index < step else colours.current if index == step else (255, 255, 255)
            assert _pixel(image, geometry.output_cell_box(channel, r, c)) == want, (channel, r, c)


# ---- the tables against npconv's own index arithmetic -----------------------------------
def brute_force_source(u, size, mode):
    """What padded input position u holds (-1: a zero), written out by hand per mode."""
    if 0 <= u < size:
        return u
    if mode == "zeros":
        return -1
    if mode == "replicate":
        return min(max(u, 0), size - 1)
    if mode == "circular":
        return u % size
    return -u if u < 0 else 2 * (size - 1) - u  # reflect


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_padding_labels_and_reads_match_tap_sources_and_brute_force(mode):
    geometry = Geometry.build((4, 5), (3, 2), stride=(1, 2), padding=((2, 1), (1, 1)), dilation=(1, 2),
                              padding_mode=mode)
    for d, axis in enumerate(geometry.axes):
        size, (lo, _), n_out = geometry.in_spatial[d], geometry.pads[d], geometry.out_spatial[d]
        assert axis.sources == tuple(brute_force_source(p - lo, size, mode) for p in range(len(axis.sources)))
        table = tap_sources(size, n_out, lo, geometry.spec.stride[d], geometry.spec.dilation[d],
                            geometry.spec.kernel_size[d], mode)
        assert axis.reads == tuple(map(tuple, table.tolist()))
        assert all(axis.sources[p] == read for taps, reads in zip(axis.taps, axis.reads)
                   for p, read in zip(taps, reads))


def test_forward_footprint_agrees_with_explain_output():
    geometry = Geometry.build((5, 6), 3, stride=2, padding=(1, 2), dilation=(1, 2), padding_mode="reflect")
    x, w = np.arange(30.0).reshape(1, 1, 5, 6), np.ones((1, 1, 3, 3))
    for step in range(geometry.n_frames):
        _, (row, col) = geometry.target(step)
        terms = explain_output(x, w, (0, 0, row, col), stride=2, padding=(1, 2), dilation=(1, 2),
                               padding_mode="reflect").terms
        lo = [lo for lo, _ in geometry.pads]
        assert geometry.footprint(step) == tuple((t.position[0] + lo[0], t.position[1] + lo[1]) for t in terms)
        assert geometry.reads(step) == tuple(t.source for t in terms)


@pytest.mark.parametrize("args", [
    dict(input_size=(3, 4), stride=2, padding=1, output_padding=1),
    dict(input_size=(5, 5), stride=2, padding=3),  # padding > d*(k-1): the zero-inserted grid is cropped
    dict(input_size=(4,), kernel_size=3, stride=3, dilation=2, padding=1, output_padding=2),
])
def test_transposed_picture_agrees_with_explain_transposed_output(args):
    """The stride-1 window over the zero-inserted grid reads, through drawn tap j, the input that
    the scatter adds with weight tap k - 1 - j (the drawn kernel is the weight flipped)."""
    geometry = Geometry.build(**args, transposed=True)
    n, k = geometry.ndim, geometry.spec.kernel_size
    x = np.arange(float(math.prod(geometry.in_spatial))).reshape((1, 1) + geometry.in_spatial)
    w = np.ones((1, 1) + k)
    options = {key: args[key] for key in ("stride", "padding", "dilation", "output_padding") if key in args}
    for step in range(geometry.n_frames):
        _, (row, col) = geometry.target(step)
        q = (row, col)[2 - n:]
        terms = explain_transposed_output(x, w, (0, 0) + q, **options).terms
        taps = list(itertools.product(*(range(kk) for kk in k)))
        picture = {(read[2 - n:], tuple(kk - 1 - j for kk, j in zip(k, tap)))
                   for read, tap in zip(geometry.reads(step), taps) if read is not None}
        assert picture == {(t.source, t.tap) for t in terms}, step


# ---- the receptive field -----------------------------------------------------------------
def test_receptive_field_numbers():
    same = {"kernel_size": 3, "stride": 1, "padding": 1}
    assert receptive_field([same, same]) == [((3, 3), (1, 1)), ((5, 5), (1, 1))]
    strided = [{"kernel_size": 3, "stride": 2, "padding": 1}] * 2
    assert [(f.size, f.jump) for f in receptive_field(strided)] == [((3, 3), (2, 2)), ((7, 7), (4, 4))]
    modules = [nn.Conv2d(1, 1, 3, stride=2, padding=1), nn.Conv2d(1, 1, 3, stride=2, padding=1)]
    assert receptive_field(modules) == receptive_field(strided)
    assert receptive_field([{"kernel_size": 3, "dilation": 2}] * 2)[-1].size == (9, 9)
    assert receptive_field([nn.Conv1d(1, 1, 5, stride=3)])[0] == ((5,), (3,))


def test_trace_back_propagates_the_centre_through_tap_sources():
    layers = [{"kernel_size": 3, "stride": 2, "padding": 1}] * 2
    trace = trace_receptive_field(layers, (16, 16))
    assert trace.shapes == ((16, 16), (8, 8), (4, 4))
    # centre (2, 2) of the 4x4 grid reads 2*2 + k - 1 = 3..5; those read 2*3 - 1 .. 2*5 + 1 = 5..11
    assert trace.marked == (((5, 6, 7, 8, 9, 10, 11),) * 2, ((3, 4, 5),) * 2, ((2,),) * 2)
    assert trace.extents[0] == receptive_field(layers)[-1].size == (7, 7)
    corner = trace_receptive_field(layers, (4, 4))  # 4 -> 2 -> 1: zero-padding taps fall off
    assert corner.shapes[-1] == (1, 1) and corner.marked == (((0, 1, 2, 3),) * 2, ((0, 1),) * 2, ((0,),) * 2)
    assert corner.extents[0] == (4, 4) < receptive_field(layers)[-1].size  # clipped by the border


def test_receptive_field_png_size_and_marked_cells(tmp_path):
    layers = [nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3)]
    path = receptive_field_png(tmp_path / "rf.png", layers, (1, 1, 9, 9), cell=12)  # full (N, C, H, W) works
    with Image.open(path) as png:
        assert png.format == "PNG"
        rows = [9, 7, 5]
        assert png.size == (12 * max(9 + 2, 20), 12 // 2 + 12 * sum(r + 2 for r in rows))
        image = png.convert("RGB")
    trace = trace_receptive_field(layers, (9, 9))
    assert trace.extents[0] == receptive_field(layers)[-1].size == (5, 5)
    dark = palette(0).tap
    y0 = 12 // 2 + 12  # the input grid sits below its caption row
    shaded = {(r, c) for r in range(9) for c in range(9)
              if image.getpixel((12 + c * 12 + INSET, y0 + r * 12 + INSET)) == dark}
    assert shaded == set(itertools.product(range(2, 7), repeat=2))


def test_receptive_field_1d_picture():
    image = receptive_field_image([{"kernel_size": 3, "stride": 2}] * 2, 15, cell=12)
    assert image.size == (12 * 20, 6 + 12 * 3 * 3)


# ---- refusals ------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, name", [
    (dict(input_size=(4, 4, 4)), "input_size"),
    (dict(input_size=(0, 4)), "input_size"),
    (dict(input_size="5x5"), "input_size"),
    (dict(in_channels=3, out_channels=2, groups=2), "in_channels"),
    (dict(in_channels=2, out_channels=3, groups=2), "out_channels"),
    (dict(out_channels=0), "out_channels"),
    (dict(cell=4), "cell"),
    (dict(stride=0), "stride"),
    (dict(padding_mode="mirror"), "padding_mode"),
    (dict(transposed=True, padding_mode="reflect"), "padding_mode"),
    (dict(transposed=True, stride=2, output_padding=2), "output_padding"),
    (dict(kernel_size=7), "Kernel size"),
])
def test_bad_arguments_raise_value_error_naming_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Geometry.build(**kwargs)


def test_bad_step_duration_and_layers(tmp_path):
    geometry = Geometry.build()
    for step in (-1, geometry.n_frames, 1.5):
        with pytest.raises(ValueError, match="step"):
            frame(geometry, step)
    with pytest.raises(ValueError, match="duration_ms"):
        animate(tmp_path / "x.gif", duration_ms=0)
    with pytest.raises(ValueError, match="layers"):
        receptive_field([{"kernel": 3}])
    with pytest.raises(ValueError, match="layers"):
        receptive_field([nn.ConvTranspose2d(1, 1, 3)])
    with pytest.raises(ValueError, match="layers"):
        receptive_field([])
    with pytest.raises(ValueError, match="input_size"):
        trace_receptive_field([nn.Conv2d(1, 1, 3)], (9,))


def test_missing_pillow_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"npconv\[explain\]"):
        frame(Geometry.build(), 0)


def test_geometry_and_receptive_field_arithmetic_run_without_pillow():
    """The pictures' index and pixel arithmetic imports and answers with Pillow blocked."""
    code = ("import sys; sys.modules['PIL'] = None\n"
            "from npconv.explain.pictures.geometry import Geometry\n"
            "from npconv.explain.pictures.receptive_field import receptive_field_size, trace_receptive_field\n"
            "g = Geometry.build((5, 5), 3, stride=2, padding=1, cell=16)\n"
            "trace = trace_receptive_field([{'kernel_size': 3}] * 2, (9, 9))\n"
            "print(g.n_frames, *g.size, *g.axes[1].taps[2], *receptive_field_size(trace, 12))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    n_frames, (width, height) = expected_picture((5, 5), stride=2, padding=1, cell=16)
    rf_size = (12 * 20, 12 // 2 + 12 * sum(rows + 2 for rows in (9, 7, 5)))
    assert [int(v) for v in run.stdout.split()] == [n_frames, width, height, 4, 5, 6, *rf_size]


def test_the_documented_paths_are_the_functions(tmp_path):
    """The README's ``npconv.explain.animate(...)``, ``receptive_field_png(...)`` and
    ``write_page(...)`` are functions of npconv.explain (the GIF writer's module is
    ``npconv.explain.animation``), and importing them needs no Pillow."""
    import npconv.explain
    from npconv.explain import animate as animate_, receptive_field_png as png, write_page

    assert animate_ is animate and callable(npconv.explain.animate) and png is receptive_field_png
    gif = npconv.explain.animate(tmp_path / "a.gif", (4, 4), 3, stride=1, padding=1)
    with Image.open(gif) as picture:
        assert picture.n_frames == 16
    assert "<!DOCTYPE html>" in write_page(tmp_path / "p.html", input_size=(6, 6)).read_text()
    code = "import sys; sys.modules['PIL'] = None\nfrom npconv.explain import animate, write_page, receptive_field_png"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
