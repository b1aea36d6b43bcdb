#!/usr/bin/env bash
# Measures how long `sifmount IMAGE MP` takes to return (the mount is ready then) and how
# fast a large blob reads through the mount, first read and re-read, with the release
# build. The image is made here: one random layer of SIZE_MIB MiB (default 256), converted
# by the make-oci-sif example from an OCI layout.
#
#   scripts/measure-mount.sh [SIZE_MIB] [--cold]
#
# --cold drops the kernel's page cache (root only) before the first read, so that it
# reads from the disk rather than from the image file cached when it was written.
# Needs /dev/fuse and fusermount3; leaves nothing behind.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/target-dir.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

size_mib=256
cold=0
for arg in "$@"; do
    case "$arg" in
    --cold) cold=1 ;;
    '' | *[!0-9]*)
        echo "usage: $0 [SIZE_MIB] [--cold]" >&2
        exit 2
        ;;
    *) size_mib=$arg ;;
    esac
done
if [ "$cold" = 1 ] && [ "$(id -u)" != 0 ]; then
    echo "$0: --cold drops the page cache and needs root" >&2
    exit 2
fi

cargo build --release --quiet --bin sifmount --example make-oci-sif
target=$(cargo_target_dir)
sifmount=$target/release/sifmount
make_oci_sif=$target/release/examples/make-oci-sif

work=$(mktemp -d "${TMPDIR:-/tmp}/sifmount-measure.XXXXXX")
mnt=$work/mnt
cleanup() {
    if grep -qs " $mnt " /proc/self/mountinfo; then
        fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$mnt" "$work/layout/blobs/sha256"

now_ns() { date +%s%N; }
# ms NS_START NS_END
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }
# mbps BYTES NS_START NS_END
mbps() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / 1e6 / ((b - a) / 1e9) }'; }

# --- An OCI layout with one random layer, converted to an OCI-SIF -------------------------
blobs=$work/layout/blobs/sha256
add_blob() { # FILE -> prints its hex digest, moves it into the layout
    local hex
    hex=$(sha256sum "$1" | cut -d' ' -f1)
    mv "$1" "$blobs/$hex"
    echo "$hex"
}
head -c "$((size_mib << 20))" /dev/urandom >"$work/layer"
layer_size=$(stat -c %s "$work/layer")
layer=$(add_blob "$work/layer")
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$layer" >"$work/config"
config_size=$(stat -c %s "$work/config")
config=$(add_blob "$work/config")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%d}]}' \
    "$config" "$config_size" "$layer" "$layer_size" >"$work/manifest"
manifest_size=$(stat -c %s "$work/manifest")
manifest=$(add_blob "$work/manifest")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d}]}' \
    "$manifest" "$manifest_size" >"$work/layout/index.json"
printf '{"imageLayoutVersion": "1.0.0"}' >"$work/layout/oci-layout"
image=$work/image.oci.sif
"$make_oci_sif" --from-layout "$work/layout" "$image" >/dev/null
rm -rf "$work/layout"
echo "image: $(stat -c %s "$image") bytes, one layer of $size_mib MiB (sha256:$layer)"

# --- Mount time: five mounts, each until `sifmount IMAGE MP` returns ----------------------
times=()
for _ in 1 2 3 4 5; do
    t0=$(now_ns)
    "$sifmount" "$image" "$mnt"
    t1=$(now_ns)
    times+=("$(ms "$t0" "$t1")")
    "$sifmount" -u "$mnt"
done
echo "mount time (sifmount IMAGE MP until it returns), 5 runs: ${times[*]} ms"

# --- Reads ----------------------------------------------------------------------------------
"$sifmount" "$image" "$mnt"
file=$mnt/blobs/sha256/$layer
read_once() { # LABEL FILE
    local t0 t1
    t0=$(now_ns)
    dd if="$2" of=/dev/null bs=1M status=none
    t1=$(now_ns)
    echo "$1: $(mbps "$layer_size" "$t0" "$t1") MB/s ($(ms "$t0" "$t1") ms for $size_mib MiB)"
}
if [ "$cold" = 1 ]; then
    sync
    echo 3 >/proc/sys/vm/drop_caches
fi
read_once "first read through the mount" "$file"
read_once "re-read through the mount (page cache kept across opens)" "$file"
read_once "read through layers/0 (a link to the same file)" "$mnt/images/sha256-${manifest:0:12}/layers/0"
read_once "direct read of the image file, for comparison" "$image"
got=$(sha256sum "$file" | cut -d' ' -f1)
if [ "$got" = "$layer" ]; then
    echo "content: sha256 of the blob read through the mount matches its name"
else
    echo "content: MISMATCH: read sha256:$got, expected sha256:$layer" >&2
    exit 1
fi
"$sifmount" -u "$mnt"
