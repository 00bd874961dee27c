#!/usr/bin/env python3
"""Checks the README and the book under docs/src: every relative link resolves (file, and the
heading its #anchor names), every repository path named in backticks exists, SUMMARY.md lists
every chapter, every chapter is reachable from the README, and the README stays a front door
(at most 300 lines). Exits 1 with one line per problem."""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "docs" / "src"
README_MAX_LINES = 300
# Backticked paths under these top-level folders must exist in the repository.
REPO_DIRS = ("src/", "learn/", "training/", "scripts/", "tests/", "config/", "docs/", "sim/", "benches/", "migrations/", "fuzz/", ".ci/")
LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\n]+)`")


def prose(text):
    """The text outside fenced code blocks."""
    out, fenced = [], False
    for line in text.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
            continue
        out.append("" if fenced else line)
    return "\n".join(out)


def slug(heading):
    """The anchor GitHub and mdBook give a heading."""
    h = re.sub(r"[`*_]", "", heading.strip().lower())
    h = re.sub(r"[^a-z0-9 \-]", "", h)
    return h.replace(" ", "-")


def anchors(path):
    return {slug(m.group(2)) for m in re.finditer(r"(?m)^(#{1,6}) (.*)$", prose(path.read_text()))}


def check(path, problems):
    text = prose(path.read_text())
    for _, target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            problems.append(f"{path.relative_to(ROOT)}: link to {target}: {file} does not exist")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{path.relative_to(ROOT)}: link to {target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    for ref in CODE.findall(text):
        ref = ref.split(":")[0].rstrip("/.,")
        if not ref.startswith(REPO_DIRS) or any(c in ref for c in "*<>{}… ="):
            continue
        if not (ROOT / ref).exists():
            problems.append(f"{path.relative_to(ROOT)}: names `{ref}`, which does not exist")


def main():
    problems = []
    readme = ROOT / "README.md"
    chapters = sorted(p for p in BOOK.glob("*.md") if p.name != "SUMMARY.md")
    for p in [readme, BOOK / "SUMMARY.md", *chapters]:
        check(p, problems)
    listed = set(re.findall(r"\]\(([^)#]+\.md)\)", (BOOK / "SUMMARY.md").read_text()))
    for p in chapters:
        if p.name not in listed:
            problems.append(f"docs/src/SUMMARY.md does not list {p.name}")
    linked = {(readme.parent / t.partition("#")[0]).resolve() for _, t in LINK.findall(prose(readme.read_text()))}
    for p in chapters:
        if p.resolve() not in linked:
            problems.append(f"README.md does not link docs/src/{p.name}")
    lines = len(readme.read_text().splitlines())
    if lines > README_MAX_LINES:
        problems.append(f"README.md has {lines} lines; keep it at most {README_MAX_LINES} (move the rest into docs/src)")
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(f"docs: README ({lines} lines) and {len(chapters)} chapters checked")


if __name__ == "__main__":
    main()
