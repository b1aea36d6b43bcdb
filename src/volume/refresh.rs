//! Keeping the volume's view of the image true: after its own commits, and when another
//! program (SingularityCE, siftool, another mount) changed the image. A change in place is
//! followed, a rename over the image stops every write (the man page, SHARED IMAGES).

use std::path::Path;

use super::roles;
use super::staging::EntryId;
use super::State;
use crate::oci::OciSif;
use crate::sif::{changed_on_disk, OpenMode};
use crate::tree::{Because, Kind, Tree, TreeError, TreeOptions};

impl State {
    /// Refuses to write when the file is no longer what this volume last saw: writing
    /// over another program's change from an old view would corrupt both. A change in
    /// place is followed first ([`State::follow_outside_change`]), so only the update
    /// that met it fails; after a rename over the image nothing is written any more.
    pub(super) fn check_unchanged(&mut self) -> Result<(), TreeError> {
        if self.foreign_change.is_none() {
            self.foreign_change = self.not_the_held_file();
        }
        if let Some(what) = &self.foreign_change {
            return Err(TreeError::Stale(
                format!(
                    "{}: changed by another program while mounted ({what}); nothing was \
                 written, and nothing will be until it is mounted again",
                    self.path.display()
                )
                .into(),
            ));
        }
        let Some(what) =
            (self.writer.as_ref()).and_then(|w| changed_on_disk(w.sif(), self.expected_len))
        else {
            return Ok(());
        };
        let now = match self.follow_outside_change() {
            Ok(_) if self.foreign_change.is_none() => {
                "the mount now shows the image as the other program left it: do it again to \
                 apply it there"
                    .to_string()
            }
            Ok(_) => "and its path now names another file: mount it again".to_string(),
            Err(e) => format!(
                "and it cannot be read yet ({e}): do it again once the other program is done"
            ),
        };
        Err(TreeError::Stale(
            format!(
                "{}: changed by another program while this change was being made ({what}); \
             nothing was written; {now}",
                self.path.display()
            )
            .into(),
        ))
    }

    /// Shows what another program (SingularityCE, siftool) wrote to the image in place,
    /// and makes later updates start from it: the image is opened again for writing and
    /// the tree rebuilt, each object keeping its inode where it holds the same thing.
    /// Staged files stay staged. When the path now names another file, this volume stops
    /// writing instead (see [`State::check_unchanged`]). Returns whether anything changed.
    pub(super) fn follow_outside_change(&mut self) -> Result<bool, TreeError> {
        if self.foreign_change.is_some() {
            return Ok(false);
        }
        if let Some(how) = self.not_the_held_file() {
            log::warn!(
                "{}: {how}; this mount writes nothing more (mount the image again)",
                self.path.display()
            );
            self.foreign_change = Some(how);
            return Ok(false);
        }
        let behind = match &self.writer {
            Some(w) => changed_on_disk(w.sif(), self.expected_len).is_some(),
            None => false,
        };
        if !behind && !self.tree.image_changed()? {
            return Ok(false);
        }
        let writer = OciSif::open(&self.path, OpenMode::ReadWrite).map_err(|e| {
            TreeError::Stale(
                format!(
                    "{}: changed by another program, and cannot be read as it is now: {e}",
                    self.path.display()
                )
                .into(),
            )
        })?;
        let expected_len = writer.sif().file_len().map_err(|e| {
            TreeError::Update(Because::with(format!("{}: {e}", self.path.display()), e))
        })?;
        let tree = open_tree(&self.path, &self.tree_options)?;
        self.writer = Some(writer);
        self.expected_len = expected_len;
        // Opened by path: renamed over just now, the next check stops writing.
        if let Some(how) = self.not_the_held_file() {
            self.foreign_change.get_or_insert(how);
        }
        self.show(tree);
        log::warn!(
            "{}: changed by another program; the mount shows it as it is now, and writes on \
             from there",
            self.path.display()
        );
        Ok(true)
    }

    /// How the image's path and the file this volume writes are no longer the file it
    /// locked, if they are not: a rename over the image, or a reopen after a failed update
    /// that found another file at the path.
    pub(super) fn not_the_held_file(&self) -> Option<String> {
        let lock = self.lock.as_ref()?;
        if let Some(how) = lock.renamed_away(&self.path) {
            return Some(how);
        }
        let writing = self
            .writer
            .as_ref()
            .and_then(|w| w.sif().storage().identity());
        (writing != Some(lock.identity()))
            .then(|| "the file open for writing is not the one this mount locked".to_string())
    }

    /// After the image changed (durably): show it.
    pub(super) fn committed_to_image(&mut self) -> Result<(), TreeError> {
        // Renamed over between the check before the update and now: the update went to
        // a file no longer at the path. Say so rather than show the other file's tree
        // as if the update were in it.
        if let Some(how) = self.not_the_held_file() {
            let e = TreeError::Stale(
                format!(
                    "{}: changed by another program while mounted ({how}); the update was \
                 written to the file this mount holds, which no longer has that name, and \
                 nothing will be written until it is mounted again",
                    self.path.display()
                )
                .into(),
            );
            self.foreign_change = Some(how);
            return Err(e);
        }
        // The update was fsynced as it committed (src/sif/journal.rs).
        if let Some(w) = &self.writer {
            self.expected_len = w.sif().file_len().map_err(|e| {
                TreeError::Update(Because::with(format!("{}: {e}", self.path.display()), e))
            })?;
        }
        self.show(open_tree(&self.path, &self.tree_options)?);
        Ok(())
    }

    /// Replaces the tree with `tree`, a newer one of the same image, numbered so that
    /// every node that holds what it held keeps its inode.
    pub(super) fn show(&mut self, mut tree: Tree) {
        if !self.tree.is_numbered() {
            self.tree.enter_numbers(&mut self.table);
        }
        tree.renumber(&mut self.table);
        drop(std::mem::replace(&mut self.tree, tree));
        self.index_entry_files();
        release_freed_memory();
    }

    /// A failed update may leave the writer's view behind the file (the library checks
    /// before it writes, but a disk error can strike half-way): read it afresh.
    pub(super) fn reopen_writer(&mut self) {
        // Only the file this volume holds the lock on: opening another one for writing
        // would also recover whatever journal its own writer is in the middle of.
        if let Some(how) = self.lock.as_ref().and_then(|l| l.renamed_away(&self.path)) {
            log::error!(
                "{}: not reopening the image after a failed update: {how}",
                self.path.display()
            );
            self.foreign_change.get_or_insert(how);
            return;
        }
        match OciSif::open(&self.path, OpenMode::ReadWrite) {
            Ok(w) => {
                self.expected_len = w.sif().file_len().unwrap_or(self.expected_len);
                self.writer = Some(w);
                // Renamed over just now: the check before the next update refuses.
                if let Some(how) = self.not_the_held_file() {
                    self.foreign_change.get_or_insert(how);
                }
            }
            Err(e) => {
                log::error!(
                    "{}: cannot reopen the image after a failed update: {e}",
                    self.path.display()
                );
            }
        }
    }

    pub(super) fn index_entry_files(&mut self) {
        self.stable_dirs = self.tree.stable_name_dirs();
        self.entry_files.clear();
        self.entry_index.clear();
        for (i, (dir, entry)) in self.tree.cosign_entries().iter().enumerate() {
            let id = EntryId::of(entry);
            self.entry_index.insert(id, i);
            let Ok(files) = self.tree.entries(*dir) else {
                continue;
            };
            for f in files {
                if let Ok(role) = roles::entry_role(&f.name) {
                    if f.kind == Kind::File {
                        self.entry_files.insert(f.ino, (id, role));
                    }
                }
            }
        }
    }
}

/// The image's tree as it is now, its build warnings logged: every rebuild of a volume
/// after a change, its own or another writer's.
fn open_tree(path: &Path, options: &TreeOptions) -> Result<Tree, TreeError> {
    let (tree, report) = Tree::open_with(path, options)?;
    for w in &report.warnings {
        log::warn!("{w}");
    }
    Ok(tree)
}

/// Gives the pages of freed memory back to the system. A rebuild frees a whole tree
/// (megabytes for a large image), and glibc's allocator keeps freed pages in the arena
/// of whichever FUSE thread ran the commit: without this, a daemon's resident memory
/// grew by a tree's size with every attach (25 MB each for 10,000 blobs).
fn release_freed_memory() {
    crate::sys::release_freed_memory();
}
