"""The notebook docs/notebooks/conv2d_tour.ipynb runs top to bottom and prints what it teaches.

It is executed once per session (about 15 s) by nbclient in a fresh kernel of this interpreter,
so it cannot go stale: a renamed function or a changed shape fails here. It needs the ``docs``
extra (nbclient, ipykernel) and the ``demo`` extra (scikit-learn, matplotlib), which ``make test``
installs; without them it fails rather than skips.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "docs" / "notebooks"
NOTEBOOK = NOTEBOOKS / "conv2d_tour.ipynb"
KERNEL = "npconv-tour"


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory) -> str:
    """A kernel spec that starts this interpreter, first on the Jupyter path: the venv's own
    ``python3`` spec, or one in ~/.local pointing at another Python, cannot be picked instead."""
    jupyter = tmp_path_factory.mktemp("jupyter")
    spec = jupyter / "kernels" / KERNEL
    spec.mkdir(parents=True)
    spec.joinpath("kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "npconv tour", "language": "python"}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(jupyter))
        yield KERNEL


@pytest.fixture(scope="module")
def executed(kernel_name, tmp_path_factory):
    """The notebook after running every cell (a cell that raises fails here, with its traceback)."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    workdir = tmp_path_factory.mktemp("tour")
    client = nbclient.NotebookClient(notebook, timeout=180, kernel_name=kernel_name,
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute()
    return notebook


def printed(notebook) -> str:
    """Everything the code cells printed, in order."""
    return "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.outputs if output.output_type == "stream")


def output_types(notebook) -> set[str]:
    """The MIME types of the rich outputs (pictures) the cells displayed."""
    return {mime for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
            if output.output_type in ("display_data", "execute_result") for mime in output.data}


def test_no_cell_errored(executed):
    errors = [output for cell in executed.cells if cell.cell_type == "code" for output in cell.outputs
              if output.output_type == "error"]
    assert not errors, errors


@pytest.mark.parametrize("line", [
    "Conv2d output: (4, 8, 30, 30)",                   # shapes: 32 - 3 + 1 = 30
    "padding='same'  -> (32, 32)",
    "stride=2: (16, 16), formula: 16",
    "dilation=2: covers 5x5, output (28, 28), formula 28",
    "groups=2: weight (16, 4, 3, 3), 592 params",
    "depthwise weight (8, 1, 3, 3) -> separable output (1, 16, 16, 16)",
    "equals correlate2d: True",
    "equals convolve2d:  False",
    "equals convolve2d with the kernel flipped: True",
    "channel 5 on its own matches: True",
    "ConvTranspose2d output: (4, 3, 32, 32)",
    "conv_transpose2d == conv2d_input: True",
    "75 = 6+7+12+13+18+19",                            # explain_output on one cell
    "loss went down: True",
])
def test_notebook_prints(executed, line):
    assert line in printed(executed)


def test_notebook_shows_its_pictures(executed):
    assert {"image/gif", "image/png"} <= output_types(executed)  # the animation, the loss plot


def test_stored_notebook_is_stripped_and_matches_its_script():
    spec = importlib.util.spec_from_file_location("make_tour", NOTEBOOKS / "make_tour.py")
    make_tour = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_tour)
    stored = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") and cell.get("execution_count") is None
               for cell in stored.cells if cell.cell_type == "code")
    assert [(c.cell_type, c.source) for c in stored.cells] == \
        [(c.cell_type, c.source) for c in make_tour.build_notebook().cells], \
        "conv2d_tour.ipynb differs from make_tour.py: run python docs/notebooks/make_tour.py"
