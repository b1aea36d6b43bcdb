#!/usr/bin/env bash
# Attach latency through a real mount: N signatures (default 100), each a payload and its
# openssl P-256 signature copied into /cosign, timed from the first open to the return of
# the second close(2) (when the commit is on disk). Prints the median, p90, p99 and the
# growth of the image file per attach.
#
#   scripts/bench-attach.sh [N]       SPARE=k sets the image's free descriptors (default 8,
#                                     as SingularityCE leaves: the table grows as needed)
#
# Needs /dev/fuse, fusermount3, openssl and python3. Signing happens before the clock
# starts, so only sifmount's work (staging, the update algorithm, fsync, the tree
# rebuild) and the FUSE round trips are measured.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/target-dir.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-100}

cargo build --release --quiet --bin sifmount --example make-oci-sif
target=$(cargo_target_dir)
sifmount=$target/release/sifmount

work=$(mktemp -d "${TMPDIR:-/tmp}/sifmount-bench-attach.XXXXXX")
mnt="$work/mnt"
mkdir "$mnt"
cleanup() {
    grep -q " $mnt " /proc/self/mountinfo 2>/dev/null && "$sifmount" -u "$mnt" || true
    rm -rf "$work"
}
trap cleanup EXIT

image="$work/image.oci.sif"
"$target/release/examples/make-oci-sif" --spare "${SPARE:-8}" "$image" >/dev/null
openssl ecparam -genkey -name prime256v1 -noout -out "$work/key.pem"

"$sifmount" "$image" "$mnt"
digest=$(sed -n 's/.*"digest":"\(sha256:[0-9a-f]*\)".*/\1/p' "$mnt"/images/*/index.json)
for i in $(seq 1 "$n"); do
    printf '{"critical":{"identity":{"docker-reference":""},"image":{"docker-manifest-digest":"%s"},"type":"cosign container image signature"},"optional":{"creator":"bench","timestamp":%d}}' \
        "$digest" "$i" > "$work/p$i"
    openssl dgst -sha256 -sign "$work/key.pem" "$work/p$i" | base64 > "$work/p$i.sig"
done

python3 - "$work" "$mnt" "$image" "$n" <<'EOF'
import os, statistics, sys, time
work, mnt, image, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def put(src, dst):
    data = open(src, "rb").read()
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    os.close(fd)  # the commit happens here, for the second file

sizes = [os.path.getsize(image)]
times = []
for i in range(1, n + 1):
    t0 = time.perf_counter_ns()
    put(f"{work}/p{i}", f"{mnt}/cosign/p{i}")
    put(f"{work}/p{i}.sig", f"{mnt}/cosign/p{i}.sig")
    times.append((time.perf_counter_ns() - t0) / 1e6)
    sizes.append(os.path.getsize(image))
entries = [e for e in os.listdir(f"{mnt}/cosign") if e.startswith("sig-")]
grew = [i + 1 for i, g in enumerate(zip(sizes, sizes[1:])) if g[1] - g[0] > 4096]
assert len(entries) == n, f"{len(entries)} entries after {n} attaches"
times.sort()
q = lambda p: times[min(len(times) - 1, int(p * len(times)))]
growth = [b - a for a, b in zip(sizes, sizes[1:])]
print(f"attaches: {n}")
print(f"latency ms: median {statistics.median(times):.2f}  p90 {q(0.90):.2f}  p99 {q(0.99):.2f}  max {times[-1]:.2f}")
usual = [g for g in growth if g <= 4096]
print(f"image: {sizes[0]} -> {sizes[-1]} bytes; growth per attach: first {growth[0]}, "
      f"median {statistics.median(usual):.0f}, last {growth[-1]} bytes")
print(f"attaches that grew the descriptor table (file +4 KiB or more): {grew}")
EOF
"$sifmount" -u "$mnt"
"$sifmount" --verify "$image" | tail -1
