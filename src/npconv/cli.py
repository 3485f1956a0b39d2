"""The ``npconv`` command (also ``python -m npconv``)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from .explain.commands import add_commands, print_hand_sums
from .worked_examples import INPUTS, WorkedExample, worked_examples

CHECK, CROSS = "\u2713", "\u2717"
# the extra that installs each optional module a command imports (pyproject.toml's extras)
EXTRA_FOR_MODULE = {"PIL": "explain", "sklearn": "demo", "tqdm": "demo", "matplotlib": "demo",
                    "safetensors": "safetensors", "onnx": "onnx"}
# npconv's own dependencies: a missing one means a broken install
DEPENDENCIES = ("numpy", "scipy", "threadpoolctl", "numba")


def _lines(value) -> list[str]:
    if isinstance(value, np.ndarray):
        return np.array2string(value, separator=", ", max_line_width=200,
                               formatter={"float_kind": lambda v: f"{v:g}"}).splitlines()
    return [str(value)]


def side_by_side(left: list[str], right: list[str], titles=("npconv", "expected")) -> str:
    width = max([len(line) for line in left] + [len(titles[0])]) + 4
    rows = [f"    {titles[0]:<{width}}{titles[1]}"]
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ""
        b = right[i] if i < len(right) else ""
        rows.append(f"    {a:<{width}}{b}")
    return "\n".join(rows)


def show_example(example: WorkedExample) -> bool:
    got, ok = example.run()
    expected = example.expected
    if not isinstance(expected, (tuple, int)):
        expected = np.asarray(expected, np.float32)
    print(f"{CHECK if ok else CROSS} {example.name}")
    print(side_by_side(_lines(got), _lines(expected)))
    if example.note:
        print(f"    note: {example.note}")
    print()
    return ok


def demo(args) -> int:
    """Part 1: worked examples with known answers, and sums worked by hand.  Part 2: a CNN learns
    digits.  Part 3: a whole network (ResNet-18) saved, reloaded, fused and timed."""
    if args.networks:
        return whole_network()
    start = time.perf_counter()
    print(f"== Part 1: worked examples with known answers ==\n\n{INPUTS}\n")
    examples = worked_examples()
    passed = sum(show_example(example) for example in examples)
    mark = CHECK if passed == len(examples) else CROSS
    print(f"{mark} {passed}/{len(examples)} worked examples reproduced "
          f"({time.perf_counter() - start:.2f} s)")
    print("\n== Sums worked by hand, from the engine's index arithmetic (npconv explain) ==\n")
    sums_ok = print_hand_sums() == 0  # shown even when a worked example failed
    ok = passed == len(examples) and sums_ok
    if args.no_training:
        return 0 if ok else 1
    return max(0 if ok else 1, train_digits(args), whole_network())


def train_digits(args) -> int:
    from .training_demo import run

    print("\n== Part 2: a CNN built from npconv layers learns handwritten digits ==\n")
    result = run(epochs=args.epochs, picture=Path(args.picture))
    ok = result.test_accuracy >= 0.97
    print(f"{CHECK if ok else CROSS} test accuracy {result.test_accuracy:.1%} on 360 held-out digits "
          f"({result.misclassified} wrong; target >= 97%), {result.epochs} epochs in {result.seconds:.1f} s")
    print(f"  learned filters and misclassified digits: {result.picture}")
    return 0 if ok else 1


def whole_network() -> int:
    from .networks_demo import run

    print("\n== Part 3: a whole network: ResNet-18 (torchvision's layout) saved, reloaded, fused, run ==\n")
    result = run()
    ok = result.reload_identical and result.fused_error <= 1e-5
    print(f"{CHECK if result.reload_identical else CROSS} {result.parameters:,} parameters saved to safetensors "
          f"({result.checkpoint_bytes / 2**20:.1f} MiB) and reloaded: identical outputs")
    print(f"{CHECK if result.fused_error <= 1e-5 else CROSS} BatchNorm folded into the convolutions: largest "
          f"difference {result.fused_error:.1e} of the largest logit (limit 1e-5)")
    print(f"  one 224 x 224 image: {result.milliseconds:.0f} ms here; the README's figure is "
          f"{result.expected_milliseconds:.0f} ms (2 cores, bench/networks.py)")
    print(f"  top-5 classes of random weights on noise (meaningless, but repeatable): {result.top5}")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="npconv", description="PyTorch's convolution family on NumPy, exact and explained.",
        epilog="examples:\n  npconv demo              worked examples with known answers, then a CNN learns digits\n"
               "  npconv shape 1,3,224,224 'Conv2d(3, 64, 7, stride=2, padding=3)'\n"
               "  npconv solve --input 224 --output 112 --kernel 7 --stride 2\n"
               "  npconv explain           ten sums worked by hand, from the engine's index arithmetic\n"
               "  npconv animate conv.gif --input 5,5 --kernel 3 --stride 2 --padding 1\n"
               "  npconv visualize         the interactive HTML page\n"
               "each command has --help with more examples",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo_parser = commands.add_parser(
        "demo", help="worked examples with known answers, then train a CNN on digits",
        description="Print worked examples (shapes, parameter counts, standard, depthwise, grouped, "
                    "pointwise, dilated and strided convolutions, 1-D padding) beside npconv's result, then "
                    "train a small CNN (npconv layers only) on scikit-learn's digits.",
        epilog="examples:\n  npconv demo\n  npconv demo --epochs 10 --picture /tmp/digits.png\n"
               "  npconv demo --no-training\n  npconv demo --networks",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    demo_parser.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    demo_parser.add_argument("--picture", default="digits_cnn.png",
                             help="where to write the PNG of filters and mistakes (default digits_cnn.png)")
    demo_parser.add_argument("--no-training", action="store_true", help="only the worked examples")
    demo_parser.add_argument("--networks", action="store_true",
                             help="only part 3: ResNet-18 saved, reloaded, fused and timed")
    demo_parser.set_defaults(run=demo)
    environment_parser = commands.add_parser(
        "environment", help="shell export lines of the CPU settings that speed npconv up here",
        description="Print `export NAME=VALUE` for each setting npconv.cpu recommends on this machine "
                    "(OpenBLAS's kernels, OpenMP's wait policy) that the environment does not set yet. "
                    "They must be set before Python starts: eval \"$(npconv environment)\".")
    environment_parser.set_defaults(run=print_environment)
    add_commands(commands)
    return parser


def print_environment(args: argparse.Namespace) -> int:
    """``npconv environment``: npconv.cpu's advice as shell export lines."""
    from . import cpu

    for name, value in cpu.recommended_environment().items():
        print(f"export {name}={value}")
    return 0


def main(argv=None) -> int:
    """Run one command.  Every refusal (a bad setting, a size the machine cannot hold, a path
    that cannot be written) exits with status 2 and one line on stderr, never a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except (ValueError, TypeError) as error:  # a refused setting (or size): the engine's message
        return _refuse(args, str(error))
    except ImportError as error:
        return _refuse(args, import_hint(error))
    except OSError as error:
        return _refuse(args, _os_error_reason(error, args))
    except MemoryError as error:  # what the sizes checked up front did not foresee
        return _refuse(args, f"out of memory: {error or 'an allocation failed'}")


def _version() -> str:
    from . import __version__

    return __version__


def import_hint(error: ImportError) -> str:
    """The error's message with the one install command that provides the missing module: its
    extra (``pip install 'npconv[demo]'``), or npconv itself for a dependency.  A message that
    already says what to install is kept as it is, so the hint appears once."""
    message = str(error)
    module = _missing_module(error)
    if "pip install" in message or module is None:
        return message
    if module in DEPENDENCIES:
        return f"{message} (a dependency of npconv: pip install --force-reinstall npconv)"
    extra = EXTRA_FOR_MODULE.get(module)
    return f"{message} (pip install 'npconv[{extra}]')" if extra else message


def _missing_module(error: BaseException | None) -> str | None:
    """The top-level name of the module that failed to import, from the error or what caused it."""
    while error is not None:
        if isinstance(error, ImportError) and error.name:
            return error.name.split(".")[0]
        error = error.__cause__ or error.__context__
    return None


def _refuse(args, reason: str) -> int:
    one_line = " ".join(reason.splitlines())
    print(f"npconv {args.command}: error: {one_line}", file=sys.stderr)
    return 2


def _os_error_reason(error: OSError, args) -> str:
    """'cannot write PATH: reason' for the file the command writes; the OS's words otherwise."""
    target = getattr(args, "path", None) or getattr(args, "picture", None)
    reason = error.strerror or str(error)
    if target is not None and (error.filename is None or _same_path(error.filename, target)):
        return f"cannot write {target}: {reason}"
    return f"{error.filename}: {reason}" if error.filename is not None else reason


def _same_path(a, b) -> bool:
    return os.path.normpath(os.fsdecode(a)) == os.path.normpath(os.fsdecode(b))


if __name__ == "__main__":
    sys.exit(main())
