"""``npconv shape | solve | explain | animate | visualize``: the explain API on the command line.

Each command prints aligned text; a refused setting prints the engine's message (the rule and
its arithmetic) and exits with status 2, as argparse does for malformed arguments.
"""

from __future__ import annotations

import argparse
import ast

import numpy as np

from .. import nn

LAYER_NAMES = {name for name in nn.__all__ if name[0].isupper()} - {"Module", "Parameter", "Sequential",
                                                                    "CrossEntropyLoss"}
CHECK, CROSS = "\u2713", "\u2717"


# ---- argument parsing ----------------------------------------------------------------
def ints(text: str) -> tuple[int, ...]:
    """'1,3,6,6' (or '6x6') -> (1, 3, 6, 6)."""
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,3,6,6; got {text!r}")


def int_or_tuple(text: str):
    values = ints(text)
    return values[0] if len(values) == 1 else values


def padding_value(text: str):
    """An int, a tuple '1,2', per-side pairs '(0,1),(1,1)' or a string such as 'same'."""
    if text.strip().lstrip("(").startswith(tuple("0123456789")) and "(" in text:
        try:
            return ast.literal_eval(f"({text},)" if not text.startswith("((") else text)
        except (ValueError, SyntaxError):
            raise argparse.ArgumentTypeError(f"padding pairs look like (0,1),(1,1); got {text!r}")
    if text[:1].isdigit():
        return int_or_tuple(text)
    return text


def parse_layer(text: str):
    """A module from its PyTorch constructor text, e.g. ``Conv2d(3, 64, 7, stride=2, padding=3)``.

    Only npconv.nn's classes and literal arguments are accepted (nothing is evaluated); bare
    names stand for strings, so a module's repr (``padding_mode=circular``) reads back.
    """
    try:
        call = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as error:
        raise ValueError(f"layer {text!r} is not of the form Name(arg, ..., key=value): {error.msg}")
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name) or call.func.id not in LAYER_NAMES:
        raise ValueError(f"layer {text!r}: expected one of npconv.nn's layers, e.g. "
                         f"Conv2d(3, 64, 7, stride=2, padding=3); known: {', '.join(sorted(LAYER_NAMES))}")
    args = [_literal(node, text) for node in call.args]
    kwargs = {kw.arg: _literal(kw.value, text) for kw in call.keywords}
    return getattr(nn, call.func.id)(*args, **kwargs)


def _literal(node, text):
    if isinstance(node, ast.Name):
        return {"True": True, "False": False, "None": None}.get(node.id, node.id)
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ValueError(f"layer {text!r}: arguments must be literals, got {ast.unparse(node)!r}")


def filled(shape, how: str, seed: int = 0) -> np.ndarray:
    """An array of ``shape`` filled 'arange' (the documents' input), 'ones' or 'random'."""
    size = int(np.prod(shape))
    if how == "arange":
        return np.arange(size, dtype=np.float64).reshape(shape)
    if how == "ones":
        return np.ones(shape)
    if how == "random":
        return np.round(np.random.default_rng(seed).uniform(-2, 2, shape), 1)
    raise ValueError(f"fill must be 'arange', 'ones' or 'random', got {how!r}")


# ---- the commands --------------------------------------------------------------------
def run_shape(args) -> int:
    from .shapes import shape_report
    layers = [parse_layer(text) for text in args.layers]
    print(shape_report(layers, args.input).table())
    return 0


def run_solve(args) -> int:
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


def run_explain(args) -> int:
    if args.input is None:
        return documents_hand_sums()
    from .footprint import explain_input, explain_output, explain_transposed_output
    from .matrix import conv_matrix
    x, w = filled(args.input, args.values), filled(args.weight, args.weights, seed=1)
    common = dict(stride=args.stride, padding=args.padding, dilation=args.dilation, groups=args.groups)
    if args.matrix:
        print(matrix_text(conv_matrix(w, args.input, padding_mode=args.padding_mode, **common), args.input))
        return 0
    index = args.index or (0,) * len(args.input)
    if args.reverse:
        print(explain_input(args.input, args.weight, index, padding_mode=args.padding_mode, **common).text())
    elif args.transposed:
        print(explain_transposed_output(x, w, index, output_padding=args.output_padding or 0, **common).text())
    else:
        print(explain_output(x, w, index, padding_mode=args.padding_mode, **common).text())
    return 0


def documents_hand_sums() -> int:
    from ..worked_examples import HAND_SUMS
    ok = 0
    for hand in HAND_SUMS:
        line = hand.explain().sum_line()
        good = hand.reproduced(line)
        ok += good
        note = f"  ({hand.note})" if hand.note else ""
        print(f"{CHECK if good else CROSS} [{hand.source}] npconv:   {line}{note}\n"
              f"  {'':{len(hand.source) + 2}} document: {hand.stated}")
    print(f"{CHECK if ok == len(HAND_SUMS) else CROSS} {ok}/{len(HAND_SUMS)} hand-summed examples of the "
          f"spec documents reproduced by npconv.explain")
    return 0 if ok == len(HAND_SUMS) else 1


def matrix_text(matrix, input_shape) -> str:
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


def run_animate(args) -> int:
    from .animate import animate, receptive_field_png
    if args.layers:
        layers = [parse_layer(text) for text in args.layers]
        path = receptive_field_png(args.path, layers, args.input)
    else:
        path = animate(args.path, args.input, args.kernel, args.stride, args.padding, args.dilation,
                       args.groups, args.padding_mode, args.transposed, args.output_padding or 0,
                       args.in_channels, args.out_channels)
    print(f"wrote {path}")
    return 0


def run_visualize(args) -> int:
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


def _spec_options(parser, visual: bool = False) -> None:
    parser.add_argument("--stride", type=int_or_tuple, default=None if visual else 1, help="stride (int or a,b)")
    parser.add_argument("--padding", type=padding_value, default=None if visual else 0,
                        help="int, a,b, per-side pairs (0,1),(1,1), 'same' or 'valid'")
    parser.add_argument("--dilation", type=int_or_tuple, default=None if visual else 1, help="dilation")
    parser.add_argument("--groups", type=int, default=None if visual else 1, help="groups")
    parser.add_argument("--padding-mode", default=None if visual else "zeros",
                        choices=["zeros", "reflect", "replicate", "circular"], help="padding mode")
    parser.add_argument("--transposed", action="store_true", default=None if visual else False,
                        help="transposed convolution")


def add_commands(commands) -> None:
    """Register shape, solve, explain, animate and visualize on argparse subparsers."""
    _add_shape(commands)
    _add_solve(commands)
    _add_explain(commands)
    _add_animate(commands)
    _add_visualize(commands)


def _add_shape(commands) -> None:
    p = commands.add_parser(
        "shape", help="output shape, pads, params, MACs and receptive field through layers", formatter_class=RAW,
        description="The shape report of a chain of layers, each written as its PyTorch constructor.",
        epilog="examples:\n  npconv shape 1,3,224,224 'Conv2d(3, 64, 7, stride=2, padding=3)' 'MaxPool2d(3, 2, 1)'\n"
               "  npconv shape 1,64,16,16 'ConvTranspose2d(64, 32, 4, stride=2, padding=1)'\n"
               "  npconv shape 1,1,100 'Conv1d(1, 8, 5, dilation=2)' 'Conv1d(8, 8, 5, dilation=4)'")
    p.add_argument("input", type=ints, help="input shape N,C,*spatial")
    p.add_argument("layers", nargs="+", help="layers such as 'Conv2d(3, 64, 3, padding=1)'")
    p.set_defaults(run=run_shape)


def _add_solve(commands) -> None:
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


def _add_explain(commands) -> None:
    p = commands.add_parser(
        "explain", help="which inputs and weights make an output (no options: the documents' sums)",
        formatter_class=RAW,
        description="Print one output as the sum of its terms, the outputs one input reaches (--reverse) "
                    "or the convolution matrix (--matrix). With no options: every hand-summed example "
                    "of the spec documents, checked.",
        epilog="examples:\n  npconv explain\n"
               "  npconv explain --input 1,3,6,6 --weight 1,3,3,3 --padding 1 --index 0,0,0,0\n"
               "  npconv explain --input 1,1,5,5 --weight 1,1,3,3 --padding 2 --padding-mode reflect --weights random\n"
               "  npconv explain --input 1,1,6,6 --weight 1,1,3,3 --stride 2 --reverse --index 0,0,2,2\n"
               "  npconv explain --input 1,1,3,3 --weight 1,1,3,3 --stride 2 --transposed --index 0,0,2,2\n"
               "  npconv explain --input 1,1,4,4 --weight 1,1,3,3 --matrix")
    p.add_argument("--input", type=ints, help="input shape N,C,*spatial")
    p.add_argument("--weight", type=ints, help="weight shape (conv: C_out,C_in/groups,*k; transposed: C_in,C_out/groups,*k)")
    p.add_argument("--index", type=ints, help="output index N,C,*o (input index with --reverse); default all zeros")
    p.add_argument("--values", default="arange", choices=["arange", "ones", "random"], help="input fill (arange)")
    p.add_argument("--weights", default="ones", choices=["arange", "ones", "random"], help="weight fill (ones)")
    p.add_argument("--output-padding", type=int_or_tuple, help="transposed only")
    p.add_argument("--reverse", action="store_true", help="which outputs the input element --index reaches")
    p.add_argument("--matrix", action="store_true", help="print the convolution matrix C")
    _spec_options(p)
    p.set_defaults(run=run_explain)


def _add_animate(commands) -> None:
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


def _add_visualize(commands) -> None:
    p = commands.add_parser(
        "visualize", help="write the interactive HTML page (one file, no network)", formatter_class=RAW,
        description="Write one self-contained HTML page with controls for every parameter; hovering an "
                    "output cell highlights the inputs that make it.",
        epilog="examples:\n  npconv visualize\n  npconv visualize conv.html --input 7,7 --kernel 3 --stride 2 --padding 1")
    p.add_argument("path", nargs="?", default="npconv_visualize.html", help="(default npconv_visualize.html)")
    p.add_argument("--input", type=ints, help="starting input size H,W")
    p.add_argument("--kernel", type=int_or_tuple, help="starting kernel size")
    _spec_options(p, visual=True)
    p.set_defaults(run=run_visualize)
