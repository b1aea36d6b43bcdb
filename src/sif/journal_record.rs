//! The journal's record: how one update turns the old file into the new one and back,
//! and the bytes that store it. Encoding, decoding and telling a whole record from a torn
//! one; nothing here reads or writes an image. How a record is planned, applied, undone
//! and replayed is `journal.rs`.
//!
//! # Record format
//!
//! All integers little-endian: the 16 bytes `sifmount-journal`; format version (u32, 3;
//! version 2, still read, has one anchor end (u64) where version 3 has the ranges, and
//! covers `0..end`);
//! flags (u32, bit 0: undo data present, bit 1: the file is named); the device and inode
//! of the image file (u64 each, zero when not named); old and new image length (u64
//! each); the anchored ranges, as their number (u64) and each one's start and end (u64
//! each), then the anchor (32 bytes; what it covers, and why, is `journal.rs`, "Which
//! file a journal is of"); the number of steps (u64), then each step
//! as a tag byte and its fields: 1 `Write` (offset, length, bytes), 2 `Zero` (offset,
//! length), 3 `SetLen` (length), 4 `Copy` (source, destination, length, 32-byte SHA-256
//! of the source bytes); the number of undo ranges (u64), each as offset, length, bytes;
//! last, the SHA-256 of everything before it.

use super::digest::Hasher;
use super::storage::FileIdentity;

const MAGIC: &[u8; 16] = b"sifmount-journal";
const VERSION: u32 = 3;
/// The previous format, whose anchor covers `0..end`: an update interrupted under an
/// older sifmount is still completed.
const VERSION_ONE_ANCHOR: u32 = 2;
/// More anchored ranges than any header describes: the record is damaged.
const MAX_ANCHORED: u64 = 16;
const FLAG_UNDO: u32 = 1;
/// The record names the file it belongs to (its device and inode).
const FLAG_IDENTITY: u32 = 2;

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Write {
        offset: u64,
        bytes: Vec<u8>,
    },
    Zero {
        offset: u64,
        len: u64,
    },
    SetLen {
        len: u64,
    },
    Copy {
        src: u64,
        dst: u64,
        len: u64,
        sha256: [u8; 32],
    },
}

impl Op {
    /// The range this step writes (a truncation writes nothing).
    pub(super) fn written(&self) -> Option<(u64, u64)> {
        match self {
            Op::Write { offset, bytes } => Some((*offset, offset + bytes.len() as u64)),
            Op::Zero { offset, len } => Some((*offset, offset + len)),
            Op::Copy { dst, len, .. } => Some((*dst, dst + len)),
            Op::SetLen { .. } => None,
        }
    }
}

/// A journal record: how to turn the old file into the new one, and back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Record {
    /// The file the update is of; `None` for storage that is not a file (memory).
    pub(super) image: Option<FileIdentity>,
    pub(super) old_len: u64,
    pub(super) new_len: u64,
    /// The old header's and descriptor table's ranges, sorted and disjoint:
    /// [`Record::anchor`] covers their bytes.
    pub(super) anchored: Vec<(u64, u64)>,
    /// The SHA-256 of the bytes of `anchored` that the plan does not change, in
    /// order: the same before the update, after it, and at every point in between, so
    /// a file that still hashes to it is the one the update started from, however far
    /// the update got.
    pub(super) anchor: [u8; 32],
    pub(super) ops: Vec<Op>,
    /// The old bytes of every range inside `old_len` the plan changes; `None` when they
    /// were over [`MAX_UNDO`](super::MAX_UNDO).
    pub(super) undo: Option<Vec<(u64, Vec<u8>)>>,
}

impl Record {
    pub(super) fn is_noop(&self) -> bool {
        self.ops
            .iter()
            .all(|op| matches!(op, Op::SetLen { len } if *len == self.old_len))
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        let mut flags = if self.undo.is_some() { FLAG_UNDO } else { 0 };
        if self.image.is_some() {
            flags |= FLAG_IDENTITY;
        }
        out.extend_from_slice(&flags.to_le_bytes());
        let image = self.image.unwrap_or(FileIdentity { dev: 0, ino: 0 });
        put(&mut out, image.dev);
        put(&mut out, image.ino);
        put(&mut out, self.old_len);
        put(&mut out, self.new_len);
        put(&mut out, self.anchored.len() as u64);
        for &(a, b) in &self.anchored {
            put(&mut out, a);
            put(&mut out, b);
        }
        out.extend_from_slice(&self.anchor);
        put(&mut out, self.ops.len() as u64);
        for op in &self.ops {
            match op {
                Op::Write { offset, bytes } => {
                    out.push(1);
                    put(&mut out, *offset);
                    put(&mut out, bytes.len() as u64);
                    out.extend_from_slice(bytes);
                }
                Op::Zero { offset, len } => {
                    out.push(2);
                    put(&mut out, *offset);
                    put(&mut out, *len);
                }
                Op::SetLen { len } => {
                    out.push(3);
                    put(&mut out, *len);
                }
                Op::Copy {
                    src,
                    dst,
                    len,
                    sha256,
                } => {
                    out.push(4);
                    put(&mut out, *src);
                    put(&mut out, *dst);
                    put(&mut out, *len);
                    out.extend_from_slice(sha256);
                }
            }
        }
        let undo = self.undo.as_deref().unwrap_or(&[]);
        put(&mut out, undo.len() as u64);
        for (offset, bytes) in undo {
            put(&mut out, *offset);
            put(&mut out, bytes.len() as u64);
            out.extend_from_slice(bytes);
        }
        let sum = sha256(&out);
        out.extend_from_slice(&sum);
        out
    }
}

fn put(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// What a stored journal turned out to be.
#[derive(Debug)]
pub(super) enum Decoded {
    Valid(Record),
    /// Torn or damaged: the image was never touched for it.
    Invalid(String),
    /// Whole, but written by a sifmount with another record format.
    Unsupported(u32),
}

pub(super) fn decode(bytes: &[u8]) -> Decoded {
    let invalid = |why: &str| Decoded::Invalid(why.to_string());
    if bytes.len() < MAGIC.len() + 32 {
        return invalid("too short");
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if sha256(body) != sum {
        return invalid("checksum mismatch");
    }
    let mut c = Cursor { b: body, pos: 0 };
    match c.take(MAGIC.len()) {
        Some(m) if m == MAGIC => {}
        _ => return invalid("not a sifmount journal"),
    }
    let version = match c.u32() {
        Some(v @ (VERSION | VERSION_ONE_ANCHOR)) => v,
        Some(v) => return Decoded::Unsupported(v),
        None => return invalid("truncated"),
    };
    match decode_body(&mut c, version) {
        Some(r) if c.pos == body.len() => Decoded::Valid(r),
        Some(_) => invalid("trailing bytes"),
        None => invalid("malformed record"),
    }
}

fn decode_body(c: &mut Cursor<'_>, version: u32) -> Option<Record> {
    let flags = c.u32()?;
    let (dev, ino) = (c.u64()?, c.u64()?);
    let image = (flags & FLAG_IDENTITY != 0).then_some(FileIdentity { dev, ino });
    let old_len = c.u64()?;
    let new_len = c.u64()?;
    let anchored = if version == VERSION_ONE_ANCHOR {
        vec![(0, c.u64()?)]
    } else {
        let n = c.u64()?;
        if n > MAX_ANCHORED {
            return None;
        }
        let mut ranges = Vec::new();
        let mut last_end = 0;
        for _ in 0..n {
            let (a, b) = (c.u64()?, c.u64()?);
            // Sorted and disjoint, as they were written.
            if a > b || a < last_end {
                return None;
            }
            last_end = b;
            ranges.push((a, b));
        }
        ranges
    };
    let anchor: [u8; 32] = c.take(32)?.try_into().ok()?;
    let n_ops = c.u64()?;
    let mut ops = Vec::new();
    for _ in 0..n_ops {
        let op = match c.u8()? {
            1 => {
                let offset = c.u64()?;
                let len = c.len()?;
                Op::Write {
                    offset,
                    bytes: c.take(len)?.to_vec(),
                }
            }
            2 => Op::Zero {
                offset: c.u64()?,
                len: c.u64()?,
            },
            3 => Op::SetLen { len: c.u64()? },
            4 => Op::Copy {
                src: c.u64()?,
                dst: c.u64()?,
                len: c.u64()?,
                sha256: c.take(32)?.try_into().ok()?,
            },
            _ => return None,
        };
        // No range may wrap around: apply and undo add offsets and lengths.
        let end = match &op {
            Op::Write { offset, bytes } => offset.checked_add(bytes.len() as u64),
            Op::Zero { offset, len } => offset.checked_add(*len),
            Op::Copy { src, dst, len, .. } => src.checked_add(*len).and(dst.checked_add(*len)),
            Op::SetLen { len } => Some(*len),
        };
        end?;
        ops.push(op);
    }
    let n_undo = c.u64()?;
    let mut undo = Vec::new();
    for _ in 0..n_undo {
        let offset = c.u64()?;
        let len = c.len()?;
        offset.checked_add(len as u64)?;
        undo.push((offset, c.take(len)?.to_vec()));
    }
    let undo = if flags & FLAG_UNDO != 0 {
        Some(undo)
    } else {
        None
    };
    Some(Record {
        image,
        old_len,
        new_len,
        anchored,
        anchor,
        ops,
        undo,
    })
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    /// A length that must fit in what is left (checked before anything is allocated).
    fn len(&mut self) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        (n <= self.b.len() - self.pos).then_some(n)
    }
}

pub(super) fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h = Hasher::default();
    h.update(data);
    *h.finish().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            image: Some(FileIdentity { dev: 8, ino: 1234 }),
            old_len: 100,
            new_len: 120,
            anchored: vec![(0, 64), (90, 100)],
            anchor: [9; 32],
            ops: vec![
                Op::Copy {
                    src: 1,
                    dst: 100,
                    len: 10,
                    sha256: [7; 32],
                },
                Op::SetLen { len: 120 },
                Op::Write {
                    offset: 3,
                    bytes: b"abc".to_vec(),
                },
                Op::Zero { offset: 50, len: 5 },
            ],
            undo: Some(vec![(3, b"xyz".to_vec()), (50, vec![1; 5])]),
        }
    }

    #[test]
    fn records_round_trip_and_any_damage_is_detected() {
        let rec = sample();
        let bytes = rec.encode();
        match decode(&bytes) {
            Decoded::Valid(r) => assert_eq!(r, rec),
            other => panic!("{other:?}"),
        }
        for cut in 0..bytes.len() {
            assert!(
                matches!(decode(&bytes[..cut]), Decoded::Invalid(_)),
                "torn at {cut}"
            );
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(matches!(decode(&b), Decoded::Invalid(_)), "byte {i}");
        }
        let mut newer = bytes[..bytes.len() - 32].to_vec();
        newer[16..20].copy_from_slice(&(VERSION + 1).to_le_bytes());
        let sum = sha256(&newer);
        newer.extend_from_slice(&sum);
        assert!(matches!(decode(&newer), Decoded::Unsupported(v) if v == VERSION + 1));
    }

    #[test]
    fn a_well_formed_checksum_over_nonsense_is_still_refused() {
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(&VERSION.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&[0; 16 + 24 + 32]);
        body.extend_from_slice(&u64::MAX.to_le_bytes()); // a billion billion ops
        let sum = sha256(&body);
        body.extend_from_slice(&sum);
        assert!(matches!(decode(&body), Decoded::Invalid(_)));
    }

    /// A record an older sifmount wrote (format 2: one anchor end) still decodes, with
    /// its anchor covering everything before that end.
    #[test]
    fn format_2_records_are_still_read() {
        let mut rec = sample();
        rec.anchored = vec![(0, 64)];
        let v3 = rec.encode();
        // Format 2 is format 3 with the count and the first start left out.
        let head = 16 + 4 + 4 + 16 + 16;
        let mut v2 = v3[..head].to_vec();
        v2[16..20].copy_from_slice(&VERSION_ONE_ANCHOR.to_le_bytes());
        v2.extend_from_slice(&64u64.to_le_bytes());
        v2.extend_from_slice(&v3[head + 24..v3.len() - 32]);
        let sum = sha256(&v2);
        v2.extend_from_slice(&sum);
        match decode(&v2) {
            Decoded::Valid(r) => assert_eq!(r, rec),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn anchored_ranges_out_of_order_are_refused() {
        let mut rec = sample();
        rec.anchored = vec![(90, 100), (0, 64)];
        assert!(matches!(decode(&rec.encode()), Decoded::Invalid(_)));
    }
}
