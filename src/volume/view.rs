//! The merged view: what a path of the mount is (the image's tree, or something staged
//! under `/cosign`), its attributes, and what a directory lists. Read only: nothing here
//! changes the state.

use super::roles::{self, Role, ERROR_FILE};
use super::staging::{Alias, EntryId, Group, GroupState, StagedDir, StagedFile};
use super::{now, State};
use crate::cosign;
use crate::tree::{Attr, DirEntry, Ino, Kind, TreeError, FILE_PERM, ROOT, SYMLINK_PERM};

/// Modes of what a read-write mount lets users change.
const WRITABLE_DIR_PERM: u16 = 0o755;
const STAGED_FILE_PERM: u16 = 0o644;

/// What an inode is.
pub(super) enum Node<'a> {
    Tree,
    Staged(&'a StagedFile),
    StagedDir(&'a StagedDir),
    Alias(&'a Alias),
    Error(String),
}

impl State {
    pub(super) fn node(&self, ino: Ino) -> Result<Node<'_>, TreeError> {
        // First: staged files, directories, aliases and error files all have numbers
        // `InodeTable::fresh` gave, which no tree node ever has, and the searches below
        // are linear in what is staged (every stat in `/cosign` asks this).
        if self.tree.contains(ino) {
            return Ok(Node::Tree);
        }
        if let Some(f) = self.staging.files.get(&ino) {
            return Ok(Node::Staged(f));
        }
        if let Some(d) = self.staging.dirs.get(&ino) {
            return Ok(Node::StagedDir(d));
        }
        if let Some(a) = self.staging.aliases.values().find(|a| a.ino == ino) {
            return Ok(Node::Alias(a));
        }
        if let Some(text) = self.error_text(ino) {
            return Ok(Node::Error(text));
        }
        Err(TreeError::NoInode(ino))
    }

    pub(super) fn error_text(&self, ino: Ino) -> Option<String> {
        let state = self
            .staging
            .top
            .values()
            .find(|g| g.error_ino == ino)
            .map(|g| &g.state)
            .or_else(|| {
                self.staging
                    .dirs
                    .values()
                    .find(|d| d.error_ino == ino)
                    .map(|d| &d.state)
            })
            .or_else(|| {
                self.staging
                    .copies
                    .values()
                    .find(|c| c.error_ino == ino)
                    .map(|c| &c.state)
            })
            .or_else(|| {
                self.staging
                    .sign_requests
                    .values()
                    .find(|g| g.error_ino == ino)
                    .map(|g| &g.state)
            })?;
        match state {
            GroupState::Failed(reason) => Some(format!("{reason}\n")),
            _ => None,
        }
    }

    pub(super) fn group_of_error(&self, ino: Ino) -> Option<Group> {
        if let Some((base, _)) = self.staging.top.iter().find(|(_, g)| g.error_ino == ino) {
            return Some(Group::Top(base.clone()));
        }
        if let Some((&dir, _)) = self.staging.dirs.iter().find(|(_, d)| d.error_ino == ino) {
            return Some(Group::Dir(dir));
        }
        if let Some((name, _)) = self
            .staging
            .sign_requests
            .iter()
            .find(|(_, g)| g.error_ino == ino)
        {
            return Some(Group::Sign(name.clone()));
        }
        self.staging
            .copies
            .iter()
            .find(|(_, c)| c.error_ino == ino)
            .map(|(&own, _)| Group::Copy(own))
    }

    pub(super) fn attr(&self, ino: Ino, writable: bool) -> Result<Attr, TreeError> {
        let file = |size: usize, perm: u16, mtime: i64| Attr {
            ino,
            kind: Kind::File,
            size: size as u64,
            blocks: (size as u64).div_ceil(512),
            perm,
            nlink: 1,
            mtime,
            crtime: mtime,
        };
        Ok(match self.node(ino)? {
            Node::Tree => {
                let mut a = self.tree.attr(ino)?;
                let cosign_dir =
                    Some(ino) == self.tree.cosign_dir() || self.tree.cosign_entry(ino).is_some();
                if writable && cosign_dir {
                    a.perm = WRITABLE_DIR_PERM;
                }
                // A committed entry's files take writes that repeat or add to them (`cp -r`
                // of an entry onto itself), and the kernel checks this mode before the
                // write reaches the volume (default_permissions).
                if writable && self.entry_files.contains_key(&ino) {
                    a.perm = STAGED_FILE_PERM;
                }
                a
            }
            Node::Staged(f) => file(f.data.len(), STAGED_FILE_PERM, f.mtime),
            Node::Error(text) => file(text.len(), FILE_PERM, now()),
            Node::StagedDir(d) => Attr {
                ino,
                kind: Kind::Dir,
                size: 0,
                blocks: 0,
                perm: WRITABLE_DIR_PERM,
                nlink: 2,
                mtime: d.mtime,
                crtime: d.mtime,
            },
            Node::Alias(a) => {
                let target = self.alias_target(a)?;
                Attr {
                    ino,
                    kind: Kind::Symlink,
                    size: target.len() as u64,
                    blocks: 0,
                    perm: SYMLINK_PERM,
                    nlink: 1,
                    mtime: self.tree.attr(ROOT)?.mtime,
                    crtime: self.tree.attr(ROOT)?.crtime,
                }
            }
        })
    }

    /// The current entry (directory and description) of `id`.
    pub(super) fn resolve(&self, id: EntryId) -> Option<(Ino, &cosign::Entry)> {
        let (dir, e) = self
            .tree
            .cosign_entries()
            .get(*self.entry_index.get(&id)?)?;
        Some((*dir, e))
    }

    pub(super) fn alias_target(&self, alias: &Alias) -> Result<String, TreeError> {
        let (_, entry) = self
            .resolve(alias.entry)
            .ok_or(TreeError::NoInode(alias.ino))?;
        Ok(match alias.file {
            Some(file) => format!("{}/{file}", entry.name),
            None => entry.name.clone(),
        })
    }

    /// `..` of directory `dir` (the root is its own parent).
    pub(super) fn parent(&self, dir: Ino) -> Result<Ino, TreeError> {
        match self.node(dir)? {
            Node::StagedDir(_) => Ok(self.tree.cosign_dir().unwrap_or(ROOT)),
            Node::Tree => self.tree.parent(dir),
            _ => Err(TreeError::NotDir(dir)),
        }
    }

    /// Directories outside `/cosign` are the fixed parts of the layout (a directory's
    /// inode is its path), so their names are stable anywhere; files and links are
    /// stable where the names say what they hold.
    pub(super) fn name_is_stable(&self, parent: Ino, name: &[u8], kind: Kind) -> bool {
        if self.stable_dirs.contains(&parent) {
            return true;
        }
        if !matches!(self.node(parent), Ok(Node::Tree))
            || Some(parent) == self.tree.cosign_dir()
            || self.tree.cosign_entry(parent).is_some()
        {
            return false;
        }
        kind == Kind::Dir || (parent == ROOT && name != b"index.json")
    }

    /// Whether directory `dir` shows anything the tree alone does not (staged files,
    /// aliases, hidden names), so that its listing must be merged.
    pub(super) fn lists_more_than_the_tree(&self, dir: Ino) -> bool {
        Some(dir) == self.tree.cosign_dir()
            || self.tree.cosign_entry(dir).is_some()
            || self.staging.files.values().any(|f| f.parent == dir)
    }

    pub(super) fn entries(&self, dir: Ino) -> Result<Vec<DirEntry>, TreeError> {
        let mut out: Vec<DirEntry> = Vec::new();
        let staged_in = |out: &mut Vec<DirEntry>, dir: Ino| {
            for (&ino, f) in &self.staging.files {
                if f.listed && f.parent == dir {
                    out.push(DirEntry {
                        name: f.name.clone(),
                        ino,
                        kind: Kind::File,
                    });
                }
            }
        };
        match self.node(dir)? {
            // A committed directory keeps showing what was written into it: `cp -r`
            // creates each file with O_EXCL, after the entry may already have committed.
            Node::StagedDir(d) => match d.state {
                GroupState::Committed(_) => staged_in(&mut out, dir),
                ref state => {
                    staged_in(&mut out, dir);
                    if self.is_sign_dir(dir) {
                        for (name, g) in &self.staging.sign_requests {
                            if matches!(g.state, GroupState::Failed(_)) {
                                out.push(DirEntry {
                                    name: format!("{name}.{ERROR_FILE}"),
                                    ino: g.error_ino,
                                    kind: Kind::File,
                                });
                            }
                        }
                    } else if matches!(state, GroupState::Failed(_)) {
                        out.push(DirEntry {
                            name: ERROR_FILE.into(),
                            ino: d.error_ino,
                            kind: Kind::File,
                        });
                    }
                }
            },
            Node::Tree => {
                // First, so that a directory the user made shadows an entry of the
                // same name (the sort below is stable and the dedup keeps the first).
                if Some(dir) == self.tree.cosign_dir() {
                    self.staged_top_entries(&mut out);
                }
                if let Some(id) = self.tree.cosign_entry(dir).map(EntryId::of) {
                    out.extend(self.visible_entry_files(dir, id)?);
                    if let Some(c) = self.staging.copies.get(&id) {
                        if matches!(c.state, GroupState::Failed(_)) {
                            out.push(DirEntry {
                                name: ERROR_FILE.into(),
                                ino: c.error_ino,
                                kind: Kind::File,
                            });
                        }
                    }
                } else {
                    out.extend_from_slice(self.tree.entries(dir)?);
                }
                staged_in(&mut out, dir);
            }
            _ => return Err(TreeError::NotDir(dir)),
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|a, b| a.name == b.name);
        Ok(out)
    }

    pub(super) fn visible_entry_files(
        &self,
        dir: Ino,
        id: EntryId,
    ) -> Result<Vec<DirEntry>, TreeError> {
        let hidden = self.staging.hidden.get(&id);
        Ok(self
            .tree
            .entries(dir)?
            .iter()
            .filter(|e| !hidden.is_some_and(|h| h.contains(&e.name)))
            .cloned()
            .collect())
    }

    /// What `/cosign` shows beyond the tree: staged directories, error files, aliases.
    pub(super) fn staged_top_entries(&self, out: &mut Vec<DirEntry>) {
        for (&ino, d) in &self.staging.dirs {
            out.push(DirEntry {
                name: d.name.clone(),
                ino,
                kind: Kind::Dir,
            });
        }
        for (base, g) in &self.staging.top {
            if matches!(g.state, GroupState::Failed(_)) {
                out.push(DirEntry {
                    name: format!("{base}.{ERROR_FILE}"),
                    ino: g.error_ino,
                    kind: Kind::File,
                });
            }
        }
        for (name, a) in &self.staging.aliases {
            if self.resolve(a.entry).is_some() {
                out.push(DirEntry {
                    name: name.clone(),
                    ino: a.ino,
                    kind: Kind::Symlink,
                });
            }
        }
    }

    pub(super) fn lookup(&self, parent: Ino, name: &[u8]) -> Result<Ino, TreeError> {
        let not_found = || TreeError::NotFound {
            parent,
            name: String::from_utf8_lossy(name).into_owned(),
        };
        // Names of the image's own tree are binary searches; only what the tree does not
        // have (staged files, aliases, error files) or hides needs the merged listing.
        if let Node::Tree = self.node(parent)? {
            let shadowed = Some(parent) == self.tree.cosign_dir()
                && self
                    .staging
                    .dirs
                    .values()
                    .any(|d| d.name.as_bytes() == name);
            if let Some(a) = self.tree.lookup(parent, name).ok().filter(|_| !shadowed) {
                let hidden = self.tree.cosign_entry(parent).is_some_and(|e| {
                    self.staging
                        .hidden
                        .get(&EntryId::of(e))
                        .is_some_and(|h| h.iter().any(|n| n.as_bytes() == name))
                });
                if !hidden {
                    return Ok(a.ino);
                }
            }
            if !self.lists_more_than_the_tree(parent) {
                return Err(not_found());
            }
        }
        let name = std::str::from_utf8(name).map_err(|_| not_found())?;
        if Some(parent) == self.tree.cosign_dir() {
            // What `entries` would merge, by name, in the order its dedup prefers (the
            // tree's own names were looked up above): building and sorting the whole
            // listing for each lookup made `ls -l` of `/cosign` quadratic.
            return self.lookup_staged_top(parent, name).ok_or_else(not_found);
        }
        self.entries(parent)?
            .into_iter()
            .find(|e| e.name == name)
            .map(|e| e.ino)
            .ok_or_else(not_found)
    }

    /// The file now at the path where tree inode `ino` was, if that inode is no longer in
    /// the tree (a commit replaced it) and a file is there.
    pub(super) fn replaced(&self, ino: Ino) -> Option<Attr> {
        if self.tree.contains(ino) {
            return None;
        }
        self.table
            .path_of(ino)
            .and_then(|path| self.tree.resolve(path).ok())
            .filter(|a| a.kind == Kind::File)
    }

    /// `name` among what `/cosign` (`dir`) shows beyond the tree: a staged directory, an
    /// error file, an alias of an entry still there, a staged file; as `entries` and
    /// `staged_top_entries` list them.
    pub(super) fn lookup_staged_top(&self, dir: Ino, name: &str) -> Option<Ino> {
        if let Some((&ino, _)) = self.staging.dirs.iter().find(|(_, d)| d.name == name) {
            return Some(ino);
        }
        if let Some(base) = name.strip_suffix(&format!(".{ERROR_FILE}")) {
            if let Some(g) = self.staging.top.get(base) {
                if matches!(g.state, GroupState::Failed(_)) {
                    return Some(g.error_ino);
                }
            }
        }
        if let Some(a) = self.staging.aliases.get(name) {
            if self.resolve(a.entry).is_some() {
                return Some(a.ino);
            }
        }
        self.staging
            .files
            .iter()
            .find(|(_, f)| f.listed && f.parent == dir && f.name == name)
            .map(|(&ino, _)| ino)
    }

    /// The name for something new in `parent`, refused when taken.
    pub(super) fn new_name(&self, parent: Ino, name: &[u8]) -> Result<String, TreeError> {
        let shown = String::from_utf8_lossy(name).into_owned();
        let name = std::str::from_utf8(name).map_err(|_| {
            TreeError::Rejected(
                format!("{}/{shown}: names must be UTF-8", self.path_of(parent)).into(),
            )
        })?;
        if self.lookup(parent, name.as_bytes()).is_ok() {
            return Err(TreeError::Exists(format!(
                "{}/{name}",
                self.path_of(parent)
            )));
        }
        Ok(name.to_string())
    }

    /// The group and role a new file named `name` in `parent` gets.
    pub(super) fn place_for_file(
        &self,
        parent: Ino,
        name: &str,
    ) -> Result<(Group, Role), TreeError> {
        let rejected = |reason: String| {
            TreeError::Rejected(format!("{}/{name}: {reason}", self.path_of(parent)).into())
        };
        if Some(parent) == self.tree.cosign_dir() {
            let (base, role) = roles::top_level_role(name).map_err(rejected)?;
            return Ok((Group::Top(base), role));
        }
        let role = || roles::entry_role(name).map_err(rejected);
        match self.node(parent)? {
            Node::StagedDir(_) if self.is_sign_dir(parent) => {
                roles::top_level_role(name).map_err(rejected)?;
                Ok((Group::Sign(name.to_string()), Role::Payload))
            }
            Node::StagedDir(_) => Ok((Group::Dir(parent), role()?)),
            Node::Tree => match self.tree.cosign_entry(parent) {
                Some(e) => Ok((Group::Entry(EntryId::of(e)), role()?)),
                None => Err(TreeError::ReadOnly),
            },
            _ => Err(TreeError::NotDir(parent)),
        }
    }

    /// A readable path for messages: `cosign/<name>` for what lives there.
    pub(super) fn path_of(&self, ino: Ino) -> String {
        if Some(ino) == self.tree.cosign_dir() {
            return "cosign".into();
        }
        if let Some(e) = self.tree.cosign_entry(ino) {
            return format!("cosign/{}", e.name);
        }
        if let Some(d) = self.staging.dirs.get(&ino) {
            return format!("cosign/{}", d.name);
        }
        if let Some(f) = self.staging.files.get(&ino) {
            return format!("{}/{}", self.path_of(f.parent), f.name);
        }
        format!("inode {ino}")
    }

    /// The refusal of a change to `/cosign/SUMMARY` or `/cosign/summary.json`: EPERM,
    /// as for the error files, since sifmount writes them from the entries (the man page,
    /// THE SUMMARY); `None` for any other inode.
    pub(super) fn summary_refusal(&self, ino: Ino) -> Option<TreeError> {
        let name = self.tree.summary_name(ino)?;
        Some(TreeError::Denied(
            format!(
                "cosign/{name}: sifmount writes the summary from the entries; it is not a drop \
                 and cannot be changed or removed"
            )
            .into(),
        ))
    }

    pub(super) fn denied(&self, ino: Ino, reason: &str) -> TreeError {
        TreeError::Denied(format!("{}: {reason}", self.path_of(ino)).into())
    }

    pub(super) fn too_large(&self, ino: Ino, max: u64) -> TreeError {
        TreeError::TooLarge(
            format!(
                "{}: over the size limit of {max} bytes for staged files (-o max_staged=)",
                self.path_of(ino)
            )
            .into(),
        )
    }
}
