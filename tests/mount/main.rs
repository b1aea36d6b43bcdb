//! The integration tests that mount images for real through FUSE with the `sifmount`
//! binary ([`common::mounted::Mount`]) and check what the mount shows and does: reads,
//! attaches, concurrency, crashes, journals, permissions, times, names, and the OCI
//! layout tools (skopeo, umoci, oci-image-tool).
//!
//! Needs /dev/fuse, `fusermount3`, `skopeo`, `umoci`, `oci-image-tool`, `siftool` and
//! `openssl` (`.ci/run` installs them), and root for some; fails, saying so, rather than
//! skipping. Every mount has a mountpoint of its own in a fresh temporary directory, so
//! tests of different files may run at once.
//!
//! One crate instead of one per file, as `tests/library/main.rs` says why; each file is a
//! module (`cargo test --test mount concurrency_mount::`).

#[path = "../common/mod.rs"]
mod common;

mod attach_mount;
mod bundle_mount;
mod concurrency_mount;
mod copy_mount;
mod cosign_mount;
mod crash_mount;
mod journal_mount;
mod layout_tools_mount;
mod mount_real;
mod object_names_mount;
mod readahead_mount;
mod security_mount;
mod sign_mount;
mod summary_mount;
mod times_mount;
mod verify_mount;
