# Sourced by the scripts of scripts/ (not run): where cargo puts what they build.
#
# Before the script's `cd` to the repository: CARGO_TARGET_DIR made absolute, relative to
# where the caller ran the script, as cargo itself would have read it there; the cd would
# otherwise move it.
#
#     . "$(dirname "${BASH_SOURCE[0]}")/target-dir.sh"
#
# After the cd: `cargo_target_dir` prints the target directory cargo uses (CARGO_TARGET_DIR,
# build.target-dir of a .cargo/config.toml, or target/), absolute, as cargo metadata says.

if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    CARGO_TARGET_DIR=$(realpath -m -- "$CARGO_TARGET_DIR")
    export CARGO_TARGET_DIR
fi

cargo_target_dir() {
    local dir
    dir=$(cargo metadata --format-version 1 --no-deps "$@" |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    if [ -z "$dir" ]; then
        echo "${0##*/}: cargo metadata named no target directory" >&2
        return 1
    fi
    printf '%s\n' "$dir"
}
