#!/usr/bin/env bash
# Kiln's whole test command: tidy checks, the layering check, every test suite, doctests.
# Installs what it needs; run from anywhere. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

if ! command -v cargo-nextest >/dev/null 2>&1; then
  step "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# The Python reference environment (scikit-learn, numpy) the ML suites compare Kiln against,
# and moto, the S3-protocol server of the object-store suites; (re)installed whenever tests/python/requirements.txt changes.
want="$(sha256sum tests/python/requirements.txt | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.requirements.sha 2>/dev/null)" != "$want" ]; then
  step "python reference environment (.venv)"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
  echo "$want" > .venv/.requirements.sha
fi
export KILN_PYTHON="$PWD/.venv/bin/python"

step "format";   cargo fmt --all --check
step "layering"; python3 scripts/check_layering.py
step "clippy";   cargo clippy --workspace --all-targets --all-features -- -D warnings
step "docs";     RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features
# The cluster suites start `kiln executor` processes: build the binary first.
step "kiln binary"; cargo build -p kiln --bin kiln --all-features
step "tests";    cargo nextest run --workspace --all-targets --all-features --no-fail-fast
step "doctests"; cargo test --doc --workspace --all-features
