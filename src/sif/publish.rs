//! How readers in other processes never read an image half-way through a sifmount
//! update: the publish lock. How they learn that it changed is `fingerprint.rs`.
//!
//! A sifmount update holds an OFD write lock (`fcntl(2)`, `F_OFD_SETLKW`) on one byte far
//! past any real end of file while it applies its plan and syncs (`journal.rs`); a mount
//! that re-reads the image takes a read lock on the same byte first, so it waits for an
//! update in flight and sees the image before it or after it, never in between. The byte
//! lies beyond every file, so the lock never conflicts with anything another program
//! locks; file systems without OFD locks go on without it (logged), as other writers
//! (SingularityCE, siftool) always do.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;

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
