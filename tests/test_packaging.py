"""The distributions a user installs: `python -m build` (once per session, from a clean copy of
the source tree, with the environment's setuptools: --no-isolation) passes without a warning
and `twine check --strict` passes; the wheel holds LICENSE, py.typed and the page's HTML; its
METADATA has the SPDX licence, classifiers, project URLs and npconv.__version__; the sdist holds
every source file of docs/, tests/, tools/ and bench/, and its own tests run from it."""

import email.parser
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import NamedTuple

import pytest

import npconv

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_FOLDERS = ("docs", "tests", "tools", "bench")
# build outputs and local state: never in a distribution (nor in the copy it is built from)
OUTPUTS = {"build", "dist", "docs/_build", "bench/results", "digits_cnn.png"}
BYTECODE = (".pyc", ".pyo", ".nbi", ".nbc")  # Python's and Numba's caches


class Built(NamedTuple):
    log: str
    source: Path
    sdist: Path
    wheel: Path


def _ignored(root: Path):
    def ignore(folder, names):
        relative = Path(folder).relative_to(root)
        return {name for name in names if name.startswith(".") or name == "__pycache__"
                or name.endswith(".egg-info") or (relative / name).as_posix() in OUTPUTS}
    return ignore


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    """Both distributions, built once for this module from a copy of the tree as a clone has it."""
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=_ignored(ROOT))
    for planted in ("docs/_build/html/_downloads/x/conv2d_tour.ipynb",  # what make docs leaves
                    "docs/notebooks/.ipynb_checkpoints/conv2d_tour-checkpoint.ipynb"):  # what Jupyter leaves
        (source / planted).parent.mkdir(parents=True, exist_ok=True)
        (source / planted).write_text("{}")
    # PYTHONDONTWRITEBYTECODE makes setuptools warn that it skips byte-compiling: the
    # environment's choice, not the project's, so the build runs without it
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    run = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(work / "dist"),
                          str(source)], env=env, capture_output=True, text=True)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    [sdist] = (work / "dist").glob("*.tar.gz")
    [wheel] = (work / "dist").glob("*.whl")
    return Built(log, source, sdist, wheel)


def _sdist_names(built: Built) -> set[str]:
    with tarfile.open(built.sdist) as archive:
        prefix = f"npconv-{npconv.__version__}/"
        return {member.name.removeprefix(prefix) for member in archive.getmembers() if member.isfile()}


def _wheel_names(built: Built) -> set[str]:
    with zipfile.ZipFile(built.wheel) as archive:
        return set(archive.namelist())


def _metadata(built: Built):
    with zipfile.ZipFile(built.wheel) as archive:
        text = archive.read(f"npconv-{npconv.__version__}.dist-info/METADATA").decode()
    return email.parser.Parser().parsestr(text)


def test_the_build_passes_without_a_warning(built):
    noisy = [line for line in built.log.splitlines()
             if "warn" in line.lower() or "deprecat" in line.lower() or "previously-included" in line]
    assert not noisy, "\n".join(noisy)


def test_twine_check_passes(built):
    run = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(built.sdist), str(built.wheel)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_wheel_holds_the_licence_the_type_marker_and_the_page(built):
    names = _wheel_names(built)
    assert f"npconv-{npconv.__version__}.dist-info/licenses/LICENSE" in names
    assert {"npconv/py.typed", "npconv/explain/page.html", "npconv/cli.py"} <= names
    assert not [name for name in names if "__pycache__" in name or name.endswith(BYTECODE)]


def test_the_metadata_has_the_licence_classifiers_urls_and_the_version(built):
    metadata = _metadata(built)
    assert metadata["License-Expression"] == "MIT" and metadata["License-File"] == "LICENSE"
    assert metadata["Version"] == npconv.__version__ == importlib.metadata.version("npconv")
    classifiers = metadata.get_all("Classifier")
    assert "Typing :: Typed" in classifiers and "Programming Language :: Python :: 3" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # the expression replaces them
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL"))
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(urls)
    assert "numba>=0.60" in metadata.get_all("Requires-Dist")  # the compiled kernels by default


def test_the_readme_tables_every_extra(built):
    readme = (built.source / "README.md").read_text(encoding="utf-8")
    install = readme.split("## Install", 1)[1].split("\n## ", 1)[0]
    tabled = set(re.findall(r"^\| `([a-z]+)` \|", install, flags=re.MULTILINE))
    assert tabled == set(_metadata(built).get_all("Provides-Extra"))


def test_the_sdist_holds_every_source_file_of_the_shipped_folders(built):
    names = _sdist_names(built)
    assert {"LICENSE", "Makefile", "README.md", "pyproject.toml", "MANIFEST.in", "docs/guide.md",
            "tests/conftest.py", "tests/test_spec.py", "src/npconv/py.typed"} <= names
    sources = {path.relative_to(built.source).as_posix() for folder in SHIPPED_FOLDERS
               for path in (built.source / folder).rglob("*") if path.is_file()}
    sources = {s for s in sources if not s.startswith("docs/_build") and ".ipynb_checkpoints" not in s}
    assert sources - names == set(), "add a MANIFEST.in line for these"
    assert {name for name in names if name.startswith("docs/images/")}
    assert not [name for name in names if "__pycache__" in name or name.endswith(BYTECODE)]


def test_the_sdists_own_tests_run_from_it(built, tmp_path):
    with tarfile.open(built.sdist) as archive:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.10.12
        archive.extractall(tmp_path, **safe)
    unpacked = tmp_path / f"npconv-{npconv.__version__}"
    env = {**os.environ, "PYTHONPATH": str(unpacked / "src")}
    where = subprocess.run([sys.executable, "-c", "import npconv; print(npconv.__file__)"], cwd=unpacked,
                           env=env, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(unpacked)
    # the shape rules, and the guide's pictures checked against docs/ (the guide's doctests would
    # compile every Numba kernel afresh for the unpacked copy's paths: a minute)
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/test_spec.py",
                          "tests/test_guide.py"],
                         cwd=unpacked, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout


def test_a_built_site_and_jupyter_checkpoints_stay_out_of_the_sdist(built):
    """make docs copies the notebook under docs/_build; Jupyter keeps checkpoints beside it."""
    leaked = sorted(n for n in _sdist_names(built) if n.startswith("docs/_build") or ".ipynb_checkpoints" in n)
    assert not leaked, leaked
