//! One writer per image, and noticing when someone else wrote anyway.
//!
//! A read-write mount holds an exclusive `flock(2)` on the image for its whole life, so a
//! second read-write mount (or any program that takes the same lock) is refused at once
//! instead of interleaving its updates with ours. The lock is advisory: programs that do
//! not take it (SingularityCE, `siftool`) can still write, so before every update the
//! writer also checks that the file still holds exactly what it last read or wrote.
//!
//! The lock is on a file, not a name: after `mv other.sif image.sif` the path names a
//! file nobody holds, and updates written to the held one would go to a file no longer
//! reachable. So before every update the writer also checks that the image's path still
//! names the file it locked ([`WriterLock::renamed_away`]).

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use super::image::SifImage;
use super::storage::FileIdentity;
use super::{DESCRIPTOR_SIZE, HEADER_SIZE};

/// Why the lock could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{0}: the image is already open for writing (another read-write sifmount mount, or \
         a program holding its lock); mount it with -o ro, or unmount the other first"
    )]
    Busy(PathBuf),
    #[error("{path}: cannot lock the image: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// An exclusive lock on an image file, released when dropped (or when the last process
/// sharing the descriptor, such as a daemon's child, exits).
#[derive(Debug)]
pub struct WriterLock {
    /// Holds the lock for as long as it is open (flock locks belong to the open file).
    _file: File,
    identity: FileIdentity,
}

impl WriterLock {
    /// Takes the lock without waiting.
    pub fn acquire(path: &Path) -> Result<WriterLock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        // Read access is enough for flock, and keeps this descriptor harmless.
        let file = OpenOptions::new().read(true).open(path).map_err(io)?;
        if let Err(e) = crate::sys::flock_exclusive_now(file.as_fd()) {
            return Err(match e.raw_os_error() {
                Some(libc::EWOULDBLOCK) => LockError::Busy(path.to_path_buf()),
                _ => io(e),
            });
        }
        let identity = FileIdentity::of(&file.metadata().map_err(io)?);
        Ok(WriterLock {
            _file: file,
            identity,
        })
    }

    /// The file locked.
    pub fn identity(&self) -> FileIdentity {
        self.identity
    }

    /// How `path` no longer names the locked file, if it does not: another file was
    /// renamed or copied into its place, or it was moved or removed.
    pub fn renamed_away(&self, path: &Path) -> Option<String> {
        match std::fs::metadata(path) {
            Ok(m) if FileIdentity::of(&m) == self.identity => None,
            Ok(m) => Some(format!(
                "the path now names another file ({}), not the one this mount holds ({}): \
                 something was renamed or copied over it",
                FileIdentity::of(&m),
                self.identity
            )),
            Err(e) => Some(format!(
                "the path no longer names the file this mount holds ({e}): it was moved or \
                 removed"
            )),
        }
    }
}

/// How the image file on disk differs from what `sif` holds in memory, if it does: its
/// length (against `expected_len`, the length after the last update), its header or its
/// descriptor table. `None` when they agree.
pub fn changed_on_disk(sif: &SifImage, expected_len: u64) -> Option<String> {
    let storage = sif.storage();
    match storage.len() {
        Ok(len) if len != expected_len => {
            return Some(format!(
                "its length is {len} bytes, not the {expected_len} it had"
            ))
        }
        Ok(_) => {}
        Err(e) => return Some(format!("its length cannot be read: {e}")),
    }
    let mut header = [0u8; HEADER_SIZE];
    if let Err(e) = storage.read_exact_at(&mut header, 0) {
        return Some(format!("its header cannot be read: {e}"));
    }
    if header != sif.header().encode() {
        return Some("its header changed".to_string());
    }
    let offset = sif.header().descriptors_offset as u64;
    let mut table = vec![0u8; sif.slots().len() * DESCRIPTOR_SIZE];
    if let Err(e) = storage.read_exact_at(&mut table, offset) {
        return Some(format!("its descriptor table cannot be read: {e}"));
    }
    let changed = table
        .chunks_exact(DESCRIPTOR_SIZE)
        .zip(sif.slots())
        .position(|(stored, slot)| stored != slot.encode().as_slice());
    changed.map(|slot| format!("descriptor slot {slot} changed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_until_the_first_lets_go() {
        let dir = std::env::temp_dir().join(format!("sifmount-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("image.sif");
        std::fs::write(&path, b"x").unwrap();
        let first = WriterLock::acquire(&path).unwrap();
        let second = WriterLock::acquire(&path).unwrap_err();
        assert!(matches!(second, LockError::Busy(_)), "{second}");
        assert!(second.to_string().contains("already open for writing"));
        drop(first);
        WriterLock::acquire(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
