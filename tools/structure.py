"""Structure figures for the closing notes of refactoring issues: lines per package, functions
over 30 lines, and how many places re-check each shape rule (a grep over src/npconv).

    python tools/structure.py            # a table on stdout
"""

from __future__ import annotations

import ast
import re
import sys
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


def package_lines() -> Counter:
    lines = Counter()
    for path in ROOT.rglob("*.py"):
        package = path.parent.relative_to(ROOT.parent).as_posix()
        lines[package] += len(path.read_text().splitlines())
    return lines


def long_functions(limit: int = 30) -> list[tuple[str, int]]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append((f"{path.relative_to(ROOT.parent)}:{node.name}", length))
    return found


def rule_places() -> dict[str, list[str]]:
    places = {}
    for rule, pattern in RULES.items():
        regex = re.compile(pattern, re.M)
        places[rule] = [f"{path.relative_to(ROOT.parent)}:{text.count(chr(10), 0, m.start()) + 1}"
                        for path in sorted(ROOT.rglob("*.py")) for text in [path.read_text()]
                        for m in regex.finditer(text)]
    return places


def main() -> None:
    print("lines per package")
    for package, count in sorted(package_lines().items()):
        print(f"  {package:28s} {count:6d}")
    longest = long_functions()
    print(f"functions over 30 lines: {len(longest)}")
    for name, length in sorted(longest, key=lambda item: -item[1]):
        print(f"  {length:4d}  {name}")
    print("places testing each rule")
    for rule, places in rule_places().items():
        files = sorted({p.rsplit(':', 1)[0] for p in places})
        print(f"  {len(places):3d} in {len(files):2d} files  {rule}: {', '.join(files)}")
    if "-v" in sys.argv:
        for rule, places in rule_places().items():
            print(rule, places)


if __name__ == "__main__":
    main()
