"""The optional-oracle rule in tests/helpers.py: a missing oracle skips the test with its reason,
except under CI, where it fails it (as a missing PyTorch would)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import on_ci, require, require_executable

MISSING = "npconv_no_such_oracle"


@pytest.mark.parametrize("value, ci", [("true", True), ("1", True), ("yes", True), ("", False), ("0", False),
                                       ("false", False), ("False", False), ("no", False), (None, False)])
def test_on_ci_reads_the_ci_variable(monkeypatch, value, ci):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert on_ci() is ci


def test_require_returns_the_imported_module(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert require("json", "a test") is sys.modules["json"]
    assert require("os.path", "a test") is os.path


def test_a_missing_module_skips_with_its_reason_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"the widget test needs {MISSING}") as skipped:
        require(MISSING, "the widget test")
    assert skipped.value.allow_module_level  # a module's top line may call it


def test_a_missing_module_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"the widget test needs {MISSING}.*CI is set") as failed:
        require(MISSING, "the widget test")
    assert failed.value.pytrace is False  # the report is the reason, not a traceback into helpers.py


def test_require_executable_finds_absolute_paths_and_commands_on_path(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert require_executable(sys.executable, "a test") == sys.executable
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable))
    assert require_executable(os.path.basename(sys.executable), "a test") == os.path.join(
        os.path.dirname(sys.executable), os.path.basename(sys.executable))


@pytest.mark.parametrize("ci, outcome", [("", pytest.skip.Exception), ("true", pytest.fail.Exception)])
def test_a_missing_or_unrunnable_program_skips_or_fails(monkeypatch, tmp_path, ci, outcome):
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("PATH", str(tmp_path))
    not_executable = tmp_path / "browser"
    not_executable.write_text("#!/bin/sh\n")
    not_executable.chmod(0o644)
    for program in (str(tmp_path / "absent"), "absent", str(not_executable), "browser", str(tmp_path)):
        with pytest.raises(outcome, match=f"the page test needs the program {program}"):
            require_executable(program, "the page test")


def test_a_module_level_require_fails_the_whole_run_under_ci(tmp_path):
    """End to end: a test module whose oracle is missing is a collection error under CI."""
    module = tmp_path / "test_needs_an_oracle.py"
    module.write_text(f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
                      f"from helpers import require\nrequire({MISSING!r}, 'the oracle test')\n"
                      "def test_never_runs():\n    pass\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", str(module)],
                         cwd=tmp_path, env={**os.environ, "CI": "true"}, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 2, run.stdout + run.stderr  # interrupted: an error during collection
    assert f"the oracle test needs {MISSING}" in run.stdout and "1 error" in run.stdout
