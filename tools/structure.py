"""Structure figures for the closing notes of refactoring issues: lines per package, functions
over 30 lines, and how many places re-check each shape rule (a grep over src/npconv).

    python tools/structure.py            # a table on stdout
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src" / "npconv"

# a rule and the regular expression that finds a place testing it
RULES = {
    "kernel fits the padded input": r"(<|>=?)\s*ek\b|\bek\s*(>|<=?)\s*(size|padded|i\b)|-\s*ek\)\s*//",
    "effective kernel d*(k-1)+1": r"\*\s*\(k\s*-\s*1\)\s*\+\s*1|\(k\s*-\s*1\)\s*\*\s*d\w*\s*\+\s*1",
    "output_padding < max(stride, dilation)": r"max\(s,\s*d\w*\)|>=\s*max\(",
    "groups divide channels": r"%\s*(spec\.)?groups?\b",
    "reflect/circular pad limit": r"max\(lo,\s*hi\)\s*>=?\s*size",
    "transposed output >= 1": r"-\s*lo\s*-\s*hi\s*<\s*1|min\(out\)\s*<\s*1",
    "SAME pads from ceil(in/stride)": r"-\(-\s*\w+\s*//\s*s\w*\)",
    "n-tuple normaliser": r"^def (ntuple|int_list|standardize_tuple|_tuple\w*)\(",
}


def package_lines(root: Path = ROOT) -> Counter:
    lines = Counter()
    for path in root.rglob("*.py"):
        package = path.parent.relative_to(root.parent).as_posix()
        lines[package] += len(path.read_text().splitlines())
    return lines


def long_functions(limit: int = 30, root: Path = ROOT) -> list[tuple[str, int, int]]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                doc = node.body[0] if node.body and isinstance(node.body[0], ast.Expr) and isinstance(
                    getattr(node.body[0], "value", None), ast.Constant) and isinstance(node.body[0].value.value, str) else None
                code = length - (doc.end_lineno - doc.lineno + 1 if doc else 0)
                if length > limit:
                    found.append((f"{path.relative_to(root.parent)}:{node.name}", length, code))
    return found


def code_only(text: str) -> str:
    """The source with its strings and comments blanked (line numbers kept): a rule stated in a
    message or a docstring is not a place that checks it."""
    lines = text.splitlines(keepends=True)
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type in (tokenize.STRING, tokenize.COMMENT) or token.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
            (row, col), (end_row, end_col) = token.start, token.end
            for r in range(row, end_row + 1):
                line = lines[r - 1]
                start = col if r == row else 0
                stop = end_col if r == end_row else len(line.rstrip("\n"))
                lines[r - 1] = line[:start] + " " * (stop - start) + line[stop:]
    return "".join(lines)


def rule_places(root: Path = ROOT) -> dict[str, list[str]]:
    places = {}
    for rule, pattern in RULES.items():
        regex = re.compile(pattern, re.M)
        places[rule] = [f"{path.relative_to(root.parent)}:{text.count(chr(10), 0, m.start()) + 1}"
                        for path in sorted(root.rglob("*.py")) for text in [code_only(path.read_text())]
                        for m in regex.finditer(text)]
    return places


def main() -> None:
    """``python tools/structure.py [-v] [SRC_PACKAGE_DIR]`` (default: this checkout's src/npconv)."""
    paths = [a for a in sys.argv[1:] if not a.startswith("-")]
    root = Path(paths[0]).resolve() if paths else ROOT
    print("lines per package")
    for package, count in sorted(package_lines(root).items()):
        print(f"  {package:28s} {count:6d}")
    longest = long_functions(root=root)
    print(f"functions over 30 lines: {len(longest)} "
          f"({sum(code > 30 for _, _, code in longest)} without their docstrings)")
    for name, length, code in sorted(longest, key=lambda item: -item[1]):
        print(f"  {length:4d} ({code:3d} code)  {name}")
    print("places testing each rule")
    for rule, places in rule_places(root).items():
        files = sorted({p.rsplit(':', 1)[0] for p in places})
        print(f"  {len(places):3d} in {len(files):2d} files  {rule}: {', '.join(files)}")
    if "-v" in sys.argv:
        for rule, places in rule_places(root).items():
            print(rule, places)


if __name__ == "__main__":
    main()
