"""The npconv command: help with examples, aligned output, status 2 on bad arguments."""

import re
import subprocess
import sys

import pytest

from helpers import require
from npconv.cli import main

COMMANDS = ["demo", "shape", "solve", "explain", "animate", "visualize"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    assert "examples:" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["shape", "1,3,8,8", "Conv2d(3, 4, 9)"], "padded input 8 = 8 + 0 + 0 < effective kernel 9"),
    (["shape", "1,3,8,8", "__import__('os').system('true')"], "expected one of npconv.nn's layers"),
    (["shape", "1,3,8,8", "Conv2d(3, 4, k)"], "kernel_size must be an int"),  # k reads as the string 'k'
    (["shape", "1,3,8", "Conv2d(3, 4, 3)"], "expects input (N, 3, 2 spatial sizes)"),
    (["shape", "1,x,8", "Conv2d(3, 4, 3)"], "comma-separated integers"),
    (["solve", "--input", "10", "--output", "3", "--kernel", "3", "--stride", "2"], "output_size=4"),
    (["solve", "--input", "10", "--kernel", "3"], "give --output"),
    (["explain", "--input", "1,1,2,2", "--weight", "1,1,5,5", "--dilation", "2", "--padding", "1"],
     "nearest valid: padding 4 per side"),
    (["explain", "--input", "1,1,4,4", "--weight", "1,1,3,3", "--index", "0,0,5,5"], "outside the shape"),
    (["explain", "--input", "1,1,3,3", "--weight", "1,1,3,3", "--padding", "3", "--padding-mode", "reflect"],
     "nearest valid: padding <= 2"),
    (["nonsense"], "invalid choice"),
])
def test_bad_arguments_exit_2_with_a_clear_message(argv, message, capsys):
    try:
        status = main(argv)
    except SystemExit as stop:  # argparse's own refusals
        status = stop.code
    assert status == 2
    assert message in capsys.readouterr().err


def test_explain_with_no_options_reproduces_the_hand_sums(capsys):
    assert main(["explain"]) == 0
    out = capsys.readouterr().out
    assert "10/10 hand-summed examples" in out
    assert "\u2713 3 channels -> 1, 3x3, padding 1, output[0, 0, 0, 0]\n" in out
    assert "474 = 0+1+6+7 + 36+37+42+43 + 72+73+78+79" in out


def test_teaching_text_names_settings_not_documents(capsys):
    """The demo, explain and every help text describe each example by its setting; none cites
    a document or section the user does not have."""
    assert main(["demo", "--no-training"]) == 0
    assert main(["explain"]) == 0
    texts = [capsys.readouterr().out]
    for argv in ([], *([command] for command in COMMANDS)):
        with pytest.raises(SystemExit):
            main([*argv, "--help"])
        texts.append(capsys.readouterr().out)
    for text in texts:
        assert not re.search(r"document|\[00\d|section \d", text), text
    assert "Depthwise conv: 3 channels -> 3, 3x3 ones, groups=3, padding=1" in texts[0]


def test_shape_prints_the_table(capsys):
    assert main(["shape", "1,3,224,224", "Conv2d(3, 64, 7, stride=2, padding=3)", "MaxPool2d(3, 2, 1)"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[3].split()[:6] == ["0:", "Conv2d", "(1,", "64,", "112,", "112)"]
    assert lines[4].split()[-2:] == ["11x11", "4x4"]


def test_shape_reads_a_module_repr_back(capsys):
    assert main(["shape", "1,4,8,8", "Conv2d(4, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), "
                                      "dilation=(2, 2), groups=2, bias=False, padding_mode=circular)"]) == 0
    assert "(1, 8, 6, 6)" in capsys.readouterr().out


def test_solve_prints_every_convention(capsys):
    assert main(["solve", "--input", "6", "--kernel", "3", "--stride", "2", "--keras", "same"]) == 0
    out = capsys.readouterr().out
    assert "pytorch  F.pad=(0, 1), padding=0" in out and "keras    padding='same'" in out
    assert "onnx     pads=[0, 1], auto_pad_also='SAME_UPPER'" in out


def test_explain_matrix_and_reverse(capsys):
    assert main(["explain", "--input", "1,1,4,4", "--weight", "1,1,3,3", "--matrix"]) == 0
    out = capsys.readouterr().out
    assert "1 1 1 . 1 1 1 . 1 1 1 . . . . ." in out
    assert main(["explain", "--input", "1,1,6,6", "--weight", "1,1,3,3", "--stride", "2", "--reverse",
                 "--index", "0,0,2,2"]) == 0
    assert "reaches 4 outputs" in capsys.readouterr().out


def test_python_dash_m_runs_the_same_command():
    done = subprocess.run([sys.executable, "-m", "npconv", "solve", "--input", "7", "--output", "7", "--kernel", "3"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "pytorch  padding=(1,), padding_also='same'" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "npconv", "solve"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "required" in bad.stderr


def test_animate_and_visualize_write_their_files(tmp_path, capsys):
    Image = require("PIL.Image", "npconv animate")
    gif = tmp_path / "conv.gif"
    assert main(["animate", str(gif), "--input", "5,5", "--kernel", "3", "--stride", "2", "--padding", "1"]) == 0
    with Image.open(gif) as picture:
        assert picture.n_frames == 9  # a 3x3 output, one frame per output cell
    png = tmp_path / "rf.png"
    assert main(["animate", str(png), "--input", "1,1,16,16", "--layers", "Conv2d(1,1,3)", "Conv2d(1,1,3,stride=2)"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = tmp_path / "page.html"
    assert main(["visualize", str(page), "--input", "7,7", "--kernel", "3", "--stride", "2"]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "http://" not in text and "https://" not in text
    assert main(["visualize", str(tmp_path / "bad.html"), "--input", "2,2", "--kernel", "5"]) == 2
    assert not (tmp_path / "bad.html").exists()
    assert "effective kernel 5" in capsys.readouterr().err


def test_visualize_starts_from_pytorchs_defaults(tmp_path, capsys):
    """No option given means PyTorch's default (padding 0, stride 1, ...), so a refusal names
    the user's own numbers, never a padding they did not set."""
    page = tmp_path / "page.html"
    assert main(["visualize", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    for pair in ('"stride": 1', '"padding": 0', '"dilation": 1', '"groups": 1', '"mode": "zeros"',
                 '"transposed": false'):
        assert pair in text
    assert main(["visualize", str(tmp_path / "big.html"), "--input", "5,5", "--kernel", "9"]) == 2
    assert "padded input 5 = 5 + 0 + 0 < effective kernel 9" in capsys.readouterr().err
