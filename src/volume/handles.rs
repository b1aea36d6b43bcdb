//! What is open on a volume: one table of handles, one kind per thing a handle can be.
//!
//! Handle number 0 means "no handle": what a read-only volume opens (its tree never
//! changes under an open file), and staged or error files opened for reading (they are
//! read by inode). Every other number is in [`Handles`], numbered from 1.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};

use super::roles::Role;
use super::staging::EntryId;
use super::{State, Volume};
use crate::tree::{Attr, DirEntry, Ino};

/// Open image files up to this size are copied before each update, so that a reader
/// that opened one keeps reading the same bytes even when the update removes it (the
/// root index and a signature image's manifest and config are replaced by every
/// attach). Larger files are never removed by an attach: they stay readable through
/// their inode, which an update keeps, moved or not (only `rm -r` of a signature whose
/// payload is larger than this makes its open readers fail, with ESTALE).
const SNAPSHOT_MAX: u64 = 1 << 20;

/// Every open handle of a volume. A commit replaces the tree, and the inodes whose
/// content changed (`/index.json`, a signature image's manifest) leave it; the handles
/// keep what was opened readable, listings consistent, and written bytes until close.
#[derive(Default)]
pub(super) struct Handles {
    /// The last number handed out.
    last: u64,
    open: HashMap<u64, OpenHandle>,
}

/// What one handle is.
pub(super) enum OpenHandle {
    /// An image file open for reading, on a read-write volume.
    Read(ReadHandle),
    /// A directory open for listing on a read-write volume, with the listing its
    /// readdir calls walk, taken at its first readdir (and again at a rewind).
    Dir(Option<Arc<[DirEntry]>>),
    /// A staged file opened for writing (its bytes are in the staging area).
    Staged,
    /// A committed entry's file opened for writing: the bytes written are compared with
    /// (or merged into) the entry when the file is closed.
    Session {
        entry: EntryId,
        role: Role,
        data: Vec<u8>,
    },
}

/// An image file open for reading.
pub(super) struct ReadHandle {
    /// The tree inode read: the one opened, or the one now at the path of an inode a
    /// commit had replaced when the kernel opened it.
    pub(super) ino: Ino,
    /// Its attributes when opened: what `fstat` of the handle says, whatever happens to
    /// the inode.
    pub(super) attr: Attr,
    /// Its bytes, copied before an update that might remove them from the image.
    pub(super) snapshot: Option<Arc<[u8]>>,
}

impl ReadHandle {
    /// What `fstat` of the handle says.
    pub(super) fn attr(&self) -> Attr {
        let mut a = self.attr;
        if let Some(bytes) = &self.snapshot {
            a.size = bytes.len() as u64;
        }
        a
    }
}

impl Handles {
    /// Registers `handle`; returns its number.
    pub(super) fn add(&mut self, handle: OpenHandle) -> u64 {
        self.last += 1;
        self.open.insert(self.last, handle);
        self.last
    }

    pub(super) fn get(&self, fh: u64) -> Option<&OpenHandle> {
        self.open.get(&fh)
    }

    pub(super) fn get_mut(&mut self, fh: u64) -> Option<&mut OpenHandle> {
        self.open.get_mut(&fh)
    }

    pub(super) fn remove(&mut self, fh: u64) -> Option<OpenHandle> {
        self.open.remove(&fh)
    }

    /// The image file open for reading as `fh`, if that is what it is.
    pub(super) fn reading(&self, fh: u64) -> Option<&ReadHandle> {
        match self.open.get(&fh) {
            Some(OpenHandle::Read(h)) => Some(h),
            _ => None,
        }
    }

    /// The bytes open write sessions hold.
    pub(super) fn session_bytes(&self) -> u64 {
        self.open
            .values()
            .map(|h| match h {
                OpenHandle::Session { data, .. } => data.len() as u64,
                _ => 0,
            })
            .sum()
    }
}

impl Volume {
    /// The handle table; held only for map lookups and updates, never across I/O (but
    /// the copies of [`Volume::preserve_open_files`], under the state's write lock).
    pub(super) fn handles(&self) -> MutexGuard<'_, Handles> {
        self.handles.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies every open image file of at most [`SNAPSHOT_MAX`] bytes not copied yet,
    /// before an update changes the image: called with the state's write lock held, so
    /// no commit can come between the copy and what it preserves.
    pub(super) fn preserve_open_files(&self, st: &State) {
        let mut handles = self.handles();
        // One copy per file, however many descriptors have it open.
        let mut copies: HashMap<Ino, Arc<[u8]>> = HashMap::new();
        for h in handles.open.values_mut() {
            let OpenHandle::Read(h) = h else { continue };
            if h.snapshot.is_some() {
                continue;
            }
            if let Some(bytes) = copies.get(&h.ino) {
                h.snapshot = Some(bytes.clone());
                continue;
            }
            let Ok(a) = st.tree.attr(h.ino) else { continue };
            if a.size > SNAPSHOT_MAX {
                continue;
            }
            let mut buf = vec![0; a.size as usize];
            match st.tree.read(h.ino, 0, &mut buf) {
                Ok(n) => {
                    buf.truncate(n);
                    let bytes: Arc<[u8]> = buf.into();
                    copies.insert(h.ino, bytes.clone());
                    h.snapshot = Some(bytes);
                }
                // Left to the inode: it reads on if the update keeps it.
                Err(e) => log::debug!("cannot keep open inode {} readable: {e}", h.ino),
            }
        }
    }
}
