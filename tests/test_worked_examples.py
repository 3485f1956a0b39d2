"""The worked examples (settings with known answers) are golden tests, and PyTorch agrees with them."""

import numpy as np
import pytest
import torch

from npconv.cli import main
from npconv.worked_examples import SOBEL_INPUT, SOBEL_KERNEL, STANDARD, worked_examples

EXAMPLES = worked_examples()


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_worked_example_reproduced(example):
    got, ok = example.run()
    assert ok, f"{example.name}: npconv gives {got}, expected {example.expected}"


def test_the_expected_values_are_pytorchs():
    """Two expected values recomputed by PyTorch, so the golden data is itself checked."""
    sobel = torch.nn.functional.conv2d(torch.from_numpy(SOBEL_INPUT)[None, None],
                                       torch.from_numpy(SOBEL_KERNEL)[None, None])
    np.testing.assert_array_equal(sobel[0, 0].numpy(), [[155, 85, 5], [-15, -15, -5], [-230, -315, -320]])
    x = torch.arange(108.).reshape(1, 3, 6, 6)
    np.testing.assert_array_equal(torch.nn.functional.conv2d(x, torch.ones(1, 3, 3, 3), padding=1)[0, 0], STANDARD)


def test_demo_command_checks_every_example(capsys):
    assert main(["demo", "--no-training"]) == 0
    out = capsys.readouterr().out
    assert f"{len(EXAMPLES)}/{len(EXAMPLES)} worked examples" in out
    assert "10/10 hand-summed examples" in out
    assert out.count("\u2713") == len(EXAMPLES) + 1 + 10 + 1 and "\u2717" not in out


def test_cli_without_command_shows_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_demo_trains_the_digits_cnn_to_97_percent(tmp_path, capsys):
    picture = tmp_path / "digits.png"
    assert main(["demo", "--picture", str(picture)]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("test accuracy ")[1].split("%")[0])
    assert accuracy >= 97.0
    data = picture.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 1000 and height > 150
