//! A mounted image as a file system that can change (the man page, ATTACHING): the
//! [`Tree`] of what the image holds, plus what users are dropping into `/cosign` and
//! have not yet committed.
//!
//! Staged files live in memory (each up to a size limit) until their entry is complete:
//! an entry commits when its payload has been closed and a signature is known (a
//! signature file, the signature annotation, or a DSSE envelope as payload). Committing
//! appends the layer to the image with the upstream update algorithm, fsyncs, and
//! rebuilds the tree; `close(2)` returns only then, and returns the reason when the drop
//! is refused. The tree is rebuilt with an [`InodeTable`], so an inode never changes what
//! it holds and the kernel's caches can never serve stale bytes.
//!
//! One lock guards everything: reads share it, changes take it alone, so a read never
//! sees an image half-way through an update; turns at it are phase-fair, so a stream of
//! attaches cannot shut readers out. What readers have open lives beside it: files keep
//! reading what they opened after a commit replaced their inode, and listings read in
//! several calls keep their positions (tests/concurrency_mount.rs, 8 readers and 4
//! writers through a real mount).
//!
//! Why this file is long: everything here runs under that one lock and changes one
//! `State` (staging, handles, the inode table, the writer), whose invariants hold only
//! between whole methods; split across files, each part would have to reach into all of
//! it. The pieces without that coupling live elsewhere: staging rules in `staging.rs`,
//! inode numbering in `inodes.rs`, the update algorithm in `src/cosign/`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use super::staging::{self, Role, ERROR_FILE};
use super::{
    Attr, BuildReport, DirEntry, FsStats, Ino, InodeTable, Kind, Tree, TreeError, TreeOptions,
    FILE_PERM, SYMLINK_PERM,
};
use crate::cosign::{self, AttachError, AttachOutcome, DropFiles, EntryKind, Origin};
use crate::oci::OciSif;
use crate::sif::{canonical_image_path, changed_on_disk, Digest, OpenMode, WriterLock};

/// Staged files larger than this are refused: real payloads, signatures and certificates
/// are kilobytes, and staged bytes are held in memory until they commit.
pub const DEFAULT_MAX_STAGED_SIZE: u64 = 16 << 20;

/// At most this many files and directories are held under `/cosign` at once (staged,
/// refused or copied into a directory the user made): a few per signature are real use,
/// and each costs memory and a linear scan of the staging area.
pub const DEFAULT_MAX_STAGED_FILES: usize = 1024;

/// At most this many bytes are held under `/cosign` at once, all staged files and open
/// write sessions together (but never less than the largest file allowed), so that many
/// files each under [`DEFAULT_MAX_STAGED_SIZE`] cannot add up to gigabytes of memory.
pub const DEFAULT_MAX_STAGED_TOTAL: u64 = 64 << 20;

/// Modes of what a read-write mount lets users change.
const WRITABLE_DIR_PERM: u16 = 0o755;
const STAGED_FILE_PERM: u16 = 0o644;

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
}

/// Which committed layer a staged file, alias or hidden name is about. Entry names are
/// positional and can change (a removal renumbers), this cannot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntryId {
    kind: EntryKind,
    target: Digest,
    payload: Digest,
}

impl EntryId {
    fn of(e: &cosign::Entry) -> EntryId {
        EntryId {
            kind: e.kind,
            target: e.target,
            payload: e.layer.digest,
        }
    }
}

/// The entry a staged file belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Group {
    /// Files directly in `/cosign` sharing a base name (`X`, `X.sig`, …).
    Top(String),
    /// A directory made in `/cosign`.
    Dir(Ino),
    /// A committed entry's directory, written to after the fact.
    Entry(EntryId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum GroupState {
    Pending,
    /// Refused, with the reason shown in its `error` file.
    Failed(String),
    Committed(EntryId),
}

struct StagedFile {
    name: String,
    /// The directory it was created in.
    parent: Ino,
    group: Group,
    role: Role,
    data: Vec<u8>,
    /// Closed since it was last opened for writing: only complete files count.
    complete: bool,
    /// Shown in its directory. Committed files are replaced by the entry (and aliases);
    /// they live on only while open.
    listed: bool,
    opens: u32,
    mtime: i64,
    /// Why a write was refused (over a size limit): the file cannot commit until it is
    /// rewritten, since what it holds is not what the user wrote.
    refused: Option<Refusal>,
}

/// Why a staged file lost a write.
#[derive(Clone, Debug)]
enum Refusal {
    /// Over the limit for one file (EFBIG).
    TooLarge(String),
    /// Over the limit for everything staged (ENOSPC).
    NoSpace(String),
}

impl Refusal {
    fn of(e: &TreeError) -> Refusal {
        match e {
            TreeError::NoSpace(m) => Refusal::NoSpace(m.clone()),
            other => Refusal::TooLarge(other.to_string()),
        }
    }

    fn reason(&self) -> &str {
        match self {
            Refusal::TooLarge(m) | Refusal::NoSpace(m) => m,
        }
    }

    fn error(&self) -> TreeError {
        match self {
            Refusal::TooLarge(m) => TreeError::TooLarge(m.clone()),
            Refusal::NoSpace(m) => TreeError::NoSpace(m.clone()),
        }
    }
}

struct StagedDir {
    name: String,
    state: GroupState,
    error_ino: Ino,
    mtime: i64,
}

struct TopGroup {
    state: GroupState,
    error_ino: Ino,
}

/// A name the user gave that now stands for a committed entry (or one of its files).
struct Alias {
    ino: Ino,
    entry: EntryId,
    file: Option<&'static str>,
}

/// An open file handle.
enum Handle {
    /// A staged file opened for writing.
    Staged,
    /// A committed entry's file opened for writing: the bytes written are compared with
    /// (or merged into) the entry when the file is closed.
    Session {
        entry: EntryId,
        role: Role,
        data: Vec<u8>,
    },
}

#[derive(Default)]
struct Staging {
    files: HashMap<Ino, StagedFile>,
    dirs: HashMap<Ino, StagedDir>,
    top: BTreeMap<String, TopGroup>,
    aliases: BTreeMap<String, Alias>,
    /// Names unlinked from committed entries: `rm -r` unlinks every file before the
    /// `rmdir` that removes the signature.
    hidden: HashMap<EntryId, BTreeSet<String>>,
}

struct State {
    tree: Tree,
    table: InodeTable,
    /// The image opened for writing (read-write volumes only).
    writer: Option<OciSif>,
    staging: Staging,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    /// The files of every committed entry directory, with their roles.
    entry_files: HashMap<Ino, (EntryId, Role)>,
    /// Where each entry is in [`Tree::cosign_entries`] (the last of equal ones): every
    /// alias is resolved on each listing, stat and lookup in `/cosign`, and a linear
    /// search per alias made those quadratic in the number of signatures.
    entry_index: HashMap<EntryId, usize>,
    /// Directories whose names keep meaning the same inode ([`Tree::stable_name_dirs`]).
    stable_dirs: std::collections::HashSet<Ino>,
    /// Held for the life of a read-write volume: one writer per image. Also says which
    /// file the volume writes, which the image's path must still name at every update.
    lock: Option<WriterLock>,
    /// The image's length after the last update: a different length means someone else
    /// wrote to it.
    expected_len: u64,
    /// Set once another program's change was seen: from then on every write is refused.
    foreign_change: Option<String>,
}

/// What an inode is.
enum Node<'a> {
    Tree,
    Staged(&'a StagedFile),
    StagedDir(&'a StagedDir),
    Alias(&'a Alias),
    Error(String),
}

/// A successful open: the handle and whether the kernel may keep the file's pages.
pub struct Opened {
    pub fh: u64,
    /// The content of this inode can never change: keep the page cache across opens.
    pub cacheable: bool,
}

/// A mounted image, readable and (when opened so) writable through `/cosign`.
pub struct Volume {
    path: PathBuf,
    options: VolumeOptions,
    /// Taken only inside a turn of `turns`, which decides who goes next, so it never
    /// makes anyone wait: readers share it, changes take it alone.
    state: RwLock<State>,
    turns: Turns,
    /// What a read-write volume's readers have open ([`Handles`]). Its own lock, taken
    /// only briefly and, when both are held, always after `state`'s: opening or closing a
    /// blob never waits for another reader, and never deadlocks with a commit.
    handles: Mutex<Handles>,
}

/// Files opened for reading and directories opened for listing, on a read-write volume
/// (a read-only one never changes, and hands out no handles). A commit replaces the
/// tree, and the inodes whose content changed (`/index.json`, a signature image's
/// manifest) leave it; these handles keep what was opened readable and listings
/// consistent across that.
#[derive(Default)]
struct Handles {
    /// Handed out: [`READ_FH_BASE`] + this is the next handle.
    count: u64,
    files: HashMap<u64, ReadHandle>,
    /// Each open directory and the listing its readdir calls walk, taken at its first
    /// readdir (and again at a rewind).
    dirs: HashMap<u64, Option<Arc<[DirEntry]>>>,
}

/// An image file open for reading.
struct ReadHandle {
    /// The tree inode read: the one opened, or the one now at the path of an inode a
    /// commit had replaced when the kernel opened it.
    ino: Ino,
    /// Its attributes when opened: what `fstat` of the handle says, whatever happens to
    /// the inode.
    attr: Attr,
    /// Its bytes, copied before an update that might remove them from the image.
    snapshot: Option<Arc<[u8]>>,
}

/// Phase-fair turns at the state lock: readers share a turn, a writer has one alone, and
/// a writer that finishes lets in every reader that was waiting before the next writer
/// goes (while a writer waits, readers arriving wait for its turn to end). So a reader
/// waits for at most the writer holding the lock and one more, however many writers
/// queue, and a writer for at most the readers inside and those already waiting.
/// Readers never take a turn inside a turn: a nested read would wait for the writer
/// waiting on the outer one.
#[derive(Default)]
struct Turns {
    state: Mutex<TurnState>,
    changed: Condvar,
}

#[derive(Default)]
struct TurnState {
    /// Readers inside.
    readers: usize,
    writing: bool,
    writers_waiting: usize,
    readers_waiting: usize,
    /// Waiting readers let in by the last writer to finish, not yet inside: writers wait
    /// for them too.
    admitted: usize,
}

impl Turns {
    fn lock(&self) -> MutexGuard<'_, TurnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, s: MutexGuard<'a, TurnState>) -> MutexGuard<'a, TurnState> {
        self.changed.wait(s).unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> ReadTurn<'_> {
        let mut s = self.lock();
        if s.writing || s.writers_waiting > 0 {
            s.readers_waiting += 1;
            while s.writing || s.admitted == 0 {
                s = self.wait(s);
            }
            s.admitted -= 1;
            s.readers_waiting -= 1;
        }
        s.readers += 1;
        ReadTurn(self)
    }

    fn write(&self) -> WriteTurn<'_> {
        let mut s = self.lock();
        s.writers_waiting += 1;
        while s.writing || s.readers > 0 || s.admitted > 0 {
            s = self.wait(s);
        }
        s.writers_waiting -= 1;
        s.writing = true;
        WriteTurn(self)
    }
}

struct ReadTurn<'a>(&'a Turns);

impl Drop for ReadTurn<'_> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.readers -= 1;
        if s.readers == 0 {
            self.0.changed.notify_all();
        }
    }
}

struct WriteTurn<'a>(&'a Turns);

impl Drop for WriteTurn<'_> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.writing = false;
        s.admitted = s.readers_waiting;
        self.0.changed.notify_all();
    }
}

/// The state, read in a turn. Fields drop in order: the lock, then the turn.
struct StateRead<'a> {
    state: RwLockReadGuard<'a, State>,
    _turn: ReadTurn<'a>,
}

impl std::ops::Deref for StateRead<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

/// The state, changed in a turn of its own. Fields drop in order: the lock, then the
/// turn.
struct StateWrite<'a> {
    state: RwLockWriteGuard<'a, State>,
    _turn: WriteTurn<'a>,
}

impl std::ops::Deref for StateWrite<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl std::ops::DerefMut for StateWrite<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

/// Handles of [`Handles`] are numbered from here, far above the staged writes' numbers
/// (`State::next_fh`), so that one `fh` says which table it is in.
const READ_FH_BASE: u64 = 1 << 62;

/// Open image files up to this size are copied before each update, so that a reader
/// that opened one keeps reading the same bytes even when the update removes it (the
/// root index and a signature image's manifest and config are replaced by every
/// attach). Larger files are never removed by an attach: they stay readable through
/// their inode, which an update keeps, moved or not (only `rm -r` of a signature whose
/// payload is larger than this makes its open readers fail, with ESTALE).
const SNAPSHOT_MAX: u64 = 1 << 20;

impl Handles {
    fn next(&mut self) -> u64 {
        self.count += 1;
        READ_FH_BASE + self.count
    }
}

impl std::fmt::Debug for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volume")
            .field("path", &self.path)
            .field("writable", &self.options.writable)
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
            let lock = WriterLock::acquire(path).map_err(|e| TreeError::Open(e.to_string()))?;
            let writer = OciSif::open(path, OpenMode::ReadWrite)
                .map_err(|e| TreeError::Open(format!("{shown}: {e}")))?;
            if writer.sif().storage().identity() != Some(lock.identity()) {
                return Err(TreeError::Open(format!(
                    "{shown}: replaced by another file while it was being opened; try again"
                )));
            }
            (Some(lock), Some(writer))
        } else {
            (None, None)
        };
        let expected_len = match &writer {
            Some(w) => w
                .sif()
                .file_len()
                .map_err(|e| TreeError::Open(format!("{shown}: {e}")))?,
            None => 0,
        };
        // The first tree keeps the numbers it was built with; they enter the inode table
        // only when a commit first needs them (mounting 10,000 blobs read-write should
        // cost no more than read-only).
        let (tree, report) = Tree::open_with(path, &options.tree)?;
        let table = InodeTable::after(tree.node_count());
        let mut state = State {
            tree,
            table,
            writer,
            staging: Staging::default(),
            handles: HashMap::new(),
            next_fh: 1,
            entry_files: HashMap::new(),
            entry_index: HashMap::new(),
            stable_dirs: std::collections::HashSet::new(),
            lock,
            expected_len,
            foreign_change: None,
        };
        state.index_entry_files();
        let volume = Volume {
            path: path.clone(),
            options,
            state: RwLock::new(state),
            turns: Turns::default(),
            handles: Mutex::new(Handles::default()),
        };
        Ok((volume, report))
    }

    /// Whether changes are accepted (otherwise they are EROFS).
    pub fn writable(&self) -> bool {
        self.options.writable
    }

    /// Shows what another writer (a read-write mount, SingularityCE, siftool) has
    /// committed to the image since the tree was built. Names keep their inodes where
    /// they hold the same thing, so the kernel's caches stay right (`inodes.rs`). A
    /// read-write volume also writes on from what it finds (`State::follow_outside_change`).
    /// Returns whether the tree was rebuilt.
    pub fn follow_image(&self) -> Result<bool, TreeError> {
        if !self.read().tree.image_changed()? {
            return Ok(false);
        }
        if self.writable() {
            // Its own updates rebuild the tree as they commit, under the state's lock: a
            // tree behind its file means another program wrote to it. Reloaded under the
            // lock, so no update of this volume runs on the old view meanwhile.
            return self
                .write()
                .follow_outside_change(&self.path, &self.options);
        }
        // Built without the state's lock: reads go on meanwhile.
        let (tree, report) = Tree::open_with(&self.path, &self.options.tree)?;
        let mut st = self.write();
        if tree.image_identity() != st.tree.image_identity() {
            log::warn!(
                "{}: the path now names another file; this mount goes on showing the file it \
                 opened (mount again to show the new one)",
                self.path.display()
            );
            return Ok(false);
        }
        for w in &report.warnings {
            log::warn!("{w}");
        }
        st.show(tree);
        Ok(true)
    }

    fn max_staged(&self) -> u64 {
        match self.options.max_staged_size {
            0 => DEFAULT_MAX_STAGED_SIZE,
            n => n,
        }
    }

    fn max_staged_files(&self) -> usize {
        match self.options.max_staged_files {
            0 => DEFAULT_MAX_STAGED_FILES,
            n => n,
        }
    }

    fn max_staged_total(&self) -> u64 {
        let total = match self.options.max_staged_total {
            0 => DEFAULT_MAX_STAGED_TOTAL,
            n => n,
        };
        total.max(self.max_staged())
    }

    /// Refuses (ENOSPC, with a log line) growing what `/cosign` holds in memory by
    /// `more` bytes past the total limit.
    fn check_total(&self, st: &State, ino: Ino, more: u64) -> Result<(), TreeError> {
        let max = self.max_staged_total();
        if more == 0 || st.staged_bytes().saturating_add(more) <= max {
            return Ok(());
        }
        let e = TreeError::NoSpace(format!(
            "{}: staged files under cosign/ would hold more than {max} bytes together \
             (-o max_staged_total=); remove staged or refused files first",
            st.path_of(ino)
        ));
        log::warn!("{e}");
        Err(e)
    }

    /// Refuses (ENOSPC, with a log line) a new staged file or directory in `parent`
    /// past the count limit.
    fn check_count(&self, st: &State, parent: Ino, name: &str) -> Result<(), TreeError> {
        let max = self.max_staged_files();
        if st.staging.files.len() + st.staging.dirs.len() < max {
            return Ok(());
        }
        let e = TreeError::NoSpace(format!(
            "{}/{name}: cosign/ already holds {max} staged files and directories \
             (-o max_staged_files=); remove staged or refused ones first",
            st.path_of(parent)
        ));
        log::warn!("{e}");
        Err(e)
    }

    // A panic while the lock was held leaves it poisoned; the state is still the last
    // one a change completed or refused (changes are made image first, then state), so
    // serving on is better than failing every request.
    //
    // Both go through `turns` first (see [`Turns`]): std's lock lets no new reader in
    // while a writer waits, so writers that keep it busy (four `cp`s into /cosign, each
    // commit holding it through its fsyncs) shut readers out for as long as they go on.
    fn read(&self) -> StateRead<'_> {
        let turn = self.turns.read();
        StateRead {
            state: self.state.read().unwrap_or_else(|e| e.into_inner()),
            _turn: turn,
        }
    }

    fn write(&self) -> StateWrite<'_> {
        let turn = self.turns.write();
        StateWrite {
            state: self.state.write().unwrap_or_else(|e| e.into_inner()),
            _turn: turn,
        }
    }

    /// The readers' handles; held only for map lookups and updates, never across I/O
    /// (but the copies of [`Volume::preserve_open_files`], under the state's write lock).
    fn handles(&self) -> MutexGuard<'_, Handles> {
        self.handles.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies every open image file of at most [`SNAPSHOT_MAX`] bytes not copied yet,
    /// before an update changes the image: called with the state's write lock held, so
    /// no commit can come between the copy and what it preserves.
    fn preserve_open_files(&self, st: &State) {
        let mut handles = self.handles();
        // One copy per file, however many descriptors have it open.
        let mut copies: HashMap<Ino, Arc<[u8]>> = HashMap::new();
        for h in handles.files.values_mut() {
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

    fn check_writable(&self) -> Result<(), TreeError> {
        if self.writable() {
            Ok(())
        } else {
            Err(TreeError::ReadOnly)
        }
    }

    /// The attributes of `ino`.
    pub fn attr(&self, ino: Ino) -> Result<Attr, TreeError> {
        self.read().attr(ino, self.writable())
    }

    /// How many bytes a read of `ino` through `fh` can give at most, from offset 0: its
    /// size, or `None` for what can change size while open (staged files and write
    /// sessions). An image file's handle knows, even when a commit removed its inode.
    pub fn read_size(&self, ino: Ino, fh: u64) -> Result<Option<u64>, TreeError> {
        if fh >= READ_FH_BASE {
            if let Some(h) = self.handles().files.get(&fh) {
                return Ok(Some(
                    h.snapshot.as_ref().map_or(h.attr.size, |b| b.len() as u64),
                ));
            }
        }
        if fh != 0 {
            return Ok(None);
        }
        self.attr(ino).map(|a| Some(a.size))
    }

    /// `getattr`: the attributes of `ino`, or, through `fh`, of what that handle reads.
    /// On a read-write volume an inode a commit replaced (the kernel can ask between a
    /// lookup and the open or stat it was for, or `fstat` a file it opened before) shows
    /// what opening it would read ([`Volume::open_file`]): the handle's file, else the
    /// file now at the same path. Its number stays the one asked about.
    pub fn attr_for(&self, ino: Ino, fh: Option<u64>) -> Result<Attr, TreeError> {
        let st = self.read();
        if let Some(fh) = fh.filter(|&fh| fh >= READ_FH_BASE) {
            if let Some(h) = self.handles().files.get(&fh) {
                let mut a = h.attr;
                if let Some(bytes) = &h.snapshot {
                    a.size = bytes.len() as u64;
                }
                a.ino = ino;
                return Ok(a);
            }
        }
        match st.attr(ino, self.writable()) {
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
        let st = self.read();
        st.tree.contains(ino) && st.tree.attr(ino).is_ok_and(|a| a.kind == Kind::File)
    }

    /// Whether changes to `ino` can ever be accepted (what `access(W_OK)` answers):
    /// `/cosign`, its entries and what is staged there, on a read-write volume.
    pub fn may_write(&self, ino: Ino) -> bool {
        if !self.writable() {
            return false;
        }
        let st = self.read();
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

    pub fn lookup(&self, parent: Ino, name: &[u8]) -> Result<Attr, TreeError> {
        let st = self.read();
        let child = st.lookup(parent, name)?;
        st.attr(child, self.writable())
    }

    /// Checks that `ino` is a directory (what `opendir` needs), without listing it.
    pub fn check_dir(&self, ino: Ino) -> Result<(), TreeError> {
        self.read().parent(ino).map(|_| ())
    }

    /// `opendir`: checks that `ino` is a directory and, on a read-write volume, gives the
    /// handle its listing will be kept in ([`Volume::list_from`]); 0 on a read-only one.
    pub fn open_dir(&self, ino: Ino) -> Result<u64, TreeError> {
        let st = self.read();
        st.parent(ino)?;
        if !self.writable() {
            return Ok(0);
        }
        let mut handles = self.handles();
        let fh = handles.next();
        handles.dirs.insert(fh, None);
        Ok(fh)
    }

    /// `releasedir`: forgets the listing kept for `fh`.
    pub fn release_dir(&self, fh: u64) {
        if fh >= READ_FH_BASE {
            self.handles().dirs.remove(&fh);
        }
    }

    /// Every entry of directory `ino`, sorted by name.
    pub fn entries(&self, ino: Ino) -> Result<Vec<DirEntry>, TreeError> {
        self.read().entries(ino)
    }

    /// Whether the kernel may remember for long that `name` in `parent` is the inode a
    /// lookup gave: for names that cannot come to mean another inode, whoever changes the
    /// image (a read-only volume follows other writers' changes) (digests under /blobs, images under /images,
    /// the root's directories), so that path walks do not ask again at every component.
    pub fn name_is_stable(&self, parent: Ino, name: &[u8], kind: Kind) -> bool {
        self.read().name_is_stable(parent, name, kind)
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
        let st = self.read();
        let parent = st.parent(ino)?;
        let kept = if fh >= READ_FH_BASE {
            let mut handles = self.handles();
            match handles.dirs.get_mut(&fh) {
                Some(Some(listing)) if offset != 0 => Some(listing.clone()),
                Some(slot) => {
                    let listing: Arc<[DirEntry]> = match st.node(ino)? {
                        Node::Tree if !st.lists_more_than_the_tree(ino) => {
                            st.tree.entries(ino)?.into()
                        }
                        _ => st.entries(ino)?.into(),
                    };
                    *slot = Some(listing.clone());
                    Some(listing)
                }
                None => None,
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
        let writable = self.writable();
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
        let st = self.read();
        match st.node(ino)? {
            Node::Alias(alias) => st.alias_target(alias),
            Node::Tree => st.tree.readlink(ino).map(str::to_string),
            _ => Err(TreeError::NotSymlink(ino)),
        }
    }

    pub fn stats(&self) -> FsStats {
        self.read().tree.stats()
    }

    /// Opens for reading an inode a commit replaced after the kernel looked its name up
    /// (lookup and open are separate requests, and `/index.json` gets a new inode with
    /// every attach): opens the file now at the same path instead, as an open just after
    /// the commit would have, served past the page cache since the size the kernel has
    /// for the old inode is not this file's. ENOENT when nothing is at that path now.
    fn open_replaced(&self, st: &State, ino: Ino) -> Result<Opened, TreeError> {
        let current = st.replaced(ino).ok_or(TreeError::NoInode(ino))?;
        let mut handles = self.handles();
        let fh = handles.next();
        handles.files.insert(
            fh,
            ReadHandle {
                ino: current.ino,
                attr: current,
                snapshot: None,
            },
        );
        Ok(Opened {
            fh,
            cacheable: false,
        })
    }

    /// Opens a file; `write` and `truncate` as the open flags say.
    pub fn open_file(&self, ino: Ino, write: bool, truncate: bool) -> Result<Opened, TreeError> {
        if !write {
            let st = self.read();
            let node = match st.node(ino) {
                // A commit, or another writer's change this volume follows, replaced it.
                Err(TreeError::NoInode(_)) => {
                    return self.open_replaced(&st, ino);
                }
                node => node?,
            };
            return match node {
                Node::Tree if self.writable() => {
                    st.tree.check_file(ino)?;
                    // Registered under the state's lock: no commit can come between the
                    // check and the handle, and the next one sees the handle.
                    let attr = st.tree.attr(ino)?;
                    let mut handles = self.handles();
                    let fh = handles.next();
                    handles.files.insert(
                        fh,
                        ReadHandle {
                            ino,
                            attr,
                            snapshot: None,
                        },
                    );
                    Ok(Opened {
                        fh,
                        cacheable: true,
                    })
                }
                Node::Tree => st.tree.check_file(ino).map(|()| Opened {
                    fh: 0,
                    cacheable: true,
                }),
                Node::Staged(_) | Node::Error(_) => Ok(Opened {
                    fh: 0,
                    cacheable: false,
                }),
                Node::StagedDir(_) => Err(TreeError::IsDir(ino)),
                Node::Alias(_) => Err(TreeError::NotFile(ino)),
            };
        }
        self.check_writable()?;
        let max = self.max_staged();
        let mut st = self.write();
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
                Handle::Staged
            }
            Node::Tree => {
                st.tree.check_file(ino)?;
                let Some(&(entry, role)) = st.entry_files.get(&ino) else {
                    return Err(TreeError::ReadOnly);
                };
                let size = st.tree.attr(ino)?.size;
                let data = if truncate {
                    Vec::new()
                } else if size > max {
                    return Err(st.too_large(ino, max));
                } else {
                    self.check_total(&st, ino, size)?;
                    let mut buf = vec![0; size as usize];
                    let n = st.tree.read(ino, 0, &mut buf)?;
                    buf.truncate(n);
                    buf
                };
                Handle::Session { entry, role, data }
            }
            Node::Error(_) => {
                return Err(TreeError::Denied(format!(
                    "{}: the error file is written by sifmount",
                    st.path_of(ino)
                )))
            }
            Node::StagedDir(_) => return Err(TreeError::IsDir(ino)),
            Node::Alias(_) => return Err(TreeError::NotFile(ino)),
        };
        Ok(Opened {
            fh: st.add_handle(handle),
            cacheable: false,
        })
    }

    /// Reads from `offset` into `buf`; returns the count. When the image changed under
    /// the read (another writer), the volume follows the change and reads again from
    /// where the object is now; an object no longer in the image is ESTALE, one whose
    /// bytes are still not its own EIO.
    pub fn read_at(
        &self,
        ino: Ino,
        fh: u64,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, TreeError> {
        match self.read_once(ino, fh, offset, buf) {
            // Not its bytes: another program may be half-way through an update, which a
            // new look at the image may show complete.
            Err(TreeError::Changed(why) | TreeError::NotItsBytes(why)) => {
                log::info!("{why}; reading the image again");
                if let Err(e) = self.follow_image() {
                    log::warn!("the image changed, but cannot be read again: {e}");
                }
                self.read_once(ino, fh, offset, buf)
            }
            r => r,
        }
    }

    fn read_once(
        &self,
        ino: Ino,
        fh: u64,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, TreeError> {
        let st = self.read();
        if fh >= READ_FH_BASE {
            let handles = self.handles();
            if let Some(h) = handles.files.get(&fh) {
                if let Some(bytes) = &h.snapshot {
                    return Ok(copy_out(bytes, offset, buf));
                }
                let tree_ino = h.ino;
                drop(handles);
                return match st.tree.read(tree_ino, offset, buf) {
                    // Larger than a snapshot, and removed by an update since it was opened.
                    Err(TreeError::NoInode(_)) => Err(TreeError::Stale(format!(
                        "{}: inode {ino}, open for reading, was removed from the image",
                        self.path.display()
                    ))),
                    r => r,
                };
            }
        }
        if let Some(Handle::Session { data, .. }) = st.handles.get(&fh) {
            return Ok(copy_out(data, offset, buf));
        }
        let node = match st.node(ino) {
            // Opened before the image changed, and what it held is no longer in it.
            Err(TreeError::NoInode(_)) => {
                return Err(TreeError::Stale(format!(
                    "{}: inode {ino}, open for reading, is no longer in the image",
                    self.path.display()
                )))
            }
            node => node?,
        };
        match node {
            Node::Tree => st.tree.read(ino, offset, buf),
            Node::Staged(f) => Ok(copy_out(&f.data, offset, buf)),
            Node::Error(text) => Ok(copy_out(text.as_bytes(), offset, buf)),
            Node::StagedDir(_) => Err(TreeError::IsDir(ino)),
            Node::Alias(_) => Err(TreeError::NotFile(ino)),
        }
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
        let max = self.max_staged();
        let mut st = self.write();
        let end = offset.saturating_add(data.len() as u64);
        let held = match st.handles.get(&fh) {
            Some(Handle::Session { data, .. }) => data.len() as u64,
            Some(Handle::Staged) => st
                .staging
                .files
                .get(&ino)
                .map_or(0, |f| f.data.len() as u64),
            None => 0,
        };
        let refused = if end > max {
            let e = st.too_large(ino, max);
            log::warn!("{e}");
            Err(e)
        } else {
            self.check_total(&st, ino, end.saturating_sub(held))
        };
        if let Err(e) = refused {
            if let Some(Handle::Staged) = st.handles.get(&fh) {
                if let Some(f) = st.staging.files.get_mut(&ino) {
                    f.refused = Some(Refusal::of(&e));
                    let group = f.group.clone();
                    st.set_state(&group, GroupState::Failed(e.to_string()));
                }
            }
            return Err(e);
        }
        let buffer = match st.handles.get_mut(&fh) {
            Some(Handle::Session { data, .. }) => data,
            Some(Handle::Staged) => match st.staging.files.get_mut(&ino) {
                Some(f) => {
                    f.mtime = now();
                    &mut f.data
                }
                None => return Err(TreeError::NoInode(ino)),
            },
            None => return Err(TreeError::ReadOnly),
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
        if fh == 0 || fh >= READ_FH_BASE {
            return Ok(());
        }
        let mut st = self.write();
        if st.handles.contains_key(&fh) {
            // Either may change the image, and what readers have open must outlive that.
            self.preserve_open_files(&st);
        }
        let result = match st.handles.get(&fh) {
            None => return Ok(()),
            Some(Handle::Staged) => st.flush_staged(ino, &self.path, &self.options),
            Some(Handle::Session { entry, role, data }) => {
                let (entry, role, data) = (*entry, *role, data.clone());
                st.merge(entry, role, data, &self.path, &self.options)
            }
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
        if fh >= READ_FH_BASE {
            self.handles().files.remove(&fh);
            return;
        }
        let mut st = self.write();
        if let Some(Handle::Staged) = st.handles.remove(&fh) {
            st.closed(ino);
        }
    }

    /// A new file in `/cosign` or in an entry directory, opened for writing.
    pub fn create(&self, parent: Ino, name: &[u8]) -> Result<(Attr, u64), TreeError> {
        self.check_writable()?;
        let mut st = self.write();
        let name = st.new_name(parent, name)?;
        let (group, role) = st.place_for_file(parent, &name)?;
        self.check_count(&st, parent, &name)?;
        let ino = st.table.fresh();
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
        let fh = st.add_handle(Handle::Staged);
        Ok((st.attr(ino, true)?, fh))
    }

    /// A new entry directory in `/cosign`.
    pub fn mkdir(&self, parent: Ino, name: &[u8]) -> Result<Attr, TreeError> {
        self.check_writable()?;
        let mut st = self.write();
        if Some(parent) != st.tree.cosign_dir() {
            return Err(match st.node(parent)? {
                Node::StagedDir(_) => st.denied(parent, "an entry holds files, not directories"),
                Node::Tree if st.tree.cosign_entry(parent).is_some() => {
                    st.denied(parent, "an entry holds files, not directories")
                }
                _ => TreeError::ReadOnly,
            });
        }
        let name = st.new_name(parent, name)?;
        staging::check_dir_name(&name)
            .map_err(|reason| TreeError::Rejected(format!("cosign/{name}: {reason}")))?;
        self.check_count(&st, parent, &name)?;
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
        let mut st = self.write();
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
                let group = st.group_of_error(child);
                if let Some(g) = group {
                    st.set_state(&g, GroupState::Pending);
                }
                Ok(())
            }
            Node::Alias(_) => {
                st.staging.aliases.remove(&name);
                // Once none of a group's names is left, the name is free for a new drop.
                if let Ok((base, _)) = staging::top_level_role(&name) {
                    let still_named = st
                        .staging
                        .aliases
                        .keys()
                        .any(|n| staging::top_level_role(n).is_ok_and(|(b, _)| b == base));
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
                    None => Err(TreeError::ReadOnly),
                }
            }
        }
    }

    /// Removes an empty staged directory, or a committed entry once its files have been
    /// unlinked: the signature layer goes, with the same update algorithm.
    pub fn rmdir(&self, parent: Ino, name: &[u8]) -> Result<(), TreeError> {
        self.check_writable()?;
        let mut st = self.write();
        let child = st.lookup(parent, name)?;
        // Removing a signature changes the image, and what readers have open must
        // outlive that.
        self.preserve_open_files(&st);
        match st.node(child)? {
            Node::StagedDir(d) => {
                if !st.entries(child)?.is_empty() {
                    return Err(TreeError::NotEmpty(child));
                }
                // A committed directory stands for its entry: `rm -r` of it removes the
                // signature, as it does under the entry's own name.
                if let GroupState::Committed(id) = d.state {
                    if st.resolve(id).is_some() {
                        let result = st.remove_entry(id, &self.path, &self.options);
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
                let result = st.remove_entry(entry, &self.path, &self.options);
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
        let max = self.max_staged();
        let mut st = self.write();
        if let Some(size) = size {
            if size > max {
                return Err(st.too_large(ino, max));
            }
            let held = match fh.and_then(|fh| st.handles.get(&fh)) {
                Some(Handle::Session { data, .. }) => Some(data.len() as u64),
                _ => st.staging.files.get(&ino).map(|f| f.data.len() as u64),
            };
            if let Some(held) = held {
                self.check_total(&st, ino, size.saturating_sub(held))?;
            }
            if let Some(Handle::Session { data, .. }) = fh.and_then(|fh| st.handles.get_mut(&fh)) {
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
                    return Err(TreeError::ReadOnly);
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

fn copy_out(data: &[u8], offset: u64, buf: &mut [u8]) -> usize {
    let start = (offset as usize).min(data.len());
    let n = (data.len() - start).min(buf.len());
    buf[..n].copy_from_slice(&data[start..start + n]);
    n
}

impl State {
    fn node(&self, ino: Ino) -> Result<Node<'_>, TreeError> {
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

    fn error_text(&self, ino: Ino) -> Option<String> {
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
            })?;
        match state {
            GroupState::Failed(reason) => Some(format!("{reason}\n")),
            _ => None,
        }
    }

    fn group_of_error(&self, ino: Ino) -> Option<Group> {
        if let Some((base, _)) = self.staging.top.iter().find(|(_, g)| g.error_ino == ino) {
            return Some(Group::Top(base.clone()));
        }
        self.staging
            .dirs
            .iter()
            .find(|(_, d)| d.error_ino == ino)
            .map(|(&dir, _)| Group::Dir(dir))
    }

    fn attr(&self, ino: Ino, writable: bool) -> Result<Attr, TreeError> {
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
                    mtime: self.tree.attr(super::ROOT)?.mtime,
                    crtime: self.tree.attr(super::ROOT)?.crtime,
                }
            }
        })
    }

    /// The current entry (directory and description) of `id`.
    fn resolve(&self, id: EntryId) -> Option<(Ino, &cosign::Entry)> {
        let (dir, e) = self
            .tree
            .cosign_entries()
            .get(*self.entry_index.get(&id)?)?;
        Some((*dir, e))
    }

    fn alias_target(&self, alias: &Alias) -> Result<String, TreeError> {
        let (_, entry) = self
            .resolve(alias.entry)
            .ok_or(TreeError::NoInode(alias.ino))?;
        Ok(match alias.file {
            Some(file) => format!("{}/{file}", entry.name),
            None => entry.name.clone(),
        })
    }

    /// `..` of directory `dir` (the root is its own parent).
    fn parent(&self, dir: Ino) -> Result<Ino, TreeError> {
        match self.node(dir)? {
            Node::StagedDir(_) => Ok(self.tree.cosign_dir().unwrap_or(super::ROOT)),
            Node::Tree => self.tree.parent(dir),
            _ => Err(TreeError::NotDir(dir)),
        }
    }

    /// Directories outside `/cosign` are the fixed parts of the layout (a directory's
    /// inode is its path), so their names are stable anywhere; files and links are
    /// stable where the names say what they hold.
    fn name_is_stable(&self, parent: Ino, name: &[u8], kind: Kind) -> bool {
        if self.stable_dirs.contains(&parent) {
            return true;
        }
        if !matches!(self.node(parent), Ok(Node::Tree))
            || Some(parent) == self.tree.cosign_dir()
            || self.tree.cosign_entry(parent).is_some()
        {
            return false;
        }
        kind == Kind::Dir || (parent == super::ROOT && name != b"index.json")
    }

    /// Whether directory `dir` shows anything the tree alone does not (staged files,
    /// aliases, hidden names), so that its listing must be merged.
    fn lists_more_than_the_tree(&self, dir: Ino) -> bool {
        Some(dir) == self.tree.cosign_dir()
            || self.tree.cosign_entry(dir).is_some()
            || self.staging.files.values().any(|f| f.parent == dir)
    }

    fn entries(&self, dir: Ino) -> Result<Vec<DirEntry>, TreeError> {
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
                    if matches!(state, GroupState::Failed(_)) {
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

    fn visible_entry_files(&self, dir: Ino, id: EntryId) -> Result<Vec<DirEntry>, TreeError> {
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
    fn staged_top_entries(&self, out: &mut Vec<DirEntry>) {
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

    fn lookup(&self, parent: Ino, name: &[u8]) -> Result<Ino, TreeError> {
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
    fn replaced(&self, ino: Ino) -> Option<Attr> {
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
    fn lookup_staged_top(&self, dir: Ino, name: &str) -> Option<Ino> {
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
    fn new_name(&self, parent: Ino, name: &[u8]) -> Result<String, TreeError> {
        let shown = String::from_utf8_lossy(name).into_owned();
        let name = std::str::from_utf8(name).map_err(|_| {
            TreeError::Rejected(format!(
                "{}/{shown}: names must be UTF-8",
                self.path_of(parent)
            ))
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
    fn place_for_file(&self, parent: Ino, name: &str) -> Result<(Group, Role), TreeError> {
        let rejected = |reason: String| {
            TreeError::Rejected(format!("{}/{name}: {reason}", self.path_of(parent)))
        };
        if Some(parent) == self.tree.cosign_dir() {
            let (base, role) = staging::top_level_role(name).map_err(rejected)?;
            return Ok((Group::Top(base), role));
        }
        let role = || staging::entry_role(name).map_err(rejected);
        match self.node(parent)? {
            Node::StagedDir(_) => Ok((Group::Dir(parent), role()?)),
            Node::Tree => match self.tree.cosign_entry(parent) {
                Some(e) => Ok((Group::Entry(EntryId::of(e)), role()?)),
                None => Err(TreeError::ReadOnly),
            },
            _ => Err(TreeError::NotDir(parent)),
        }
    }

    /// A readable path for messages: `cosign/<name>` for what lives there.
    fn path_of(&self, ino: Ino) -> String {
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

    fn denied(&self, ino: Ino, reason: &str) -> TreeError {
        TreeError::Denied(format!("{}: {reason}", self.path_of(ino)))
    }

    fn too_large(&self, ino: Ino, max: u64) -> TreeError {
        TreeError::TooLarge(format!(
            "{}: over the size limit of {max} bytes for staged files (-o max_staged=)",
            self.path_of(ino)
        ))
    }

    /// The bytes `/cosign` holds in memory: staged files and open write sessions.
    fn staged_bytes(&self) -> u64 {
        let files: u64 = self
            .staging
            .files
            .values()
            .map(|f| f.data.len() as u64)
            .sum();
        let sessions: u64 = self
            .handles
            .values()
            .map(|h| match h {
                Handle::Session { data, .. } => data.len() as u64,
                Handle::Staged => 0,
            })
            .sum();
        files + sessions
    }

    fn add_handle(&mut self, handle: Handle) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, handle);
        fh
    }

    /// One handle of a staged file closed: an unlisted file is forgotten with its last.
    fn closed(&mut self, ino: Ino) {
        if let Some(f) = self.staging.files.get_mut(&ino) {
            f.opens = f.opens.saturating_sub(1);
            if !f.listed && f.opens == 0 {
                self.staging.files.remove(&ino);
            }
        }
    }

    fn state_of(&self, group: &Group) -> GroupState {
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
        }
    }

    fn set_state(&mut self, group: &Group, state: GroupState) {
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
        }
    }

    /// A top-level group with no files and nothing committed has nothing left to say.
    fn forget_group_if_empty(&mut self, group: &Group) {
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
    fn gather(&self, group: &Group) -> (DropFiles, bool) {
        let mut drop = DropFiles::default();
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

    fn flush_staged(
        &mut self,
        ino: Ino,
        path: &Path,
        options: &VolumeOptions,
    ) -> Result<(), TreeError> {
        let Some(f) = self.staging.files.get_mut(&ino) else {
            return Ok(());
        };
        f.complete = true;
        if !f.listed {
            return Ok(());
        }
        let (group, role, data) = (f.group.clone(), f.role, f.data.clone());
        let shown = self.path_of(ino);
        match self.state_of(&group) {
            GroupState::Committed(id) => {
                let result = self.merge(id, role, data, path, options);
                // Merged or refused, a file in /cosign or in the entry's own directory has
                // said what it had to: the entry (and an alias to its file) is what remains.
                // A directory the user made keeps the files written into it.
                let f = self.staging.files.get_mut(&ino).expect("still staged");
                match group {
                    Group::Top(_) => {
                        f.listed = false;
                        if result.is_ok() {
                            let name = f.name.clone();
                            self.add_alias(name, id, role.entry_file());
                        }
                    }
                    Group::Entry(_) => f.listed = false,
                    Group::Dir(_) => {
                        if result.is_err() {
                            f.listed = false;
                        }
                    }
                }
                result
            }
            GroupState::Pending | GroupState::Failed(_) => {
                self.evaluate(&group, &shown, path, options)
            }
        }
    }

    /// Commits `group` if it is complete; records and returns why not if it is wrong.
    fn evaluate(
        &mut self,
        group: &Group,
        shown: &str,
        path: &Path,
        options: &VolumeOptions,
    ) -> Result<(), TreeError> {
        let refused = self
            .staging
            .files
            .values()
            .find(|f| f.listed && &f.group == group && f.refused.is_some())
            .and_then(|f| f.refused.clone());
        if let Some(refusal) = refused {
            self.set_state(group, GroupState::Failed(refusal.reason().to_string()));
            return Err(refusal.error());
        }
        let (drop, payload_complete) = self.gather(group);
        let fail = |st: &mut State, e: &AttachError| {
            let reason = format!("{shown}: {e}");
            st.set_state(group, GroupState::Failed(reason.clone()));
            attach_errno(e, reason)
        };
        if let Err(e) = cosign::drop_annotations(&drop) {
            return Err(fail(self, &e));
        }
        if !payload_complete {
            self.set_state(group, GroupState::Pending);
            return Ok(());
        }
        let writer = self.writer.as_mut().ok_or(TreeError::ReadOnly)?;
        let prepared = cosign::prepare(writer, &drop);
        // What prepare read is only trustworthy if the file is still ours.
        if !matches!(prepared, Ok(None)) {
            if let Err(e) = self.check_unchanged(path, options) {
                self.set_state(group, GroupState::Failed(format!("{shown}: {e}")));
                return Err(e);
            }
        }
        let writer = self.writer.as_mut().ok_or(TreeError::ReadOnly)?;
        let attachment = match prepared {
            Ok(Some(a)) => a,
            Ok(None) => {
                self.set_state(group, GroupState::Pending);
                return Ok(());
            }
            Err(e) => return Err(fail(self, &e)),
        };
        let outcome = cosign::attach(writer, &attachment);
        let id = EntryId {
            kind: attachment.kind,
            target: attachment.target,
            payload: attachment.layer.digest,
        };
        match outcome {
            Ok(AttachOutcome::Unchanged) => {}
            Ok(AttachOutcome::Attached) => {
                if let Err(e) = self.committed_to_image(path, options) {
                    self.set_state(group, GroupState::Failed(format!("{shown}: {e}")));
                    return Err(e);
                }
            }
            Err(e) => {
                self.reopen_writer(path);
                return Err(fail(self, &e));
            }
        }
        log::info!(
            "{shown}: attached {} {} to {}",
            attachment.kind.short_name(),
            attachment.layer.digest,
            attachment.target
        );
        self.commit(group, id);
        Ok(())
    }

    /// The staged files of `group` have become entry `id`.
    fn commit(&mut self, group: &Group, id: EntryId) {
        let mut aliases = Vec::new();
        if let Group::Top(_) = group {
            for f in self.staging.files.values_mut() {
                if f.listed && &f.group == group {
                    f.listed = false;
                    aliases.push((f.name.clone(), f.role.entry_file()));
                }
            }
        }
        let unused: Vec<Ino> = self
            .staging
            .files
            .iter()
            .filter(|(_, f)| !f.listed && f.opens == 0)
            .map(|(&ino, _)| ino)
            .collect();
        for ino in unused {
            self.staging.files.remove(&ino);
        }
        for (name, file) in aliases {
            self.add_alias(name, id, file);
        }
        self.set_state(group, GroupState::Committed(id));
    }

    fn add_alias(&mut self, name: String, entry: EntryId, file: Option<&'static str>) {
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

    /// Compares (payload) or merges (annotation files) what was written to a committed
    /// entry's file.
    fn merge(
        &mut self,
        id: EntryId,
        role: Role,
        data: Vec<u8>,
        path: &Path,
        options: &VolumeOptions,
    ) -> Result<(), TreeError> {
        let Some((dir, entry)) = self.resolve(id) else {
            return Err(TreeError::Denied(format!(
                "cosign: the {} entry for payload {} is no longer in the image",
                id.kind.short_name(),
                id.payload
            )));
        };
        let shown = format!("cosign/{}", entry.name);
        match role {
            Role::Derived => Ok(()),
            Role::Payload => {
                if Digest::of(&data) == entry.layer.digest {
                    Ok(())
                } else {
                    Err(self.denied(dir, "the payload of a committed entry cannot change"))
                }
            }
            _ => {
                let mut drop = DropFiles::default();
                role.fill(&mut drop, data);
                let extra = cosign::drop_annotations(&drop)
                    .map_err(|e| attach_errno(&e, format!("{shown}: {e}")))?;
                let current = entry.annotations();
                if extra.iter().all(|(k, v)| current.get(k) == Some(v)) {
                    return Ok(());
                }
                let Origin::Tag(ref_name) = &entry.origin else {
                    return Err(self.denied(
                        dir,
                        "only entries stored as _cosign: images can take new annotations",
                    ));
                };
                let (ref_name, layer_index, digest) =
                    (ref_name.clone(), entry.layer_index, entry.layer.digest);
                self.check_unchanged(path, options)?;
                let writer = self.writer.as_mut().ok_or(TreeError::ReadOnly)?;
                match cosign::amend(writer, &ref_name, layer_index, &digest, &extra) {
                    Ok(AttachOutcome::Unchanged) => Ok(()),
                    Ok(AttachOutcome::Attached) => {
                        log::info!("{shown}: annotations {:?} added", extra.keys());
                        self.committed_to_image(path, options)
                    }
                    Err(e) => {
                        self.reopen_writer(path);
                        Err(attach_errno(&e, format!("{shown}: {e}")))
                    }
                }
            }
        }
    }

    fn remove_entry(
        &mut self,
        id: EntryId,
        path: &Path,
        options: &VolumeOptions,
    ) -> Result<(), TreeError> {
        let Some((dir, entry)) = self.resolve(id) else {
            return Err(TreeError::NoInode(0));
        };
        let shown = format!("cosign/{}", entry.name);
        let Origin::Tag(ref_name) = &entry.origin else {
            return Err(self.denied(dir, "only entries stored as _cosign: images can be removed"));
        };
        let (ref_name, layer_index, digest) =
            (ref_name.clone(), entry.layer_index, entry.layer.digest);
        self.check_unchanged(path, options)?;
        let writer = self.writer.as_mut().ok_or(TreeError::ReadOnly)?;
        if let Err(e) = cosign::detach(writer, &ref_name, layer_index, &digest) {
            self.reopen_writer(path);
            return Err(attach_errno(&e, format!("{shown}: {e}")));
        }
        log::info!("{shown}: removed ({ref_name} layer {layer_index})");
        self.staging.hidden.remove(&id);
        self.committed_to_image(path, options)?;
        // Names that stood for the removed entry go with it.
        let gone: Vec<String> = self
            .staging
            .aliases
            .iter()
            .filter(|(_, a)| self.resolve(a.entry).is_none())
            .map(|(n, _)| n.clone())
            .collect();
        for name in gone {
            self.staging.aliases.remove(&name);
        }
        self.staging
            .top
            .retain(|_, g| !matches!(g.state, GroupState::Committed(e) if e == id));
        Ok(())
    }

    /// Refuses to write when the file is no longer what this volume last saw: writing
    /// over another program's change from an old view would corrupt both. A change in
    /// place is followed first ([`State::follow_outside_change`]), so only the update
    /// that met it fails; after a rename over the image nothing is written any more.
    fn check_unchanged(&mut self, path: &Path, options: &VolumeOptions) -> Result<(), TreeError> {
        if self.foreign_change.is_none() {
            self.foreign_change = self.not_the_held_file(path);
        }
        if let Some(what) = &self.foreign_change {
            return Err(TreeError::Stale(format!(
                "{}: changed by another program while mounted ({what}); nothing was \
                 written, and nothing will be until it is mounted again",
                path.display()
            )));
        }
        let Some(what) =
            (self.writer.as_ref()).and_then(|w| changed_on_disk(w.sif(), self.expected_len))
        else {
            return Ok(());
        };
        let now = match self.follow_outside_change(path, options) {
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
        Err(TreeError::Stale(format!(
            "{}: changed by another program while this change was being made ({what}); \
             nothing was written; {now}",
            path.display()
        )))
    }

    /// Shows what another program (SingularityCE, siftool) wrote to the image in place,
    /// and makes later updates start from it: the image is opened again for writing and
    /// the tree rebuilt, each object keeping its inode where it holds the same thing.
    /// Staged files stay staged. When the path now names another file, this volume stops
    /// writing instead (see [`State::check_unchanged`]). Returns whether anything changed.
    fn follow_outside_change(
        &mut self,
        path: &Path,
        options: &VolumeOptions,
    ) -> Result<bool, TreeError> {
        if self.foreign_change.is_some() {
            return Ok(false);
        }
        if let Some(how) = self.not_the_held_file(path) {
            log::warn!(
                "{}: {how}; this mount writes nothing more (mount the image again)",
                path.display()
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
        let writer = OciSif::open(path, OpenMode::ReadWrite).map_err(|e| {
            TreeError::Stale(format!(
                "{}: changed by another program, and cannot be read as it is now: {e}",
                path.display()
            ))
        })?;
        let expected_len = writer
            .sif()
            .file_len()
            .map_err(|e| TreeError::Update(format!("{}: {e}", path.display())))?;
        let tree = open_tree(path, options)?;
        self.writer = Some(writer);
        self.expected_len = expected_len;
        // Opened by path: renamed over just now, the next check stops writing.
        if let Some(how) = self.not_the_held_file(path) {
            self.foreign_change.get_or_insert(how);
        }
        self.show(tree);
        log::warn!(
            "{}: changed by another program; the mount shows it as it is now, and writes on \
             from there",
            path.display()
        );
        Ok(true)
    }

    /// How the image's path and the file this volume writes are no longer the file it
    /// locked, if they are not: a rename over the image, or a reopen after a failed update
    /// that found another file at the path.
    fn not_the_held_file(&self, path: &Path) -> Option<String> {
        let lock = self.lock.as_ref()?;
        if let Some(how) = lock.renamed_away(path) {
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
    fn committed_to_image(
        &mut self,
        path: &Path,
        options: &VolumeOptions,
    ) -> Result<(), TreeError> {
        // Renamed over between the check before the update and now: the update went to
        // a file no longer at the path. Say so rather than show the other file's tree
        // as if the update were in it.
        if let Some(how) = self.not_the_held_file(path) {
            let e = TreeError::Stale(format!(
                "{}: changed by another program while mounted ({how}); the update was \
                 written to the file this mount holds, which no longer has that name, and \
                 nothing will be written until it is mounted again",
                path.display()
            ));
            self.foreign_change = Some(how);
            return Err(e);
        }
        // The update was fsynced as it committed (src/sif/journal.rs).
        if let Some(w) = &self.writer {
            self.expected_len = w
                .sif()
                .file_len()
                .map_err(|e| TreeError::Update(format!("{}: {e}", path.display())))?;
        }
        self.show(open_tree(path, options)?);
        Ok(())
    }

    /// Replaces the tree with `tree`, a newer one of the same image, numbered so that
    /// every node that holds what it held keeps its inode.
    fn show(&mut self, mut tree: Tree) {
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
    fn reopen_writer(&mut self, path: &Path) {
        // Only the file this volume holds the lock on: opening another one for writing
        // would also recover whatever journal its own writer is in the middle of.
        if let Some(how) = self.lock.as_ref().and_then(|l| l.renamed_away(path)) {
            log::error!(
                "{}: not reopening the image after a failed update: {how}",
                path.display()
            );
            self.foreign_change.get_or_insert(how);
            return;
        }
        match OciSif::open(path, OpenMode::ReadWrite) {
            Ok(w) => {
                self.expected_len = w.sif().file_len().unwrap_or(self.expected_len);
                self.writer = Some(w);
                // Renamed over just now: the check before the next update refuses.
                if let Some(how) = self.not_the_held_file(path) {
                    self.foreign_change.get_or_insert(how);
                }
            }
            Err(e) => {
                log::error!(
                    "{}: cannot reopen the image after a failed update: {e}",
                    path.display()
                );
            }
        }
    }

    fn index_entry_files(&mut self) {
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
                if let Ok(role) = staging::entry_role(&f.name) {
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
fn open_tree(path: &Path, options: &VolumeOptions) -> Result<Tree, TreeError> {
    let (tree, report) = Tree::open_with(path, &options.tree)?;
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

/// The tree error (and so the errno) for a refused attach.
fn attach_errno(e: &AttachError, message: String) -> TreeError {
    match e {
        AttachError::Invalid { .. } => TreeError::Rejected(message),
        AttachError::Conflict { .. } | AttachError::NotFound { .. } => TreeError::Denied(message),
        AttachError::Full { .. } => TreeError::NoSpace(message),
        AttachError::Oci(_) if os_error(e) == Some(libc::ENOSPC) => TreeError::NoSpace(message),
        AttachError::Oci(_) => TreeError::Update(message),
    }
}

/// The OS error at the bottom of `e`'s chain of causes, if any: a full disk should say
/// ENOSPC, not EIO.
fn os_error(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return io.raw_os_error();
        }
        cause = c.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::Turns;
    use std::sync::{mpsc, Arc};

    /// Waits (without a deadline: a hang is the failure) until `cond` holds of the turns.
    fn until(t: &Turns, cond: impl Fn(&super::TurnState) -> bool) {
        while !cond(&t.lock()) {
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_reader_waiting_goes_before_the_next_writer() {
        let t = Arc::new(Turns::default());
        let first = t.write();
        let (tx, rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let reader = {
            let (t, tx) = (t.clone(), tx.clone());
            std::thread::spawn(move || {
                let _turn = t.read();
                tx.send("reader").unwrap();
                release_rx.recv().unwrap();
            })
        };
        until(&t, |s| s.readers_waiting == 1);
        let writer = {
            let t = t.clone();
            std::thread::spawn(move || {
                let _turn = t.write();
                tx.send("writer").unwrap();
            })
        };
        until(&t, |s| s.writers_waiting == 1);
        drop(first);
        // The writer cannot go while the reader holds its turn: whatever the scheduler
        // does, the reader is first.
        assert_eq!(rx.recv().unwrap(), "reader");
        release_tx.send(()).unwrap();
        assert_eq!(rx.recv().unwrap(), "writer");
        reader.join().unwrap();
        writer.join().unwrap();
    }

    #[test]
    fn readers_arriving_while_a_writer_waits_let_it_go_first() {
        let t = Arc::new(Turns::default());
        let inside = t.read();
        let (tx, rx) = mpsc::channel();
        let writer = {
            let (t, tx) = (t.clone(), tx.clone());
            std::thread::spawn(move || {
                let _turn = t.write();
                tx.send("writer").unwrap();
            })
        };
        until(&t, |s| s.writers_waiting == 1);
        let late = {
            let t = t.clone();
            std::thread::spawn(move || {
                let _turn = t.read();
                tx.send("late reader").unwrap();
            })
        };
        until(&t, |s| s.readers_waiting == 1);
        drop(inside);
        assert_eq!(rx.recv().unwrap(), "writer");
        assert_eq!(rx.recv().unwrap(), "late reader");
        writer.join().unwrap();
        late.join().unwrap();
    }
}
