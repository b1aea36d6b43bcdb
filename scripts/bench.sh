#!/usr/bin/env bash
# The read, mount and attach benchmark: sifmount side by side with direct reads of the SIF file (dd)
# and with squashfuse_ll on a squashfs holding the same bytes, in one run. Prints a table of
# medians, ratios and the targets, and writes it to WORK/results.md. docs/BENCHMARKS.md
# says what each row means.
#
#   scripts/bench.sh            # as root; about 2 to 3 minutes on 2 cores
#
# Environment: BENCH_DIR (work directory, default target/bench, on disk; its data/ is
# reused by later runs while it matches), REPS (repetitions of each measurement, default 9),
# READ_REPS (repetitions of the read measurements, noisier on a virtual disk, default 15),
# SIZE (the big layer, default 1G), BLOBS (default 10000), SIGNATURES (default 1000),
# ATTACHES (default 200), RANDOM_READS (4 KiB reads per pass, default 2000), SIFMOUNT (a
# sifmount binary to measure instead of building this checkout's, to compare versions),
# SIFMOUNT_TESTDATA (the shared test data, default ../shared/testdata: the keyless rows
# repeat its real keyless signature).
#
# Needs root (it drops the page cache with /proc/sys/vm/drop_caches before every cold
# measurement) and /dev/fuse; installs squashfuse (squashfuse_ll), squashfs-tools, fuse3
# and python3 from Debian when they are missing. Builds sifmount and the bench-data
# example in release mode; the data is made with the project's own writer.
set -euo pipefail
export LC_ALL=C

. "$(dirname "${BASH_SOURCE[0]}")/target-dir.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=${EPOCHREALTIME/[.,]/}

die() {
    echo "bench.sh: $*" >&2
    exit 1
}

REPS=${REPS:-9}
READ_REPS=${READ_REPS:-15}
SIZE=${SIZE:-1G}
BLOBS=${BLOBS:-10000}
SIGNATURES=${SIGNATURES:-1000}
ATTACHES=${ATTACHES:-200}
RANDOM_READS=${RANDOM_READS:-2000}
for v in REPS READ_REPS BLOBS SIGNATURES ATTACHES RANDOM_READS; do
    case ${!v} in '' | *[!0-9]*) die "$v must be a number, not '${!v}'" ;; esac
done

# --- Preconditions ------------------------------------------------------------------------
testdata=${SIFMOUNT_TESTDATA:-../shared/testdata}
keyless_fixture=$testdata/cosign/containers-image/dir-img-cosign-fulcio-rekor-valid
[ -f "$keyless_fixture/signature-1" ] || die "$keyless_fixture/signature-1 is missing: \
the keyless rows need the shared test data (set SIFMOUNT_TESTDATA)"
keyless_identity=(--certificate-identity mitr@redhat.com
    --certificate-oidc-issuer https://github.com/login/oauth)
# --sign's key: SingularityCE's test key (encrypted, empty password, scrypt N=65536).
sign_key=$testdata/cosign/keys/singularity-cosign.key
[ -f "$sign_key" ] || die "$sign_key is missing: the --sign row needs the shared test data"
[ -c /dev/fuse ] || die "/dev/fuse is missing: FUSE is not available on this machine \
(load the fuse module, or give the container --device /dev/fuse)"
[ "$(id -u)" = 0 ] || die "run as root: the cold measurements drop the page cache \
(/proc/sys/vm/drop_caches), and missing tools are installed with apt-get"

missing=()
command -v squashfuse_ll >/dev/null 2>&1 || missing+=(squashfuse)
command -v mksquashfs >/dev/null 2>&1 || missing+=(squashfs-tools)
command -v unsquashfs >/dev/null 2>&1 || missing+=(squashfs-tools)
command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ "${#missing[@]}" -gt 0 ]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    echo "==> apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

target_dir=$(cargo_target_dir)
if [ -n "${SIFMOUNT:-}" ]; then
    echo "==> cargo build --release --example bench-data (sifmount: $SIFMOUNT)"
    cargo build --release --quiet --example bench-data
    sifmount=$(realpath "$SIFMOUNT")
    [ -x "$sifmount" ] || die "SIFMOUNT=$SIFMOUNT is not an executable"
else
    echo "==> cargo build --release --bin sifmount --example bench-data"
    cargo build --release --quiet --bin sifmount --example bench-data
    sifmount=$target_dir/release/sifmount
fi
bench_data=$target_dir/release/examples/bench-data

work=${BENCH_DIR:-$target_dir/bench}
mkdir -p "$work"
work=$(cd "$work" && pwd -P)
case $work in *[[:space:]]*) die "BENCH_DIR must not contain white space: $work" ;; esac
data=$work/data
run=$work/run # scratch of this run: mount points, copies of images for attaching
rm -rf "$run"
mkdir -p "$data" "$run"
samples=$run/samples.tsv
: >"$samples"

# --- Mounts, and the cleanup that undoes them --------------------------------------------
mounted() { grep -qs " $1 " /proc/self/mountinfo; }
unmount() {
    mounted "$1" || return 0
    "$sifmount" -u "$1" 2>/dev/null || fusermount3 -u "$1" 2>/dev/null || umount -l "$1"
    local _
    for _ in $(seq 100); do
        mounted "$1" || return 0
        sleep 0.01
    done
    die "$1 is still mounted"
}
mountpoints=()
cleanup() {
    local mp
    for mp in "${mountpoints[@]}"; do
        if mounted "$mp"; then
            "$sifmount" -u "$mp" 2>/dev/null || fusermount3 -u "$mp" 2>/dev/null ||
                umount -l "$mp" 2>/dev/null || true
        fi
    done
    rm -f "$run"/attach-*.oci.sif "$run"/attach-*.oci.sif.sifmount-journal
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mp_sif=$run/mnt-sifmount
mp_sq=$run/mnt-squashfuse
mountpoints=("$mp_sif" "$mp_sq")
mkdir -p "$mp_sif" "$mp_sq"

# Mounts that report memory run in the foreground, in the background, so that the
# process measured is the one that built the tree and serves it: sets $server.
serve() { # sif|sq IMAGE MP [OPTION...]
    local kind=$1 image=$2 mp=$3 _
    shift 3
    case $kind in
    sif) "$sifmount" -f "$@" "$image" "$mp" 2>>"$run/servers.log" & ;;
    sq) squashfuse_ll -f "$image" "$mp" 2>>"$run/servers.log" & ;;
    esac
    server=$!
    for _ in $(seq 2000); do
        mounted "$mp" && return 0
        kill -0 "$server" 2>/dev/null || die "the $kind server of $mp exited before mounting"
        sleep 0.005
    done
    die "$mp is not mounted 10 s after starting its server"
}
# Unmounts what serve mounted, first recording the server's peak resident memory in KiB
# (VmHWM) under KEY.
unserve() { # MP KEY
    sample "$2" "$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$server/status")"
    unmount "$1"
    wait "$server" || die "the server of $1 exited with status $?"
}

drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
}
sample() { printf '%s\t%s\n' "$1" "$2" >>"$samples"; }
# Elapsed wall time of a command in microseconds, in $us (no fork for the clock).
timed() {
    local t0 t1
    t0=${EPOCHREALTIME/[.,]/}
    "$@"
    t1=${EPOCHREALTIME/[.,]/}
    us=$((t1 - t0))
}
# Daemon mounts, timed: sifmount returns once the mount is ready, squashfuse_ll once its
# mount exists. The time of the command alone is left in $us.
mount_sif() { # IMAGE MP [OPTION...]
    local image=$1 mp=$2
    shift 2
    timed "$sifmount" "$@" "$image" "$mp"
    mounted "$mp" || die "sifmount returned but $mp is not mounted"
}
mount_sq() { # IMAGE MP
    timed squashfuse_ll "$1" "$2"
    mounted "$2" || die "squashfuse_ll returned but $2 is not mounted"
}
# dd of a byte range, large reads; records MB/s under KEY (dd's own clock).
dd_read() { # KEY FILE [SKIP COUNT]
    local key=$1 file=$2 out secs bytes
    if [ $# -ge 4 ]; then
        out=$(dd if="$file" of=/dev/null bs=1M iflag=skip_bytes,count_bytes skip="$3" count="$4" 2>&1)
    else
        out=$(dd if="$file" of=/dev/null bs=1M 2>&1)
    fi
    bytes=$(sed -n 's/^\([0-9]*\) bytes .* copied.*/\1/p' <<<"$out")
    secs=$(sed -n 's/.* copied, \([0-9.e-]*\) s.*/\1/p' <<<"$out")
    [ "$bytes" = "$layer_size" ] || die "dd of $file read ${bytes:-nothing}, not $layer_size bytes: $out"
    sample "$key" "$(awk -v b="$bytes" -v s="$secs" 'BEGIN { printf "%.1f", b / s / 1e6 }')"
}

# --- Helpers in Python: random reads, attaches, the report ------------------------------
cat >"$run/randread.py" <<'EOF'
# randread.py FILE BASE SIZE N SEED: N preads of 4 KiB at random 4 KiB-aligned offsets of
# the byte range [BASE, BASE+SIZE) of FILE: one pass as the caller left the cache (cold),
# then five more over the same offsets, now cached (warm; the median pass counts, as a
# warm pass takes only milliseconds). Prints the mean microseconds per read of each.
import os, random, statistics, sys, time
path, base, size, n, seed = sys.argv[1], *map(int, sys.argv[2:6])
rng = random.Random(seed)
offsets = [base + rng.randrange(size // 4096) * 4096 for _ in range(n)]
fd = os.open(path, os.O_RDONLY)
def one_pass():
    t0 = time.perf_counter_ns()
    for off in offsets:
        if len(os.pread(fd, 4096, off)) != 4096:
            sys.exit(f"{path}: short read at {off}")
    return (time.perf_counter_ns() - t0) / 1e3 / n
cold = one_pass()
warm = statistics.median(one_pass() for _ in range(5))
print(f"{cold:.3f} {warm:.3f}")
EOF

cat >"$run/drop.py" <<'EOF'
# drop.py: put(SRC, DST) copies a file into a mount with one write(2) and close(2), as
# `cp` would; close is where sifmount commits a drop. Imported by attach.py and follow.py.
import os
def put(src, dst):
    with open(src, "rb") as f:
        data = f.read()
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    os.close(fd)
EOF

cat >"$run/attach.py" <<'EOF'
# attach.py DROPS MOUNT IMAGE N: copies DROPS/pK and DROPS/pK.sig into MOUNT/cosign for
# K = 1..N, each timed from the first open to the return of the second close(2), when the
# signature is committed and on disk. Prints key=value lines: latencies in ms, growth of
# IMAGE per attach in bytes.
import os, statistics, sys, time
drops, mnt, image, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
from drop import put
sizes = [os.path.getsize(image)]
disk_before = os.stat(image).st_blocks * 512
times = []
for k in range(1, n + 1):
    t0 = time.perf_counter_ns()
    put(f"{drops}/p{k}", f"{mnt}/cosign/p{k}")
    put(f"{drops}/p{k}.sig", f"{mnt}/cosign/p{k}.sig")
    times.append((time.perf_counter_ns() - t0) / 1e6)
    sizes.append(os.path.getsize(image))
entries = [e for e in os.listdir(f"{mnt}/cosign") if e.startswith("sig-")]
if len(entries) != n:
    sys.exit(f"{len(entries)} signature entries after {n} attaches")
growth = [b - a for a, b in zip(sizes, sizes[1:])]
ordered = sorted(times)
nearest_rank = lambda p: ordered[max(0, -(-len(ordered) * p // 100) - 1)]
print(f"median_ms={statistics.median(times):.3f}")
print(f"p90_ms={nearest_rank(90):.3f}")
print(f"p99_ms={nearest_rank(99):.3f}")
print(f"max_ms={ordered[-1]:.3f}")
print(f"growth_median={statistics.median(growth):.0f}")
print(f"growth_mean={(sizes[-1] - sizes[0]) / n:.0f}")
print(f"size_before={sizes[0]}")
print(f"size_after={sizes[-1]}")
print(f"disk_before={disk_before}")
print(f"disk_after={os.stat(image).st_blocks * 512}")
big = [(k + 1, g) for k, g in enumerate(growth) if g > 65536]
print("large_growths=" + ",".join(f"{k}:{g}" for k, g in big))
slow = sorted(range(n), key=lambda k: -times[k])[:3]
print("slowest=" + ",".join(f"{k + 1}:{times[k]:.1f}ms" for k in slow))
EOF

# --- Data ----------------------------------------------------------------------------------
# Each data set is remade when its stamp (the parameters, and a hash of the generator and
# of the writer's code) differs from the one recorded beside it.
code_hash=$(cat examples/bench-data.rs src/oci/*.rs src/sif/*.rs | sha256sum | cut -c1-16)
info() { sed -n "s/^$2=//p" "$data/$1.info"; } # SET KEY
fresh() { [ -f "$data/$1.stamp" ] && [ "$(cat "$data/$1.stamp")" = "$2" ]; }
squash() { # DIR IMAGE: an uncompressed squashfs of DIR, checked to be uncompressed
    mksquashfs "$1" "$2" -noI -noD -noF -noX -no-xattrs -all-root -noappend -quiet -no-progress >/dev/null
    local stats
    stats=$(unsquashfs -s "$2")
    if ! grep -qx 'Data is uncompressed' <<<"$stats" ||
        ! grep -qx 'Inodes are uncompressed' <<<"$stats" ||
        ! grep -qx 'Fragments are uncompressed' <<<"$stats"; then
        die "$2 is compressed: $stats"
    fi
}

stamp="big size=$SIZE code=$code_hash"
if ! fresh big "$stamp"; then
    echo "==> data: $SIZE layer (OCI-SIF and uncompressed squashfs of the same bytes)"
    rm -rf "$data/big-raw" "$data/big.stamp"
    mkdir -p "$data/big-raw"
    "$bench_data" big "$data/big.oci.sif" --size "$SIZE" --raw "$data/big-raw/layer" >"$data/big.info"
    squash "$data/big-raw" "$data/big.sqfs"
    rm -rf "$data/big-raw"
    echo "$stamp" >"$data/big.stamp"
fi
layer_offset=$(info big layer_offset)
layer_size=$(info big layer_size)
layer_hex=$(info big layer_digest | sed 's/^sha256://')
big_manifest=$(info big manifest_digest)
sq_size=$(stat -c %s "$data/big.sqfs")
[ "$sq_size" -ge "$layer_size" ] || die "$data/big.sqfs ($sq_size bytes) is smaller than its layer"

stamp="many blobs=$BLOBS code=$code_hash"
if ! fresh many "$stamp"; then
    echo "==> data: $BLOBS small blobs (OCI-SIF and uncompressed squashfs of the same files)"
    rm -rf "$data/many-raw" "$data/many.stamp"
    "$bench_data" many "$data/many.oci.sif" --blobs "$BLOBS" --raw-dir "$data/many-raw" >"$data/many.info"
    squash "$data/many-raw" "$data/many.sqfs"
    rm -rf "$data/many-raw"
    echo "$stamp" >"$data/many.stamp"
fi

stamp="signed signatures=$SIGNATURES code=$code_hash"
if ! fresh signed "$stamp"; then
    echo "==> data: an image with $SIGNATURES cosign signatures"
    rm -f "$data/signed.stamp"
    "$bench_data" signed "$data/signed.oci.sif" --signatures "$SIGNATURES" \
        --key-out "$data/signed.pub.pem" >"$data/signed.info"
    echo "$stamp" >"$data/signed.stamp"
fi

stamp="keyless signatures=$SIGNATURES code=$code_hash"
if ! fresh keyless "$stamp"; then
    echo "==> data: an image with a real keyless signature $SIGNATURES times"
    rm -f "$data/keyless.stamp"
    "$bench_data" keyless "$data/keyless.oci.sif" --fixture "$keyless_fixture" \
        --signatures "$SIGNATURES" >"$data/keyless.info"
    echo "$stamp" >"$data/keyless.stamp"
fi

stamp="small size=1M code=$code_hash"
if ! fresh small "$stamp"; then
    echo "==> data: a 1 MiB image to attach to"
    rm -f "$data/small.stamp"
    "$bench_data" big "$data/small.oci.sif" --size 1M >"$data/small.info"
    echo "$stamp" >"$data/small.stamp"
fi
stamp="drops count=$ATTACHES blobs=$BLOBS code=$code_hash"
if ! fresh drops "$stamp"; then
    rm -rf "$data/drops-small" "$data/drops-big" "$data/drops-many" "$data/drops.stamp"
    "$bench_data" drops "$data/drops-small" --target "$(info small manifest_digest)" --count "$ATTACHES"
    "$bench_data" drops "$data/drops-big" --target "$big_manifest" --count "$ATTACHES"
    "$bench_data" drops "$data/drops-many" --target "$(info many manifest_digest)" --count "$ATTACHES"
    echo "$stamp" >"$data/drops.stamp"
fi

# The same files on both sides: what each mount shows.
mount_sq "$data/big.sqfs" "$mp_sq"
cmp -s -n 1048576 "$mp_sq/layer" <(dd if="$data/big.oci.sif" bs=1M iflag=skip_bytes,count_bytes \
    skip="$layer_offset" count=1048576 status=none) || die "the squashfs layer differs from the SIF's"
unmount "$mp_sq"
mount_sif "$data/many.oci.sif" "$mp_sif" -o ro
mount_sq "$data/many.sqfs" "$mp_sq"
n_sif=$(find "$mp_sif/blobs/sha256" -type f | wc -l)
n_sq=$(find "$mp_sq/blobs/sha256" -type f | wc -l)
entries_sif=$(find "$mp_sif" | wc -l)
entries_sq=$(find "$mp_sq" | wc -l)
unmount "$mp_sif"
unmount "$mp_sq"
if [ "$n_sif" != "$BLOBS" ] || [ "$n_sq" != "$BLOBS" ]; then
    die "blob counts differ: $n_sif in the mount, $n_sq in the squashfs, $BLOBS made"
fi
sample entries_sif "$entries_sif"
sample entries_sq "$entries_sq"

blob=$mp_sif/blobs/sha256/$layer_hex
echo "==> measuring, $READ_REPS repetitions of reads, $REPS of the rest (sifmount $("$sifmount" --version | awk '{print $2}'), $(nproc) cores)"

# --- 1. Sequential reads ----------------------------------------------------------------
# Each repetition: for each source, a fresh mount, the page cache dropped, a first read,
# then a re-read. The order of the three sources turns by one each repetition, so that
# whatever the order favours (the host's own cache of the virtual disk, drift) favours
# each of them alike.
in_turn() { # PREFIX: runs PREFIX_sif, PREFIX_dd, PREFIX_sq starting with the ($r mod 3)th
    local order=(sif dd sq) i
    for i in 0 1 2; do
        "$1_${order[$(((r + i) % 3))]}"
    done
}
seq_sif() {
    serve sif "$data/big.oci.sif" "$mp_sif" -o ro
    drop_caches
    dd_read seq_cold_sif "$blob"
    dd_read seq_warm_sif "$blob"
    unserve "$mp_sif" rss_seq_sif
}
seq_dd() {
    drop_caches
    dd_read seq_cold_dd "$data/big.oci.sif" "$layer_offset" "$layer_size"
    dd_read seq_warm_dd "$data/big.oci.sif" "$layer_offset" "$layer_size"
}
seq_sq() {
    serve sq "$data/big.sqfs" "$mp_sq"
    drop_caches
    dd_read seq_cold_sq "$mp_sq/layer"
    dd_read seq_warm_sq "$mp_sq/layer"
    unserve "$mp_sq" rss_seq_sq
}
echo "    sequential reads of the $SIZE layer"
for r in $(seq "$READ_REPS"); do
    in_turn seq
done

# --- 2. Random 4 KiB reads --------------------------------------------------------------
rand() { # KEY FILE BASE: the same offsets for every source of a repetition
    local cold warm
    read -r cold warm < <(python3 "$run/randread.py" "$2" "$3" "$layer_size" "$RANDOM_READS" "$r")
    [ -n "$warm" ] || die "random reads of $2 failed"
    sample "rand_cold_$1" "$cold"
    sample "rand_warm_$1" "$warm"
}
rand_sif() {
    serve sif "$data/big.oci.sif" "$mp_sif" -o ro
    drop_caches
    rand sif "$blob" 0
    unserve "$mp_sif" rss_rand_sif
}
rand_dd() {
    drop_caches
    rand dd "$data/big.oci.sif" "$layer_offset"
}
rand_sq() {
    serve sq "$data/big.sqfs" "$mp_sq"
    drop_caches
    rand sq "$mp_sq/layer" 0
    unserve "$mp_sq" rss_rand_sq
}
echo "    random 4 KiB reads"
for r in $(seq "$READ_REPS"); do
    in_turn rand
done

# --- 3. Mounting and walking the many-blob image ----------------------------------------
# Every walk on a fresh mount, so that no dentry, inode or attribute cache of a previous
# walk helps. The squashfs holds just the blobs (blobs/sha256/<hex>), so its whole mount
# is the counterpart of sifmount's blobs/.
walk() { # KEY COMMAND...: on a fresh sifmount mount of the many-blob image
    local key=$1
    shift
    mount_sif "$data/many.oci.sif" "$mp_sif" -o ro
    timed quiet "$@"
    sample "$key" "$us"
    unmount "$mp_sif"
}
many_sif() {
    mount_sif "$data/many.oci.sif" "$mp_sif" -o ro
    sample mount_sif "$us"
    unmount "$mp_sif"
    drop_caches
    mount_sif "$data/many.oci.sif" "$mp_sif" -o ro
    sample mount_cold_sif "$us"
    unmount "$mp_sif"
    walk lsR_blobs_sif ls -lR "$mp_sif/blobs"
    walk lsR_all_sif ls -lR "$mp_sif"
    walk find_all_sif find "$mp_sif" -type f -exec stat {} +
    serve sif "$data/many.oci.sif" "$mp_sif" -o ro
    timed quiet find "$mp_sif/blobs" -type f -exec stat {} +
    sample find_blobs_sif "$us"
    unserve "$mp_sif" rss_many_sif
}
many_sq() {
    mount_sq "$data/many.sqfs" "$mp_sq"
    sample mount_sq "$us"
    unmount "$mp_sq"
    drop_caches
    mount_sq "$data/many.sqfs" "$mp_sq"
    sample mount_cold_sq "$us"
    unmount "$mp_sq"
    mount_sq "$data/many.sqfs" "$mp_sq"
    timed quiet ls -lR "$mp_sq"
    sample lsR_blobs_sq "$us"
    unmount "$mp_sq"
    serve sq "$data/many.sqfs" "$mp_sq"
    timed quiet find "$mp_sq" -type f -exec stat {} +
    sample find_blobs_sq "$us"
    unserve "$mp_sq" rss_many_sq
}
echo "    mount and walk $BLOBS blobs"
quiet() { "$@" >/dev/null; }
for r in $(seq "$REPS"); do
    if [ $((r % 2)) = 0 ]; then
        many_sif
        many_sq
    else
        many_sq
        many_sif
    fi
done

# --- 4. The 1,000-signature image -------------------------------------------------------
echo "    $SIGNATURES signatures"
cat_payloads() { cat "$mp_sif"/cosign/*/payload >/dev/null; }
for r in $(seq "$REPS"); do
    mount_sif "$data/signed.oci.sif" "$mp_sif" -o ro
    sample mount_signed_sif "$us"
    timed quiet ls -l "$mp_sif/cosign/"
    sample ls_cosign_sif "$us"
    unmount "$mp_sif"
    serve sif "$data/signed.oci.sif" "$mp_sif" -o ro
    timed cat_payloads
    sample cat_payload_sif "$us"
    if [ "$r" = 1 ]; then
        n=$(find "$mp_sif/cosign" -mindepth 1 -maxdepth 1 -name 'sig-*' | wc -l)
        [ "$n" = "$SIGNATURES" ] || die "$n entries under cosign/, not $SIGNATURES"
    fi
    unserve "$mp_sif" rss_signed_sif
done

# --- 4b. Verifying at mount: the same images with and without a key or identity --------
# Side by side in each repetition: the mount with no verification option, then with it.
echo "    verifying $SIGNATURES key and $SIGNATURES keyless signatures at mount"
for r in $(seq "$REPS"); do
    mount_sif "$data/signed.oci.sif" "$mp_sif" -o ro --key "$data/signed.pub.pem"
    sample mount_signed_key_sif "$us"
    if [ "$r" = 1 ]; then
        n=$(cat "$mp_sif"/cosign/sig-*/verified | grep -c '^ok: verified with ' || true)
        [ "$n" = "$SIGNATURES" ] || die "$n of $SIGNATURES key signatures verified"
    fi
    unmount "$mp_sif"
    mount_sif "$data/keyless.oci.sif" "$mp_sif" -o ro
    sample mount_keyless_plain_sif "$us"
    unmount "$mp_sif"
    mount_sif "$data/keyless.oci.sif" "$mp_sif" -o ro "${keyless_identity[@]}"
    sample mount_keyless_verified_sif "$us"
    if [ "$r" = 1 ]; then
        n=$(cat "$mp_sif"/cosign/sig-*/verified | grep -c '^ok: signed by mitr@redhat.com ' || true)
        [ "$n" = "$SIGNATURES" ] || die "$n of $SIGNATURES keyless signatures verified"
    fi
    unmount "$mp_sif"
done

cat >"$run/follow.py" <<'EOF'
# follow.py DROPS RW RO N: attaches DROPS/pK with DROPS/pK.sig through the read-write mount
# RW for K = 1..N and times, from the return of each second close(2) (the commit), until
# the read-only mount RO of the same image lists the new entry. Prints key=value lines.
import os, statistics, sys, time
drops, rw, ro, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
from drop import put
def shown():
    return sum(1 for e in os.listdir(f"{ro}/cosign") if e.startswith("sig-"))
base = shown()
times = []
for k in range(1, n + 1):
    put(f"{drops}/p{k}", f"{rw}/cosign/p{k}")
    put(f"{drops}/p{k}.sig", f"{rw}/cosign/p{k}.sig")
    t0 = time.perf_counter_ns()
    while shown() < base + k:
        if time.perf_counter_ns() - t0 > 10e9:
            sys.exit(f"attach {k}: not shown by the read-only mount within 10 s")
        time.sleep(0.002)
    times.append((time.perf_counter_ns() - t0) / 1e6)
print(f"median_ms={statistics.median(times):.1f}")
print(f"max_ms={max(times):.1f}")
EOF

# --- 5. Attaching -----------------------------------------------------------------------
# On a copy of each image, mounted read-write (the default for a writable image); the
# payloads and signatures were made beforehand, so only the attach is timed.
echo "    $ATTACHES attaches on a 1 MiB image, on the $SIZE image and on the $BLOBS-blob image"
attach() { # NAME SOURCE-IMAGE DROPS
    local image=$run/attach-$1.oci.sif k v
    cp "$2" "$image"
    sync
    serve sif "$image" "$mp_sif"
    if ! python3 "$run/attach.py" "$3" "$mp_sif" "$image" "$ATTACHES" \
        >"$run/attach-$1.out" 2>"$run/attach-$1.err"; then
        # Reported in the table (and by the exit status), not fatal: the rest still counts.
        cat "$run/attach-$1.err" >&2
        sample "attach_$1_error" "$(tail -n 1 "$run/attach-$1.err")"
        failed+=("attach on the $1 image")
    fi
    unserve "$mp_sif" "rss_attach_$1"
    if ! "$sifmount" --verify "$image" >/dev/null; then
        sample "attach_$1_error" "the image does not verify after the attaches"
        failed+=("verify after attaching to the $1 image")
    fi
    rm -f "$image"
    while IFS='=' read -r k v; do sample "attach_$1_$k" "$v"; done <"$run/attach-$1.out"
}
failed=()
attach small "$data/small.oci.sif" "$data/drops-small"
attach big "$data/big.oci.sif" "$data/drops-big"
# Not a target row: what an image's entry count, rather than its size, costs an attach.
attach many "$data/many.oci.sif" "$data/drops-many"

# --sign IMAGE --key KEY on a copy of the big image: key decryption (scrypt), lock, open,
# payload, signature and the attach transaction, the whole command; each time on a fresh
# copy (the page cache keeps the copy warm, as a just-built image would be).
echo "    $REPS x --sign on the $SIZE image"
for r in $(seq "$REPS"); do
    image=$run/attach-sign.oci.sif
    cp "$data/big.oci.sif" "$image"
    sync
    # timed's status is its own: the output says whether the signature was made.
    COSIGN_PASSWORD= timed "$sifmount" --sign "$image" --key "$sign_key" >"$run/sign.out"
    grep -q ': signed: cosign/' "$run/sign.out" ||
        die "--sign on a copy of the $SIZE image failed: $(cat "$run/sign.out")"
    sample sign_big_sif "$us"
    rm -f "$image"
done

# --- 6. One image, many mounts -----------------------------------------------------------
# A read-only mount of the image a read-write mount attaches to: how long after each commit
# it lists the new signature (it looks four times a second), and what following costs it.
follows=20
echo "    $follows attaches seen through a read-only mount of the same image"
mp_ro=$run/mnt-follower
mkdir -p "$mp_ro"
image=$run/attach-follow.oci.sif
cp "$data/small.oci.sif" "$image"
serve sif "$image" "$mp_sif"
rw_server=$server
serve sif "$image" "$mp_ro" -o ro
if ! python3 "$run/follow.py" "$data/drops-small" "$mp_sif" "$mp_ro" "$follows" \
    >"$run/follow.out" 2>"$run/follow.err"; then
    cat "$run/follow.err" >&2
    sample follow_error "$(tail -n 1 "$run/follow.err")"
    failed+=("a read-only mount following attaches")
fi
unserve "$mp_ro" rss_follow
server=$rw_server
unserve "$mp_sif" rss_follow_writer
rm -f "$image"
while IFS='=' read -r k v; do sample "follow_$k" "$v"; done <"$run/follow.out"

# --- The report ---------------------------------------------------------------------------
elapsed=$(((${EPOCHREALTIME/[.,]/} - started) / 1000000))
sample elapsed_s "$elapsed"
machine="$(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r), \
disk $(df -h --output=source,fstype "$work" | tail -1 | awk '{print $1 " (" $2 ")"}')"
python3 - "$samples" "$work/results.md" "$READ_REPS/$REPS" "$SIZE" "$BLOBS" "$SIGNATURES" "$ATTACHES" \
    "$RANDOM_READS" "$machine" <<'EOF'
import statistics, sys
samples_path, out_path, reps, size, blobs, sigs, attaches, nrand, machine = sys.argv[1:10]
s = {}
for line in open(samples_path):
    k, v = line.rstrip("\n").split("\t", 1)
    s.setdefault(k, []).append(v)
def med(k):
    return statistics.median(float(v) for v in s[k])
def one(k):
    return s[k][0]
def verdict(*checks):
    """One word per target part: "yes" or a bold "no"."""
    return ", ".join("yes" if ok else "**no**" for ok in checks)
mbs = lambda v: f"{v:,.0f} MB/s"
iops = lambda us: f"{1e6 / us:,.0f} IOPS ({us:.1f} µs)"
ms = lambda us: f"{us / 1000:.1f} ms"
mib = lambda kib: f"{kib / 1024:.1f} MiB"

rows = []  # what, sifmount, direct, squashfuse_ll, ratio, target, met
c_sif, c_dd, c_sq = med("seq_cold_sif"), med("seq_cold_dd"), med("seq_cold_sq")
rows.append((f"sequential read of {size}, first (cold)", mbs(c_sif), mbs(c_dd), mbs(c_sq),
             f"{c_sif / c_dd:.2f}× dd, {c_sif / c_sq:.2f}× sqfs", "≥ 0.4× dd, ≥ 2× sqfs",
             verdict(c_sif >= 0.4 * c_dd, c_sif >= 2 * c_sq)))
w_sif, w_dd, w_sq = med("seq_warm_sif"), med("seq_warm_dd"), med("seq_warm_sq")
rows.append((f"sequential re-read of {size} (warm)", mbs(w_sif), mbs(w_dd), mbs(w_sq),
             f"{w_sif / w_dd:.2f}× dd, {w_sif / w_sq:.2f}× sqfs", "≥ 0.9× dd",
             verdict(w_sif >= 0.9 * w_dd)))
for kind in ("cold", "warm"):
    a, b, c = med(f"rand_{kind}_sif"), med(f"rand_{kind}_dd"), med(f"rand_{kind}_sq")
    rows.append((f"random 4 KiB reads ({nrand}), {kind}", iops(a), iops(b), iops(c),
                 f"{b / a:.2f}× dd, {c / a:.2f}× sqfs", "≥ sqfs", verdict(a <= c)))
m_sif, m_sq = med("mount_sif"), med("mount_sq")
rows.append((f"mount ready, {blobs} blobs", ms(m_sif), "", ms(m_sq), f"{m_sif / m_sq:.1f}× sqfs time",
             "≤ 50 ms", verdict(m_sif <= 50_000)))
mc_sif, mc_sq = med("mount_cold_sif"), med("mount_cold_sq")
rows.append((f"mount ready, {blobs} blobs, cold cache", ms(mc_sif), "", ms(mc_sq),
             f"{mc_sif / mc_sq:.1f}× sqfs time", "", ""))
l_sif, l_sq = med("lsR_blobs_sif"), med("lsR_blobs_sq")
rows.append((f"`ls -lR`, {blobs} files (sifmount: blobs/)", ms(l_sif), "", ms(l_sq),
             f"{l_sif / l_sq:.2f}× sqfs time", "≤ sqfs", verdict(l_sif <= l_sq)))
la_sif = med("lsR_all_sif")
ents = f"{int(one('entries_sif')):,} entries against {int(one('entries_sq')):,}"
rows.append((f"`ls -lR` of the whole mount ({ents})", ms(la_sif), "", ms(l_sq),
             f"{la_sif / l_sq:.2f}× sqfs time", "", ""))
f_sif, f_sq = med("find_blobs_sif"), med("find_blobs_sq")
rows.append((f"`find -type f -exec stat`, {blobs} files (sifmount: blobs/)", ms(f_sif), "",
             ms(f_sq), f"{f_sif / f_sq:.2f}× sqfs time", "", ""))
fa_sif = med("find_all_sif")
rows.append(("`find -type f -exec stat` of the whole mount", ms(fa_sif), "", ms(f_sq),
             f"{fa_sif / f_sq:.2f}× sqfs time", "", ""))
m_signed = med("mount_signed_sif")
rows.append((f"mount ready, {sigs} signatures", ms(m_signed), "", "", "", "", ""))
rows.append((f"`ls -l cosign/`, {sigs} signatures", ms(med("ls_cosign_sif")), "", "", "", "", ""))
rows.append((f"`cat cosign/*/payload`, {sigs} signatures", ms(med("cat_payload_sif")), "", "", "",
             "", ""))
k_key, k_plain, k_less = (med("mount_signed_key_sif"), med("mount_keyless_plain_sif"),
                          med("mount_keyless_verified_sif"))
rows.append((f"mount ready, {sigs} signatures verified with `--key`", ms(k_key), "", "",
             f"{k_key / m_signed:.1f}× unverified", "", ""))
rows.append((f"mount ready, {sigs} keyless signatures, not verified", ms(k_plain), "", "", "",
             "", ""))
rows.append((f"mount ready, {sigs} keyless signatures verified (identity, issuer)", ms(k_less),
             "", "", f"{k_less / k_plain:.0f}× unverified, {k_less / int(sigs) / 1000:.2f} ms each",
             "", ""))

if "sign_big_sif" in s:
    rows.append((f"`--sign` (encrypted key, one signature) on the {size} image", ms(med("sign_big_sif")),
                 "", "", "", "", ""))

def attach_ms(name):
    k = f"attach_{name}_median_ms"
    return float(one(k)) if k in s else None
a_small, a_big = attach_ms("small"), attach_ms("big")
for name, label in (("small", "1 MiB"), ("big", size), ("many", f"{blobs}-blob")):
    if f"attach_{name}_error" in s:
        rows.append((f"attach ({attaches}) on the {label} image",
                     "failed: " + one(f"attach_{name}_error"), "", "", "", "≤ 10 ms", verdict(False)))
        continue
    if f"attach_{name}_median_ms" not in s:
        continue
    med_ms = attach_ms(name)
    p99 = float(one(f"attach_{name}_p99_ms"))
    target, met, ratio = "≤ 10 ms", verdict(med_ms <= 10), ""
    if name == "many":
        # The targets are about image size; this row shows what the entry count costs.
        target, met = "", ""
    if name == "big":
        target = "≤ 10 ms, ≤ 1.5× 1 MiB"
        if a_small is not None:
            ratio = f"{a_big / a_small:.2f}× 1 MiB"
            met = verdict(a_big <= 10, a_big <= 1.5 * a_small)
    rows.append((f"attach ({attaches}) on the {label} image: median", f"{med_ms:.2f} ms", "", "",
                 ratio, target, met))
    rows.append((f"attach ({attaches}) on the {label} image: p99 / max",
                 f"{p99:.2f} / {float(one(f'attach_{name}_max_ms')):.1f} ms", "", "",
                 "slowest: " + one(f"attach_{name}_slowest").replace(",", ", "), "", ""))
    grew = one(f"attach_{name}_large_growths")
    size_mib = lambda k: f"{int(one(f'attach_{name}_{k}')) / 2**20:,.1f}"
    rows.append((f"file growth per attach, {label} image",
                 f"median {int(one(f'attach_{name}_growth_median')):,} B, mean "
                 f"{int(one(f'attach_{name}_growth_mean')):,} B; file {size_mib('size_before')} → "
                 f"{size_mib('size_after')} MiB, on disk {size_mib('disk_before')} → "
                 f"{size_mib('disk_after')} MiB", "", "",
                 "" if not grew else "over 64 KiB: " + ", ".join(
                     f"attach {g.split(':')[0]} +{int(g.split(':')[1]):,} B" for g in grew.split(",")),
                 "", ""))
if "follow_error" in s:
    rows.append(("read-only mount shows an attach", "failed: " + one("follow_error"), "", "", "",
                 "≤ 1 s", verdict(False)))
elif "follow_median_ms" in s:
    f_med, f_max = float(one("follow_median_ms")), float(one("follow_max_ms"))
    rows.append(("read-only mount shows an attach (20): median / max",
                 f"{f_med:.0f} / {f_max:.0f} ms", "", "", "", "≤ 1 s", verdict(f_max <= 1000)))
for key, label in (("seq", f"sequential reads of {size}"), ("rand", "random reads"),
                   ("many", f"{blobs} blobs, ls/find"), ("signed", f"{sigs} signatures"),
                   ("attach_small", "attaching, 1 MiB image"), ("attach_big", f"attaching, {size} image"),
                   ("attach_many", f"attaching, {blobs}-blob image"),
                   ("follow", "read-only mount following attaches")):
    k_sif = f"rss_{key}_sif" if key in ("seq", "rand", "many", "signed") else f"rss_{key}"
    if k_sif not in s:
        continue
    worst = max(float(v) for v in s[k_sif])
    k_sq = f"rss_{key}_sq"
    rows.append((f"peak RSS: {label}", mib(worst), "", mib(max(float(v) for v in s[k_sq])) if k_sq in s else "",
                 "", "≤ 20 MiB", verdict(worst <= 20 * 1024)))

def table(head, body):
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] +
                     ["| " + " | ".join(r) + " |" for r in body])

main = table(("what", "sifmount", "direct (SIF file)", "squashfuse_ll", "ratio", "target", "met"),
             rows)
parts = [(r[0], p) for r in rows if r[6] for p in r[6].split(", ")]
missed = sorted({w for w, p in parts if p != "yes"}, key=[r[0] for r in rows].index)
summary = [
    f"Medians of {reps.split('/')[0]} repetitions for reads, {reps.split('/')[1]} for the rest "
    f"(attaches: of the {attaches} of one run); ratios of the "
    "medians of the same run. Peak RSS is the largest VmHWM over the repetitions.",
    f"Machine: {machine}. Run time: {one('elapsed_s')} s.",
    f"Target parts met: {sum(p == 'yes' for _, p in parts)} of {len(parts)}"
    + (f"; not met: {'; '.join(missed)}." if missed else "."),
]
units = {"seq": "MB/s", "rand": "µs/read", "rss": "KiB"}
spread_rows = []
for k, vs in sorted(s.items()):
    if k.startswith(("attach_", "entries_", "elapsed", "follow_")):
        continue
    xs = sorted(float(v) for v in vs)
    unit = units.get(k.split("_")[0], "µs")
    spread_rows.append((f"`{k}`", unit, str(len(xs)), f"{statistics.median(xs):,.1f}",
                        f"{xs[0]:,.1f}", f"{xs[-1]:,.1f}"))
spread = table(("sample", "unit", "n", "median", "min", "max"), spread_rows)
text = main + "\n\n" + "\n\n".join(summary) + "\n"
open(out_path, "w").write(text + "\nEvery sample's spread:\n\n" + spread + "\n")
print()
print(text)
EOF
echo "bench.sh: results in $work/results.md (raw samples: $samples)"
if [ "${#failed[@]}" -gt 0 ]; then
    die "failed: ${failed[*]}"
fi
