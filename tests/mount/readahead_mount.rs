//! The readahead window a mount sets (the man page, PERFORMANCE): mounted by root, the
//! mount's backing device in sysfs reads ahead 1 MiB, not the 128 KiB the kernel offers
//! at the FUSE handshake; reads are unchanged.
//!
//! Needs root (sysfs is writable only by root; CI runs as root) and /dev/fuse; fails,
//! saying so, otherwise.

use crate::common::mounted::{ls, read, Mode, Mount};
use crate::common::{self, upstream};

/// The sysfs readahead of the mount at `m`, found through the mount table as sifmount
/// finds it.
fn readahead_kb(m: &Mount) -> u32 {
    let table = sifmount::mountinfo::read().unwrap();
    let entry = sifmount::mountinfo::mount_at(&table, &m.path(""))
        .unwrap_or_else(|| panic!("{} is not in the mount table", m.path("").display()));
    let file = format!("/sys/class/bdi/{}/read_ahead_kb", entry.device);
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("cannot read {file}: {e}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn a_mount_by_root_reads_ahead_one_mebibyte() {
    common::need_root("only root may set a mount's readahead in /sys/class/bdi");
    let image = upstream("generated/squashfs-image.oci.sif");
    // As a daemon: sifmount returns only once `mount()` has, readahead set; a foreground
    // mount shows in the mount table a moment before that.
    let m = Mount::new(&image, Mode::Daemon, &[]);
    assert_eq!(readahead_kb(&m), 1024, "the mount's readahead");
    // Reads are what they were: every blob hashes to its name.
    for name in ls(&m.path("blobs/sha256")) {
        let bytes = read(&m.path(&format!("blobs/sha256/{name}")));
        assert_eq!(
            common::oracle::sha256_hex(&bytes),
            name,
            "blobs/sha256/{name}"
        );
    }
}
