//! The file tree a mount shows (the man page, THE TREE), without any FUSE types.
//!
//! A [`Tree`] is built once, when the image is opened: every name, inode number and
//! attribute is decided then, so the read path only looks things up. File contents are
//! either small documents generated at build time (`/sif/header.json`, the one-entry
//! `index.json` of each `/images/<name>/`) or byte ranges of the SIF, read with positioned
//! reads straight from the image file.
#![forbid(unsafe_code)]

mod build;
mod content_trust;
mod cosign_dir;
mod error;
mod inodes;
mod names;
mod sif_json;
mod summary;
mod verified;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::cosign;
use crate::sif::SifImage;

pub use build::BuildReport;
pub use error::{Because, TreeError};
pub use inodes::InodeTable;
pub use summary::{MAX_SUMMARY_ENTRIES, MAX_SUMMARY_TARGETS, SUMMARY_JSON, SUMMARY_TEXT};

/// What a tree shows beyond the image itself.
#[derive(Default)]
pub struct TreeOptions {
    /// Keys and certificate identities to verify cosign entries with; unless it is
    /// empty, each entry gets a `verified` file.
    pub trust: crate::cosign::Trust,
    /// `-o require_signed`: show under `/images` only images with an entry that
    /// verifies under `trust`, and withhold the blobs only the others use (the man page,
    /// CONTENT TRUST).
    pub require_signed: bool,
}

/// A top-level image under `/images`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageTrust {
    /// Its directory name under `/images`.
    pub name: String,
    /// The digest of its manifest or index.
    pub digest: crate::sif::Digest,
    /// How many of the entries about it verify, when the tree verifies.
    pub verified: Option<usize>,
    /// Whether it is itself a signature image or a referrer (an OCI 1.1 bundle manifest
    /// listed in the root index): its layers are entries under `/cosign`, and nobody
    /// signs a signature.
    pub holds_entries: bool,
}

/// An inode number. The root is [`ROOT`]; numbers are indexes into the tree plus one, so
/// they are stable for the life of the mount and, for the same image, across mounts.
pub type Ino = u64;

/// The root directory's inode number (FUSE requires 1).
pub const ROOT: Ino = 1;

/// Permission bits: everything is read-only (the man page, THE TREE).
pub const FILE_PERM: u16 = 0o444;
pub const DIR_PERM: u16 = 0o555;
pub const SYMLINK_PERM: u16 = 0o777;

/// `st_blocks` counts 512-byte units whatever the file system's block size.
const STAT_BLOCK: u64 = 512;

/// The block size reported by `statfs` and `st_blksize`.
pub const BLOCK_SIZE: u32 = 4096;

/// What kind of node an inode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
}

/// The attributes of one node, as `stat` shows them (owner and group are the mount's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: Kind,
    pub size: u64,
    /// 512-byte blocks.
    pub blocks: u64,
    pub perm: u16,
    pub nlink: u32,
    /// Unix seconds (may be negative: unset SIF times are Go's zero time, year 1).
    pub mtime: i64,
    /// Unix seconds of creation, from the SIF.
    pub crtime: i64,
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub ino: Ino,
    pub kind: Kind,
}

/// File system totals for `statfs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsStats {
    /// Size of the image in [`BLOCK_SIZE`] blocks.
    pub blocks: u64,
    /// Number of inodes in the tree.
    pub files: u64,
    pub block_size: u32,
    pub max_name_len: u32,
}

/// What a regular file holds.
#[derive(Clone, Debug)]
enum Content {
    /// Generated at build time.
    Bytes(Box<[u8]>),
    /// A byte range of the image file; `identity` tells objects at the same place apart,
    /// and `slot` is where its descriptor is in the table (every read checks it is still
    /// there: [`Tree::read`]).
    Range {
        offset: u64,
        size: u64,
        identity: u64,
        slot: u32,
        /// An OCI object of at most [`verified::VERIFIED_MAX`] bytes, named by its
        /// digest: served from a checked copy ([`verified`]).
        checked: bool,
    },
    /// `/sif/descriptors.json`, made from the image's table when first needed: a few
    /// hundred bytes per object, megabytes for a large image, and seldom read. Its `len`
    /// is counted at the first `stat` (without keeping the document), not at mount, where
    /// counting took a tenth of the time for 10,000 objects. Any commit changes the table,
    /// so `identity` is new with every tree ([`build::next_tree_number`]).
    Descriptors {
        identity: u64,
        len: std::sync::OnceLock<u64>,
        doc: std::sync::OnceLock<Box<[u8]>>,
    },
}

#[derive(Clone, Debug)]
enum NodeData {
    /// Entries sorted by name, so lookups are binary searches and listings are stable.
    Dir(Vec<DirEntry>),
    File(Content),
    Symlink(Box<str>),
}

#[derive(Clone, Debug)]
struct Node {
    data: NodeData,
    nlink: u32,
    mtime: i64,
    crtime: i64,
    /// The directory holding a directory (the root holds itself); 0 for other nodes,
    /// which may have several names.
    parent: Ino,
}

impl Node {
    fn kind(&self) -> Kind {
        match self.data {
            NodeData::Dir(_) => Kind::Dir,
            NodeData::File(_) => Kind::File,
            NodeData::Symlink(_) => Kind::Symlink,
        }
    }
}

/// The whole tree of one image.
pub struct Tree {
    path: PathBuf,
    /// Index `i` holds inode `i + 1`.
    nodes: Vec<Node>,
    /// The image's bytes; the descriptor table was only needed to build the tree.
    storage: Box<dyn crate::sif::Storage>,
    image_len: u64,
    /// Inode → index into `nodes` once an [`InodeTable`] has numbered the tree (the
    /// rebuilds of a read-write mount); `None` while inode `i + 1` is index `i`.
    slots: Option<HashMap<Ino, usize>>,
    /// `/cosign`, when the image is an OCI-SIF.
    cosign_dir: Option<Ino>,
    /// Each `/cosign/<entry>/` directory and the entry it shows.
    cosign_entries: Vec<(Ino, cosign::Entry)>,
    /// Each verified entry's verdict, by entry name (only when the tree verifies).
    verdicts: HashMap<String, cosign::Verdict>,
    /// The objects `require_signed` withholds, by slot, with their digests.
    withheld: HashMap<u32, crate::sif::Digest>,
    /// The images under `/images`, in root-index order.
    images: Vec<ImageTrust>,
    /// Where each entry directory is in `cosign_entries`: asked on every `stat` of a
    /// read-write mount.
    cosign_by_dir: HashMap<Ino, usize>,
    /// The image's header and table when the tree was built ([`Tree::image_changed`]).
    fingerprint: u64,
    /// The header's `DescriptorsOffset` and `DescriptorsSize` as built: where each
    /// object's descriptor is checked after a read.
    table_place: [u8; 16],
    /// Copies of small objects whose digest was checked.
    verified: verified::VerifiedObjects,
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tree")
            .field("path", &self.path)
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

impl Tree {
    /// Opens the image at `path` read-only and builds its tree. Errors name the path and
    /// the problem (missing, not a SIF, broken OCI image, …).
    pub fn open(path: &Path) -> Result<Tree, TreeError> {
        Tree::open_with_report(path).map(|(tree, _)| tree)
    }

    /// Like [`Tree::open`], also returning what was left out of the tree and why.
    pub fn open_with_report(path: &Path) -> Result<(Tree, BuildReport), TreeError> {
        Tree::open_with(path, &TreeOptions::default())
    }

    /// Like [`Tree::open_with_report`], with options (the keys to verify with).
    pub fn open_with(path: &Path, options: &TreeOptions) -> Result<(Tree, BuildReport), TreeError> {
        // The image's header and table are fingerprinted, and the tree built, while no
        // sifmount update is being applied (src/sif/publish.rs): a tree is of the image
        // before an update or after it. The fingerprint is taken first, so that a change
        // by another writer between it and the build is seen as one by the next check.
        // Non-blocking, so that a FIFO given as the image cannot hang the open; what is
        // not an image is refused by `SifImage::open`, with its own message.
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path);
        let _reading = file
            .as_ref()
            .ok()
            .and_then(|f| crate::sif::PublishLock::take(f, false));
        // The time shown where the SIF records none (build.rs, `shown_time`): of the file
        // opened, as the fingerprint is.
        let file_mtime = file
            .as_ref()
            .ok()
            .and_then(|f| f.metadata().ok())
            .map(|m| std::os::unix::fs::MetadataExt::mtime(&m));
        let fingerprint = file.and_then(|f| crate::sif::fingerprint(&f));
        let sif = SifImage::open(path, crate::sif::OpenMode::ReadOnly)
            .map_err(|e| TreeError::Open(Because::with(e.to_string(), e)))?;
        let fingerprint = fingerprint.map_err(|e| {
            TreeError::Open(Because::with(
                format!("{}: cannot read the header: {e}", path.display()),
                e,
            ))
        })?;
        let table_place = sif.header().encode()[96..112]
            .try_into()
            .expect("the header is 128 bytes");
        let (mut tree, report) = build::build(path, sif, options, file_mtime)?;
        tree.fingerprint = fingerprint;
        tree.table_place = table_place;
        Ok((tree, report))
    }

    /// Whether the image file this tree was built from has changed what it holds since
    /// (its header or descriptor table), as any writer's committed change does. Waits for
    /// a sifmount update in flight.
    pub fn image_changed(&self) -> Result<bool, TreeError> {
        let _reading = self.storage.publish_lock(false);
        let now = crate::sif::fingerprint(&*self.storage).map_err(|source| TreeError::Read {
            path: self.path.display().to_string(),
            what: "the header and descriptor table".into(),
            source,
        })?;
        Ok(now != self.fingerprint)
    }

    /// Which file this tree shows.
    pub fn image_identity(&self) -> Option<crate::sif::FileIdentity> {
        self.storage.identity()
    }

    /// The image this tree shows.
    pub fn image_path(&self) -> &Path {
        &self.path
    }

    fn node(&self, ino: Ino) -> Result<&Node, TreeError> {
        let slot = match &self.slots {
            None => ino.checked_sub(1).map(|i| i as usize),
            Some(slots) => slots.get(&ino).copied(),
        };
        slot.and_then(|i| self.nodes.get(i))
            .ok_or(TreeError::NoInode(ino))
    }

    /// The directories whose names always stand for the same inode while mounted, even
    /// as the image changes: everything under `/blobs` (names are digests) and `/images`
    /// (an image's documents are its blobs) but the `signatures/` listings.
    pub fn stable_name_dirs(&self) -> std::collections::HashSet<Ino> {
        let mut stable = std::collections::HashSet::new();
        let mut todo: Vec<Ino> = ["blobs", "images"]
            .iter()
            .filter_map(|n| self.lookup(ROOT, n.as_bytes()).ok())
            .filter(|a| a.kind == Kind::Dir)
            .map(|a| a.ino)
            .collect();
        while let Some(dir) = todo.pop() {
            if !stable.insert(dir) {
                continue;
            }
            if let Ok(entries) = self.entries(dir) {
                todo.extend(
                    entries
                        .iter()
                        .filter(|e| e.kind == Kind::Dir && e.name != "signatures")
                        .map(|e| e.ino),
                );
            }
        }
        stable
    }

    /// Whether `ino` is a node of this tree.
    pub fn contains(&self, ino: Ino) -> bool {
        self.node(ino).is_ok()
    }

    /// `/cosign`, when the image is an OCI-SIF.
    pub fn cosign_dir(&self) -> Option<Ino> {
        self.cosign_dir
    }

    /// `SUMMARY` or `summary.json` when `ino` is that file of `/cosign`: files sifmount
    /// writes, which a read-write mount refuses to change (the man page, THE SUMMARY).
    pub fn summary_name(&self, ino: Ino) -> Option<&'static str> {
        let dir = self.cosign_dir?;
        [SUMMARY_TEXT, SUMMARY_JSON].into_iter().find(|name| {
            self.lookup(dir, name.as_bytes())
                .is_ok_and(|a| a.ino == ino)
        })
    }

    /// Every `/cosign/<entry>/` directory inode with the entry it shows.
    pub fn cosign_entries(&self) -> &[(Ino, cosign::Entry)] {
        &self.cosign_entries
    }

    /// The images under `/images`, in root-index order, with how many entries about each
    /// verify.
    pub fn images(&self) -> &[ImageTrust] {
        &self.images
    }

    /// The verdict on the entry of this name, when the tree verifies.
    pub fn verdict(&self, entry_name: &str) -> Option<&cosign::Verdict> {
        self.verdicts.get(entry_name)
    }

    /// The entry whose directory is `ino`.
    pub fn cosign_entry(&self, ino: Ino) -> Option<&cosign::Entry> {
        self.cosign_by_dir
            .get(&ino)
            .map(|&i| &self.cosign_entries[i].1)
    }

    fn index_cosign_entries(&mut self) {
        self.cosign_by_dir = self
            .cosign_entries
            .iter()
            .enumerate()
            .map(|(i, (dir, _))| (*dir, i))
            .collect();
    }

    /// The directory of the entry named `name`.
    pub fn cosign_entry_named(&self, name: &str) -> Option<(Ino, &cosign::Entry)> {
        self.cosign_entries
            .iter()
            .find(|(_, e)| e.name == name)
            .map(|(dir, e)| (*dir, e))
    }

    /// The attributes of `ino`.
    pub fn attr(&self, ino: Ino) -> Result<Attr, TreeError> {
        let node = self.node(ino)?;
        let (size, perm) = match &node.data {
            // Directories report their entry count as size: some tools read st_size of a
            // directory as a hint, and zero would claim emptiness.
            NodeData::Dir(entries) => (entries.len() as u64, DIR_PERM),
            NodeData::File(c) => (self.content_len(c)?, FILE_PERM),
            NodeData::Symlink(target) => (target.len() as u64, SYMLINK_PERM),
        };
        let blocks = match &node.data {
            NodeData::File(_) => size.div_ceil(STAT_BLOCK),
            _ => 0,
        };
        Ok(Attr {
            ino,
            kind: node.kind(),
            size,
            blocks,
            perm,
            nlink: node.nlink,
            mtime: node.mtime,
            crtime: node.crtime,
        })
    }

    /// The entry `name` of directory `parent`.
    pub fn lookup(&self, parent: Ino, name: &[u8]) -> Result<Attr, TreeError> {
        let entries = self.entries(parent)?;
        let not_found = || TreeError::NotFound {
            parent,
            name: String::from_utf8_lossy(name).into_owned(),
        };
        let name = std::str::from_utf8(name).map_err(|_| not_found())?;
        let i = entries
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .map_err(|_| not_found())?;
        self.attr(entries[i].ino)
    }

    /// The entries of directory `ino`, sorted by name, without `.` and `..`.
    pub fn entries(&self, ino: Ino) -> Result<&[DirEntry], TreeError> {
        match &self.node(ino)?.data {
            NodeData::Dir(entries) => Ok(entries),
            _ => Err(TreeError::NotDir(ino)),
        }
    }

    /// The parent of directory `ino` (the root is its own parent), for `..`.
    pub fn parent(&self, ino: Ino) -> Result<Ino, TreeError> {
        self.entries(ino)?;
        Ok(self.node(ino)?.parent)
    }

    /// The target of symbolic link `ino`.
    pub fn readlink(&self, ino: Ino) -> Result<&str, TreeError> {
        match &self.node(ino)?.data {
            NodeData::Symlink(target) => Ok(target),
            _ => Err(TreeError::NotSymlink(ino)),
        }
    }

    /// Checks that `ino` is a regular file (what `open` needs).
    pub fn check_file(&self, ino: Ino) -> Result<(), TreeError> {
        match &self.node(ino)?.data {
            NodeData::File(content) => self.check_not_withheld(content),
            NodeData::Dir(_) => Err(TreeError::IsDir(ino)),
            NodeData::Symlink(_) => Err(TreeError::NotFile(ino)),
        }
    }

    /// Reads up to `buf.len()` bytes of file `ino` from `offset`; returns how many were
    /// read (fewer only at the end of the file). One positioned read of the image, no
    /// lock; then the object's descriptor is read again ([`Tree::described_there`]): when the
    /// image no longer says the object is where it was read, the bytes are not served and
    /// the read fails with [`TreeError::Changed`].
    pub fn read(&self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize, TreeError> {
        let content = match &self.node(ino)?.data {
            NodeData::File(c) => c,
            NodeData::Dir(_) => return Err(TreeError::IsDir(ino)),
            NodeData::Symlink(_) => return Err(TreeError::NotFile(ino)),
        };
        self.check_not_withheld(content)?;
        let len = self.content_len(content)?;
        if offset >= len {
            return Ok(0);
        }
        let n = (len - offset).min(buf.len() as u64) as usize;
        match content {
            Content::Bytes(b) => buf[..n].copy_from_slice(&b[offset as usize..offset as usize + n]),
            Content::Descriptors { .. } => {
                // Made from the file again: should it have changed behind the tree, the
                // bytes past its new end read as zeros rather than fail.
                let b = self.descriptors_doc(content)?;
                let start = (offset as usize).min(b.len());
                let m = (b.len() - start).min(n);
                buf[..m].copy_from_slice(&b[start..start + m]);
                buf[m..n].fill(0);
            }
            &Content::Range {
                offset: start,
                size,
                identity,
                slot,
                checked,
            } => {
                if checked {
                    let object = self.checked_object(ino, start, size, identity, slot)?;
                    buf[..n].copy_from_slice(&object[offset as usize..offset as usize + n]);
                    return Ok(n);
                }
                let read = self.storage.read_exact_at(&mut buf[..n], start + offset);
                // After the read, not before: a sifmount update makes the header or the
                // descriptor say so before it writes over an object's bytes
                // (src/sif/journal.rs), so a descriptor still in place after the read
                // means the bytes read were the object's.
                if self.described_there(slot, start, size, identity).is_none() {
                    return Err(self.moved(ino, start));
                }
                read.map_err(|source| TreeError::Read {
                    path: self.path.display().to_string(),
                    what: format!("{n} bytes at offset {} (inode {ino})", start + offset),
                    source,
                })?
            }
        }
        Ok(n)
    }

    /// The whole of a small OCI object, checked against the digest its descriptor
    /// holds: a copy kept from an earlier read, or read now.
    fn checked_object(
        &self,
        ino: Ino,
        start: u64,
        size: u64,
        identity: u64,
        slot: u32,
    ) -> Result<std::sync::Arc<[u8]>, TreeError> {
        if let Some(copy) = self.verified.get(start, identity) {
            // The copy is right whatever happened since; but an object the image no
            // longer holds reads as gone, as a large one does.
            if self.described_there(slot, start, size, identity).is_none() {
                return Err(self.moved(ino, start));
            }
            return Ok(copy);
        }
        let mut bytes = vec![0u8; size as usize];
        let read = self.storage.read_exact_at(&mut bytes, start);
        let Some(d) = self.described_there(slot, start, size, identity) else {
            return Err(self.moved(ino, start));
        };
        read.map_err(|source| TreeError::Read {
            path: self.path.display().to_string(),
            what: format!("{size} bytes at offset {start} (inode {ino})"),
            source,
        })?;
        let want = match d.oci_digest() {
            Some(Ok(want)) => want,
            // The identity matched, so the descriptor is the one the tree was built
            // from, whose digest parsed then.
            _ => unreachable!("a checked object's descriptor holds a digest"),
        };
        let got = crate::sif::Digest::of(&bytes);
        if got != want {
            return Err(TreeError::NotItsBytes(
                format!(
                    "{}: inode {ino}: the {size} bytes at offset {start} have digest {got}, not \
                 the {want} the image names them by (another program writing the image, \
                 or a damaged one); not served",
                    self.path.display()
                )
                .into(),
            ));
        }
        let bytes: std::sync::Arc<[u8]> = bytes.into();
        self.verified.keep(start, identity, bytes.clone());
        Ok(bytes)
    }

    /// Refuses an object `require_signed` withholds.
    fn check_not_withheld(&self, content: &Content) -> Result<(), TreeError> {
        let &Content::Range { slot, .. } = content else {
            return Ok(());
        };
        match self.withheld.get(&slot) {
            None => Ok(()),
            Some(digest) => Err(TreeError::Withheld(
                format!(
                    "{}: blob {digest} is used only by images no signature verifies \
                     (require_signed)",
                    self.path.display()
                )
                .into(),
            )),
        }
    }

    fn moved(&self, ino: Ino, start: u64) -> TreeError {
        TreeError::Changed(
            format!(
                "{}: inode {ino}: the image changed (another writer), and its object is no \
             longer at offset {start}",
                self.path.display()
            )
            .into(),
        )
    }

    /// The descriptor in `slot`, when the image's header still puts the table where it
    /// was and the descriptor still describes the object read: in use, at `offset`,
    /// `size` long, with the same identity. Two reads of a few hundred bytes, from the
    /// page cache.
    fn described_there(
        &self,
        slot: u32,
        offset: u64,
        size: u64,
        identity: u64,
    ) -> Option<crate::sif::Descriptor> {
        let mut place = [0u8; 16];
        if self.storage.read_exact_at(&mut place, 96).is_err() || place != self.table_place {
            return None;
        }
        let table = i64::from_le_bytes(place[..8].try_into().expect("8 of 16 bytes")) as u64;
        let at = table + u64::from(slot) * crate::sif::DESCRIPTOR_SIZE as u64;
        let mut raw = [0u8; crate::sif::DESCRIPTOR_SIZE];
        if self.storage.read_exact_at(&mut raw, at).is_err() {
            return None;
        }
        let d = crate::sif::Descriptor::decode(&raw);
        (d.used
            && d.offset as u64 == offset
            && d.size as u64 == size
            && build::object_identity(&d) == identity)
            .then_some(d)
    }

    fn content_len(&self, c: &Content) -> Result<u64, TreeError> {
        Ok(match c {
            Content::Bytes(b) => b.len() as u64,
            Content::Range { size, .. } => *size,
            Content::Descriptors { len, doc, .. } => match (len.get(), doc.get()) {
                (Some(&n), _) => n,
                (None, Some(d)) => *len.get_or_init(|| d.len() as u64),
                (None, None) => {
                    let n = sif_json::descriptors_len(&*self.storage)
                        .map_err(|e| self.table_error(e))?;
                    *len.get_or_init(|| n)
                }
            },
        })
    }

    fn table_error(&self, e: crate::sif::SifError) -> TreeError {
        TreeError::Read {
            path: self.path.display().to_string(),
            what: "the descriptor table for sif/descriptors.json".into(),
            source: std::io::Error::other(e.to_string()),
        }
    }

    /// The bytes of `/sif/descriptors.json`, made from the image's table on first use
    /// (the tree keeps no table of its own).
    fn descriptors_doc<'c>(&self, c: &'c Content) -> Result<&'c [u8], TreeError> {
        let Content::Descriptors { doc, .. } = c else {
            unreachable!("descriptors_doc is asked only of Content::Descriptors");
        };
        if let Some(d) = doc.get() {
            return Ok(d);
        }
        let made = sif_json::descriptors(&*self.storage).map_err(|e| self.table_error(e))?;
        // Two threads may both make it; the first one stored wins, and they are equal.
        let _ = doc.set(made.into_boxed_slice());
        Ok(doc
            .get()
            .expect("set just above, by this thread or another"))
    }

    /// Totals for `statfs`.
    pub fn stats(&self) -> FsStats {
        FsStats {
            blocks: self.image_len.div_ceil(u64::from(BLOCK_SIZE)),
            files: self.nodes.len() as u64,
            block_size: BLOCK_SIZE,
            max_name_len: 255,
        }
    }

    /// Resolves a path relative to the root (`"blobs/sha256/…"`), without following
    /// symbolic links. For tests and tools; the mount uses [`Tree::lookup`].
    pub fn resolve(&self, path: &str) -> Result<Attr, TreeError> {
        let mut attr = self.attr(ROOT)?;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            attr = self.lookup(attr.ino, part.as_bytes())?;
        }
        Ok(attr)
    }
}
