#!/usr/bin/env python3
"""function_lengths.py: every Swift function (func, init, computed property body is not counted) in
the given directories longer than a limit, one line each; exit 1 if there is any.

    scripts/function_lengths.py [--limit 60] DIR...     # scripts/lint.sh runs it over Sources/

A function's length is the lines from its declaration to its closing brace. Comments and string
literals are stripped before braces are matched (so a "{" in a string does not count); multi-line
string literals (triple quotes) are skipped whole. Not a Swift parser: enough for this code base,
and it says which line it could not match rather than guessing.
"""
import argparse
import os
import re
import sys

DECLARATION = re.compile(r"^\s*(?:@\w+(?:\([^)]*\))?\s+)*(?:(?:public|package|internal|private|fileprivate|static|final|override|mutating|nonisolated|convenience|required|open|class)\s+)*(?:func\s+[^\s(<]+|init[?!]?)\s*[(<]")


def code_only(lines):
    """The lines with comments and string literals blanked (same line numbers)."""
    out, in_block, in_multiline = [], False, False
    for line in lines:
        text, i, result = line, 0, []
        while i < len(text):
            if in_block:
                end = text.find("*/", i)
                if end < 0:
                    i = len(text)
                    continue
                in_block, i = False, end + 2
            elif in_multiline:
                end = text.find('"""', i)
                if end < 0:
                    i = len(text)
                    continue
                in_multiline, i = False, end + 3
            elif text.startswith("//", i):
                break
            elif text.startswith("/*", i):
                in_block, i = True, i + 2
            elif text.startswith('"""', i):
                in_multiline, i = True, i + 3
            elif text[i] == '"':
                i += 1
                depth = 0  # \( ... ) interpolations may hold quotes
                while i < len(text):
                    if text.startswith("\\(", i):
                        depth, i = depth + 1, i + 2
                    elif depth and text[i] == ")":
                        depth, i = depth - 1, i + 1
                    elif text[i] == "\\":
                        i += 2
                    elif text[i] == '"' and not depth:
                        i += 1
                        break
                    else:
                        i += 1
                result.append('""')
            else:
                result.append(text[i])
                i += 1
        out.append("".join(result))
    return out


def long_functions(path, limit):
    lines = open(path, encoding="utf-8").read().split("\n")
    code = code_only(lines)
    found = []
    for start, line in enumerate(code):
        if not DECLARATION.match(line):
            continue
        depth, opened = 0, False
        for end in range(start, len(code)):
            for c in code[end]:
                if c == "{":
                    depth, opened = depth + 1, True
                elif c == "}":
                    depth -= 1
            if opened and depth == 0 or not opened and depth < 0:
                break  # the body's closing brace, or the end of a protocol around a requirement
            if not opened and end > start and code[end].strip().startswith(("func ", "var ", "let ")):
                break  # a protocol requirement: no body
        else:
            print(f"{path}:{start + 1}: could not find the end of this function", file=sys.stderr)
            continue
        if opened and end - start + 1 > limit:
            name = re.sub(r"\s+", " ", lines[start].strip())[:80]
            found.append((path, start + 1, end - start + 1, name))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("dirs", nargs="+")
    args = parser.parse_args()
    found = []
    for top in args.dirs:
        if not os.path.isdir(top):
            print(f"function_lengths.py: {top}: not a directory", file=sys.stderr)
            return 2
        for root, _, files in os.walk(top):
            for f in sorted(files):
                if f.endswith(".swift"):
                    found += long_functions(os.path.join(root, f), args.limit)
    for path, line, length, name in found:
        print(f"{path}:{line}: {length} lines (limit {args.limit}): {name}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
