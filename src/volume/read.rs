//! The volume's read side: attributes, lookups, listings and reads, each under one shared
//! turn of the state. A read-only volume reads straight from the tree.

use std::sync::Arc;

use super::handles::{OpenHandle, ReadHandle};
use super::view::Node;
use super::{Opened, State, Volume};
use crate::tree::{Attr, DirEntry, FsStats, Ino, Kind, TreeError};

impl Volume {
    /// The attributes of `ino`.
    pub fn attr(&self, ino: Ino) -> Result<Attr, TreeError> {
        self.state().attr(ino, self.writable)
    }

    /// `getattr`: the attributes of `ino`, or, through `fh`, of what that handle reads.
    /// On a read-write volume an inode a commit replaced (the kernel can ask between a
    /// lookup and the open or stat it was for, or `fstat` a file it opened before) shows
    /// what opening it would read ([`Volume::open_file`]): the handle's file, else the
    /// file now at the same path. Its number stays the one asked about.
    pub fn attr_for(&self, ino: Ino, fh: Option<u64>) -> Result<Attr, TreeError> {
        let st = self.state();
        if let Some(fh) = fh {
            if let Some(h) = self.handles().reading(fh) {
                let mut a = h.attr();
                a.ino = ino;
                return Ok(a);
            }
        }
        match st.attr(ino, self.writable) {
            Err(TreeError::NoInode(_)) => {
                let mut a = st.replaced(ino).ok_or(TreeError::NoInode(ino))?;
                a.ino = ino;
                Ok(a)
            }
            r => r,
        }
    }

    /// Whether the kernel may cache `ino`'s attributes for long: true of every file of
    /// the image's tree (an inode never changes content), false of what can change.
    pub fn stable(&self, ino: Ino) -> bool {
        let st = self.state();
        st.tree.contains(ino) && st.tree.attr(ino).is_ok_and(|a| a.kind == Kind::File)
    }

    /// Whether changes to `ino` can ever be accepted (what `access(W_OK)` answers):
    /// `/cosign`, its entries and what is staged there, on a read-write volume.
    pub fn may_write(&self, ino: Ino) -> bool {
        if !self.writable {
            return false;
        }
        let st = self.state();
        match st.node(ino) {
            Ok(Node::Tree) => {
                Some(ino) == st.tree.cosign_dir()
                    || st.tree.cosign_entry(ino).is_some()
                    || st.entry_files.contains_key(&ino)
            }
            Ok(Node::Staged(_) | Node::StagedDir(_)) => true,
            _ => false,
        }
    }

    /// `access`: whether `ino` exists and, with `write`, whether it can ever take changes
    /// (only `/cosign` of a read-write volume does; EROFS elsewhere).
    pub fn access(&self, ino: Ino, write: bool) -> Result<(), TreeError> {
        if write && !self.may_write(ino) {
            return Err(TreeError::ReadOnly);
        }
        self.attr(ino).map(|_| ())
    }

    pub fn lookup(&self, parent: Ino, name: &[u8]) -> Result<Attr, TreeError> {
        let st = self.state();
        let child = st.lookup(parent, name)?;
        st.attr(child, self.writable)
    }

    /// Checks that `ino` is a directory (what `opendir` needs), without listing it.
    pub fn check_dir(&self, ino: Ino) -> Result<(), TreeError> {
        self.state().parent(ino).map(|_| ())
    }

    /// `opendir`: checks that `ino` is a directory (and not opened for writing) and, on a
    /// read-write volume, gives the handle its listing will be kept in
    /// ([`Volume::list_from`]); 0 on a read-only one.
    pub fn open_dir(&self, ino: Ino, write: bool) -> Result<u64, TreeError> {
        let st = self.state();
        st.parent(ino)?;
        if write {
            return Err(TreeError::IsDir(ino));
        }
        if !self.writable {
            return Ok(0);
        }
        Ok(self.handles().add(OpenHandle::Dir(None)))
    }

    /// `releasedir`: forgets the listing kept for `fh`.
    pub fn release_dir(&self, fh: u64) {
        if fh != 0 {
            self.handles().remove(fh);
        }
    }

    /// Every entry of directory `ino`, sorted by name.
    pub fn entries(&self, ino: Ino) -> Result<Vec<DirEntry>, TreeError> {
        self.state().entries(ino)
    }

    /// Whether the kernel may remember for long that `name` in `parent` is the inode a
    /// lookup gave: for names that cannot come to mean another inode, whoever changes the
    /// image (a read-only volume follows other writers' changes) (digests under /blobs, images under /images,
    /// the root's directories), so that path walks do not ask again at every component.
    pub fn name_is_stable(&self, parent: Ino, name: &[u8], kind: Kind) -> bool {
        self.state().name_is_stable(parent, name, kind)
    }

    /// `.`, `..` and the entries of directory `ino` from position `offset`, each with its
    /// attributes and whether its name is stable ([`Volume::name_is_stable`]), given to
    /// `add` (which returns true when its reply is full), all under one read of the
    /// state: no copy of a 10,000-entry directory per reply, and no second lock taken
    /// while the first is held.
    ///
    /// Through a handle of a read-write volume ([`Volume::open_dir`]) the positions are
    /// those of the listing taken at the first call (offset 0): a listing takes several
    /// calls, and commits between them insert and remove names, which would shift
    /// positions and make a name that was there all along show twice or not at all. What
    /// changed since is looked up again by name: a replaced inode shows as the current
    /// one, a removed name not at all.
    pub fn list_from(
        &self,
        ino: Ino,
        fh: u64,
        offset: u64,
        mut add: impl FnMut(&DirEntry, u64, &Attr, bool) -> bool,
    ) -> Result<(), TreeError> {
        let st = self.state();
        let parent = st.parent(ino)?;
        let kept = if fh != 0 {
            let mut handles = self.handles();
            match handles.get_mut(fh) {
                Some(OpenHandle::Dir(Some(listing))) if offset != 0 => Some(listing.clone()),
                Some(OpenHandle::Dir(slot)) => {
                    let listing: Arc<[DirEntry]> = match st.node(ino)? {
                        Node::Tree if !st.lists_more_than_the_tree(ino) => {
                            st.tree.entries(ino)?.into()
                        }
                        _ => st.entries(ino)?.into(),
                    };
                    *slot = Some(listing.clone());
                    Some(listing)
                }
                _ => None,
            }
        } else {
            None
        };
        let merged;
        let entries: &[DirEntry] = match &kept {
            Some(listing) => listing,
            None => match st.node(ino)? {
                Node::Tree if !st.lists_more_than_the_tree(ino) => st.tree.entries(ino)?,
                _ => {
                    merged = st.entries(ino)?;
                    &merged
                }
            },
        };
        let writable = self.writable;
        let dots = [(ino, "."), (parent, "..")];
        for pos in offset..entries.len() as u64 + 2 {
            let dot;
            let e = match pos {
                0 | 1 => {
                    dot = DirEntry {
                        name: dots[pos as usize].1.to_string(),
                        ino: dots[pos as usize].0,
                        kind: Kind::Dir,
                    };
                    &dot
                }
                _ => &entries[(pos - 2) as usize],
            };
            let current;
            let (e, attr) = match st.attr(e.ino, writable) {
                Ok(attr) => (e, attr),
                Err(_) if kept.is_some() => match st
                    .lookup(ino, e.name.as_bytes())
                    .and_then(|i| st.attr(i, writable))
                {
                    Ok(attr) => {
                        current = DirEntry {
                            name: e.name.clone(),
                            ino: attr.ino,
                            kind: attr.kind,
                        };
                        (&current, attr)
                    }
                    Err(_) => continue,
                },
                Err(e) => return Err(e),
            };
            let stable = st.name_is_stable(ino, e.name.as_bytes(), e.kind);
            if add(e, pos + 1, &attr, stable) {
                break;
            }
        }
        Ok(())
    }

    pub fn readlink(&self, ino: Ino) -> Result<String, TreeError> {
        let st = self.state();
        match st.node(ino)? {
            Node::Alias(alias) => st.alias_target(alias),
            Node::Tree => st.tree.readlink(ino).map(str::to_string),
            _ => Err(TreeError::NotSymlink(ino)),
        }
    }

    pub fn stats(&self) -> FsStats {
        self.state().tree.stats()
    }

    /// Opens for reading an inode a commit replaced after the kernel looked its name up
    /// (lookup and open are separate requests, and `/index.json` gets a new inode with
    /// every attach): opens the file now at the same path instead, as an open just after
    /// the commit would have, served past the page cache since the size the kernel has
    /// for the old inode is not this file's. ENOENT when nothing is at that path now.
    fn open_replaced(&self, st: &State, ino: Ino) -> Result<Opened, TreeError> {
        let current = st.replaced(ino).ok_or(TreeError::NoInode(ino))?;
        let fh = self.handles().add(OpenHandle::Read(ReadHandle {
            ino: current.ino,
            attr: current,
            snapshot: None,
        }));
        Ok(Opened {
            fh,
            cacheable: false,
        })
    }

    /// Opens a file; `write` and `truncate` as the open flags say.
    pub fn open_file(&self, ino: Ino, write: bool, truncate: bool) -> Result<Opened, TreeError> {
        if write {
            return self.open_for_writing(ino, truncate);
        }
        if truncate {
            // O_TRUNC without write access: nothing may be truncated through it.
            return Err(self.refuse(super::Refused::TruncateReadOnly));
        }
        let st = self.state();
        let node = match st.node(ino) {
            // A commit, or another writer's change this volume follows, replaced it.
            Err(TreeError::NoInode(_)) => {
                return self.open_replaced(&st, ino);
            }
            node => node?,
        };
        match node {
            // A read-only volume's tree can change only by following another writer,
            // and an inode keeps what it holds while in the tree: no handle needed.
            Node::Tree if !self.writable => st.tree.check_file(ino).map(|()| Opened {
                fh: 0,
                cacheable: true,
            }),
            Node::Tree => {
                st.tree.check_file(ino)?;
                // Registered under the state's lock: no commit can come between the
                // check and the handle, and the next one sees the handle.
                let attr = st.tree.attr(ino)?;
                let fh = self.handles().add(OpenHandle::Read(ReadHandle {
                    ino,
                    attr,
                    snapshot: None,
                }));
                Ok(Opened {
                    fh,
                    cacheable: true,
                })
            }
            Node::Staged(_) | Node::Error(_) => Ok(Opened {
                fh: 0,
                cacheable: false,
            }),
            Node::StagedDir(_) => Err(TreeError::IsDir(ino)),
            Node::Alias(_) => Err(TreeError::NotFile(ino)),
        }
    }

    /// `read`: up to `size` bytes of `ino` from `offset`, through handle `fh`, into `out`
    /// (cleared first), in one turn of the state. When the image changed under the read
    /// (another writer), the volume follows the change and reads again from where the
    /// object is now; an object no longer in the image is ESTALE, one whose bytes are
    /// still not its own EIO.
    pub fn read(
        &self,
        ino: Ino,
        fh: u64,
        offset: u64,
        size: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), TreeError> {
        match self.read_once(ino, fh, offset, size, out) {
            // Not its bytes: another program may be half-way through an update, which a
            // new look at the image may show complete.
            Err(TreeError::Changed(why) | TreeError::NotItsBytes(why)) => {
                log::info!("{why}; reading the image again");
                if let Err(e) = self.follow_image() {
                    log::warn!("the image changed, but cannot be read again: {e}");
                }
                self.read_once(ino, fh, offset, size, out)
            }
            r => r,
        }
    }

    /// [`Volume::read`] into a buffer of the caller's; returns the count.
    pub fn read_at(
        &self,
        ino: Ino,
        fh: u64,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, TreeError> {
        let mut out = Vec::new();
        self.read(ino, fh, offset, buf.len(), &mut out)?;
        buf[..out.len()].copy_from_slice(&out);
        Ok(out.len())
    }

    fn read_once(
        &self,
        ino: Ino,
        fh: u64,
        offset: u64,
        size: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), TreeError> {
        out.clear();
        let st = self.state();
        let gone = |what: &str| {
            TreeError::Stale(
                format!(
                    "{}: inode {ino}, open for reading, {what}",
                    st.path.display()
                )
                .into(),
            )
        };
        if !self.writable && fh == 0 {
            // Straight to the tree: nothing is staged and nothing was opened with a
            // handle. Opened before the image changed, and what it held is no longer in
            // it: stale.
            return match read_tree(&st, ino, offset, size, out) {
                Err(TreeError::NoInode(_)) => Err(gone("is no longer in the image")),
                r => r,
            };
        }
        if fh != 0 {
            let handles = self.handles();
            match handles.get(fh) {
                Some(OpenHandle::Read(h)) => {
                    if let Some(bytes) = &h.snapshot {
                        copy_out(bytes, offset, size, out);
                        return Ok(());
                    }
                    let tree_ino = h.ino;
                    drop(handles);
                    return match read_tree(&st, tree_ino, offset, size, out) {
                        // Larger than a snapshot, and removed by an update since it was
                        // opened.
                        Err(TreeError::NoInode(_)) => Err(gone("was removed from the image")),
                        r => r,
                    };
                }
                Some(OpenHandle::Session { data, .. }) => {
                    copy_out(data, offset, size, out);
                    return Ok(());
                }
                _ => {}
            }
        }
        let node = match st.node(ino) {
            // Opened before the image changed, and what it held is no longer in it.
            Err(TreeError::NoInode(_)) => return Err(gone("is no longer in the image")),
            node => node?,
        };
        match node {
            Node::Tree => read_tree(&st, ino, offset, size, out),
            Node::Staged(f) => {
                copy_out(&f.data, offset, size, out);
                Ok(())
            }
            Node::Error(text) => {
                copy_out(text.as_bytes(), offset, size, out);
                Ok(())
            }
            Node::StagedDir(_) => Err(TreeError::IsDir(ino)),
            Node::Alias(_) => Err(TreeError::NotFile(ino)),
        }
    }
}

/// Up to `size` bytes of tree file `ino` from `offset`, into `out`, sized by the file so
/// that a read past its end allocates nothing.
fn read_tree(
    st: &State,
    ino: Ino,
    offset: u64,
    size: usize,
    out: &mut Vec<u8>,
) -> Result<(), TreeError> {
    let len = st.tree.attr(ino)?.size;
    let want = len.saturating_sub(offset).min(size as u64) as usize;
    out.resize(want, 0);
    let n = st.tree.read(ino, offset, out)?;
    out.truncate(n);
    Ok(())
}

/// Up to `size` bytes of `data` from `offset`, appended to `out`.
fn copy_out(data: &[u8], offset: u64, size: usize, out: &mut Vec<u8>) {
    let start = usize::try_from(offset).map_or(data.len(), |o| o.min(data.len()));
    let end = start + (data.len() - start).min(size);
    out.extend_from_slice(&data[start..end]);
}
