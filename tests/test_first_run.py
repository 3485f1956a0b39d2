"""What a new user meets first: `npconv --version`, the install hint of a command whose optional
module is missing (the right extra, named once), and the one-line notice of a slow autotuned
first call, whose cache entry is keyed by the CPU model and npconv's and NumPy's versions."""

import importlib.abc
import importlib.metadata
import json
import sys
import warnings

import numpy as np
import pytest

import npconv
from npconv import cli, compiled, cpu, select
from npconv.spec import ConvSpec


class Missing(importlib.abc.MetaPathFinder):
    """Imports of these top-level modules fail as they do where the module is not installed."""

    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


@pytest.fixture
def uninstall(monkeypatch):
    """uninstall("tqdm", ...): the modules (and their submodules) cannot be imported in this test."""
    def remove(*names):
        for loaded in [m for m in sys.modules if m.split(".")[0] in names]:
            monkeypatch.delitem(sys.modules, loaded)
        monkeypatch.setattr(sys, "meta_path", [Missing(names), *sys.meta_path])
    return remove


def test_version_is_the_installed_distributions(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"npconv {importlib.metadata.version('npconv')}"
    assert npconv.__version__ == importlib.metadata.version("npconv")


@pytest.mark.parametrize("command,module,extra", [
    (["demo", "--epochs", "1", "--picture", "{tmp}/digits.png"], "tqdm", "demo"),
    (["demo", "--epochs", "1", "--picture", "{tmp}/digits.png"], "sklearn", "demo"),
    (["animate", "{tmp}/conv.gif", "--input", "5,5", "--kernel", "3"], "PIL", "explain"),
])
def test_a_missing_module_names_its_extra_once(uninstall, tmp_path, capsys, command, module, extra):
    uninstall(module)
    assert cli.main([part.format(tmp=tmp_path) for part in command]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"npconv {command[0]}: error:") and len(error.splitlines()) == 1
    assert error.count("pip install") == 1 and error.count(f"'npconv[{extra}]'") == 1, error


@pytest.mark.parametrize("module,hint", [
    ("safetensors", "(pip install 'npconv[safetensors]')"),
    ("matplotlib.pyplot", "(pip install 'npconv[demo]')"),
    ("scipy", "(a dependency of npconv: pip install --force-reinstall npconv)"),
])
def test_import_hint_by_module(module, hint):
    error = ModuleNotFoundError(f"No module named {module!r}", name=module)
    assert cli.import_hint(error) == f"No module named {module!r} {hint}"


def test_a_message_that_says_what_to_install_and_an_unknown_module_are_kept():
    try:
        try:
            raise ModuleNotFoundError("No module named 'PIL'", name="PIL")
        except ImportError as error:
            raise ImportError("drawing needs Pillow: pip install 'npconv[explain]'") from error
    except ImportError as chained:
        assert cli.import_hint(chained) == "drawing needs Pillow: pip install 'npconv[explain]'"
    assert cli.import_hint(ModuleNotFoundError("No module named 'x'", name="x")) == "No module named 'x'"


def test_each_hinted_extra_installs_its_module():
    requirements = importlib.metadata.requires("npconv")
    providers = importlib.metadata.packages_distributions()
    for module, extra in cli.EXTRA_FOR_MODULE.items():
        wanted = {name.lower() for name in providers.get(module, [])}
        in_extra = {line.split(";")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
                    for line in requirements if f'extra == "{extra}"' in line}
        assert wanted & in_extra, f"npconv[{extra}] does not install {module} ({wanted})"


# ---- the autotuner's first call -----------------------------------------------------------

SPEC, X_SHAPE, W_SHAPE = ConvSpec.build((3, 3), padding=1), (1, 2, 6, 6), (2, 2, 3, 3)


@pytest.fixture
def tuning(tmp_path, monkeypatch):
    """Autotuning on, an empty cache of its own; yields the list of measurements made."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    measured = []
    real = select.measure_candidates
    monkeypatch.setattr(select, "measure_candidates", lambda *a, **k: measured.append(a) or real(*a, **k))
    select.forget_tuned()
    npconv.set_autotune(True)
    yield measured
    npconv.set_autotune(False)
    select.forget_tuned()


def _notices(caught):
    return [w for w in caught if issubclass(w.category, select.AutotuneNotice)]


def test_a_slow_first_tuned_call_says_so_once_on_the_callers_line(tuning, monkeypatch):
    monkeypatch.setattr(compiled, "NOTICE_SECONDS", -1.0)  # every measurement counts as slow
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = select.choose_algorithm(SPEC, X_SHAPE, W_SHAPE)
        assert select.choose_algorithm(SPEC, X_SHAPE, W_SHAPE) == first
    [notice] = _notices(caught)
    message = str(notice.message)
    assert "autotuned" in message and str(select.cache_path()) in message and "\n" not in message
    assert notice.filename == __file__


def test_the_notice_is_silenced_as_any_warning(tuning, monkeypatch):
    monkeypatch.setattr(compiled, "NOTICE_SECONDS", -1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=npconv.select.AutotuneNotice)
        select.choose_algorithm(SPEC, X_SHAPE, W_SHAPE)
    assert tuning and not _notices(caught)


def test_a_quick_tuning_says_nothing(tuning, monkeypatch):
    monkeypatch.setattr(compiled, "NOTICE_SECONDS", 1e9)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        select.choose_algorithm(SPEC, X_SHAPE, W_SHAPE)
    assert tuning and not _notices(caught)


def test_the_key_holds_the_cpu_model_and_both_versions():
    key = json.loads(select._key(SPEC, X_SHAPE, W_SHAPE, np.float32, 2))
    assert key[-3:] == [cpu.cpu_model(), npconv.__version__, np.__version__]
    assert cpu.cpu_model() and cpu.cpu_model() == cpu.cpu_model()


def test_an_entry_in_the_old_format_is_measured_afresh(tuning):
    old_key = json.dumps([repr(SPEC), list(X_SHAPE), list(W_SHAPE), "float32", npconv.get_num_threads()])
    cache = select.cache_path()
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps({old_key: "im2col_gemm"}))
    select.choose_algorithm(SPEC, X_SHAPE, W_SHAPE)
    assert len(tuning) == 1
    assert len(json.loads(cache.read_text())) == 2  # the old entry stays, never matched again


@pytest.mark.parametrize("change", ["npconv", "numpy", "cpu"])
def test_another_version_or_cpu_measures_afresh(tuning, monkeypatch, change):
    select.choose_algorithm(SPEC, X_SHAPE, W_SHAPE)
    select.forget_tuned()  # a new process
    select.choose_algorithm(SPEC, X_SHAPE, W_SHAPE)
    assert len(tuning) == 1
    if change == "npconv":
        monkeypatch.setattr(npconv, "__version__", "99.0")
    elif change == "numpy":
        monkeypatch.setattr(np, "__version__", "0.1")
    else:
        monkeypatch.setattr(cpu, "cpu_model", lambda: "another CPU")
    select.forget_tuned()
    select.choose_algorithm(SPEC, X_SHAPE, W_SHAPE)
    assert len(tuning) == 2


def test_environment_command_prints_the_advice_as_exports(capsys, monkeypatch):
    """`npconv environment`: one `export NAME=VALUE` per recommended setting, nothing else."""
    from npconv import cli, cpu

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert cli.main(["environment"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"export {k}={v}" for k, v in cpu.recommended_environment().items()]
    assert "export OMP_WAIT_POLICY=PASSIVE" in lines
