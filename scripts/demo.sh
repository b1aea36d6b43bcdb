#!/usr/bin/env bash
# The README's first command: build sifmount, make a small demo OCI-SIF with the
# project's own writer, then inspect and verify it. Runs from any directory.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --release --bin sifmount --example make-oci-sif

mkdir -p target/demo
image=target/demo/demo.oci.sif
target/release/examples/make-oci-sif "$image"

echo
echo "\$ sifmount --inspect $image"
target/release/sifmount --inspect "$image"

echo
echo "\$ sifmount --verify $image"
target/release/sifmount --verify "$image"
