"""The npconv command under hostile arguments: every refusal exits with status 2 and one line
on stderr naming the reason, never a traceback, a hang or an allocation the size of the request."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import npconv.memory
from npconv import nn
from npconv.cli import main
from npconv.explain import shape_report
from npconv.explain.commands import EXPLAIN_MAX_ELEMENTS, MAX_LAYER_TEXT, parse_layer
from npconv.explain.shapes import Unallocated

HANG_GUARD_S = 10.0  # not a speed test: each refusal takes milliseconds; the bugs hung or took minutes


def refused(argv, capsys, *fragments) -> str:
    """main(argv) exits 2 with one line on stderr holding every fragment, and no traceback."""
    start = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - start < HANG_GUARD_S
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"npconv {argv[0]}: error: "), err
    assert "Traceback" not in err and all(f in err for f in fragments), err
    return err


def refused_in_a_subprocess(argv, *fragments) -> str:
    """The same through ``python -m npconv``: what a user sees, crashes of the interpreter included."""
    result = subprocess.run([sys.executable, "-m", "npconv", *argv], capture_output=True, text=True,
                            timeout=60, cwd=os.path.dirname(__file__))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert all(f in result.stderr for f in fragments), result.stderr
    return result.stderr


# ---- c1: paths that cannot be written ---------------------------------------------------------
def test_animate_into_a_missing_directory(capsys):
    refused(["animate", "/nonexistent_dir/x.gif"], capsys,
            "npconv animate: error: cannot write /nonexistent_dir/x.gif: No such file or directory")


def test_writing_over_a_directory(tmp_path, capsys):
    refused(["visualize", str(tmp_path)], capsys, f"cannot write {tmp_path}: Is a directory")
    refused(["animate", str(tmp_path)], capsys, f"cannot write {tmp_path}: Is a directory")
    refused(["animate", str(tmp_path), "--input", "1,1,5,5", "--layers", "Conv2d(1, 1, 3)"], capsys,
            f"cannot write {tmp_path}: Is a directory")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_writing_to_a_full_device():
    refused_in_a_subprocess(["visualize", "/dev/full"], "cannot write /dev/full: No space left on device")


# ---- c2: explain's sizes -----------------------------------------------------------------------
@pytest.mark.parametrize("argv, fragments", [
    (["--input", "1,1,100000,100000", "--weight", "1,1,3,3"],
     ["--input (1, 1, 100000, 100000) has 10,000,000,000 elements", f"{EXPLAIN_MAX_ELEMENTS:,}"]),
    (["--input", "1,1,100000,100000", "--weight", "1,1,3,3", "--reverse"], ["10,000,000,000 elements"]),
    (["--input", "1,1,4,4", "--weight", "1,1,5000,5000", "--padding", "3000"], ["--weight (1, 1, 5000, 5000)"]),
    (["--input", "1,1,3,3", "--weight", "1,1,3,3", "--stride", "100000", "--transposed"],
     ["the output (1, 1, 200003, 200003) has 40,001,200,009 elements"]),
    (["--input", "1,1,10,10", "--weight", "1,5000,3,3"], ["the explanation has 45,000 terms", "10,000"]),
    (["--input", "1,1,10,10", "--weight", "5000,1,3,3", "--reverse"], ["the explanation has 45,000 terms"]),
    (["--input", "1,1,2000,2000", "--weight", "4,1,3,3", "--matrix"], ["the convolution matrix has"]),
    (["--input", "1,1,10,10"], ["--input needs --weight"]),
])
def test_explain_refuses_what_it_cannot_build_or_print(argv, fragments, capsys):
    refused(["explain", *argv], capsys, *fragments)


def test_explain_refuses_arrays_above_memory_by_their_bytes(capsys, monkeypatch):
    monkeypatch.setattr(npconv.memory, "available_bytes", lambda: 1000)
    refused(["explain", "--input", "1,1,20,20", "--weight", "1,1,3,3"], capsys, "needs 3200 bytes", "1000 bytes")


def test_explain_repro_in_a_subprocess():
    refused_in_a_subprocess(["explain", "--input", "1,1,100000,100000", "--weight", "1,1,3,3"], "10,000,000,000 elements")


def test_an_unforeseen_memory_error_is_one_line(capsys, monkeypatch):
    def out_of_memory(args):
        raise MemoryError("Unable to allocate 74.5 GiB for an array with shape (100000, 100000)")
    monkeypatch.setattr("npconv.explain.commands.run_explain", out_of_memory)  # the parser reads it when built
    refused(["explain", "--input", "1,1,4,4", "--weight", "1,1,3,3"], capsys, "out of memory: Unable to allocate 74.5 GiB")


def test_explain_still_explains_small_inputs(capsys):
    assert main(["explain", "--input", "1,1,4,4", "--weight", "1,1,3,3"]) == 0
    assert capsys.readouterr().out.startswith("conv2d output[0, 0, 0, 0]")
    assert main(["explain", "--input", "1,1,6,6", "--weight", "1,1,3,3", "--reverse", "--index", "0,0,2,2"]) == 0
    assert "reaches 9 outputs" in capsys.readouterr().out


# ---- c3: shape needs no weights ------------------------------------------------------------------
def test_shape_of_a_layer_with_petabytes_of_weights(capsys):
    start = time.perf_counter()
    assert main(["shape", "1,3,100000,100000", "Conv2d(3, 100000, 100000)"]) == 0
    assert time.perf_counter() - start < HANG_GUARD_S
    assert "3,000,000,000,100,000" in capsys.readouterr().out  # parameters counted, never allocated
    assert main(["shape", "1,3,8,100000", "Linear(100000, 100000)", "DepthwiseSeparableConv2d(3, 9, 9)"]) == 0
    assert "10,000,100,000" in capsys.readouterr().out


def test_shape_repro_is_refused_by_the_kernel_rule(capsys):
    refused(["shape", "1,3,8,8", "Conv2d(3, 100000, 100000)"], capsys, "Kernel size can't be greater than actual input size")


def test_huge_separable_layer_allocates_nothing():
    layer = parse_layer("DepthwiseSeparableConv2d(3, 100000, 100000)")
    assert isinstance(layer.depthwise.weight, Unallocated) and layer.depthwise.weight.shape == (3, 1, 100000, 100000)
    assert layer.pointwise.weight.shape == (100000, 3, 1, 1)


LAYERS = ["Conv2d(3, 8, 3, stride=2, padding=1)", "Conv2d(8, 8, 3, groups=4, bias=False, padding_mode='reflect', padding=1)",
          "ConvTranspose2d(8, 4, 4, stride=2, padding=1, output_padding=1)", "MaxPool2d(3, 2, 1)", "ReLU()",
          "AvgPool2d(2)", "Flatten()", "Linear(64, 10)"]


def test_shape_only_layers_report_exactly_what_real_layers_do():
    real = [eval(f"nn.{text}", {"nn": nn}) for text in LAYERS]  # noqa: S307 - fixed test strings
    parsed = [parse_layer(text) for text in LAYERS]
    assert [type(layer).__name__ for layer in parsed] == [type(layer).__name__ for layer in real]
    assert shape_report(parsed, (2, 3, 16, 16)).table() == shape_report(real, (2, 3, 16, 16)).table()


def test_shape_only_layers_keep_the_constructor_checks(capsys):
    refused(["shape", "1,3,8,8", "Conv2d(3, 8, 3, groups=2)"], capsys, "in_channels must be divisible by groups")
    refused(["shape", "1,3,8,8", "Linear(8, -1)"], capsys, "Linear: parameter shape (-1, 8) must hold non-negative integers")
    refused(["shape", "1,3,8,8", "Conv2d(3, 8, 3, dtype='float16')"], capsys, "dtype must be float32 or float64")


def test_shape_only_parameters_have_no_values():
    with pytest.raises(TypeError, match="has no values"):
        np.asarray(parse_layer("Conv2d(1, 1, 3)").weight)


# ---- c4: layer text the parser cannot take ---------------------------------------------------------
def test_a_hundred_thousand_unary_minus_signs(capsys):
    text = "Conv2d(3, 8, " + "-" * 100_000 + "3)"
    err = refused(["shape", "1,3,8,8", text], capsys, f"more than the {MAX_LAYER_TEXT:,}")
    assert len(err) < 300  # the text is not echoed back
    refused_in_a_subprocess(["shape", "1,3,8,8", text], "layer text is 100,015 characters long")


@pytest.mark.parametrize("text", ["Conv2d(3, 8, " + "-" * 900 + "3)", "Conv2d(3, 8, " + "(" * 400 + "3" + ")" * 400 + ")",
                                  "Conv2d(3, 8, " + "[" * 450 + "]" * 450 + ")"])
def test_deeply_nested_layer_text_within_the_length_limit(text, capsys):
    refused(["shape", "1,3,8,8", text], capsys, "layer")


# ---- animate --layers: the picture's size --------------------------------------------------------
def test_receptive_field_picture_too_large_to_draw(tmp_path, capsys):
    refused(["animate", str(tmp_path / "rf.png"), "--input", "1,1,100000,100000", "--layers", "Conv2d(1, 1, 3)"],
            capsys, "pixels, more than 89,478,485")
    assert not (tmp_path / "rf.png").exists()
