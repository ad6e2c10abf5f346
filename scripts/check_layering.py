#!/usr/bin/env python3
"""Checks that Kiln's crates depend on each other only downward (see ARCHITECTURE.md):

    python -> engine -> executor -> planner -> ml

and that networking (tonic) and Polars stay in the crates allowed to use them.
Exits non-zero naming every edge that breaks the rule.
"""
import json
import subprocess
import sys

# Library crate -> the Kiln crates it may depend on (directly).
ALLOWED = {
    "kiln-ml": set(),
    "kiln-planner": {"kiln-ml"},
    "kiln-executor": {"kiln-planner", "kiln-ml"},
    "kiln": {"kiln-executor", "kiln-planner", "kiln-ml"},
    "kiln-python": {"kiln", "kiln-executor", "kiln-planner", "kiln-ml"},
}
# Third-party crates only some Kiln crates may use directly.
RESTRICTED = {
    "tonic": {"kiln-executor", "kiln"},
    "polars": {"kiln"},
}
# Crates that only run things (examples, suites, benchmarks) may use anything.
LEAVES = {"kiln-examples", "kiln-tests", "kiln-benches"}


def main() -> int:
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    problems = []
    names = {p["name"] for p in meta["packages"]}
    for pkg in meta["packages"]:
        name = pkg["name"]
        if name in LEAVES:
            continue
        if name not in ALLOWED:
            problems.append(f"{name}: unknown workspace crate; add it to the layering in scripts/check_layering.py and ARCHITECTURE.md")
            continue
        for dep in pkg["dependencies"]:
            dep_name = dep["name"]
            if dep.get("kind") == "dev":
                continue
            if dep_name in names and dep_name not in ALLOWED[name]:
                problems.append(f"{name} -> {dep_name}: breaks the layering (allowed: {sorted(ALLOWED[name]) or 'nothing'})")
            if dep_name in RESTRICTED and name not in RESTRICTED[dep_name]:
                problems.append(f"{name} -> {dep_name}: only {sorted(RESTRICTED[dep_name])} may use {dep_name}")
    for p in problems:
        print(f"layering: {p}", file=sys.stderr)
    if not problems:
        print(f"layering: ok ({len(meta['packages'])} crates)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
