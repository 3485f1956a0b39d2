"""npconv.config: settings scoped to a block (in one thread or asyncio task), over process
defaults that the global setters still set; and an import that leaves os.environ alone."""

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import npconv
from npconv import autotune, config, cpu, select, threads, workspace
from npconv.algorithms import fft
from npconv.settings import Settings, current, defaults, set_defaults
from npconv.spec import ConvSpec

MiB = 2**20
DEPTHWISE = ConvSpec.build((3, 3), padding=1, groups=4)
X_SHAPE, W_SHAPE = (1, 4, 9, 9), (4, 1, 3, 3)


@pytest.fixture(autouse=True)
def process_defaults():
    """Every test starts from npconv's defaults and puts them back, whatever it fails on."""
    saved = defaults()
    set_defaults(**dataclasses.asdict(Settings()))
    yield
    set_defaults(**dataclasses.asdict(saved))


def chosen() -> str:
    return select.choose_algorithm(DEPTHWISE, X_SHAPE, W_SHAPE)


def spy_on(monkeypatch, name: str) -> list:
    """Record each call of algorithm ``name``'s forward (then run it)."""
    calls, real = [], select.ALGORITHMS[name].forward
    monkeypatch.setitem(select.ALGORITHMS, name, dataclasses.replace(
        select.ALGORITHMS[name], forward=lambda *args: calls.append(args[0].shape) or real(*args)))
    return calls


def test_a_forced_algorithm_holds_inside_the_block_only_and_runs(rng, monkeypatch):
    planned = chosen()
    assert planned != "fft"
    x, w = rng.standard_normal(X_SHAPE), rng.standard_normal(W_SHAPE)
    expected = npconv.conv(x, w, padding=1, groups=4)
    calls = spy_on(monkeypatch, "fft")
    with npconv.config(algorithm="fft") as settings:
        assert settings.algorithm == "fft" and chosen() == "fft"
        assert select.algorithm_for(DEPTHWISE, x, w).name == "fft"
        np.testing.assert_allclose(npconv.conv(x, w, padding=1, groups=4), expected, rtol=1e-12, atol=1e-12)
    assert calls == [X_SHAPE]
    assert chosen() == planned and current().algorithm is None
    npconv.conv(x, w, padding=1, groups=4)
    assert calls == [X_SHAPE]  # not forced after the block


def test_blocks_nest_and_restore_the_outer_values():
    with npconv.config(algorithm="im2col_gemm", threads=2):
        with npconv.config(threads=1, workspace_limit=4 * MiB) as inner:
            assert (inner.algorithm, inner.threads, inner.workspace_limit) == ("im2col_gemm", 1, 4 * MiB)
            assert chosen() == "im2col_gemm" and threads.get_num_threads() == 1
            with npconv.config(algorithm=None):  # None is a value: the planner chooses again
                assert chosen() != "im2col_gemm" and workspace.limit() == 4 * MiB
        assert current() == Settings(algorithm="im2col_gemm", threads=2)
        assert threads.get_num_threads() == 2 and workspace.limit() == 256 * MiB
    assert current() == Settings()


def test_a_block_is_left_even_when_its_body_raises():
    with pytest.raises(KeyError):
        with npconv.config(threads=1):
            raise KeyError("inside")
    assert current().threads is None


def test_threads_see_only_their_own_block():
    """Two threads hold different forced algorithms at the same time; a third, outside any
    block, and a thread started inside a block see the process default."""
    barrier, seen = threading.Barrier(3), {}

    def work(name):
        with npconv.config(algorithm=name):
            barrier.wait()  # all three are running; two are inside their blocks
            seen[name] = [chosen() for _ in range(20)]
            barrier.wait()

    def outside():
        barrier.wait()
        seen["outside"] = [chosen() for _ in range(20)]
        barrier.wait()

    planned = chosen()
    workers = [threading.Thread(target=work, args=(n,)) for n in ("fft", "im2col_gemm")]
    workers.append(threading.Thread(target=outside))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert seen == {"fft": ["fft"] * 20, "im2col_gemm": ["im2col_gemm"] * 20, "outside": [planned] * 20}
    with npconv.config(algorithm="fft"):
        child = threading.Thread(target=lambda: seen.update(child=chosen()))
        child.start()
        child.join()
    assert seen["child"] == planned


def test_asyncio_tasks_see_only_their_own_block():
    async def task(name, cap):
        with npconv.config(algorithm=name, threads=cap):
            found = []
            for _ in range(5):
                await asyncio.sleep(0)  # the other task runs in between
                found.append((chosen(), threads.get_num_threads()))
            return found

    async def both():
        return await asyncio.gather(task("fft", 1), task("im2col_gemm", 2))

    first, second = asyncio.run(both())
    assert first == [("fft", 1)] * 5 and second == [("im2col_gemm", 2)] * 5


def test_the_global_setters_set_the_defaults_a_block_overrides():
    assert npconv.set_algorithm("im2col_gemm") is None
    assert chosen() == "im2col_gemm"
    with npconv.config(threads=1):
        assert chosen() == "im2col_gemm"  # not named by the block: the default
        npconv.set_algorithm("fft")  # a default changed inside a block reaches it
        assert chosen() == "fft"
    with npconv.config(algorithm="im2col_gemm"):
        assert npconv.set_algorithm(None) == "fft"
        assert chosen() == "im2col_gemm"  # the block's own value wins
    assert chosen() != "im2col_gemm" and defaults().algorithm is None
    assert npconv.set_num_threads(3) is None and npconv.get_num_threads() == 3
    assert npconv.set_workspace_limit(8 * MiB) == 256 * MiB and workspace.limit() == 8 * MiB
    assert npconv.set_autotune(True) is False and current().autotune is True
    assert defaults() == Settings(None, True, 3, 8 * MiB)


def test_a_thread_cap_in_a_block_reaches_blas_and_numba(rng, monkeypatch):
    seen, real = [], select.ALGORITHMS["im2col_gemm"].forward

    def spy(*args):
        blas = {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}
        numba_threads = __import__("numba").get_num_threads()
        seen.append((blas, numba_threads))
        return real(*args)

    monkeypatch.setitem(select.ALGORITHMS, "im2col_gemm",
                        dataclasses.replace(select.ALGORITHMS["im2col_gemm"], forward=spy))
    x, w = rng.standard_normal((2, 8, 9, 9)), rng.standard_normal((4, 8, 3, 3))
    expected = npconv.conv(x, w, stride=2)
    with npconv.config(threads=1):
        assert threads.get_num_threads() == 1
        np.testing.assert_array_equal(npconv.conv(x, w, stride=2), expected)
    assert seen[-1] == ({1}, 1)
    assert threads.get_num_threads() == (os.cpu_count() or 1)


def test_a_workspace_cap_in_a_block_changes_the_plan_and_the_kept_buffers():
    spec = ConvSpec.build((31, 31), padding=15, groups=128)
    x_shape, w_shape = (1, 128, 56, 56), (128, 1, 31, 31)
    least = fft.min_workspace(spec, x_shape, w_shape, 8)
    assert least > MiB and "fft" in select.candidates(spec, x_shape, w_shape)
    workspace.scratch("test_config", (3 * MiB,), np.uint8)
    assert workspace.kept_bytes() >= 3 * MiB
    with npconv.config(workspace_limit=max(MiB, least - 1)) as settings:
        assert workspace.limit() == settings.workspace_limit == max(MiB, least - 1)
        assert "fft" not in select.candidates(spec, x_shape, w_shape)
        assert workspace.kept_bytes() <= workspace.limit()  # trimmed on entry
    assert workspace.limit() == 256 * MiB and "fft" in select.candidates(spec, x_shape, w_shape)
    workspace.release()


def test_a_cap_too_small_refuses_inside_the_block_only(rng):
    x, w = rng.standard_normal((1, 16, 8, 20, 20)), rng.standard_normal((8, 16, 3, 3, 3))
    with npconv.config(workspace_limit=MiB, algorithm="im2col_gemm"):
        npconv.conv(x, w, padding=1)  # chunks fit 1 MiB
    spec, shapes = ConvSpec.build((9, 9)), ((1, 4096, 9, 9), (1, 4096, 9, 9))  # 1.3 MB of windows per output
    with npconv.config(workspace_limit=MiB):
        with pytest.raises(ValueError, match=r"workspace limit 1048576 bytes \(1 MiB\) is too small"):
            select.choose_algorithm(spec, *shapes, np.float32)
    assert select.choose_algorithm(spec, *shapes, np.float32) in select.ALGORITHMS


def test_autotune_in_a_block_only(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(autotune, "_tuned", None)
    calls, real = [], select.measure_candidates
    monkeypatch.setattr(select, "measure_candidates", lambda *a, **k: calls.append(a) or real(*a, **k))
    spec, shapes = ConvSpec.build((3, 3), padding=1), ((1, 4, 10, 10), (4, 4, 3, 3))
    select.choose_algorithm(spec, *shapes)
    assert calls == []
    with npconv.config(autotune=True):
        tuned = select.choose_algorithm(spec, *shapes)
    assert len(calls) == 1
    assert list(json.loads((tmp_path / "npconv" / "autotune.json").read_text()).values()) == [tuned]
    select.choose_algorithm(spec, *shapes)
    assert len(calls) == 1
    select.forget_tuned()


@pytest.mark.parametrize("arguments,message", [
    (dict(algorithm="magic"), r"npconv\.config: unknown algorithm 'magic'; algorithm must be None or one of "
                              r"\[.*'fft'.*'im2col_gemm'.*\]"),
    (dict(algorithm=3), r"unknown algorithm 3"),
    (dict(threads=0), r"npconv\.config: threads must be a positive int or None, got 0$"),
    (dict(threads=1.5), r"threads must be a positive int or None, got 1\.5"),
    (dict(threads=True), r"threads must be a positive int or None, got True"),
    (dict(workspace_limit=MiB - 1), r"npconv\.config: workspace_limit must be an int of at least 1 MiB "
                                    r"\(1048576 bytes\), got 1048575$"),
    (dict(workspace_limit=2.0 * MiB), r"workspace_limit must be an int .* got 2097152\.0"),
    (dict(autotune="yes"), r"npconv\.config: autotune must be True or False, got 'yes'"),
])
def test_bad_settings_are_refused_before_the_block_runs(arguments, message):
    ran = []
    with pytest.raises(ValueError, match=message):
        with npconv.config(**arguments):
            ran.append(True)
    assert ran == [] and current() == Settings()


def test_the_setters_refuse_with_their_own_names():
    with pytest.raises(ValueError, match=r"^set_num_threads: threads must be a positive int or None, got 0$"):
        npconv.set_num_threads(0)
    with pytest.raises(ValueError, match=r"^set_workspace_limit: workspace_limit .* got 10$"):
        npconv.set_workspace_limit(10)
    with pytest.raises(ValueError, match=r"^set_algorithm: unknown algorithm 'magic'"):
        npconv.set_algorithm("magic")
    with pytest.raises(TypeError, match=r"unknown setting\(s\) \['thread'\]"):
        set_defaults(thread=2)
    with pytest.raises(TypeError):
        npconv.config(thread=2)
    assert defaults() == Settings()


def test_one_instance_serves_one_block_at_a_time():
    block = npconv.config(threads=1)
    with block:
        with pytest.raises(RuntimeError, match="already in use"):
            with block:
                pass
        assert current().threads == 1
    with block:  # free again once left
        assert current().threads == 1
    assert current().threads is None


def test_importing_npconv_writes_nothing_to_the_environment():
    script = ("import json, os; before = dict(os.environ); import npconv; "
              "print(json.dumps({k: v for k, v in os.environ.items() if before.get(k) != v}))")
    steered = ("OMP_WAIT_POLICY", "OPENBLAS_CORETYPE", "NPCONV_KEEP_BLAS", "OPENBLAS_THREAD_TIMEOUT")
    env = {k: v for k, v in os.environ.items() if k not in steered}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == {}


@pytest.mark.parametrize("vendor,flags,environ,advice", [
    ("AuthenticAMD", set(cpu.AVX512_FOR_SKYLAKEX), {}, {"OPENBLAS_CORETYPE": "SKYLAKEX", "OMP_WAIT_POLICY": "PASSIVE",
                                                        "OPENBLAS_THREAD_TIMEOUT": "4"}),
    ("GenuineIntel", set(cpu.AVX512_FOR_SKYLAKEX), {}, {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}),
    ("AuthenticAMD", set(cpu.AVX512_FOR_SKYLAKEX), {"NPCONV_KEEP_BLAS": "1", "GOTO_THREAD_TIMEOUT": "20"},
     {"OMP_WAIT_POLICY": "PASSIVE"}),
    ("AuthenticAMD", {"avx2"}, {"OMP_WAIT_POLICY": "ACTIVE", "OPENBLAS_THREAD_TIMEOUT": "28"}, {}),
    ("AuthenticAMD", set(cpu.AVX512_FOR_SKYLAKEX), {"OPENBLAS_CORETYPE": "Haswell", "OMP_WAIT_POLICY": "ACTIVE"},
     {"OPENBLAS_THREAD_TIMEOUT": "4"}),
])
def test_tune_environment_sets_only_the_advice_not_already_set(monkeypatch, vendor, flags, environ, advice):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: (vendor, flags))
    environ = dict(environ)
    before = dict(environ)
    assert cpu.recommended_environment(environ) == advice and environ == before  # advice only reads
    assert cpu.tune_environment(environ) == advice
    assert environ == {**before, **advice}
