#!/usr/bin/env bash
# The README's first command: build sifmount, make a small demo OCI-SIF with the
# project's own writer, mount it, look around the mount as a user would, sign the image
# with an openssl P-256 key and attach the signature with cp, check it with --key, and
# unmount.
# Runs from any directory. Installs fuse3 (fusermount3) when it is missing and this runs
# as root; otherwise says what is needed.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/target-dir.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v fusermount3 >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing fuse3 (fusermount3)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq fuse3 >/dev/null
    elif [ "$(id -u)" -ne 0 ]; then
        echo "demo.sh: fusermount3 is missing: install the fuse3 package (apt-get install fuse3)" >&2
        exit 1
    fi
fi
if [ ! -e /dev/fuse ]; then
    echo "demo.sh: /dev/fuse is missing: load the fuse module (modprobe fuse)" >&2
    exit 1
fi

cargo build --release --bin sifmount --example make-oci-sif
target=$(cargo_target_dir)
sifmount=$target/release/sifmount

mkdir -p "$target/demo"
image=$target/demo/demo.oci.sif
"$target/release/examples/make-oci-sif" "$image"

mnt=$(mktemp -d "${TMPDIR:-/tmp}/sifmount-demo.XXXXXX")
cleanup() {
    if grep -q " $mnt " /proc/self/mountinfo 2>/dev/null; then
        "$sifmount" -u "$mnt" || true
    fi
    rmdir "$mnt" 2>/dev/null || true
}
trap cleanup EXIT

run() {
    echo
    echo "\$ $*"
    "$@"
}

run "$sifmount" --verify "$image"
run "$sifmount" "$image" "$mnt"
run ls -l "$mnt"
run cat "$mnt/index.json"
echo
run ls -l "$mnt"/images/*/ "$mnt"/images/*/layers/
run ls "$mnt/sif/objects"
echo
echo "\$ (cd $mnt/blobs/sha256 && for f in *; do echo \"\$f  \$f\"; done | sha256sum -c)"
(cd "$mnt/blobs/sha256" && for f in *; do echo "$f  $f"; done | sha256sum -c)
if command -v skopeo >/dev/null 2>&1; then
    run skopeo inspect "oci:$mnt"
else
    echo
    echo "(skopeo is not installed: apt-get install skopeo, then: skopeo inspect oci:MOUNTPOINT)"
fi

# Sign the image's manifest as `singularity sign --cosign` would, with a key made here,
# and attach the signature by copying two files into the mount.
if ! command -v openssl >/dev/null 2>&1; then
    echo "demo.sh: openssl is missing: install it (apt-get install openssl)" >&2
    exit 1
fi
keys=$target/demo/keys
mkdir -p "$keys"
[ -f "$keys/key.pem" ] || openssl ecparam -genkey -name prime256v1 -noout -out "$keys/key.pem"
openssl ec -in "$keys/key.pem" -pubout -out "$keys/pub.pem" 2>/dev/null
digest=$(sed -n 's/.*"digest":"\(sha256:[0-9a-f]*\)".*/\1/p' "$mnt"/images/*/index.json)
work=$(mktemp -d "${TMPDIR:-/tmp}/sifmount-demo-sig.XXXXXX")
printf '{"critical":{"identity":{"docker-reference":""},"image":{"docker-manifest-digest":"%s"},"type":"cosign container image signature"},"optional":{"creator":"sifmount demo","timestamp":%s}}' \
    "$digest" "$(date +%s)" > "$work/payload.json"
openssl dgst -sha256 -sign "$keys/key.pem" "$work/payload.json" | base64 > "$work/payload.json.sig"
run cp "$work/payload.json" "$work/payload.json.sig" "$mnt/cosign/"
run ls -l "$mnt/cosign/" "$mnt"/cosign/sig-*/
run "$sifmount" -u "$mnt"
run "$sifmount" --verify "$image"
run "$sifmount" -o ro --key "$keys/pub.pem" "$image" "$mnt"
run cat "$mnt"/cosign/sig-*/verified
echo
grep -q '^ok' "$mnt"/cosign/sig-*/verified
run "$sifmount" -u "$mnt"
rm -r "$work"
trap - EXIT
rmdir "$mnt"
echo
echo "demo done: $image was mounted, read, signed through the mount, verified and unmounted"
