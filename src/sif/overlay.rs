//! The in-memory view of an image during a transaction (see `journal.rs`).
//!
//! An [`Overlay`] stands in for the image's storage while a transaction runs: reads see
//! the base bytes with every recorded change applied, changes go to memory only. It does
//! not keep a log of the calls: it keeps what the image *would be*, as a list of
//! contiguous pieces covering `[0, len)`, each taken from the base at some offset, from
//! bytes written, or zeros. A commit turns those pieces into a short plan (moves, writes,
//! zeroed ranges, the final length) whose result is the same bytes as performing the
//! calls in order, however the calls overlapped.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use super::storage::Storage;

/// Where the bytes of a piece come from.
#[derive(Clone, Debug)]
pub(super) enum Src {
    /// The base image, from this offset on.
    Base(u64),
    /// Bytes written during the transaction, from this index of the buffer on.
    Data(Arc<[u8]>, usize),
    Zero,
}

impl Src {
    /// The same source `k` bytes further on.
    fn advanced(&self, k: u64) -> Src {
        match self {
            Src::Base(p) => Src::Base(p + k),
            Src::Data(b, o) => Src::Data(b.clone(), o + k as usize),
            Src::Zero => Src::Zero,
        }
    }
}

/// `len` bytes at `start` of the new image, from `src`.
#[derive(Clone, Debug)]
pub(super) struct Piece {
    pub start: u64,
    pub len: u64,
    pub src: Src,
}

impl Piece {
    pub fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// The image as the transaction has made it so far.
#[derive(Clone, Debug)]
pub(super) struct Map {
    pub len: u64,
    /// Sorted, contiguous, non-empty pieces covering exactly `[0, len)`.
    pub pieces: Vec<Piece>,
}

impl Map {
    fn new(base_len: u64) -> Map {
        let pieces = if base_len > 0 {
            vec![Piece {
                start: 0,
                len: base_len,
                src: Src::Base(0),
            }]
        } else {
            Vec::new()
        };
        Map {
            len: base_len,
            pieces,
        }
    }

    /// Splits the piece containing `at` (`at <= len`) so that a piece starts there;
    /// returns the index of that piece (`pieces.len()` when `at == len`).
    fn split_at(&mut self, at: u64) -> usize {
        let i = self.pieces.partition_point(|p| p.end() <= at);
        if i == self.pieces.len() || self.pieces[i].start == at {
            return i;
        }
        let p = &mut self.pieces[i];
        let k = at - p.start;
        let right = Piece {
            start: at,
            len: p.len - k,
            src: p.src.advanced(k),
        };
        p.len = k;
        self.pieces.insert(i + 1, right);
        i + 1
    }

    /// Zero-extends to `new_len`, as a write or `set_len` past the end does.
    fn extend_to(&mut self, new_len: u64) {
        if new_len <= self.len {
            return;
        }
        match self.pieces.last_mut() {
            Some(last) if matches!(last.src, Src::Zero) => last.len += new_len - self.len,
            _ => self.pieces.push(Piece {
                start: self.len,
                len: new_len - self.len,
                src: Src::Zero,
            }),
        }
        self.len = new_len;
    }

    fn truncate(&mut self, new_len: u64) {
        if new_len >= self.len {
            return;
        }
        let i = self.split_at(new_len);
        self.pieces.truncate(i);
        self.len = new_len;
    }

    /// Puts `new` (contiguous pieces from `at`, `n` bytes in all) over `[at, at + n)`.
    fn replace(&mut self, at: u64, n: u64, new: Vec<Piece>) {
        if n == 0 {
            return;
        }
        self.extend_to(at + n);
        let i = self.split_at(at);
        let j = self.split_at(at + n);
        self.pieces.splice(i..j, new);
    }

    /// Copies of the pieces covering `[at, at + n)`, cut to that range.
    fn slice(&self, at: u64, n: u64) -> io::Result<Vec<Piece>> {
        let end = at.checked_add(n).ok_or_else(eof)?;
        if end > self.len {
            return Err(eof());
        }
        let mut out = Vec::new();
        let i = self.pieces.partition_point(|p| p.end() <= at);
        for p in &self.pieces[i..] {
            if p.start >= end {
                break;
            }
            let s = p.start.max(at);
            let e = p.end().min(end);
            out.push(Piece {
                start: s,
                len: e - s,
                src: p.src.advanced(s - p.start),
            });
        }
        Ok(out)
    }

    fn read(&self, base: &dyn Storage, buf: &mut [u8], at: u64) -> io::Result<()> {
        for p in self.slice(at, buf.len() as u64)? {
            let dst = &mut buf[(p.start - at) as usize..(p.end() - at) as usize];
            match &p.src {
                Src::Base(pos) => base.read_exact_at(dst, *pos)?,
                Src::Data(b, o) => dst.copy_from_slice(&b[*o..*o + dst.len()]),
                Src::Zero => dst.fill(0),
            }
        }
        Ok(())
    }
}

/// A storage that keeps every change in memory, over a base it only reads.
pub(super) struct Overlay {
    base: Box<dyn Storage>,
    base_len: u64,
    map: Mutex<Map>,
}

impl Overlay {
    pub fn new(base: Box<dyn Storage>, base_len: u64) -> Overlay {
        Overlay {
            base,
            base_len,
            map: Mutex::new(Map::new(base_len)),
        }
    }

    fn map(&self) -> MutexGuard<'_, Map> {
        // A panic while holding the lock leaves a consistent map (every change is one
        // splice), so a poisoned lock is still usable.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state so far, to return to if a nested transaction fails.
    pub fn snapshot(&self) -> Map {
        self.map().clone()
    }

    pub fn restore(&self, m: Map) {
        *self.map() = m;
    }

    pub fn base_len(&self) -> u64 {
        self.base_len
    }

    /// The base storage back, and what the transaction made of it.
    pub fn into_parts(self) -> (Box<dyn Storage>, Map) {
        let map = self.map.into_inner().unwrap_or_else(|e| e.into_inner());
        (self.base, map)
    }
}

impl Storage for Overlay {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.map().read(self.base.as_ref(), buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut m = self.map();
        if buf.is_empty() {
            // As on a file: an empty write past the end still extends it.
            m.extend_to(offset);
            return Ok(());
        }
        let n = buf.len() as u64;
        offset.checked_add(n).ok_or_else(too_big)?;
        let piece = Piece {
            start: offset,
            len: n,
            src: Src::Data(Arc::from(buf), 0),
        };
        m.replace(offset, n, vec![piece]);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.map().len)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut m = self.map();
        if len < m.len {
            m.truncate(len);
        } else {
            m.extend_to(len);
        }
        Ok(())
    }

    /// Nothing reaches the base before the commit, so there is nothing to sync.
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }

    fn copy_range(&self, src: u64, dst: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        dst.checked_add(len).ok_or_else(too_big)?;
        let mut m = self.map();
        // Taken before anything is replaced, so overlapping ranges copy correctly.
        let moved: Vec<Piece> = m
            .slice(src, len)?
            .into_iter()
            .map(|p| Piece {
                start: p.start - src + dst,
                ..p
            })
            .collect();
        m.replace(dst, len, moved);
        Ok(())
    }

    fn zero_range(&self, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        offset.checked_add(len).ok_or_else(too_big)?;
        let piece = Piece {
            start: offset,
            len,
            src: Src::Zero,
        };
        self.map().replace(offset, len, vec![piece]);
        Ok(())
    }
}

/// Stands in for the storage while it is moved in or out of an overlay; it is never
/// used unless a transaction could not take its storage back, and then every access
/// fails rather than reach a wrong file.
pub(super) struct Detached;

impl Storage for Detached {
    fn read_exact_at(&self, _: &mut [u8], _: u64) -> io::Result<()> {
        Err(detached())
    }
    fn write_all_at(&self, _: &[u8], _: u64) -> io::Result<()> {
        Err(detached())
    }
    fn len(&self) -> io::Result<u64> {
        Err(detached())
    }
    fn set_len(&self, _: u64) -> io::Result<()> {
        Err(detached())
    }
    fn sync(&self) -> io::Result<()> {
        Err(detached())
    }
}

fn detached() -> io::Error {
    io::Error::other("the image's storage was lost by a failed transaction; reopen the image")
}

fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "read past the end of the image",
    )
}

fn too_big() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "offset beyond 64 bits")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sif::MemStorage;

    /// Every call on the overlay and on a plain memory image gives the same bytes.
    #[test]
    fn reads_match_the_calls_performed_in_order() {
        let base: Vec<u8> = (0..200u8).collect();
        let mem = MemStorage::new(base.clone());
        let ov = Overlay::new(Box::new(MemStorage::new(base.clone())), base.len() as u64);
        type Call = Box<dyn Fn(&dyn Storage)>;
        let calls: Vec<Call> = vec![
            Box::new(|s| s.write_all_at(b"hello", 10).unwrap()),
            Box::new(|s| s.zero_range(50, 20).unwrap()),
            Box::new(|s| s.copy_range(0, 150, 40).unwrap()),
            Box::new(|s| s.copy_range(140, 145, 30).unwrap()),
            Box::new(|s| s.copy_range(100, 90, 30).unwrap()),
            Box::new(|s| s.set_len(160).unwrap()),
            Box::new(|s| s.write_all_at(b"tail", 170).unwrap()),
            Box::new(|s| s.write_all_at(&[], 180).unwrap()),
            Box::new(|s| s.copy_range(5, 175, 10).unwrap()),
            Box::new(|s| s.set_len(230).unwrap()),
            Box::new(|s| s.write_all_at(b"xyz", 8).unwrap()),
        ];
        for (i, call) in calls.iter().enumerate() {
            call(&mem);
            call(&ov);
            let want = mem.to_vec();
            assert_eq!(ov.len().unwrap(), want.len() as u64, "after call {i}");
            let mut got = vec![0u8; want.len()];
            ov.read_exact_at(&mut got, 0).unwrap();
            assert_eq!(got, want, "after call {i}");
        }
        assert_eq!(
            ov.read_exact_at(&mut [0u8; 2], 229).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
