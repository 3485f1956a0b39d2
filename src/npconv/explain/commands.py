"""``npconv shape | solve | explain | animate | visualize``: the explain API on the command line.

Each command prints aligned text; a refused setting prints the engine's message (the rule and
its arithmetic) and exits with status 2, as argparse does for malformed arguments.

Hostile sizes are refused before any work: a layer's text is at most ``MAX_LAYER_TEXT``
characters and is parsed for its arithmetic only (``shape`` of ``Conv2d(3, 100000, 100000)``
allocates no weights); ``explain`` builds its input, weight and whole output, so each is at
most ``EXPLAIN_MAX_ELEMENTS`` elements, and prints at most ``EXPLAIN_MAX_TERMS`` terms;
``animate --layers`` draws at most ``MAX_PICTURE_PIXELS`` pixels.
"""

from __future__ import annotations

import argparse
import ast
import math
from typing import Any, Sequence

import numpy as np
import scipy.sparse

from .. import nn
from ..memory import check_allocation
from ..spec import ConvSpec, IntOrTuple, Padding


LAYER_NAMES = {name for name in nn.__all__ if name[0].isupper()} - {"Module", "Parameter", "Sequential",
                                                                    "CrossEntropyLoss"}
CHECK, CROSS = "\u2713", "\u2717"
MAX_LAYER_TEXT = 1000  # characters: a constructor call is a few dozen; the parser recurses on nesting
EXPLAIN_MAX_ELEMENTS = 1 << 24  # per array explain builds (input, weight, output, matrix entries)
EXPLAIN_MAX_TERMS = 10_000  # terms of the one sum, or taps of the one reach list, explain prints
MAX_PICTURE_PIXELS = 89_478_485  # PIL's own decompression-bomb limit, for the receptive-field PNG


# ---- argument parsing ----------------------------------------------------------------
def ints(text: str) -> tuple[int, ...]:
    """'1,3,6,6' (or '6x6') -> (1, 3, 6, 6)."""
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,3,6,6; got {text!r}")


def int_or_tuple(text: str) -> IntOrTuple:
    values = ints(text)
    return values[0] if len(values) == 1 else values


def padding_value(text: str) -> Padding:
    """An int, a tuple '1,2', per-side pairs '(0,1),(1,1)' or a string such as 'same'."""
    if text.strip().lstrip("(").startswith(tuple("0123456789")) and "(" in text:
        try:
            return ast.literal_eval(f"({text},)" if not text.startswith("((") else text)
        except (ValueError, SyntaxError):
            raise argparse.ArgumentTypeError(f"padding pairs look like (0,1),(1,1); got {text!r}")
    if text[:1].isdigit():
        return int_or_tuple(text)
    return text


def parse_layer(text: str) -> nn.Module:
    """A module from its PyTorch constructor text, e.g. ``Conv2d(3, 64, 7, stride=2, padding=3)``,
    built for its arithmetic (shape reports, receptive fields): its parameters are
    :class:`~npconv.explain.shapes.Unallocated`, so no size of layer allocates anything.

    Only npconv.nn's classes and literal arguments are accepted (nothing is evaluated); bare
    names stand for strings, so a module's repr (``padding_mode=circular``) reads back.
    """
    from .shapes import shape_only
    if len(text) > MAX_LAYER_TEXT:
        raise ValueError(f"layer text is {len(text):,} characters long, more than the {MAX_LAYER_TEXT:,} "
                         f"a layer constructor such as Conv2d(3, 64, 7, stride=2, padding=3) needs")
    try:
        call = ast.parse(text.strip(), mode="eval").body
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name) or call.func.id not in LAYER_NAMES:
            raise ValueError(f"layer {text!r}: expected one of npconv.nn's layers, e.g. Conv2d(3, 64, 7, stride=2, "
                             f"padding=3); known: {', '.join(sorted(LAYER_NAMES))}")
        args = [_literal(node, text) for node in call.args]
        kwargs = {_keyword(kw, text): _literal(kw.value, text) for kw in call.keywords}
    except SyntaxError as error:
        raise ValueError(f"layer {text!r} is not of the form Name(arg, ..., key=value): {error.msg}") from None
    except (RecursionError, MemoryError):  # deep nesting (e.g. thousands of unary minus signs)
        raise ValueError(f"layer text nests too deeply to parse ({len(text):,} characters); write the "
                         f"arguments as plain numbers, tuples and names") from None
    return shape_only(getattr(nn, call.func.id))(*args, **kwargs)


def _keyword(keyword: ast.keyword, text: str) -> str:
    if keyword.arg is None:
        raise ValueError(f"layer {text!r}: arguments must be literals, got **{ast.unparse(keyword.value)}")
    return keyword.arg


def _literal(node: ast.expr, text: str) -> Any:
    if isinstance(node, ast.Name):
        return {"True": True, "False": False, "None": None}.get(node.id, node.id)
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ValueError(f"layer {text!r}: arguments must be literals, got {ast.unparse(node)!r}") from None


def filled(shape: Sequence[int], how: str, seed: int = 0) -> np.ndarray:
    """An array of ``shape`` filled 'arange' (the cells numbered 0, 1, 2, ...), 'ones' or 'random'."""
    check_allocation(f"an array of shape {list(shape)}", shape, np.float64)
    size = math.prod(shape)
    if how == "arange":
        return np.arange(size, dtype=np.float64).reshape(shape)
    if how == "ones":
        return np.ones(shape)
    if how == "random":
        return np.round(np.random.default_rng(seed).uniform(-2, 2, shape), 1)
    raise ValueError(f"fill must be 'arange', 'ones' or 'random', got {how!r}")


# ---- the commands --------------------------------------------------------------------
def run_shape(args: argparse.Namespace) -> int:
    from .shapes import shape_report
    layers = [parse_layer(text) for text in args.layers]
    print(shape_report(layers, args.input).table())
    return 0


def run_solve(args: argparse.Namespace) -> int:
    from .solve import solve, translate
    said = {k: v for k, v in (("padding", args.padding), ("keras", args.keras), ("onnx_pads", args.onnx_pads),
                              ("auto_pad", args.auto_pad)) if v is not None}
    common = dict(stride=args.stride, dilation=args.dilation)
    if args.output is not None and said:
        raise ValueError("solve: give either --output (find the pads) or one of --padding/--keras/--onnx-pads/"
                         "--auto-pad (translate them), not both")
    if args.output is not None:
        print(solve(args.input, args.output, args.kernel, transposed=args.transposed, **common).text())
    elif said:
        op = args.output_padding if args.output_padding is not None else (None if "keras" in said else 0)
        print(translate(args.input, args.kernel, transposed=args.transposed, output_padding=op, **said,
                        **common).text())
    else:
        raise ValueError("solve: give --output SIZE (find the pads) or a padding to translate "
                         "(--padding, --keras, --onnx-pads or --auto-pad)")
    return 0


def run_explain(args: argparse.Namespace) -> int:
    if args.deformable:
        return print_deformable_example(args)
    if args.input is None:
        return print_hand_sums()
    from .footprint import explain_input, explain_output, explain_transposed_output
    from .matrix import conv_matrix
    check_explain_sizes(args)
    common = dict(stride=args.stride, padding=args.padding, dilation=args.dilation, groups=args.groups)
    if args.matrix:
        w = filled(args.weight, args.weights, seed=1)
        print(matrix_text(conv_matrix(w, args.input, padding_mode=args.padding_mode, **common), args.input))
        return 0
    index = args.index or (0,) * len(args.input)
    if args.reverse:  # shapes are enough: no array is filled
        print(explain_input(args.input, args.weight, index, padding_mode=args.padding_mode, **common).text())
        return 0
    x, w = filled(args.input, args.values), filled(args.weight, args.weights, seed=1)
    if args.transposed:
        print(explain_transposed_output(x, w, index, output_padding=args.output_padding or 0, **common).text())
    else:
        print(explain_output(x, w, index, padding_mode=args.padding_mode, **common).text())
    return 0


def print_deformable_example(args: argparse.Namespace) -> int:
    """``npconv explain --deformable``: one output of a deformable conv, tap by tap, beside the
    engine's value (:func:`npconv.explain.deformable_example`); 0 when they agree."""
    from .deform import DEFORMABLE_EXAMPLE_SETTING, deformable_example
    if args.input is not None or args.weight is not None:
        raise ValueError("explain: --deformable prints its own example (a 5x5 input, a 3x3 kernel); "
                         "leave out --input and --weight")
    explanation = deformable_example()
    print(f"{DEFORMABLE_EXAMPLE_SETTING}\n\n{explanation}")
    return 0 if explanation.agrees else 1


def check_explain_sizes(args: argparse.Namespace) -> None:
    """Refuse, before any array is built, what explain cannot show: arrays above
    EXPLAIN_MAX_ELEMENTS (it computes the whole convolution to print the engine's value) and
    sums above EXPLAIN_MAX_TERMS terms (a line nobody reads)."""
    if args.weight is None:
        raise ValueError("explain: --input needs --weight, the weight shape (e.g. --weight 1,1,3,3)")
    transposed = args.transposed and not args.matrix  # --matrix is always the forward convolution
    out_shape = explain_output_shape(args, transposed)
    for what, shape in (("--input", args.input), ("--weight", args.weight), ("the output", out_shape)):
        if shape is not None:
            _refuse_above(f"{what} {tuple(shape)}", "elements", math.prod(shape), EXPLAIN_MAX_ELEMENTS)
    kernel = math.prod(args.weight[2:])
    if args.matrix:
        entries = math.prod(out_shape or (0,)) * args.weight[1] * kernel  # one per output and tap
        _refuse_above("the convolution matrix", "entries (at most)", entries, EXPLAIN_MAX_ELEMENTS)
    else:
        reads = args.weight[1] if not (args.reverse or transposed) else -(-args.weight[0] // max(args.groups, 1))
        _refuse_above("the explanation", "terms (at most)", reads * kernel, EXPLAIN_MAX_TERMS)


def _refuse_above(what: str, unit: str, count: int, limit: int) -> None:
    if count > limit:
        raise ValueError(f"explain: {what} has {count:,} {unit}, more than the {limit:,} the command builds and "
                         f"prints; npconv.explain's functions take any size in Python")


def explain_output_shape(args: argparse.Namespace, transposed: bool) -> tuple[int, ...] | None:
    """The shape of the convolution explain would compute; None when the settings are invalid
    (the explain functions then refuse them, naming the rule)."""
    n = len(args.weight) - 2
    if n < 1 or len(args.input) not in (n + 1, n + 2):
        return None
    try:
        spec = ConvSpec.build(args.weight[2:], args.stride, args.padding, args.dilation, args.groups,
                              "zeros" if transposed else args.padding_mode, transposed,
                              (args.output_padding or 0) if transposed else 0, ndim=n)
        spatial = spec.out_spatial(args.input[-n:])
    except (ValueError, TypeError):
        return None
    channels = args.weight[1] * args.groups if transposed else args.weight[0]
    return tuple(args.input[:-n - 1]) + (channels,) + tuple(spatial)


def print_hand_sums() -> int:
    """Print each hand-worked sum (:data:`npconv.worked_examples.HAND_SUMS`) beside npconv's
    explanation of the same output; 0 when all agree, 1 otherwise."""
    from ..worked_examples import HAND_SUMS
    print("Input: arange, its 6x6 cells numbered 0, 1, 2, ... row by row, channel 0 first; all-ones "
          "kernels.\nEach line: one output of the setting named, as npconv adds it up, then as added by hand.\n")
    ok = 0
    for hand in HAND_SUMS:
        line = hand.explain().sum_line()
        good = hand.reproduced(line)
        ok += good
        note = f"  ({hand.note})" if hand.note else ""
        print(f"{CHECK if good else CROSS} {hand.setting}{note}\n"
              f"    npconv:  {line}\n    by hand: {hand.expected}")
    print(f"{CHECK if ok == len(HAND_SUMS) else CROSS} {ok}/{len(HAND_SUMS)} hand-summed examples "
          f"reproduced by npconv.explain")
    return 0 if ok == len(HAND_SUMS) else 1


def matrix_text(matrix: scipy.sparse.csr_array, input_shape: Sequence[int]) -> str:
    rows, cols = matrix.shape
    if rows * cols > 64 * 64:
        return (f"the matrix is {rows} x {cols} with {matrix.nnz} nonzeros; too big to print "
                f"(npconv.explain.conv_matrix returns it)")
    dense = matrix.toarray()
    cells = [[f"{v:g}" if v else "." for v in row] for row in dense]
    width = max(len(c) for row in cells for c in row)
    lines = [f"C: {rows} x {cols} (outputs x inputs of shape {tuple(input_shape)}); conv(x).ravel() = C @ x.ravel()"]
    lines += [" ".join(c.rjust(width) for c in row) for row in cells]
    return "\n".join(lines)


def run_animate(args: argparse.Namespace) -> int:
    from .animation import animate, receptive_field_png
    if args.layers:
        layers: list[Any] = [parse_layer(text) for text in args.layers]  # conv layers, else refused
        check_picture_size(layers, args.input)
        path = receptive_field_png(args.path, layers, args.input)
    else:
        path = animate(args.path, args.input, args.kernel, args.stride, args.padding, args.dilation,
                       args.groups, args.padding_mode, args.transposed, args.output_padding or 0,
                       args.in_channels, args.out_channels)
    print(f"wrote {path}")
    return 0


def check_picture_size(layers: Sequence[Any], input_size: Sequence[int], cell: int = 20) -> None:
    """The receptive-field PNG draws every grid cell: refuse one above MAX_PICTURE_PIXELS
    before drawing (a 100000 x 100000 input would be 8 * 10**12 pixels)."""
    from .pictures.receptive_field import receptive_field_size, trace_receptive_field
    width, height = receptive_field_size(trace_receptive_field(layers, input_size), cell)
    if width * height > MAX_PICTURE_PIXELS:
        raise ValueError(f"the receptive-field picture would be {width:,} x {height:,} pixels, more than "
                         f"{MAX_PICTURE_PIXELS:,} (PIL's image-bomb limit); draw a smaller input")


def run_visualize(args: argparse.Namespace) -> int:
    from .html import write_page
    initial = {k: v for k, v in (("input_size", args.input), ("kernel_size", args.kernel),
                                 ("stride", args.stride), ("padding", args.padding),
                                 ("dilation", args.dilation), ("groups", args.groups),
                                 ("padding_mode", args.padding_mode),
                                 ("transposed", args.transposed)) if v is not None}
    print(f"wrote {write_page(args.path, **initial)} (one self-contained file; open it in a browser)")
    return 0


# ---- the parsers ---------------------------------------------------------------------
RAW = argparse.RawDescriptionHelpFormatter


def _spec_options(parser: argparse.ArgumentParser, visual: bool = False) -> None:
    parser.add_argument("--stride", type=int_or_tuple, default=None if visual else 1, help="stride (int or a,b)")
    parser.add_argument("--padding", type=padding_value, default=None if visual else 0,
                        help="int, a,b, per-side pairs (0,1),(1,1), 'same' or 'valid'")
    parser.add_argument("--dilation", type=int_or_tuple, default=None if visual else 1, help="dilation")
    parser.add_argument("--groups", type=int, default=None if visual else 1, help="groups")
    parser.add_argument("--padding-mode", default=None if visual else "zeros",
                        choices=["zeros", "reflect", "replicate", "circular"], help="padding mode")
    parser.add_argument("--transposed", action="store_true", default=None if visual else False,
                        help="transposed convolution")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register shape, solve, explain, animate and visualize on argparse subparsers."""
    _add_shape(commands)
    _add_solve(commands)
    _add_explain(commands)
    _add_animate(commands)
    _add_visualize(commands)


def _add_shape(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "shape", help="output shape, pads, params, MACs and receptive field through layers", formatter_class=RAW,
        description="The shape report of a chain of layers, each written as its PyTorch constructor.",
        epilog="examples:\n  npconv shape 1,3,224,224 'Conv2d(3, 64, 7, stride=2, padding=3)' 'MaxPool2d(3, 2, 1)'\n"
               "  npconv shape 1,64,16,16 'ConvTranspose2d(64, 32, 4, stride=2, padding=1)'\n"
               "  npconv shape 1,1,100 'Conv1d(1, 8, 5, dilation=2)' 'Conv1d(8, 8, 5, dilation=4)'")
    p.add_argument("input", type=ints, help="input shape N,C,*spatial")
    p.add_argument("layers", nargs="+", help="layers such as 'Conv2d(3, 64, 3, padding=1)'")
    p.set_defaults(run=run_shape)


def _add_solve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "solve", help="the padding for a wanted output size, in PyTorch, Keras and ONNX terms", formatter_class=RAW,
        description="Find pads (and output_padding) for --output, or translate pads given one way "
                    "(--padding, --keras, --onnx-pads, --auto-pad) into the others.",
        epilog="examples:\n  npconv solve --input 224 --output 112 --kernel 7 --stride 2\n"
               "  npconv solve --input 7,7 --output 14,14 --kernel 4 --stride 2 --transposed\n"
               "  npconv solve --input 6 --kernel 3 --stride 2 --keras same\n"
               "  npconv solve --input 6,6 --kernel 3 --onnx-pads 0,0,1,1")
    p.add_argument("--input", type=ints, required=True, help="input spatial size")
    p.add_argument("--output", type=ints, help="wanted output spatial size")
    p.add_argument("--kernel", type=ints, required=True, help="kernel size")
    p.add_argument("--stride", type=int_or_tuple, default=1)
    p.add_argument("--dilation", type=int_or_tuple, default=1)
    p.add_argument("--transposed", action="store_true")
    p.add_argument("--output-padding", type=int_or_tuple, help="transposed only (Keras: leave out for None)")
    p.add_argument("--padding", type=padding_value, help="PyTorch/npconv padding to translate")
    p.add_argument("--keras", choices=["same", "valid", "causal"], help="Keras padding to translate")
    p.add_argument("--onnx-pads", type=ints, help="ONNX pads (begins then ends) to translate")
    p.add_argument("--auto-pad", choices=["VALID", "SAME_UPPER", "SAME_LOWER"], help="ONNX auto_pad to translate")
    p.set_defaults(run=run_solve)


def _add_explain(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "explain", help="which inputs and weights make an output (no options: ten sums worked by hand)",
        formatter_class=RAW,
        description="Print one output as the sum of its terms, the outputs one input reaches (--reverse) "
                    "or the convolution matrix (--matrix); --deformable: one output of a deformable conv, "
                    "tap by tap. With no options: ten outputs of standard, "
                    "depthwise, grouped, pointwise, dilated and strided convolutions on a numbered input, "
                    "each worked out by hand and checked against npconv.",
        epilog="examples:\n  npconv explain\n"
               "  npconv explain --input 1,3,6,6 --weight 1,3,3,3 --padding 1 --index 0,0,0,0\n"
               "  npconv explain --input 1,1,5,5 --weight 1,1,3,3 --padding 2 --padding-mode reflect --weights random\n"
               "  npconv explain --input 1,1,6,6 --weight 1,1,3,3 --stride 2 --reverse --index 0,0,2,2\n"
               "  npconv explain --input 1,1,3,3 --weight 1,1,3,3 --stride 2 --transposed --index 0,0,2,2\n"
               "  npconv explain --input 1,1,4,4 --weight 1,1,3,3 --matrix\n"
               "  npconv explain --deformable")
    p.add_argument("--input", type=ints, help="input shape N,C,*spatial")
    p.add_argument("--weight", type=ints, help="weight shape (conv: C_out,C_in/groups,*k; transposed: C_in,C_out/groups,*k)")
    p.add_argument("--index", type=ints, help="output index N,C,*o (input index with --reverse); default all zeros")
    p.add_argument("--values", default="arange", choices=["arange", "ones", "random"], help="input fill (arange)")
    p.add_argument("--weights", default="ones", choices=["arange", "ones", "random"], help="weight fill (ones)")
    p.add_argument("--output-padding", type=int_or_tuple, help="transposed only")
    p.add_argument("--reverse", action="store_true", help="which outputs the input element --index reaches")
    p.add_argument("--matrix", action="store_true", help="print the convolution matrix C")
    p.add_argument("--deformable", action="store_true",
                   help="a deformable conv's output tap by tap: sample points, bilinear corners, mask")
    _spec_options(p)
    p.set_defaults(run=run_explain)


def _add_animate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "animate", help="a GIF of the convolution (or a PNG of the receptive field of layers)",
        formatter_class=RAW,
        description="Write an animated GIF in the conv-arithmetic style: padded input, kernel footprint "
                    "with dilation holes, stride steps, the output filling in. With layers: a PNG of the "
                    "receptive field through them.",
        epilog="examples:\n  npconv animate conv.gif --input 5,5 --kernel 3 --stride 2 --padding 1\n"
               "  npconv animate dilated.gif --input 7,7 --kernel 3 --dilation 2\n"
               "  npconv animate reflect.gif --input 4,4 --kernel 3 --padding 2 --padding-mode reflect\n"
               "  npconv animate up.gif --input 3,3 --kernel 3 --stride 2 --transposed --output-padding 1\n"
               "  npconv animate rf.png --input 1,1,32,32 --layers 'Conv2d(1,1,3)' 'Conv2d(1,1,3,stride=2)'")
    p.add_argument("path", help="where to write the GIF (or the PNG, with --layers)")
    p.add_argument("--input", type=ints, default=(5, 5), help="input spatial size (with --layers: N,C,*s)")
    p.add_argument("--kernel", type=int_or_tuple, default=3)
    p.add_argument("--in-channels", type=int, default=1)
    p.add_argument("--out-channels", type=int, default=1)
    p.add_argument("--output-padding", type=int_or_tuple)
    p.add_argument("--layers", nargs="+", help="layers for the receptive-field picture")
    _spec_options(p)
    p.set_defaults(run=run_animate)


def _add_visualize(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "visualize", help="write the interactive HTML page (one file, no network)", formatter_class=RAW,
        description="Write one self-contained HTML page with controls for every parameter; hovering an "
                    "output cell highlights the inputs that make it. Options left out start at PyTorch's "
                    "defaults (stride 1, padding 0, dilation 1, groups 1, padding_mode zeros) on a 5x5 "
                    "input with a 3x3 kernel.",
        epilog="examples:\n  npconv visualize\n  npconv visualize conv.html --input 7,7 --kernel 3 --stride 2 --padding 1")
    p.add_argument("path", nargs="?", default="npconv_visualize.html", help="(default npconv_visualize.html)")
    p.add_argument("--input", type=ints, help="starting input size H,W")
    p.add_argument("--kernel", type=int_or_tuple, help="starting kernel size")
    _spec_options(p, visual=True)
    p.set_defaults(run=run_visualize)
