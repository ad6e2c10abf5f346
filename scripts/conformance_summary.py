"""Prints the conformance suite's totals from the shards' result files (one line)."""

import json
import pathlib
import sys

results = pathlib.Path(__file__).resolve().parent.parent / "target" / "conformance" / "results"
shards = [json.loads(p.read_text()) for p in sorted(results.glob("shard-*.json"))]
if not shards:
    sys.exit("no conformance results: the conformance suite did not run")
total = {k: sum(s[k] for s in shards) for k in ("files", "compared", "passed", "known", "skipped")}
print(
    f"conformance: {total['files']} DataFusion test files, {total['compared']} statements and "
    f"queries compared with single-node DataFusion, {total['passed']} equal, "
    f"{total['known']} known differences (tests/conformance/known_failures.txt), "
    f"{total['skipped']} not comparable, over {len(shards)} shards"
)
