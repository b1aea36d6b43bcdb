//! The staging model: what users have dropped into `/cosign` and not yet committed, how
//! files group into entries, and how far each group has come (pending, refused with a
//! reason, committed). Which role a file has comes from its name (`roles.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::roles::Role;
use super::State;
use crate::cosign::{self, DropFiles, EntryKind};
use crate::sif::Digest;
use crate::tree::{Ino, TreeError};

/// Which committed layer a staged file, alias or hidden name is about. Entry names are
/// positional and can change (a removal renumbers), this cannot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct EntryId {
    pub(super) kind: EntryKind,
    pub(super) target: Digest,
    pub(super) payload: Digest,
}

impl EntryId {
    pub(super) fn of(e: &cosign::Entry) -> EntryId {
        EntryId {
            kind: e.kind,
            target: e.target,
            payload: e.layer.digest,
        }
    }
}

/// The entry a staged file belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Group {
    /// Files directly in `/cosign` sharing a base name (`X`, `X.sig`, …).
    Top(String),
    /// A directory made in `/cosign`.
    Dir(Ino),
    /// A committed entry's directory, written to after the fact.
    Entry(EntryId),
    /// Files written into a committed entry's directory that are not that entry: a copy
    /// of another entry under a name that is taken (`copy.rs`).
    Copy(EntryId),
    /// A signing request: one file in `/cosign/sign/`, by name (`sign.rs`).
    Sign(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum GroupState {
    Pending,
    /// Refused, with the reason shown in its `error` file.
    Failed(String),
    Committed(EntryId),
}

pub(super) struct StagedFile {
    pub(super) name: String,
    /// The directory it was created in.
    pub(super) parent: Ino,
    pub(super) group: Group,
    pub(super) role: Role,
    pub(super) data: Vec<u8>,
    /// Closed since it was last opened for writing: only complete files count.
    pub(super) complete: bool,
    /// Shown in its directory. Committed files are replaced by the entry (and aliases);
    /// they live on only while open.
    pub(super) listed: bool,
    pub(super) opens: u32,
    pub(super) mtime: i64,
    /// Why a write was refused (over a size limit): the file cannot commit until it is
    /// rewritten, since what it holds is not what the user wrote.
    pub(super) refused: Option<Refusal>,
}

/// Why a staged file lost a write.
#[derive(Clone, Debug)]
pub(super) enum Refusal {
    /// Over the limit for one file (EFBIG).
    TooLarge(String),
    /// Over the limit for everything staged (ENOSPC).
    NoSpace(String),
}

impl Refusal {
    pub(super) fn of(e: &TreeError) -> Refusal {
        match e {
            TreeError::NoSpace(m) => Refusal::NoSpace(m.to_string()),
            other => Refusal::TooLarge(other.to_string()),
        }
    }

    pub(super) fn reason(&self) -> &str {
        match self {
            Refusal::TooLarge(m) | Refusal::NoSpace(m) => m,
        }
    }

    pub(super) fn error(&self) -> TreeError {
        match self {
            Refusal::TooLarge(m) => TreeError::TooLarge(m.clone().into()),
            Refusal::NoSpace(m) => TreeError::NoSpace(m.clone().into()),
        }
    }
}

pub(super) struct StagedDir {
    pub(super) name: String,
    pub(super) state: GroupState,
    pub(super) error_ino: Ino,
    pub(super) mtime: i64,
}

pub(super) struct TopGroup {
    pub(super) state: GroupState,
    pub(super) error_ino: Ino,
}

/// What was written into one committed entry's directory that is not that entry: the
/// files of a copy, by role, and how far it has come (`copy.rs`).
pub(super) struct CopyGroup {
    pub(super) files: HashMap<Role, Vec<u8>>,
    pub(super) state: GroupState,
    pub(super) error_ino: Ino,
}

/// A name the user gave that now stands for a committed entry (or one of its files).
pub(super) struct Alias {
    pub(super) ino: Ino,
    pub(super) entry: EntryId,
    pub(super) file: Option<&'static str>,
}

#[derive(Default)]
pub(super) struct Staging {
    pub(super) files: HashMap<Ino, StagedFile>,
    pub(super) dirs: HashMap<Ino, StagedDir>,
    pub(super) top: BTreeMap<String, TopGroup>,
    pub(super) aliases: BTreeMap<String, Alias>,
    /// Names unlinked from committed entries: `rm -r` unlinks every file before the
    /// `rmdir` that removes the signature.
    pub(super) hidden: HashMap<EntryId, BTreeSet<String>>,
    /// Copies written into committed entries' directories, by the entry whose directory
    /// it is.
    pub(super) copies: HashMap<EntryId, CopyGroup>,
    /// The payload last written into an entry's directory that was the entry's own: a
    /// copy of an entry with the same payload and another signature needs it.
    pub(super) payloads_written: HashMap<EntryId, Vec<u8>>,
    /// `/cosign/sign/`, when the volume signs (`sign.rs`): a staged directory that never
    /// commits itself, whose files are requests.
    pub(super) sign_dir: Option<Ino>,
    /// The signing requests not yet done, by file name.
    pub(super) sign_requests: HashMap<String, TopGroup>,
}

impl State {
    /// One handle of a staged file closed: an unlisted file is forgotten with its last.
    pub(super) fn closed(&mut self, ino: Ino) {
        if let Some(f) = self.staging.files.get_mut(&ino) {
            f.opens = f.opens.saturating_sub(1);
            if !f.listed && f.opens == 0 {
                self.staging.files.remove(&ino);
            }
        }
    }

    pub(super) fn state_of(&self, group: &Group) -> GroupState {
        match group {
            Group::Top(base) => self
                .staging
                .top
                .get(base)
                .map_or(GroupState::Pending, |g| g.state.clone()),
            Group::Dir(dir) => self
                .staging
                .dirs
                .get(dir)
                .map_or(GroupState::Pending, |d| d.state.clone()),
            Group::Entry(id) => GroupState::Committed(*id),
            Group::Copy(id) => self
                .staging
                .copies
                .get(id)
                .map_or(GroupState::Pending, |c| c.state.clone()),
            Group::Sign(name) => self
                .staging
                .sign_requests
                .get(name)
                .map_or(GroupState::Pending, |g| g.state.clone()),
        }
    }

    pub(super) fn set_state(&mut self, group: &Group, state: GroupState) {
        match group {
            Group::Top(base) => {
                if let Some(g) = self.staging.top.get_mut(base) {
                    g.state = state;
                }
            }
            Group::Dir(dir) => {
                if let Some(d) = self.staging.dirs.get_mut(dir) {
                    d.state = state;
                }
            }
            Group::Entry(_) => {}
            Group::Copy(id) => {
                if let Some(c) = self.staging.copies.get_mut(id) {
                    c.state = state;
                }
            }
            Group::Sign(name) => {
                if let Some(g) = self.staging.sign_requests.get_mut(name) {
                    g.state = state;
                }
            }
        }
    }

    /// A top-level group with no files and nothing committed has nothing left to say.
    pub(super) fn forget_group_if_empty(&mut self, group: &Group) {
        if let Group::Sign(name) = group {
            let has_file = self
                .staging
                .files
                .values()
                .any(|f| f.listed && &f.group == group);
            if !has_file {
                self.staging.sign_requests.remove(name);
            }
            return;
        }
        let Group::Top(base) = group else { return };
        let has_files = self
            .staging
            .files
            .values()
            .any(|f| f.listed && &f.group == group);
        let committed = matches!(
            self.staging.top.get(base).map(|g| &g.state),
            Some(GroupState::Committed(_))
        );
        if !has_files && !committed {
            self.staging.top.remove(base);
        }
    }

    /// The files of `group` that have been closed, as a drop.
    pub(super) fn gather(&self, group: &Group) -> (DropFiles, bool) {
        let mut drop = DropFiles::default();
        if let Group::Copy(id) = group {
            let files = self.staging.copies.get(id).map(|c| &c.files);
            for (role, data) in files.into_iter().flatten() {
                role.fill(&mut drop, data.clone());
            }
            return (drop.clone(), drop.payload.is_some());
        }
        let mut payload_complete = false;
        for f in self.staging.files.values() {
            if f.listed && f.complete && &f.group == group {
                if f.role == Role::Payload {
                    payload_complete = true;
                }
                f.role.fill(&mut drop, f.data.clone());
            }
        }
        (drop, payload_complete)
    }

    pub(super) fn add_alias(&mut self, name: String, entry: EntryId, file: Option<&'static str>) {
        if self.tree.cosign_entry_named(&name).is_some() {
            return;
        }
        let ino = match self.staging.aliases.get(&name) {
            Some(a) if a.entry == entry && a.file == file => return,
            _ => self.table.fresh(),
        };
        self.staging
            .aliases
            .insert(name, Alias { ino, entry, file });
    }
}
