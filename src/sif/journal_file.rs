//! The update journal's file, `<image>.sifmount-journal`, kept so that nobody sharing the
//! image's directory can turn it against the image or against whoever writes it.
//!
//! The directory holding an image may be writable by others (a project directory, a
//! sticky `/tmp`), and whoever mounts the image read-write may be root. So the journal is
//! never reached through its path: the directory is opened once, when the journal is
//! named, and every later open, creation and removal is relative to that descriptor.
//!
//! * **Named after the file, not the path given.** The image's path is resolved first
//!   (symbolic links followed, `..` removed), so the journal lies beside the image itself,
//!   where an open through any other symbolic link looks for it too.
//! * **Never followed.** Every open has `O_NOFOLLOW` and `O_NONBLOCK`: a symbolic link at
//!   the journal's name is refused, not written through, and a FIFO or device is refused
//!   without blocking. Only a regular file with one link is read.
//! * **Only trusted when we could have written it.** A journal is read only if it is owned
//!   by the user of this process or the image's owner and nobody else can write it (no
//!   group or other write permission), and only up to [`MAX_JOURNAL_LEN`] bytes. The
//!   record then says which file, in which state, it belongs to (`journal.rs`); this
//!   module only decides whether the bytes are worth decoding.
//! * **Created exclusively.** A record is written to a file created with `O_EXCL`, mode
//!   0600. Whatever already has the name is removed first when it is the journal this
//!   store last wrote or read; anything else (planted, or another writer's) makes the
//!   update fail before the image is touched.
//! * **Removed only when it is ours.** Clearing removes the name only while it still
//!   holds the file this store wrote or read.
//!
//! What this cannot prevent: whoever may write the directory can still delete or rename
//! the journal (or the image) — a sticky directory only stops users who own neither the
//! file nor the directory — and so can lose an interrupted update's record. The manual
//! page's SECURITY section says what is and is not guaranteed.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::journal_store::JournalStore;
use super::storage::FileIdentity;

/// What the journal file's name adds to the image's.
pub const JOURNAL_SUFFIX: &str = ".sifmount-journal";

/// The largest journal read or written. A journal holds the bytes an update writes and
/// the old bytes it overwrites (at most `MAX_UNDO`); a mount stages at most 1 GiB of
/// files for one update (`-o max_staged_total=`).
pub const MAX_JOURNAL_LEN: u64 = (1 << 30) + (256 << 20);

/// Why a file at the journal's name was not read: it is not a journal this sifmount
/// could have written for this image. Carried inside an `io::Error`, so that callers can
/// tell it from a failure to read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UntrustedJournal(pub String);

impl UntrustedJournal {
    /// The reason, if `e` is a refusal rather than an I/O failure.
    pub fn in_error(e: &io::Error) -> Option<&UntrustedJournal> {
        e.get_ref()?.downcast_ref::<UntrustedJournal>()
    }
}

fn untrusted(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, UntrustedJournal(why))
}

/// The canonical path of an image: symbolic links resolved. For a file that does not
/// exist yet (an image about to be created), its directory's canonical path and its name.
pub fn canonical_image_path(image: &Path) -> io::Result<PathBuf> {
    match std::fs::canonicalize(image) {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let name = image.file_name().ok_or(e)?;
            let dir = match image.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            Ok(std::fs::canonicalize(dir)?.join(name))
        }
        Err(e) => Err(e),
    }
}

/// The path of the journal of the image at `image` (after resolving links).
pub fn journal_path(image: &Path) -> io::Result<PathBuf> {
    let canonical = canonical_image_path(image)?;
    let mut p = canonical.into_os_string();
    p.push(JOURNAL_SUFFIX);
    Ok(PathBuf::from(p))
}

/// A journal in a file beside its image (module documentation).
#[derive(Debug)]
pub struct FileJournal {
    /// The directory holding the image, opened when the journal was named.
    dir: File,
    name: CString,
    /// For messages only: nothing is opened by this path.
    path: PathBuf,
    /// Whose journals are trusted besides this process's user.
    image_owner: Option<u32>,
    /// The journal file this store last wrote or read, the only one it removes. Held
    /// open: while it is, no other file can be given its inode number, so a file at the
    /// name with that number is this one.
    mine: Mutex<Option<File>>,
}

impl FileJournal {
    /// The journal of the image at `image`, trusting files owned by the image's owner as
    /// well as by this process's user.
    pub fn for_image(image: &Path) -> io::Result<FileJournal> {
        let owner = std::fs::metadata(image).ok().map(|m| m.uid());
        FileJournal::named(image, owner)
    }

    /// The journal of the image `file`, opened from `image`: the owner trusted is the
    /// owner of the file actually open.
    pub fn for_open_image(image: &Path, file: &File) -> io::Result<FileJournal> {
        let owner = file.metadata()?.uid();
        FileJournal::named(image, Some(owner))
    }

    fn named(image: &Path, image_owner: Option<u32>) -> io::Result<FileJournal> {
        let path = journal_path(image)?;
        let (dir_path, name) = match (path.parent(), path.file_name()) {
            (Some(d), Some(n)) => (d.to_path_buf(), n.to_os_string()),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{}: not a file name", image.display()),
                ))
            }
        };
        let dir = open_dir(&dir_path)?;
        Ok(FileJournal {
            dir,
            name: c_name(&name)?,
            path,
            image_owner,
            mine: Mutex::new(None),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn mine(&self) -> std::sync::MutexGuard<'_, Option<File>> {
        self.mine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the file at the name (`st`) is the one this store wrote or read.
    fn is_mine(&self, st: &libc::stat) -> bool {
        let there = FileIdentity {
            dev: st.st_dev,
            ino: st.st_ino,
        };
        let mine = self.mine();
        let held = mine.as_ref().and_then(|f| f.metadata().ok());
        held.is_some_and(|m| FileIdentity::of(&m) == there)
    }

    /// `openat(dir, name, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode)`.
    fn open_at(&self, flags: libc::c_int, mode: libc::mode_t) -> io::Result<File> {
        let flags = flags | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
        crate::sys::open_at(self.dir.as_fd(), &self.name, flags, mode)
    }

    /// What is at the journal's name, without following a link.
    fn stat_name(&self) -> io::Result<Option<libc::stat>> {
        match crate::sys::stat_at_no_follow(self.dir.as_fd(), &self.name) {
            Ok(st) => Ok(Some(st)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn unlink_name(&self) -> io::Result<()> {
        match crate::sys::unlink_at(self.dir.as_fd(), &self.name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn sync_dir(&self) -> io::Result<()> {
        match self.dir.sync_all() {
            // Some file systems cannot fsync a directory; their names are as durable as
            // they get.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
            other => other,
        }
    }

    /// Refuses a file that this sifmount cannot have written as the image's journal.
    fn check_trusted(&self, meta: &std::fs::Metadata) -> io::Result<()> {
        let kind = meta.file_type();
        if !kind.is_file() {
            return Err(untrusted(format!(
                "is not a regular file (a {}); a journal is only ever one",
                describe_type(meta.mode())
            )));
        }
        if meta.nlink() != 1 {
            return Err(untrusted(format!(
                "has {} hard links; a journal sifmount writes has one",
                meta.nlink()
            )));
        }
        let me = crate::sys::euid();
        let uid = meta.uid();
        if uid != me && Some(uid) != self.image_owner {
            let owner = match self.image_owner {
                Some(o) if o != me => format!(" nor the image's owner (uid {o})"),
                _ => String::new(),
            };
            return Err(untrusted(format!(
                "is owned by uid {uid}, not by this user (uid {me}){owner}, so sifmount did \
                 not write it for this image"
            )));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(untrusted(format!(
                "is writable by others than its owner (mode {:04o}); sifmount writes its \
                 journals with mode 0600",
                meta.mode() & 0o7777
            )));
        }
        if meta.len() > MAX_JOURNAL_LEN {
            return Err(untrusted(format!(
                "is {} bytes, more than the {MAX_JOURNAL_LEN} a journal can hold",
                meta.len()
            )));
        }
        Ok(())
    }

    /// Removes whatever is at the journal's name, without following a link: for a file
    /// about to be replaced by a new image, whose old journal must never be replayed
    /// onto the new one.
    pub fn clear_if_present(&self) -> io::Result<()> {
        if self.stat_name()?.is_none() {
            return Ok(());
        }
        self.unlink_name()?;
        *self.mine() = None;
        self.sync_dir()
    }
}

impl JournalStore for FileJournal {
    fn load(&self) -> io::Result<Option<Vec<u8>>> {
        let file = match self.open_at(libc::O_RDONLY, 0) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(untrusted(
                    "is a symbolic link; a journal is only ever a regular file".to_string(),
                ))
            }
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        self.check_trusted(&meta)?;
        // Bounded even if the file grows while it is read.
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        (&file).take(MAX_JOURNAL_LEN + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_JOURNAL_LEN {
            return Err(untrusted(format!(
                "grew past the {MAX_JOURNAL_LEN} bytes a journal can hold while it was read"
            )));
        }
        *self.mine() = Some(file);
        Ok(Some(bytes))
    }

    fn store(&self, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() as u64 > MAX_JOURNAL_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the update needs a {}-byte journal, more than the {MAX_JOURNAL_LEN} \
                     allowed; make it in smaller parts",
                    bytes.len()
                ),
            ));
        }
        if let Some(st) = self.stat_name()? {
            if !self.is_mine(&st) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a file this mount did not write already has the journal's name \
                     (another program updating the image, or a file put there); the \
                     image was not touched",
                ));
            }
            self.unlink_name()?;
        }
        // Owner-only: the record holds image bytes, and nobody else needs it.
        let f = self.open_at(libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600)?;
        // Ours from here on, even if writing it fails half-way.
        let mut mine = self.mine();
        let f = mine.insert(f);
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(mine);
        self.sync_dir()
    }

    fn clear(&self) -> io::Result<()> {
        if let Some(st) = self.stat_name()? {
            if self.is_mine(&st) {
                self.unlink_name()?;
            } else {
                log::warn!(
                    "{}: not removing it: it is not the journal this mount wrote or read",
                    self.path.display()
                );
            }
        }
        *self.mine() = None;
        // Even when the file was already gone: an earlier removal may not be durable yet,
        // and a journal that reappeared after a crash would be replayed onto newer bytes.
        self.sync_dir()
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }
}

/// The directory, for reading and fsyncing; a directory that may be searched but not
/// read still serves to look the journal up (read-only opens), through an `O_PATH`
/// descriptor.
fn open_dir(dir: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |flags| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC | flags)
            .open(dir)
    };
    match open(0) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => open(libc::O_PATH),
        other => other,
    }
    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(OsString::from(name).as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the image's name contains a NUL byte",
        )
    })
}

fn describe_type(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => "directory",
        libc::S_IFIFO => "FIFO",
        libc::S_IFCHR => "character device",
        libc::S_IFBLK => "block device",
        libc::S_IFSOCK => "socket",
        libc::S_IFLNK => "symbolic link",
        _ => "file of unknown type",
    }
}
