//! A mounted image as a file system that can change (the man page, ATTACHING): the
//! [`Tree`] of what the image holds, plus what users are dropping into `/cosign` and
//! have not yet committed. docs/ARCHITECTURE.md follows one read and one attach through
//! these files.
//!
//! Staged files live in memory (each up to a size limit, `limits.rs`) until their entry
//! is complete: an entry commits when its payload has been closed and a signature is
//! known (a signature file, the signature annotation, or a DSSE envelope as payload).
//! Committing (`commit.rs`) appends the layer to the image with the upstream update
//! algorithm, fsyncs, and rebuilds the tree (`refresh.rs`); `close(2)` returns only then,
//! and returns the reason when the drop is refused. The tree is rebuilt with an
//! [`InodeTable`], so an inode never changes what it holds and the kernel's caches can
//! never serve stale bytes.
//!
//! One lock guards the `State`: reads share it, changes take it alone, so a read never
//! sees an image half-way through an update; turns at it are phase-fair (`turns.rs`), so
//! a stream of attaches cannot shut readers out. What is open lives beside it, in one
//! table (`handles.rs`): files keep reading what they opened after a commit replaced
//! their inode, and listings read in several calls keep their positions
//! (tests/mount/concurrency_mount.rs, 8 readers and 4 writers through a real mount).
//!
//! The rooms: `read.rs` and `write.rs` are the volume's requests; `view.rs` is what a
//! path is (tree or staged) and what a directory lists; `staging.rs` the model of what is
//! staged, `roles.rs` what a dropped file's name makes it; `commit.rs` turns staged files
//! into entries, `copy.rs` those written into an entry that are a copy of another, and
//! `sign.rs` signing requests; `refresh.rs` keeps the view true to the image.

mod commit;
mod copy;
mod handles;
mod limits;
mod read;
mod refresh;
mod roles;
mod sign;
mod staging;
mod turns;
mod view;
mod writability;
mod write;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::oci::OciSif;
use crate::sif::{canonical_image_path, OpenMode, WriterLock};
use crate::tree::{Because, BuildReport, Ino, InodeTable, Tree, TreeError, TreeOptions};

pub use limits::{DEFAULT_MAX_STAGED_FILES, DEFAULT_MAX_STAGED_SIZE, DEFAULT_MAX_STAGED_TOTAL};
pub use writability::why_read_only;
pub use write::Refused;

use handles::Handles;
use limits::Limits;
use roles::Role;
use staging::{EntryId, Staging};
use turns::{Alone, Shared, TurnLock};

/// How a volume is opened.
#[derive(Default)]
pub struct VolumeOptions {
    pub tree: TreeOptions,
    /// Open the image for writing and accept drops into `/cosign`. When false, every
    /// change is EROFS and the image is never opened for writing.
    pub writable: bool,
    /// The largest staged file, in bytes (0: [`DEFAULT_MAX_STAGED_SIZE`]).
    pub max_staged_size: u64,
    /// The most files and directories held under `/cosign` at once (0:
    /// [`DEFAULT_MAX_STAGED_FILES`]).
    pub max_staged_files: usize,
    /// The most bytes held under `/cosign` at once (0: [`DEFAULT_MAX_STAGED_TOTAL`]); never
    /// less than the largest staged file.
    pub max_staged_total: u64,
    /// `-o verify_drops`: an attach (or new annotations) must leave an entry that
    /// verifies under `tree.trust`, or it is refused with EPERM.
    pub verify_drops: bool,
    /// A private key to sign with: a writable volume then takes signing requests in
    /// `/cosign/sign/` (`sign.rs`). Its public half verifying is `tree.trust`'s business.
    pub signing_key: Option<std::sync::Arc<crate::cosign::SigningKey>>,
}

/// Everything the volume's lock guards: the image as shown, the writer, and what is
/// staged. Its invariants hold between whole requests.
struct State {
    /// The image file, canonical: rebuilds reopen it by name.
    path: PathBuf,
    /// What every rebuilt tree shows beyond the image (keys to verify with).
    tree_options: TreeOptions,
    /// Refuse attaches that do not verify under `tree_options.trust`.
    verify_drops: bool,
    tree: Tree,
    table: InodeTable,
    /// The image opened for writing (read-write volumes only).
    writer: Option<OciSif>,
    staging: Staging,
    /// The files of every committed entry directory, with their roles.
    entry_files: HashMap<Ino, (EntryId, Role)>,
    /// Where each entry is in [`Tree::cosign_entries`] (the last of equal ones): every
    /// alias is resolved on each listing, stat and lookup in `/cosign`, and a linear
    /// search per alias made those quadratic in the number of signatures.
    entry_index: HashMap<EntryId, usize>,
    /// Directories whose names keep meaning the same inode ([`Tree::stable_name_dirs`]).
    stable_dirs: HashSet<Ino>,
    /// Held for the life of a read-write volume: one writer per image. Also says which
    /// file the volume writes, which the image's path must still name at every update.
    lock: Option<WriterLock>,
    /// The image's length after the last update: a different length means someone else
    /// wrote to it.
    expected_len: u64,
    /// Set once another program's change was seen: from then on every write is refused.
    foreign_change: Option<String>,
    /// What `/cosign/sign/` signs with (`sign.rs`).
    signing_key: Option<std::sync::Arc<crate::cosign::SigningKey>>,
}

/// A successful open: the handle and whether the kernel may keep the file's pages.
pub struct Opened {
    pub fh: u64,
    /// The content of this inode can never change: keep the page cache across opens.
    pub cacheable: bool,
}

/// A mounted image, readable and (when opened so) writable through `/cosign`.
pub struct Volume {
    /// Whether changes are taken; fixed for the volume's life.
    writable: bool,
    limits: Limits,
    state: TurnLock<State>,
    /// Every open handle ([`Handles`]). Its own lock, taken only briefly and, when both
    /// are held, always after `state`'s: opening or closing a blob never waits for
    /// another reader, and never deadlocks with a commit.
    handles: Mutex<Handles>,
}

impl std::fmt::Debug for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volume")
            .field("writable", &self.writable)
            .finish()
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Volume {
    /// Opens the image at `path`: builds its tree and, for a writable volume, opens it
    /// for writing too.
    pub fn open(path: &Path, options: VolumeOptions) -> Result<(Volume, BuildReport), TreeError> {
        // Canonical before anything is opened: rebuilds reopen the image by name, after a
        // daemon has changed to `/`, and the journal lies beside the file itself, not
        // beside a link to it (src/sif/journal_file.rs).
        let path = &canonical_image_path(path)
            .or_else(|_| std::path::absolute(path))
            .unwrap_or_else(|_| path.to_path_buf());
        let shown = path.display();
        // Lock, then open for writing (which finishes an interrupted update), then read
        // the tree: in that order, the tree shows what the writer will write over.
        let (lock, writer) = if options.writable {
            let lock = WriterLock::acquire(path)
                .map_err(|e| TreeError::Open(Because::with(e.to_string(), e)))?;
            let writer = OciSif::open(path, OpenMode::ReadWrite)
                .map_err(|e| TreeError::Open(Because::with(format!("{shown}: {e}"), e)))?;
            if writer.sif().storage().identity() != Some(lock.identity()) {
                return Err(TreeError::Open(
                    format!(
                        "{shown}: replaced by another file while it was being opened; try again"
                    )
                    .into(),
                ));
            }
            (Some(lock), Some(writer))
        } else {
            (None, None)
        };
        let expected_len = match &writer {
            Some(w) => w
                .sif()
                .file_len()
                .map_err(|e| TreeError::Open(Because::with(format!("{shown}: {e}"), e)))?,
            None => 0,
        };
        // The first tree keeps the numbers it was built with; they enter the inode table
        // only when a commit first needs them (mounting 10,000 blobs read-write should
        // cost no more than read-only).
        let (tree, report) = Tree::open_with(path, &options.tree)?;
        let table = InodeTable::after(tree.node_count());
        let limits = Limits::of(&options);
        let mut state = State {
            path: path.clone(),
            tree_options: options.tree,
            verify_drops: options.verify_drops,
            tree,
            table,
            writer,
            staging: Staging::default(),
            entry_files: HashMap::new(),
            entry_index: HashMap::new(),
            stable_dirs: HashSet::new(),
            lock,
            expected_len,
            foreign_change: None,
            signing_key: None,
        };
        state.index_entry_files();
        if let (Some(key), true) = (options.signing_key, state.writer.is_some()) {
            state.add_sign_dir(key);
        }
        let volume = Volume {
            writable: options.writable,
            limits,
            state: TurnLock::new(state),
            handles: Mutex::new(Handles::default()),
        };
        Ok((volume, report))
    }

    /// Whether changes are accepted (otherwise they are EROFS).
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Shows what another writer (a read-write mount, SingularityCE, siftool) has
    /// committed to the image since the tree was built. Names keep their inodes where
    /// they hold the same thing, so the kernel's caches stay right (`inodes.rs`). A
    /// read-write volume also writes on from what it finds (`State::follow_outside_change`).
    /// Returns whether the tree was rebuilt.
    pub fn follow_image(&self) -> Result<bool, TreeError> {
        if self.writable {
            // Its own updates rebuild the tree as they commit, under the state's lock: a
            // tree behind its file means another program wrote to it. Reloaded under the
            // lock, so no update of this volume runs on the old view meanwhile.
            if !self.state().tree.image_changed()? {
                return Ok(false);
            }
            return self.state_mut().follow_outside_change();
        }
        // Built in a shared turn: reads go on meanwhile, and a read-only volume has no
        // other writer of its state to wait for.
        let (tree, report) = {
            let st = self.state();
            if !st.tree.image_changed()? {
                return Ok(false);
            }
            Tree::open_with(&st.path, &st.tree_options)?
        };
        let mut st = self.state_mut();
        if tree.image_identity() != st.tree.image_identity() {
            log::warn!(
                "{}: the path now names another file; this mount goes on showing the file it \
                 opened (mount again to show the new one)",
                st.path.display()
            );
            return Ok(false);
        }
        for w in &report.warnings {
            log::warn!("{w}");
        }
        st.show(tree);
        Ok(true)
    }

    /// A shared turn of the state (see `turns.rs`).
    fn state(&self) -> Shared<'_, State> {
        self.state.read()
    }

    /// A turn of the state alone.
    fn state_mut(&self) -> Alone<'_, State> {
        self.state.write()
    }
}
