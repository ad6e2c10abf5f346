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

step "format";   cargo fmt --all --check
step "layering"; python3 scripts/check_layering.py
step "clippy";   cargo clippy --workspace --all-targets --all-features -- -D warnings
step "docs";     RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features
step "tests";    cargo nextest run --workspace --all-targets --all-features --no-fail-fast
step "doctests"; cargo test --doc --workspace --all-features
