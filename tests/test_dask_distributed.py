"""npconv.dask on a distributed cluster (issue 17): two worker processes compute what npconv
computes in memory; the weight enters the graph once; the workers depend on no state of the
client's process.

Nothing here is skipped under CI: dask and distributed are the ``npconv[dask]`` extra, and
helpers.require fails loudly there when they are missing.
"""

import os

import cloudpickle
import numpy as np
import pytest

import npconv

from conftest import assert_matches
from helpers import require

da = require("dask.array", "npconv.dask's distributed tests")
distributed = require("distributed", "npconv.dask's distributed tests")
ndask = require("npconv.dask", "npconv.dask's distributed tests")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """A two-process LocalCluster (one thread each) and its Client; the autotune cache in a
    temporary folder (the workers inherit the environment)."""
    saved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)
    connected = distributed.Client(cluster)
    try:
        yield connected
    finally:
        connected.close()
        cluster.close()
        if saved is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = saved


CASES = {
    "conv2d-reflect-s2": dict(x=(3, 4, 17, 14), chunks=(2, 3, 5, 4), w=(6, 2, 3, 3), c_out=6,
                              kwargs=dict(stride=2, padding=2, groups=2, padding_mode="reflect")),
    "conv_transpose2d-s2-op1": dict(x=(2, 4, 9, 8), chunks=(1, 4, 4, 3), w=(4, 3, 3, 4), c_out=6, transposed=True,
                                    kwargs=dict(stride=2, padding=1, output_padding=1, groups=2)),
    "conv3d-same-circular": dict(x=(2, 3, 7, 6, 8), chunks=(1, 2, 3, 4, 3), w=(5, 3, 3, 2, 3), c_out=5,
                                 kwargs=dict(stride=(2, 1, 3), padding="same", padding_mode="circular")),
}


def _case(name, seed):
    case = CASES[name]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case["x"])
    w = rng.standard_normal(case["w"])
    b = rng.standard_normal(case["c_out"])
    params = dict(case["kwargs"], transposed=case.get("transposed", False))
    return x, w, b, case["chunks"], params


@pytest.mark.parametrize("name", CASES)
def test_workers_compute_what_npconv_computes_in_memory(client, name):
    x, w, b, chunks, params = _case(name, 11)
    y = ndask.conv(da.from_array(x, chunks=chunks), w, b, **params)
    got = client.compute(y).result()
    assert_matches(got, npconv.conv(x, w, b, **params), np.float64)


@pytest.mark.parametrize("name", CASES)
def test_workers_need_no_state_of_the_client_process(client, name):
    """Autotune switched on in the client alone: the workers' results still match."""
    x, w, b, chunks, params = _case(name, 12)
    want = npconv.conv(x, w, b, **params)
    previous = npconv.set_autotune(True)
    try:
        y = ndask.conv(da.from_array(x, chunks=chunks), w, b, **params)
        got = client.compute(y).result()
    finally:
        npconv.set_autotune(previous)
    assert_matches(got, want, np.float64)


def _values_holding(graph, nbytes):
    """The graph's values whose pickled form is at least ``nbytes`` long (an embedded array)."""
    return {key: value for key, value in dict(graph).items() if len(cloudpickle.dumps(value)) >= nbytes}


@pytest.mark.parametrize("name", CASES)
def test_the_weight_enters_the_graph_once(client, name):
    """With a lazily drawn input (no data in the graph) and a weight larger than any input chunk,
    exactly one graph value is weight-sized, and (forward) it holds the weight's own bytes;
    the one-key weight is then computed on the cluster."""
    _, w, b, chunks, params = _case(name, 13)
    w = np.random.default_rng(14).standard_normal((w.shape[0] * 8, w.shape[1] * 8) + w.shape[2:])  # >= 24 KiB
    b = np.random.default_rng(15).standard_normal(w.shape[1] * params["groups"] if params["transposed"]
                                                  else w.shape[0])
    shape = CASES[name]["x"]
    x = da.random.default_rng(16).standard_normal((shape[0], w.shape[0] if params["transposed"]
                                                   else w.shape[1] * params.get("groups", 1)) + shape[2:],
                                                  chunks=chunks[:1] + (-1,) + chunks[2:])
    assert np.prod([max(c) for c in x.chunks]) * 8 < w.nbytes  # no input chunk is weight-sized
    y = ndask.conv(x, w, b, **params)
    heavy = _values_holding(y.__dask_graph__(), w.nbytes)
    assert len(heavy) == 1, f"{len(heavy)} weight-sized graph values: {list(heavy)[:6]}"
    if not params["transposed"]:
        assert w.tobytes() in cloudpickle.dumps(next(iter(heavy.values())))
    bias_holders = [key for key, value in dict(y.__dask_graph__()).items() if b.tobytes() in cloudpickle.dumps(value)]
    assert len(bias_holders) == 1, bias_holders
    want = npconv.conv(x.compute(scheduler="synchronous"), w, b, **params)
    assert_matches(client.compute(y).result(), want, np.float64)
