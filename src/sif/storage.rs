//! Where an image's bytes live: a file, or memory (tests, fault injection).
//!
//! Every access is positioned (`pread`/`pwrite`), so readers on several threads never
//! share a file cursor.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::RwLock;

/// Positioned byte access to an image.
///
/// Writes past the end extend the image with zeros. A zero-length write past the end
/// still extends it to the write's offset: the reference library's in-memory buffer
/// behaves this way, and its golden files (an image with an empty descriptor table is 4096
/// bytes long) depend on it.
pub trait Storage: Send + Sync {
    /// Fills `buf` from `offset`; reading past the end is an `UnexpectedEof` error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes everything written so far durable.
    fn sync(&self) -> io::Result<()>;

    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Which file this is, when it is one: an update journal records it, and is only ever
    /// replayed onto the same file (`journal.rs`). Memory has no identity.
    fn identity(&self) -> Option<FileIdentity> {
        None
    }

    /// Holds the publish lock (`publish.rs`): exclusive while an update is applied, shared
    /// while a reader reads the header and table. Memory, which no other process sees, has
    /// none.
    fn publish_lock(&self, _exclusive: bool) -> Option<super::publish::PublishLock> {
        None
    }

    /// Copies `len` bytes from `src` to `dst` within the image, as if through a buffer
    /// holding them all (overlapping ranges are copied correctly). The default reads and
    /// writes 1 MiB chunks; a journalling storage records the copy instead of its bytes.
    fn copy_range(&self, src: u64, dst: u64, len: u64) -> io::Result<()> {
        buffered_copy(self, src, dst, len)
    }

    /// Overwrites `len` bytes at `offset` with zeros (extending the image when they reach
    /// past its end). The default writes 1 MiB chunks; a journalling storage records the
    /// range instead of its bytes, so zeroing a large deleted object costs no memory.
    fn zero_range(&self, offset: u64, len: u64) -> io::Result<()> {
        const CHUNK: u64 = 1 << 20;
        let zeros = vec![0u8; CHUNK.min(len) as usize];
        let mut done = 0u64;
        while done < len {
            let n = CHUNK.min(len - done);
            self.write_all_at(&zeros[..n as usize], offset + done)?;
            done += n;
        }
        Ok(())
    }
}

/// A file's device and inode number: what stays the same for a file whatever it is
/// called, and changes when another file is put in its place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
}

impl FileIdentity {
    pub fn of(meta: &std::fs::Metadata) -> FileIdentity {
        use std::os::unix::fs::MetadataExt;
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

impl std::fmt::Display for FileIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "device {} inode {}", self.dev, self.ino)
    }
}

impl Storage for File {
    fn identity(&self) -> Option<FileIdentity> {
        self.metadata().ok().map(|m| FileIdentity::of(&m))
    }
    fn publish_lock(&self, exclusive: bool) -> Option<super::publish::PublishLock> {
        super::publish::PublishLock::take(self, exclusive)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if buf.is_empty() {
            if offset > self.metadata()?.len() {
                self.set_len(offset)?;
            }
            return Ok(());
        }
        FileExt::write_all_at(self, buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
    fn sync(&self) -> io::Result<()> {
        self.sync_all()
    }
    /// `copy_file_range(2)`: the kernel copies without a trip through user space (about
    /// four times faster for a 1 GiB object) or shares the blocks where the file system
    /// can. Overlapping ranges, which it refuses, and kernels or file systems without it
    /// take the buffered copy.
    fn copy_range(&self, src: u64, dst: u64, len: u64) -> io::Result<()> {
        use std::os::fd::AsFd;
        let overlap = src < dst.saturating_add(len) && dst < src.saturating_add(len);
        if overlap || len == 0 {
            return buffered_copy(self, src, dst, len);
        }
        let fd = self.as_fd();
        let to_off = |v: u64| {
            libc::loff_t::try_from(v)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))
        };
        let (mut from, mut to) = (to_off(src)?, to_off(dst)?);
        to_off(dst.saturating_add(len))?;
        // Checked first: the copy extends the file, so a source running past the old end
        // would otherwise read what the copy itself wrote.
        if src.saturating_add(len) > self.metadata()?.len() {
            return Err(eof());
        }
        let mut done = 0u64;
        while done < len {
            let want = (len - done).min(1 << 30) as usize;
            let n = match crate::sys::copy_file_range_within(fd, &mut from, &mut to, want) {
                Ok(n) => n,
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::ENOSYS | libc::EXDEV | libc::EOPNOTSUPP | libc::EINVAL)
                        if done == 0 =>
                    {
                        return buffered_copy(self, src, dst, len);
                    }
                    _ => return Err(e),
                },
            };
            if n == 0 {
                return Err(eof());
            }
            done += n as u64;
        }
        Ok(())
    }
}

/// [`Storage::copy_range`] through a 1 MiB buffer.
fn buffered_copy<S: Storage + ?Sized>(s: &S, src: u64, dst: u64, len: u64) -> io::Result<()> {
    const CHUNK: u64 = 1 << 20;
    let mut buf = vec![0u8; CHUNK.min(len) as usize];
    // Back to front when the destination starts inside the source, so that no chunk is
    // overwritten before it is read.
    let backwards = dst > src && dst < src.saturating_add(len);
    let mut done = 0u64;
    while done < len {
        let n = CHUNK.min(len - done);
        let at = if backwards { len - done - n } else { done };
        let chunk = &mut buf[..n as usize];
        s.read_exact_at(chunk, src + at)?;
        s.write_all_at(chunk, dst + at)?;
        done += n;
    }
    Ok(())
}

/// An image held in memory.
#[derive(Default)]
pub struct MemStorage(RwLock<Vec<u8>>);

impl MemStorage {
    pub fn new(bytes: Vec<u8>) -> MemStorage {
        MemStorage(RwLock::new(bytes))
    }

    /// A copy of the current bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Storage for MemStorage {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let v = self.0.read().unwrap_or_else(|e| e.into_inner());
        let start = usize::try_from(offset).map_err(|_| eof())?;
        let end = start.checked_add(buf.len()).ok_or_else(eof)?;
        if end > v.len() {
            return Err(eof());
        }
        buf.copy_from_slice(&v[start..end]);
        Ok(())
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut v = self.0.write().unwrap_or_else(|e| e.into_inner());
        let start = usize::try_from(offset).map_err(|_| too_big())?;
        let end = start.checked_add(buf.len()).ok_or_else(too_big)?;
        if end > v.len() {
            v.resize(end, 0);
        }
        v[start..end].copy_from_slice(buf);
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.read().unwrap_or_else(|e| e.into_inner()).len() as u64)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| too_big())?;
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .resize(len, 0);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}

impl<T: Storage + ?Sized> Storage for std::sync::Arc<T> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        (**self).write_all_at(buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        (**self).len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        (**self).set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        (**self).sync()
    }
    fn copy_range(&self, src: u64, dst: u64, len: u64) -> io::Result<()> {
        (**self).copy_range(src, dst, len)
    }
    fn zero_range(&self, offset: u64, len: u64) -> io::Result<()> {
        (**self).zero_range(offset, len)
    }
    fn identity(&self) -> Option<FileIdentity> {
        (**self).identity()
    }
    fn publish_lock(&self, exclusive: bool) -> Option<super::publish::PublishLock> {
        (**self).publish_lock(exclusive)
    }
}

fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "read past the end of the image",
    )
}

fn too_big() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "offset too large for memory")
}
