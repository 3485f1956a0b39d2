"""The API reference site: it builds with warnings as errors, and every public name has an entry.

The site is built once per test session (about 20 s) by the same command as ``make docs``, into a
temporary folder; the entries are read from the built ``objects.inv``, the inventory Sphinx
writes of every documented object.
"""

from __future__ import annotations

import importlib
import inspect
import shutil
import subprocess
import sys
import tempfile
import types
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"

# the modules a user imports by name (README, guide); modules that their __all__ names
# (npconv.keras.activations, ...) are public too and found by public_modules()
DOCUMENTED_MODULES = ("npconv", "npconv.functional", "npconv.grad", "npconv.nn", "npconv.optim", "npconv.models",
                      "npconv.keras", "npconv.onnx", "npconv.convert", "npconv.separable",
                      "npconv.explain", "npconv.select", "npconv.settings", "npconv.spec",
                      "npconv.spec_errors", "npconv.io", "npconv.ops", "npconv.dask",
                      "npconv.stream")


@pytest.fixture(scope="module")
def build() -> Iterator[subprocess.CompletedProcess]:
    """Build the site as ``make docs`` does (-W --keep-going: any warning fails the build, after
    the whole site is written); ``args[-1]`` is its folder."""
    out = Path(tempfile.mkdtemp(prefix="npconv-site-"))
    yield subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-E", "-b", "html",
                          str(DOCS), str(out)], capture_output=True, text=True)
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="module")
def site(build) -> Path:
    """The built site's folder (written in full even when a warning failed the build)."""
    out = Path(build.args[-1])
    assert (out / "objects.inv").is_file(), f"sphinx wrote no site:\n{build.stderr[-6000:]}"
    return out


def inventory_names(path: Path) -> set[str]:
    """The object names in a Sphinx ``objects.inv`` (version 2: four header lines, then zlib)."""
    raw = path.read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = raw.index(b"\n", header_end) + 1
    assert raw.startswith(b"# Sphinx inventory version 2"), raw[:40]
    lines = zlib.decompress(raw[header_end:]).decode("utf-8").splitlines()
    return {line.split(" ", 1)[0] for line in lines if line.strip()}


def public_names(module: types.ModuleType) -> list[str]:
    """``__all__``, or without it the functions and classes defined there whose names lack a ``_``."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return sorted(name for name, value in vars(module).items()
                  if not name.startswith("_") and (inspect.isfunction(value) or inspect.isclass(value))
                  and value.__module__ == module.__name__)


def public_modules() -> list[types.ModuleType]:
    """DOCUMENTED_MODULES and, recursively, every module one of their ``__all__`` names."""
    found: dict[str, types.ModuleType] = {}
    pending = [importlib.import_module(name) for name in DOCUMENTED_MODULES]
    while pending:
        module = pending.pop()
        if module.__name__ in found:
            continue
        found[module.__name__] = module
        pending += [value for name in public_names(module)
                    if isinstance(value := getattr(module, name), types.ModuleType)]
    return sorted(found.values(), key=lambda m: m.__name__)


def entry_names(module: types.ModuleType, name: str) -> set[str]:
    """The entries that document ``module.name``: under that path, or where the object lives."""
    value = getattr(module, name)
    if isinstance(value, types.ModuleType):
        return {value.__name__}
    names = {f"{module.__name__}.{name}"}
    if inspect.isfunction(value) or inspect.isclass(value):
        names.add(f"{value.__module__}.{value.__qualname__}")
    return names


def test_site_builds_without_warnings(build, site):
    assert build.returncode == 0, f"sphinx failed ({build.returncode}):\n{build.stderr[-6000:]}"
    for page in ("index", "guide", "gallery", "notebooks/conv2d_tour", "api/index"):
        assert (site / f"{page}.html").is_file(), page


def test_every_public_module_has_a_page(site):
    documented = inventory_names(site / "objects.inv")
    missing = [m.__name__ for m in public_modules() if m.__name__ not in documented]
    assert not missing, f"public modules without an API page (docs/api/*.rst): {missing}"


def test_every_public_name_has_an_entry(site):
    documented = inventory_names(site / "objects.inv")
    missing = [f"{module.__name__}.{name}" for module in public_modules() for name in public_names(module)
               if not entry_names(module, name) & documented]
    assert not missing, ("public names with no entry in the API reference (a docstring, and the "
                         f"module's page in docs/api/ documents its members): {missing}")


def test_gallery_shows_every_picture(site):
    gallery = (site / "gallery.html").read_text(encoding="utf-8")
    pictures = sorted(p.name for p in (DOCS / "images").iterdir() if p.suffix in {".gif", ".png"})
    assert pictures and all(f"_images/{name}" in gallery for name in pictures), pictures


def test_notebook_page_shows_its_code_and_offers_the_file(site):
    page = (site / "notebooks" / "conv2d_tour.html").read_text(encoding="utf-8")
    assert "conv2d_tour.ipynb" in page and "explain_output" in page
