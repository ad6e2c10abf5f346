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
# and SeaweedFS, the S3 server (it checks signatures) of the object-store suites; (re)installed whenever tests/python/requirements.txt changes.
want="$(sha256sum tests/python/requirements.txt | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.requirements.sha 2>/dev/null)" != "$want" ]; then
  step "python reference environment (.venv)"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
  echo "$want" > .venv/.requirements.sha
fi
export KILN_PYTHON="$PWD/.venv/bin/python"

# podman (Debian's), which plays the Kubernetes manifests in the suite (tests/it/podman.rs),
# where a Docker daemon builds the images it loads; catatonit is its pods' pause process.
if command -v docker >/dev/null 2>&1 && ! command -v podman >/dev/null 2>&1 \
    && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  step "podman (apt)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman catatonit >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman catatonit >/dev/null; } \
    || echo "podman could not be installed; the podman suite will say it is skipped"
fi
# Headless Chromium and its WebDriver (Debian's), in which the web UI's suite opens every page
# (tests/it/ui.rs with tests/python/browse_ui.py).
if ! command -v chromedriver >/dev/null 2>&1 \
    && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  step "chromium and chromium-driver (apt)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; } \
    || echo "chromium could not be installed; the browser test will say it is skipped"
fi
# The interpreter the Python extension (python/) is built for, the same for every build so
# that pyo3's build configuration never changes between steps.
export PYO3_PYTHON="$PWD/.venv/bin/python"

step "format";   cargo fmt --all --check
step "layering"; python3 scripts/check_layering.py
# Modules of the engine import each other one way only; the fixture's circle must be found.
step "module circles"
python3 scripts/check_module_cycles.py engine/src
if python3 scripts/check_module_cycles.py tests/fixtures/module_circle >/dev/null 2>&1; then
  echo "module circles: the check missed the circle in tests/fixtures/module_circle" >&2
  exit 1
fi
# The Kubernetes manifests render and pass a strict schema check; a broken one must not.
step "kubernetes manifests"
mkdir -p target
for overlay in local driver-creates-executors; do
  .venv/bin/kubectl kustomize "deploy/kubernetes/overlays/$overlay" > "target/kubernetes-$overlay.yaml"
  .venv/bin/kubernetes-validate --strict --quiet "target/kubernetes-$overlay.yaml"
done
if .venv/bin/kubernetes-validate --strict --quiet tests/fixtures/kubernetes/invalid.yaml >/dev/null 2>&1; then
  echo "kubernetes manifests: the check passed tests/fixtures/kubernetes/invalid.yaml" >&2
  exit 1
fi
step "clippy";   cargo clippy --workspace --all-targets --all-features -- -D warnings
step "docs";     RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features
# One build of everything, which the test steps then reuse: the cluster suites start `kiln
# executor` processes, and the Python suite imports the extension module (lib_kiln.so).
step "build";    cargo build --workspace --all-targets --all-features
# DataFusion's sqllogictest files, which the conformance suite runs through the distributed
# path with single-node DataFusion as the oracle.
step "conformance files"; ./scripts/fetch-conformance.sh
rm -rf target/conformance/results
step "tests";    cargo nextest run --workspace --all-targets --all-features --no-fail-fast
step "conformance summary"; python3 scripts/conformance_summary.py
step "doctests"; cargo test --doc --workspace --all-features
# The Python package from this checkout: the extension the build step made, next to the
# package's Python sources, on the venv's path (`pip install ./python` builds the same crate
# with maturin, optimized, for users).
step "python package"
cp target/debug/lib_kiln.so python/kiln/_kiln.abi3.so
site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$PWD/python" > "$site/kiln-dev.pth"
step "python tests"
KILN_EXECUTOR_BIN="$PWD/target/debug/kiln" .venv/bin/python -m pytest -q -p no:cacheprovider \
  --doctest-modules python/kiln python/tests
