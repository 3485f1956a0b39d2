"""The public API's annotations are complete and consistent: mypy checks the public modules.

pyproject's ``[tool.mypy]`` holds the settings; its overrides turn on ``disallow_untyped_defs``
and ``disallow_incomplete_defs`` for these modules, so an unannotated def (public or not) in
them fails here, as does a type error in an annotated body.  ``py.typed`` ships the
annotations to users (PEP 561).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import require

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "npconv"
PUBLIC_MODULES = ["__init__.py", "functional.py", "blocks.py", "padding.py", "grad.py", "core.py", "spec.py", "spec_parsing.py", "spec_errors.py", "spec_messages.py",
                  "onnx.py", "settings.py", "select.py", "separable.py", "io.py", "optim.py",
                  "onnx_pads.py", "onnx_words.py", "autotune.py", "algorithm_registry.py", "io_checks.py",
                  "io_safetensors.py", "onnx_deform.py", "onnx_stream.py", "dask.py", "stream.py", "complex_forms.py",
                  "onnx_session.py", "onnx_ops.py", "onnx_ops_nn.py", "networks_demo.py",
                  "nn", "keras", "explain", "ops", "models"]


def run_mypy(*targets: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                           "--no-error-summary", *targets], cwd=ROOT, capture_output=True, text=True)


def test_public_modules_pass_mypy():
    require("mypy", "the typing check (the dev extra)")
    result = run_mypy(*(str(PACKAGE / name) for name in PUBLIC_MODULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_is_marked_typed():
    assert (PACKAGE / "py.typed").is_file()


def test_mypy_refuses_an_unannotated_public_def(tmp_path):
    """The overrides are in force: the same settings refuse a def without annotations in a
    public module (checked on a copy, so the tree is never touched)."""
    require("mypy", "the typing check (the dev extra)")
    copy = tmp_path / "npconv"
    copy.mkdir()
    (copy / "__init__.py").write_text("")
    (copy / "functional.py").write_text("def conv9d(input, weight):\n    return input\n")
    result = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                             "--cache-dir", str(tmp_path / "cache"), str(copy / "functional.py")],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1 and "no-untyped-def" in result.stdout, result.stdout + result.stderr
