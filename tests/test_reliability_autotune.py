"""The autotune cache (audit class 10): any file content is tolerated, and processes tuning
at once keep each other's entries (merge under a lock, atomic rename)."""

import json
import subprocess
import sys

import numpy as np
import pytest

import npconv
from npconv import ConvSpec, select


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    select.forget_tuned()
    npconv.set_autotune(True)
    yield select.cache_path()
    npconv.set_autotune(False)
    select.forget_tuned()


@pytest.mark.parametrize("content", ["[]", "null", "5", '"x"', '{"k": 3}', '{"k": "no_such"}', "\x00\xff garbage"])
def test_any_cache_content_is_tolerated(cache, content):
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(content)
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 4, 9, 9)), rng.standard_normal((4, 4, 3, 3))
    got = npconv.functional.conv2d(x, w, padding=1)
    npconv.set_autotune(False)
    np.testing.assert_allclose(got, npconv.functional.conv2d(x, w, padding=1), rtol=1e-12, atol=1e-12)
    assert isinstance(json.loads(cache.read_text()), dict)


def test_a_directory_in_the_cache_place_is_tolerated(cache):
    cache.mkdir(parents=True)
    x = np.ones((1, 2, 6, 6))
    assert npconv.functional.conv2d(x, np.ones((2, 2, 3, 3))).shape == (1, 2, 4, 4)


def test_merge_keeps_entries_another_writer_added(cache):
    select._merge_into_cache({"a": "im2col_gemm"})
    cache.write_text(json.dumps({**json.loads(cache.read_text()), "b": "fft"}))  # another process
    select._merge_into_cache({"c": "pointwise"})
    assert json.loads(cache.read_text()) == {"a": "im2col_gemm", "b": "fft", "c": "pointwise"}


TUNER = """
import sys, numpy as np, npconv
npconv.set_autotune(True)
offset = int(sys.argv[1])
for size in range(6, 12):
    npconv.functional.conv2d(np.ones((1, 2, size + offset, size)), np.ones((2, 2, 3, 3)))
"""


def test_processes_tuning_at_once_keep_every_entry(cache):
    env = {"XDG_CACHE_HOME": str(cache.parent.parent), "PATH": "/usr/bin:/bin"}
    runs = [subprocess.Popen([sys.executable, "-c", TUNER, str(offset)], env=env) for offset in (0, 20, 40)]
    assert all(run.wait(timeout=120) == 0 for run in runs)
    assert len(json.loads(cache.read_text())) == 18
