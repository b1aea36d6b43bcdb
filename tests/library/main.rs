//! The integration tests that use only the library's API: SIF, OCI-SIF and cosign
//! reading and writing, the tree and the volume, crash safety and hostile input, checked
//! against upstream's bytes. A few also run the `sifmount` binary on an image (`--recover`,
//! `--inspect`), none mounts. Needs the shared test data (`SIFMOUNT_TESTDATA`); the growth
//! tests also need `siftool`.
//!
//! One crate instead of one per file: each integration-test crate is linked on its own
//! against the library and every dependency, so grouping the files makes the build link
//! four test binaries (this one, `tests/mount`, `tests/cli` and `tests/hostile`) instead
//! of two dozen. Each file is a module, so its tests are
//! `cargo test --test library sif_conformance::` and so on.

#[path = "../common/mod.rs"]
mod common;

mod broken_images;
mod content_trust;
mod cosign_attach;
mod cosign_bundle;
mod cosign_images;
mod cosign_keyless;
mod cosign_keys;
mod cosign_oracle;
mod cosign_sign;
mod cosign_summary;
mod cosign_tree;
mod cosign_verify;
mod crash_safety;
mod fuzz_regressions;
mod journal_hostile;
mod oci_conformance;
mod oci_read;
mod sif_conformance;
mod sif_images;
mod table_growth;
mod tree;
mod volume;
mod volume_handles;
mod volume_messages;
mod volume_sign;
