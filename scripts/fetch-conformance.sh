#!/usr/bin/env bash
# Fetches DataFusion's sqllogictest files — the conformance suite's queries — from the
# `datafusion-sqllogictest` package on crates.io (the DataFusion version Kiln builds on),
# checks the package's SHA-256 and unpacks it under target/conformance/. Does nothing when
# the files are already there.
set -euo pipefail
cd "$(dirname "$0")/.."

version="55.2.0"
sha256="b270cea4d8c2b2c42773e60164204386fb97d7936736e5f126ac751b86d7dabe"
dest="target/conformance"
files="$dest/datafusion-sqllogictest-$version/test_files"

if [ -d "$files" ]; then
  exit 0
fi
mkdir -p "$dest"
crate="$dest/datafusion-sqllogictest-$version.crate"
curl --fail --silent --show-error --location --retry 3 \
  -o "$crate" "https://static.crates.io/crates/datafusion-sqllogictest/datafusion-sqllogictest-$version.crate"
echo "$sha256  $crate" | sha256sum --check --quiet
tar xzf "$crate" -C "$dest"
rm "$crate"
echo "conformance files in $files"
