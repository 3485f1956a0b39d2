"""The demo's third part: a whole network.  ResNet-18 (torchvision's architecture and state
dict keys) is built with random weights, saved to a safetensors file and loaded back into a
fresh model, folded for inference (BatchNorm into the convolutions) and run on a batch of one
224 x 224 image; the time is printed beside the figure the README quotes for this machine
class, and the reloaded model must give the saved model's outputs exactly.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import io, models, nn
from .random import manual_seed

# The README's figure ("Whole networks"): median fused ResNet-18 eval forward, batch 1, 224 x 224,
# float32, 2 threads, measured by bench/networks.py on the 2-core development machine.
EXPECTED_MS = 50.0


@dataclass
class NetworkResult:
    """What :func:`run` reports."""

    milliseconds: float
    expected_milliseconds: float
    reload_identical: bool
    fused_error: float
    parameters: int
    checkpoint_bytes: int
    top5: list[int]


def _save_and_reload(model: nn.Module, folder: Path) -> tuple[nn.Module, int]:
    path = folder / "resnet18.safetensors"
    io.save(model.state_dict(), path)
    fresh = models.resnet18()
    fresh.load_state_dict(io.load(path))
    return fresh, path.stat().st_size


def _median_ms(model: nn.Module, image: np.ndarray, repeats: int) -> float:
    model(image)  # the first call loads (or compiles) the kernels: never timed
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(image)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def run(repeats: int = 5, progress: bool = True) -> NetworkResult:
    """Build, save, reload, fuse and time ResNet-18 on one random 224 x 224 image.

    Parameters
    ----------
    repeats : int, default 5
        Timed forward passes (the median is reported).
    progress : bool, default True
        Show a progress bar.

    Returns
    -------
    NetworkResult
        The median time, the README's figure, whether the reloaded model matched the saved one
        exactly, the fused model's largest difference relative to the unfused one, the parameter
        count, the checkpoint's size and the top-5 classes.
    """
    from tqdm import tqdm

    manual_seed(0)
    steps = ["build", "save and reload", "fuse", "time"]
    with tqdm(total=len(steps), desc="ResNet-18", disable=not progress, leave=False) as bar:
        model = models.resnet18().eval()
        image = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
        bar.update()
        with tempfile.TemporaryDirectory() as folder:
            reloaded, size = _save_and_reload(model, Path(folder))
        reloaded.eval()
        reference, again = model(image), reloaded(image)
        bar.update()
        fused = nn.fuse(reloaded)
        logits = fused(image)
        error = float(np.abs(logits - reference).max() / np.abs(reference).max())
        bar.update()
        ms = _median_ms(fused, image, repeats)
        bar.update()
    return NetworkResult(ms, EXPECTED_MS, bool(np.array_equal(reference, again)), error,
                         sum(p.size for p in model.parameters()), size,
                         [int(i) for i in np.argsort(-logits[0])[:5]])
