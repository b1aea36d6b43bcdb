#!/usr/bin/env bash
# Installs sifmount (the man page, INSTALLING):
#
#     scripts/install.sh [PREFIX]          PREFIX defaults to /usr/local
#
#   PREFIX/bin/sifmount                                  the program
#   SBINDIR/mount.sifmount                               mount(8)'s helper for type sifmount
#   PREFIX/share/man/man1/sifmount.1                     for man sifmount
#   PREFIX/share/bash-completion/completions/sifmount    bash completion
#   PREFIX/share/zsh/site-functions/_sifmount            zsh completion
#   PREFIX/share/fish/vendor_completions.d/sifmount.fish fish completion
#
# SBINDIR defaults to /sbin whatever PREFIX is: mount(8) looks for mount.TYPE helpers only
# in /sbin, /sbin/fs.d and /sbin/fs (libmount's search path), never under a prefix. The
# helper runs PREFIX/bin/sifmount, so `mount -t sifmount IMAGE DIR` and fstab lines of
# type sifmount work; type fuse.sifmount works through mount.fuse3 as before.
#
# Environment: DESTDIR, prepended to every path written (for packagers: the files are
# staged under it, and the helper still runs PREFIX/bin/sifmount); SBINDIR; SIFMOUNT_BIN,
# a sifmount binary to install instead of building one with `cargo build --release`
# (which honours CARGO_TARGET_DIR).
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/target-dir.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$#" -gt 1 ]; then
    echo "usage: scripts/install.sh [PREFIX]" >&2
    exit 2
fi
prefix=${1:-/usr/local}
case $prefix in
/*) ;;
*)
    echo "install.sh: PREFIX must be an absolute path, not '$prefix'" >&2
    exit 2
    ;;
esac
prefix=${prefix%/}
sbindir=${SBINDIR:-/sbin}
destdir=${DESTDIR:-}

if [ -n "${SIFMOUNT_BIN:-}" ]; then
    bin=$SIFMOUNT_BIN
else
    cargo build --release --bin sifmount
    bin=$(cargo_target_dir)/release/sifmount
fi
if [ ! -x "$bin" ]; then
    echo "install.sh: $bin is not an executable sifmount" >&2
    exit 1
fi

say() { printf '%s\n' "$*"; }

put() { # MODE SOURCE DEST
    install -D -m "$1" "$2" "$destdir$3"
    say "installed $destdir$3"
}

put 755 "$bin" "$prefix/bin/sifmount"
put 644 man/sifmount.1 "$prefix/share/man/man1/sifmount.1"

work=$(mktemp -d "${TMPDIR:-/tmp}/sifmount-install.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Generated from the clap definition by the program itself, so they match its options.
"$bin" --completions bash >"$work/bash"
"$bin" --completions zsh >"$work/zsh"
"$bin" --completions fish >"$work/fish"
put 644 "$work/bash" "$prefix/share/bash-completion/completions/sifmount"
put 644 "$work/zsh" "$prefix/share/zsh/site-functions/_sifmount"
put 644 "$work/fish" "$prefix/share/fish/vendor_completions.d/sifmount.fish"

# mount(8) runs `mount.sifmount SPEC DIR [-sfnv] [-N NS] [-o OPTIONS] [-t TYPE]`
# (mount(8), EXTERNAL HELPERS); sifmount takes `IMAGE MOUNTPOINT -o OPTIONS`.
quoted_bin=$(printf '%q' "$prefix/bin/sifmount")
cat >"$work/helper" <<EOF
#!/bin/sh
# mount(8)'s helper for file systems of type sifmount (installed by scripts/install.sh):
# turns mount's arguments into sifmount's. See sifmount(1), FSTAB AND MOUNT.
set -e
sifmount=$quoted_bin
if [ "\$#" -lt 2 ]; then
    echo "usage: mount.sifmount IMAGE MOUNTPOINT [-sfnv] [-o OPTIONS]" >&2
    exit 1
fi
image=\$1
mountpoint=\$2
shift 2
options=
fake=
while getopts sfnvo:t:N: flag; do
    case \$flag in
    o) options=\$OPTARG ;;
    f) fake=1 ;;
    N)
        echo "mount.sifmount: -N (mounting in another namespace) is not supported" >&2
        exit 1
        ;;
    s | n | v | t) ;;
    *) exit 1 ;;
    esac
done
# mount -f: do everything but mount.
[ -z "\$fake" ] || exit 0
if [ -n "\$options" ]; then
    exec "\$sifmount" "\$image" "\$mountpoint" -o "\$options"
fi
exec "\$sifmount" "\$image" "\$mountpoint"
EOF
put 755 "$work/helper" "$sbindir/mount.sifmount"

if [ -z "$destdir" ]; then
    case ":${MANPATH:-}:$(manpath 2>/dev/null || true):" in
    *":$prefix/share/man:"*) ;;
    *) say "note: $prefix/share/man is not in man's search path; man -l $prefix/share/man/man1/sifmount.1 reads the page" ;;
    esac
fi
