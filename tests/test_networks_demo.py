"""The demo's whole-network part (npconv demo --networks): ResNet-18 saved through safetensors
and reloaded gives identical outputs, the fused copy agrees within 1e-5, and the figure it
prints beside the time is the one the README quotes."""

import re
from pathlib import Path

from helpers import require

require("tqdm", "the demo's progress bar")

from npconv import cli, networks_demo  # noqa: E402

README = Path(__file__).resolve().parent.parent / "README.md"


def test_resnet18_round_trips_fuses_and_runs():
    result = networks_demo.run(repeats=1, progress=False)
    assert result.reload_identical
    assert result.fused_error <= 1e-5
    assert result.parameters == 11_689_512  # torchvision's count
    assert 44 * 2**20 < result.checkpoint_bytes < 46 * 2**20  # float32 weights and the header
    assert result.milliseconds > 0 and len(set(result.top5)) == 5


def test_the_expected_figure_is_the_readmes():
    quoted = re.search(r"ResNet-18 on one 224 x 224 image, fused: about (\d+) ms", README.read_text())
    assert quoted, "the README's Whole networks section quotes the demo's figure"
    assert float(quoted.group(1)) == networks_demo.EXPECTED_MS


def test_the_cli_runs_only_the_network_part(capsys):
    assert cli.main(["demo", "--networks"]) == 0
    out = capsys.readouterr().out
    assert "Part 3" in out and "Part 1" not in out and "identical outputs" in out
