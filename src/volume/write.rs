//! The volume's write side: creating, writing, closing and removing what users drop into
//! `/cosign`, each under a turn of the state of its own. What a close commits is in
//! `commit.rs`; what a name's role is, in `roles.rs`.

use super::handles::OpenHandle;
use super::roles;
use super::staging::{EntryId, Group, GroupState, Refusal, StagedDir, StagedFile, TopGroup};
use super::view::Node;
use super::{now, Opened, Volume};
use crate::tree::{Attr, Ino, TreeError};

/// Requests a volume never takes anywhere: EPERM where changes are taken, EROFS on a
/// read-only volume (the man page, ATTACHING).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// `mknod`: regular files come through create; devices, FIFOs and sockets are never
    /// staged.
    Node,
    /// `symlink`: a link dropped into /cosign could point anywhere; entries hold only
    /// bytes.
    Symlink,
    /// `rename`: entry names are the image's, and staged names decide roles.
    Rename,
    /// `link`: a second name for a file would give it a second role.
    HardLink,
    /// An open with O_TRUNC but without write access.
    TruncateReadOnly,
}

impl Volume {
    /// The error for a request of kind `op`.
    pub fn refuse(&self, op: Refused) -> TreeError {
        if !self.writable {
            return TreeError::ReadOnly;
        }
        let what = match op {
            Refused::Node => "device files, FIFOs and sockets are not taken",
            Refused::Symlink => "symbolic links are not taken",
            Refused::Rename => "names under cosign/ are not renamed",
            Refused::HardLink => "hard links are not taken",
            Refused::TruncateReadOnly => "O_TRUNC needs the file opened for writing",
        };
        TreeError::Denied(what.to_string().into())
    }

    fn check_writable(&self) -> Result<(), TreeError> {
        if self.writable {
            Ok(())
        } else {
            Err(TreeError::ReadOnly)
        }
    }

    /// The write half of [`Volume::open_file`]: a staged file, or a committed entry's
    /// file (a write session, compared with or merged into the entry at close).
    pub(super) fn open_for_writing(&self, ino: Ino, truncate: bool) -> Result<Opened, TreeError> {
        self.check_writable()?;
        let max = self.limits.file;
        let mut st = self.state_mut();
        let handle = match st.node(ino)? {
            Node::Staged(_) => {
                let file = st.staging.files.get_mut(&ino).expect("node() found it");
                if truncate {
                    file.data.clear();
                    file.refused = None;
                }
                file.complete = false;
                file.opens += 1;
                file.mtime = now();
                OpenHandle::Staged
            }
            Node::Tree => {
                st.tree.check_file(ino)?;
                if let Some(refused) = st.summary_refusal(ino) {
                    return Err(refused);
                }
                let Some(&(entry, role)) = st.entry_files.get(&ino) else {
                    return Err(TreeError::ReadOnly);
                };
                let size = st.tree.attr(ino)?.size;
                let data = if truncate {
                    Vec::new()
                } else if size > max {
                    return Err(st.too_large(ino, max));
                } else {
                    self.limits.check_total(&st, &self.handles(), ino, size)?;
                    let mut buf = vec![0; size as usize];
                    let n = st.tree.read(ino, 0, &mut buf)?;
                    buf.truncate(n);
                    buf
                };
                OpenHandle::Session { entry, role, data }
            }
            Node::Error(_) => {
                return Err(TreeError::Denied(
                    format!("{}: the error file is written by sifmount", st.path_of(ino)).into(),
                ))
            }
            Node::StagedDir(_) => return Err(TreeError::IsDir(ino)),
            Node::Alias(_) => return Err(TreeError::NotFile(ino)),
        };
        Ok(Opened {
            fh: self.handles().add(handle),
            cacheable: false,
        })
    }

    /// Writes `data` at `offset` through handle `fh`.
    pub fn write_at(
        &self,
        ino: Ino,
        fh: u64,
        offset: u64,
        data: &[u8],
    ) -> Result<usize, TreeError> {
        self.check_writable()?;
        let max = self.limits.file;
        let mut st = self.state_mut();
        let mut handles = self.handles();
        let end = offset.saturating_add(data.len() as u64);
        let held = match handles.get(fh) {
            Some(OpenHandle::Session { data, .. }) => data.len() as u64,
            Some(OpenHandle::Staged) => st
                .staging
                .files
                .get(&ino)
                .map_or(0, |f| f.data.len() as u64),
            _ => 0,
        };
        let refused = if end > max {
            let e = st.too_large(ino, max);
            log::warn!("{e}");
            Err(e)
        } else {
            self.limits
                .check_total(&st, &handles, ino, end.saturating_sub(held))
        };
        if let Err(e) = refused {
            if let Some(OpenHandle::Staged) = handles.get(fh) {
                if let Some(f) = st.staging.files.get_mut(&ino) {
                    f.refused = Some(Refusal::of(&e));
                    let group = f.group.clone();
                    st.set_state(&group, GroupState::Failed(e.to_string()));
                }
            }
            return Err(e);
        }
        let buffer = match handles.get_mut(fh) {
            Some(OpenHandle::Session { data, .. }) => data,
            Some(OpenHandle::Staged) => match st.staging.files.get_mut(&ino) {
                Some(f) => {
                    f.mtime = now();
                    &mut f.data
                }
                None => return Err(TreeError::NoInode(ino)),
            },
            _ => return Err(TreeError::ReadOnly),
        };
        let start = offset as usize;
        if buffer.len() < start + data.len() {
            buffer.resize(start + data.len(), 0);
        }
        buffer[start..start + data.len()].copy_from_slice(data);
        Ok(data.len())
    }

    /// `close(2)` of a handle: where a drop commits, or says why it cannot.
    pub fn flush(&self, ino: Ino, fh: u64) -> Result<(), TreeError> {
        // Readers' closes change nothing: they must not wait for the write lock.
        let writes = |h: Option<&OpenHandle>| {
            matches!(h, Some(OpenHandle::Staged | OpenHandle::Session { .. }))
        };
        if fh == 0 || !writes(self.handles().get(fh)) {
            return Ok(());
        }
        let mut st = self.state_mut();
        // Either may change the image, and what readers have open must outlive that.
        self.preserve_open_files(&st);
        let session = match self.handles().get(fh) {
            Some(OpenHandle::Staged) => None,
            Some(OpenHandle::Session { entry, role, data }) => Some((*entry, *role, data.clone())),
            _ => return Ok(()),
        };
        let result = match session {
            None => st.flush_staged(ino),
            Some((entry, role, data)) => st.write_to_entry(entry, role, data),
        };
        if let Err(e) = &result {
            log::warn!("{e}");
        }
        result
    }

    /// The last close of a handle.
    pub fn release(&self, ino: Ino, fh: u64) {
        if fh == 0 {
            return;
        }
        let removed = self.handles().remove(fh);
        if let Some(OpenHandle::Staged) = removed {
            self.state_mut().closed(ino);
        }
    }

    /// A new file in `/cosign` or in an entry directory, opened for writing.
    pub fn create(&self, parent: Ino, name: &[u8]) -> Result<(Attr, u64), TreeError> {
        self.check_writable()?;
        let mut st = self.state_mut();
        let name = st.new_name(parent, name)?;
        let (group, role) = st.place_for_file(parent, &name)?;
        self.limits.check_count(&st, parent, &name)?;
        let ino = st.table.fresh();
        if let Group::Sign(name) = &group {
            st.new_sign_request(name);
        }
        if let Group::Top(base) = &group {
            if !st.staging.top.contains_key(base) {
                let error_ino = st.table.fresh();
                st.staging.top.insert(
                    base.clone(),
                    TopGroup {
                        state: GroupState::Pending,
                        error_ino,
                    },
                );
            }
        }
        st.staging.files.insert(
            ino,
            StagedFile {
                name,
                parent,
                group,
                role,
                data: Vec::new(),
                complete: false,
                listed: true,
                opens: 1,
                mtime: now(),
                refused: None,
            },
        );
        let fh = self.handles().add(OpenHandle::Staged);
        Ok((st.attr(ino, true)?, fh))
    }

    /// A new entry directory in `/cosign`.
    pub fn mkdir(&self, parent: Ino, name: &[u8]) -> Result<Attr, TreeError> {
        self.check_writable()?;
        let mut st = self.state_mut();
        if Some(parent) != st.tree.cosign_dir() {
            return Err(match st.node(parent)? {
                Node::StagedDir(_) if st.is_sign_dir(parent) => {
                    st.denied(parent, "signing requests are files")
                }
                Node::StagedDir(_) => st.denied(parent, "an entry holds files, not directories"),
                Node::Tree if st.tree.cosign_entry(parent).is_some() => {
                    st.denied(parent, "an entry holds files, not directories")
                }
                _ => TreeError::ReadOnly,
            });
        }
        let name = st.new_name(parent, name)?;
        roles::check_dir_name(&name)
            .map_err(|reason| TreeError::Rejected(format!("cosign/{name}: {reason}").into()))?;
        self.limits.check_count(&st, parent, &name)?;
        let ino = st.table.fresh();
        let error_ino = st.table.fresh();
        st.staging.dirs.insert(
            ino,
            StagedDir {
                name,
                state: GroupState::Pending,
                error_ino,
                mtime: now(),
            },
        );
        st.attr(ino, true)
    }

    /// Removes a staged file, an alias, or (hides) a committed entry's file until the
    /// `rmdir` of its entry.
    pub fn unlink(&self, parent: Ino, name: &[u8]) -> Result<(), TreeError> {
        self.check_writable()?;
        let mut st = self.state_mut();
        let child = st.lookup(parent, name)?;
        let name = String::from_utf8_lossy(name).into_owned();
        match st.node(child)? {
            Node::Staged(_) => {
                let f = st.staging.files.get_mut(&child).expect("node() found it");
                f.listed = false;
                let group = f.group.clone();
                st.closed(child);
                st.forget_group_if_empty(&group);
                Ok(())
            }
            Node::Error(_) => {
                // Removing the error file acknowledges it: the files stay, pending.
                match st.group_of_error(child) {
                    Some(Group::Copy(own)) => st.forget_copy(own),
                    Some(g) => st.set_state(&g, GroupState::Pending),
                    None => {}
                }
                Ok(())
            }
            Node::Alias(_) => {
                st.staging.aliases.remove(&name);
                // Once none of a group's names is left, the name is free for a new drop.
                if let Ok((base, _)) = roles::top_level_role(&name) {
                    let still_named = st
                        .staging
                        .aliases
                        .keys()
                        .any(|n| roles::top_level_role(n).is_ok_and(|(b, _)| b == base));
                    if !still_named {
                        st.staging.top.remove(&base);
                    }
                }
                Ok(())
            }
            Node::StagedDir(_) => Err(TreeError::IsDir(child)),
            Node::Tree => {
                if st.tree.entries(child).is_ok() {
                    return Err(TreeError::IsDir(child));
                }
                // A staged directory holds staged files only: a tree file is in an entry's.
                match st.tree.cosign_entry(parent).map(EntryId::of) {
                    Some(entry) => {
                        st.staging.hidden.entry(entry).or_default().insert(name);
                        Ok(())
                    }
                    None => Err(st.summary_refusal(child).unwrap_or(TreeError::ReadOnly)),
                }
            }
        }
    }

    /// Removes an empty staged directory, or a committed entry once its files have been
    /// unlinked: the signature layer goes, with the same update algorithm.
    pub fn rmdir(&self, parent: Ino, name: &[u8]) -> Result<(), TreeError> {
        self.check_writable()?;
        let mut st = self.state_mut();
        let child = st.lookup(parent, name)?;
        // Removing a signature changes the image, and what readers have open must
        // outlive that.
        self.preserve_open_files(&st);
        match st.node(child)? {
            Node::StagedDir(_) if st.is_sign_dir(child) => {
                Err(st.denied(child, "the signing directory is the mount's own"))
            }
            Node::StagedDir(d) => {
                if !st.entries(child)?.is_empty() {
                    return Err(TreeError::NotEmpty(child));
                }
                // A committed directory stands for its entry: `rm -r` of it removes the
                // signature, as it does under the entry's own name.
                if let GroupState::Committed(id) = d.state {
                    if st.resolve(id).is_some() {
                        let result = st.remove_entry(id);
                        if let Err(e) = &result {
                            log::warn!("{e}");
                            return result;
                        }
                    }
                }
                st.staging.dirs.remove(&child);
                Ok(())
            }
            Node::Tree => {
                let Some(entry) = st.tree.cosign_entry(child).map(EntryId::of) else {
                    return Err(if st.tree.entries(child).is_ok() {
                        TreeError::ReadOnly
                    } else {
                        TreeError::NotDir(child)
                    });
                };
                if !st.entries(child)?.is_empty() {
                    return Err(TreeError::NotEmpty(child));
                }
                let result = st.remove_entry(entry);
                if let Err(e) = &result {
                    log::warn!("{e}");
                }
                result
            }
            _ => Err(TreeError::NotDir(child)),
        }
    }

    /// `chmod`, `chown`, `utimes` and `truncate`. Sizes change only on staged files and
    /// open write handles; the rest is accepted and ignored where users may write (so
    /// `cp -p` and `cp -r` work), EROFS elsewhere.
    pub fn setattr(&self, ino: Ino, size: Option<u64>, fh: Option<u64>) -> Result<Attr, TreeError> {
        self.check_writable()?;
        let max = self.limits.file;
        let mut st = self.state_mut();
        if let Some(size) = size {
            if size > max {
                return Err(st.too_large(ino, max));
            }
            let mut handles = self.handles();
            let held = match fh.and_then(|fh| handles.get(fh)) {
                Some(OpenHandle::Session { data, .. }) => Some(data.len() as u64),
                _ => st.staging.files.get(&ino).map(|f| f.data.len() as u64),
            };
            if let Some(held) = held {
                self.limits
                    .check_total(&st, &handles, ino, size.saturating_sub(held))?;
            }
            if let Some(OpenHandle::Session { data, .. }) = fh.and_then(|fh| handles.get_mut(fh)) {
                data.resize(size as usize, 0);
                let mut a = st.attr(ino, true)?;
                a.size = size;
                return Ok(a);
            }
        }
        match st.node(ino)? {
            Node::Staged(_) => {
                if let Some(size) = size {
                    let f = st.staging.files.get_mut(&ino).expect("node() found it");
                    f.data.resize(size as usize, 0);
                    f.mtime = now();
                    if size == 0 {
                        f.refused = None;
                    }
                }
            }
            Node::Tree => {
                let in_cosign = Some(ino) == st.tree.cosign_dir()
                    || st.tree.cosign_entry(ino).is_some()
                    || st.entry_files.contains_key(&ino);
                if !in_cosign {
                    return Err(st.summary_refusal(ino).unwrap_or(TreeError::ReadOnly));
                }
                if let Some(size) = size {
                    if size != st.tree.attr(ino)?.size {
                        return Err(st.denied(ino, "a committed file cannot change"));
                    }
                }
            }
            Node::StagedDir(_) | Node::Alias(_) | Node::Error(_) => {}
        }
        st.attr(ino, true)
    }
}
