//! How readers in other processes learn that an image changed, and never read it half-way
//! through a sifmount update.
//!
//! * **The publish lock.** A sifmount update holds an OFD write lock (`fcntl(2)`,
//!   `F_OFD_SETLKW`) on one byte far past any real end of file while it applies its plan
//!   and syncs (`journal.rs`); a mount that re-reads the image takes a read lock on the
//!   same byte first, so it waits for an update in flight and sees the image before it or
//!   after it, never in between. The byte lies beyond every file, so the lock never
//!   conflicts with anything another program locks; file systems without OFD locks go on
//!   without it (logged), as other writers (SingularityCE, siftool) always do.
//! * **The fingerprint** of an image is a hash of its header and descriptor table: every
//!   change any writer makes to what the image holds changes one of them, so a mount that
//!   compares fingerprints notices every committed change.

use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io;
use std::os::fd::AsFd;

use super::header::{Header, HEADER_SIZE};
use super::image::MAX_DESCRIPTORS;
use super::storage::Storage;
use super::DESCRIPTOR_SIZE;

/// The locked byte: past any file a file system can hold, below `off_t`'s limit.
const LOCK_BYTE: libc::off_t = libc::off_t::MAX - 1;

/// A held publish lock (see the module documentation); released when dropped.
#[derive(Debug)]
pub struct PublishLock {
    /// A duplicate of the image's descriptor: OFD locks belong to the open file
    /// description, which the duplicate shares.
    file: File,
}

impl PublishLock {
    /// Takes the lock on `file`, waiting for holders of a conflicting one: exclusive for
    /// an update, shared for a reader. `None` when the file system has no OFD locks.
    pub fn take(file: &File, exclusive: bool) -> Option<PublishLock> {
        let file = match file.try_clone() {
            Ok(f) => f,
            Err(e) => {
                log::debug!("cannot take the publish lock: {e}");
                return None;
            }
        };
        let kind = if exclusive {
            libc::F_WRLCK
        } else {
            libc::F_RDLCK
        };
        loop {
            match set_lock(&file, kind as libc::c_short, libc::F_OFD_SETLKW) {
                Ok(()) => return Some(PublishLock { file }),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("no publish lock on this file system: {e}");
                    return None;
                }
            }
        }
    }
}

impl Drop for PublishLock {
    fn drop(&mut self) {
        if let Err(e) = set_lock(
            &self.file,
            libc::F_UNLCK as libc::c_short,
            libc::F_OFD_SETLK,
        ) {
            // Closing the last descriptor of the description releases it anyway.
            log::debug!("cannot release the publish lock: {e}");
        }
    }
}

fn set_lock(file: &File, kind: libc::c_short, cmd: libc::c_int) -> io::Result<()> {
    crate::sys::ofd_lock(file.as_fd(), cmd, kind, LOCK_BYTE, 1)
}

/// The fingerprint of the image's header and descriptor table (module documentation).
/// An image too short for its header, or whose table does not fit, has a fingerprint
/// too: of what it has of them. Bytes appended past the table alone do not change it:
/// until a table names them, the image holds nothing new.
pub fn fingerprint(storage: &dyn Storage) -> io::Result<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let len = storage.len()?;
    let mut header = [0u8; HEADER_SIZE];
    let n = (HEADER_SIZE as u64).min(len) as usize;
    storage.read_exact_at(&mut header[..n], 0)?;
    header.hash(&mut h);
    {
        let parsed = Header::decode(&header);
        let total = parsed.descriptors_total.clamp(0, MAX_DESCRIPTORS) as u64;
        let start = parsed.descriptors_offset.max(0) as u64;
        let end = start
            .saturating_add(total * DESCRIPTOR_SIZE as u64)
            .min(len);
        let mut at = start;
        let mut buf = vec![0u8; (1 << 20).min(end.saturating_sub(start)) as usize];
        while at < end {
            let n = buf.len().min((end - at) as usize);
            storage.read_exact_at(&mut buf[..n], at)?;
            buf[..n].hash(&mut h);
            at += n as u64;
        }
    }
    Ok(h.finish())
}
