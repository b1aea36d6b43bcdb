#!/usr/bin/env bash
# Resident memory of a read-write mount that takes N attaches (default 300) while a `find`
# loop walks it: the daemon's VmRSS and VmHWM (from /proc/PID/status) before the attaches,
# after them, and once the loop has stopped, then those of a fresh mount of the result,
# for comparison. A daemon that keeps nothing it no longer needs ends within a few MB of
# the fresh mount.
#
#   scripts/measure-find-growth.sh [N]     WALK=cat reads every file in the loop instead
#                                          of listing, WALK=none runs no loop (to compare)
#
# The image is the make-oci-sif demo; each attach copies a simple-signing payload naming
# the image's manifest digest, then its openssl P-256 signature (base64), into /cosign,
# as `cosign` would leave them. Needs /dev/fuse, openssl and, unless run as root,
# fusermount3; leaves nothing behind.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/target-dir.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

n=${1:-300}
case "$n" in
'' | *[!0-9]*)
    echo "usage: $0 [N]" >&2
    exit 2
    ;;
esac
walk=${WALK:-find}
case "$walk" in
find | cat | none) ;;
*)
    echo "$0: WALK must be find, cat or none" >&2
    exit 2
    ;;
esac

cargo build --release --quiet --bin sifmount --example make-oci-sif
target=$(cargo_target_dir)
sifmount=$target/release/sifmount

work=$(mktemp -d "${TMPDIR:-/tmp}/sifmount-find-growth.XXXXXX")
mnt=$work/mnt
daemon=
walker=
cleanup() {
    stop_walk
    if grep -qs " $mnt " /proc/self/mountinfo; then
        "$sifmount" -u "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
    fi
    if [ -n "$daemon" ]; then
        wait "$daemon" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
mkdir "$mnt"

image=$work/image.oci.sif
"$target/release/examples/make-oci-sif" "$image" >/dev/null
openssl ecparam -genkey -name prime256v1 -noout -out "$work/key.pem"

# mount: serves $image at $mnt in the foreground, in the background, so that $daemon is
# the serving process; returns once the mount is ready.
mount_image() {
    "$sifmount" -f "$image" "$mnt" 2>>"$work/log" &
    daemon=$!
    until grep -qs " $mnt " /proc/self/mountinfo; do
        kill -0 "$daemon" 2>/dev/null || {
            cat "$work/log" >&2
            exit 1
        }
        sleep 0.05
    done
}

unmount_image() {
    "$sifmount" -u "$mnt"
    wait "$daemon"
    daemon=
}

# start_walk: runs the $walk loop in the background until stop_walk, which waits for the
# pass in progress to end, so that nothing has the mount open once it returns.
start_walk() {
    local -a cmd
    case "$walk" in
    find) cmd=(find "$mnt") ;;
    cat) cmd=(sh -c 'cat "$1"/index.json "$1"/blobs/sha256/*' sh "$mnt") ;;
    none) return ;;
    esac
    rm -f "$work/stop"
    (while [ ! -e "$work/stop" ]; do "${cmd[@]}" >/dev/null 2>&1 || true; done) &
    walker=$!
}

stop_walk() {
    if [ -n "$walker" ]; then
        touch "$work/stop"
        wait "$walker" || true
        walker=
    fi
}

# memory LABEL: the daemon's resident memory now and at its peak.
memory() {
    local rss hwm
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$daemon/status")
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$daemon/status")
    awk -v label="$1" -v rss="$rss" -v hwm="$hwm" \
        'BEGIN { printf "%-40s VmRSS %7.1f MB   VmHWM %7.1f MB\n", label, rss / 1024, hwm / 1024 }'
}

mount_image
digest=$(sed -n 's/.*"digest":"\(sha256:[0-9a-f]*\)".*/\1/p' "$mnt"/images/*/index.json)
for i in $(seq 1 "$n"); do
    printf '{"critical":{"identity":{"docker-reference":""},"image":{"docker-manifest-digest":"%s"},"type":"cosign container image signature"},"optional":{"creator":"measure-find-growth","timestamp":%d}}' \
        "$digest" "$i" >"$work/p$i"
    openssl dgst -sha256 -sign "$work/key.pem" "$work/p$i" | base64 -w0 >"$work/p$i.sig"
done

echo "image: make-oci-sif demo, $n attaches, walk: $walk"
memory "mounted, before the attaches:"
start_walk
for i in $(seq 1 "$n"); do
    cp "$work/p$i" "$mnt/cosign/p$i"
    cp "$work/p$i.sig" "$mnt/cosign/p$i.sig"
done
memory "after $n attaches, walk still running:"
stop_walk
sleep 1
memory "walk stopped:"
entries=$(find "$mnt/cosign" -mindepth 1 -maxdepth 1 -name 'sig-*' | wc -l)
unmount_image

mount_image
memory "fresh mount of the result:"
find "$mnt" >/dev/null
memory "fresh mount, after one find:"
unmount_image
echo "signatures in the image: $entries of $n"
