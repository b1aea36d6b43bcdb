#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ one after another (fuzz/README.md).
#
#     scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 60; the targets default to all of them. For each target
# the seed corpus fuzz/corpus/<target>/ is (re)made first, from $SIFMOUNT_TESTDATA (the
# upstream SIF files, the JSON documents in and beside them, cosign payloads) and from
# images the project writes itself; entries the fuzzer added in earlier runs stay. Prints
# the number of executions of each target, and exits non-zero if any target found a crash,
# a hang (-timeout) or an out-of-memory (-rss_limit_mb), after printing the path of each
# input that did (under fuzz/artifacts/<target>/).
#
# Works on the stable toolchain: libFuzzer's instrumentation needs -Z flags, which
# RUSTC_BOOTSTRAP=1 allows. Installs cargo-fuzz from crates.io when it is missing.
# SIFMOUNT_FUZZ_SANITIZER=address builds with AddressSanitizer instead of none.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/target-dir.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ALL_TARGETS=(sif_open oci_parse cosign_discover drop_protocol)

secs="${1:-60}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -eq 0 ]; then
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...] (seconds: a positive integer, not '$secs')" >&2
    exit 2
fi
shift $(($# > 0 ? 1 : 0))
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
    if [ ! -f "fuzz/fuzz_targets/$t.rs" ]; then
        echo "unknown fuzz target '$t' (targets: ${ALL_TARGETS[*]})" >&2
        exit 2
    fi
done

# The seeds come from the shared test data; without it the corpora would be a fraction of
# what they should be, so say so and stop rather than fuzz less than asked.
testdata="${SIFMOUNT_TESTDATA:-../shared/testdata}"
if [ ! -d "$testdata/upstream" ]; then
    echo "test data not found at $testdata: set SIFMOUNT_TESTDATA to the shared testdata directory" >&2
    exit 1
fi
SIFMOUNT_TESTDATA="$(cd "$testdata" && pwd)"
export SIFMOUNT_TESTDATA

export RUSTC_BOOTSTRAP=1
sanitizer="${SIFMOUNT_FUZZ_SANITIZER:-none}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> cargo install cargo-fuzz --locked"
    cargo install cargo-fuzz --locked
fi

echo "==> cargo fuzz build --sanitizer $sanitizer -O (targets: ${targets[*]})"
build_start=$SECONDS
cargo fuzz build --sanitizer "$sanitizer" -O
echo "built in $((SECONDS - build_start)) s"

host="$(rustc -vV | sed -n 's/^host: //p')"
# cargo fuzz builds fuzz/'s own crate, into its target directory (fuzz/target/ unless
# CARGO_TARGET_DIR says otherwise).
bin_dir="$(cargo_target_dir --manifest-path fuzz/Cargo.toml)/$host/release"

# Limits that turn an out-of-memory or a hang into a finding: no input of these targets
# needs more than a few hundred megabytes or more than a fraction of a second.
RSS_LIMIT_MB=2048
TIMEOUT_S=20

failed=()
summary=()
for t in "${targets[@]}"; do
    corpus="fuzz/corpus/$t"
    artifacts="fuzz/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    log="$artifacts/last-run.log"
    echo
    echo "==> $t: seeds"
    # libFuzzer's warnings that sanitizer hooks are absent (no sanitizer) are noise here.
    if ! SIFMOUNT_FUZZ_WRITE_SEEDS="$corpus" "$bin_dir/$t" >"$log" 2>&1; then
        cat "$log" >&2
        echo "$t: cannot write its seeds" >&2
        exit 1
    fi
    grep -v '^WARNING: Failed to find function' "$log" || true
    extra=()
    [ -f "fuzz/dict/$t.dict" ] && extra+=("-dict=fuzz/dict/$t.dict")
    echo "==> $t: fuzzing for $secs s ($(find "$corpus" -type f | wc -l) corpus files)"
    rc=0
    # The last runs' crashes are kept for inspection, but a new one is told by its path.
    before="$(find "$artifacts" -type f ! -name '*.log' | sort)"
    # The binary just built, run as `cargo fuzz run` would run it: a second build here
    # could pick up sources changed since and spend minutes on it.
    "$bin_dir/$t" "$corpus" \
        -max_total_time="$secs" -rss_limit_mb="$RSS_LIMIT_MB" -timeout="$TIMEOUT_S" \
        -artifact_prefix="$artifacts/" -print_final_stats=1 "${extra[@]}" \
        >"$log" 2>&1 || rc=$?
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    cov="$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -n 1 || true)"
    if [ "$rc" -ne 0 ]; then
        tail -n 60 "$log"
        new="$(comm -13 <(echo "$before") <(find "$artifacts" -type f ! -name '*.log' | sort))"
        written="$(sed -n 's/.*Test unit written to //p' "$log")"
        echo "$t: FAILED (exit $rc) after ${execs:-?} executions; input: ${written:-${new:-see $log}}" >&2
        failed+=("$t: ${written:-${new:-$log}}")
    fi
    summary+=("$t: ${execs:-?} executions in $secs s; ${cov:-no coverage line}; exit $rc")
done

echo
echo "==> fuzzing summary"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzzing found problems (reproduce: cargo fuzz run -O --sanitizer $sanitizer TARGET INPUT):" >&2
    printf '  %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "no crash, hang or out-of-memory found"
