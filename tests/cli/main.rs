//! The integration tests of the command line: `sifmount` run as a command (usage errors,
//! `--inspect`, `--verify`, `--recover`, the examples), and around a real mount
//! (daemonizing, `-u`, signals, stale and busy mounts, `mount -t fuse3`, syslog).
//!
//! One crate instead of one per file, as `tests/library/main.rs` says why; each file is a
//! module (`cargo test --test cli cli_mount::`).

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod cli_install;
mod cli_mount;
mod cli_sign;
mod cli_verify;
