//! Raising the kernel's readahead window of a new mount (man/sifmount.1, PERFORMANCE).
//!
//! At the FUSE handshake the kernel offers a readahead of 128 KiB and fuser accepts no
//! more than offered, so a sequential reader of a large layer costs one request per
//! 128 KiB. The window of a mounted FUSE file system is its backing device's
//! `read_ahead_kb` in sysfs, which root may raise after mounting (docs/BENCHMARKS.md has
//! what it gains). It is an optimisation only: when it cannot be set (not root, no sysfs),
//! the mount works as before and the log says why.
//!
//! The device is found in the mount table, not by `stat` of the mount point: the mount
//! serves no request until this returns, and a `stat` would wait for it forever.

use std::io;
use std::path::{Path, PathBuf};

use crate::mountinfo;

/// The window asked for, in KiB: the kernel's largest FUSE request (256 pages) is 1 MiB
/// on 4 KiB pages, so a larger window buys nothing.
pub const READAHEAD_KB: u32 = 1024;

/// The sysfs file holding the readahead of the file system of `device` (`major:minor`).
fn readahead_file(device: &str) -> PathBuf {
    PathBuf::from(format!("/sys/class/bdi/{device}/read_ahead_kb"))
}

/// Sets the readahead of the mount at `mountpoint` (absolute and canonical, as the mount
/// table writes it) to [`READAHEAD_KB`] unless it is already at least that; returns the
/// sysfs file and the window now in force.
pub fn raise(mountpoint: &Path) -> io::Result<(PathBuf, u32)> {
    let table = mountinfo::read()?;
    let entry = mountinfo::mount_at(&table, mountpoint).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "the mount is not in the mount table",
        )
    })?;
    let file = readahead_file(&entry.device);
    let now: u32 = std::fs::read_to_string(&file)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", file.display())))?
        .trim()
        .parse()
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", file.display()),
            )
        })?;
    if now >= READAHEAD_KB {
        return Ok((file, now));
    }
    std::fs::write(&file, format!("{READAHEAD_KB}\n"))
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", file.display())))?;
    Ok((file, READAHEAD_KB))
}
