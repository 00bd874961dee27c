"""Vendors arena-bench-v1 (the 2023 precursor of Arena-Hard) into data/arena-bench/.

Reads a local clone of github.com/lmarena/arena-hard-auto (Apache-2.0) and writes, for every
model judged in the newest commit that holds `data/arena-bench-v1/model_judgment/`:
- `question.jsonl`: the prompts (question_id, turns), as published;
- `judgements.jsonl`: one line per (question_id, model): the GPT-4 single-answer score (1-10,
  graded against a GPT-4 reference answer), without the judge's text.

Usage: python3 scripts/vendor_arena_bench.py <arena-hard-auto clone> data/arena-bench
"""

import json
import pathlib
import subprocess
import sys

SRC = "data/arena-bench-v1"


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True).stdout


def main():
    repo, out = sys.argv[1], pathlib.Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    commit = git(repo, "log", "--all", "--format=%H", "-1", "--", f"{SRC}/model_judgment").strip()
    names = git(repo, "ls-tree", "--name-only", f"{commit}:{SRC}/model_judgment").split()
    lines = []
    for name in sorted(names):
        if name.startswith("arena-bench-judgment"):
            continue  # pairwise judgements of a judge study, not single-answer scores
        for raw in git(repo, "show", f"{commit}:{SRC}/model_judgment/{name}").splitlines():
            row = json.loads(raw)
            score = float(row["score"]) if row.get("score") is not None else -1.0
            if not 1 <= score <= 10:
                continue  # the judge's answer could not be parsed (-1 or null)
            lines.append({"question_id": row["question_id"], "model": row["model"], "score": score})
    lines.sort(key=lambda r: (r["model"], r["question_id"]))
    with open(out / "judgements.jsonl", "w") as f:
        for r in lines:
            f.write(json.dumps(r) + "\n")
    (out / "question.jsonl").write_text(git(repo, "show", f"{commit}:{SRC}/question.jsonl"))
    (out / "LICENSE").write_text(git(repo, "show", "HEAD:LICENSE"))
    print(f"{len(lines)} judgements of {len({r['model'] for r in lines})} models from commit {commit}")


if __name__ == "__main__":
    main()
