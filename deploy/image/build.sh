#!/usr/bin/env bash
# Builds Kiln's OCI image with no registry: FROM scratch, the `kiln` binary, the shared
# libraries `ldd` lists for it, CA certificates (for https object stores), a non-root user and
# a health check. The same image runs `kiln executor`, `kiln sql --cluster` (a driver) and
# `kiln shell`.
#
#   deploy/image/build.sh [BINARY] [TAG]
#
# BINARY defaults to target/dist/kiln when it exists (`cargo build --profile dist -p kiln --bin
# kiln`: optimized for size, fat LTO; the image to ship), else target/release/kiln; the test
# bed passes the debug binary the test command already built. Debug info is stripped from the
# copy.
# TAG defaults to kiln:latest. Prints the image's size.
set -euo pipefail
cd "$(dirname "$0")/../.."

default=target/release/kiln
[ -x target/dist/kiln ] && default=target/dist/kiln
bin="${1:-$default}"
tag="${2:-kiln:latest}"
[ -x "$bin" ] || { echo "build.sh: no kiln binary at $bin (cargo build --profile dist -p kiln --bin kiln, or --release)" >&2; exit 2; }

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
root="$ctx/root"
mkdir -p "$root/bin" "$root/etc/ssl/certs" "$root/tmp" "$ctx/data"
chmod 1777 "$root/tmp"

# The binary, without its debug info (a debug build is mostly that).
strip --strip-all -o "$root/bin/kiln" "$bin"

# Its shared libraries and loader, at the paths the binary asks for them.
ldd "$bin" | awk '/=> \// { print $3 } /^[[:space:]]*\// { print $1 }' | sort -u | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done

if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
fi

# A user to run as: no process of the image runs as root.
printf 'root:x:0:0:root:/:/nonexistent\nkiln:x:65532:65532:kiln:/data:/nonexistent\n' > "$root/etc/passwd"
printf 'root:x:0:\nkiln:x:65532:\n' > "$root/etc/group"

cat > "$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY root/ /
# The working directory (model catalog, scratch files) belongs to the user.
COPY --chown=65532:65532 data /data
USER 65532:65532
WORKDIR /data
ENV TMPDIR=/tmp
# Healthy while the driver's executor endpoint answers ($KILN_DRIVER: for an executor its
# driver, for a driver its own endpoint).
HEALTHCHECK --interval=5s --timeout=4s --start-period=5s --retries=3 CMD ["/bin/kiln", "health"]
ENTRYPOINT ["/bin/kiln"]
CMD ["--help"]
DOCKERFILE

docker build --quiet --tag "$tag" "$ctx" >/dev/null
bytes="$(docker image inspect --format '{{.Size}}' "$tag")"
echo "$tag: $((bytes / 1000000)) MB"
