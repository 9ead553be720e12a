#!/usr/bin/env python3
"""Splits a Markdown file into its runnable code blocks, for
test/docs/01_examples.sh.

usage: extract.py FILE.md OUTDIR

Writes OUTDIR/NNN.sql or OUTDIR/NNN.sh for every fenced block whose language
is sql, or sh / bash / shell, in order, and prints one line per block:
    NNN <tab> KIND <tab> LINE <tab> MARK <tab> ARG
KIND is sql or sh; LINE the line of the opening fence; MARK is run, skip
(ARG: the reason) or error (ARG: the SQLSTATE the block must fail with).
Marks are HTML comments on the last non-blank line before the fence:
    <!-- not-tested: why this block cannot run in the test -->
    <!-- expect-error: 22023 -->
Blocks of other languages (ini, text, none) are documentation only.
Exits 2 on a malformed mark or an unclosed fence.
"""
import re
import sys

KINDS = {"sql": "sql", "sh": "sh", "bash": "sh", "shell": "sh"}
MARK = re.compile(r"^\s*<!--\s*(not-tested|expect-error)\s*:\s*(.*?)\s*-->\s*$")


def main():
    path, outdir = sys.argv[1], sys.argv[2]
    lines = open(path, encoding="utf-8").read().split("\n")
    n = 0
    i = 0
    last_text = ""          # last non-blank line outside a block
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(\s*)(```+|~~~+)\s*([A-Za-z0-9_+-]*)", line)
        if not m:
            if line.strip():
                last_text = line
            i += 1
            continue
        fence, lang, start = m.group(2), m.group(3).lower(), i + 1
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        if i >= len(lines):
            print(f"{path}:{start}: unclosed code block", file=sys.stderr)
            sys.exit(2)
        i += 1
        mark, arg = "run", ""
        mm = MARK.match(last_text)
        if mm:
            mark = {"not-tested": "skip", "expect-error": "error"}[mm.group(1)]
            arg = mm.group(2)
            if not arg:
                print(f"{path}:{start}: a {mm.group(1)} mark needs a reason or SQLSTATE",
                      file=sys.stderr)
                sys.exit(2)
            if mark == "error" and not re.fullmatch(r"[0-9A-Z]{5}", arg):
                print(f"{path}:{start}: expect-error needs a SQLSTATE, not {arg!r}",
                      file=sys.stderr)
                sys.exit(2)
        last_text = ""
        kind = KINDS.get(lang)
        if kind is None:
            continue
        if mark == "error" and kind != "sql":
            print(f"{path}:{start}: expect-error applies to sql blocks only", file=sys.stderr)
            sys.exit(2)
        n += 1
        name = f"{n:03d}"
        with open(f"{outdir}/{name}.{kind}", "w", encoding="utf-8") as f:
            f.write("\n".join(body) + "\n")
        print(f"{name}\t{kind}\t{start}\t{mark}\t{arg}")


if __name__ == "__main__":
    main()
