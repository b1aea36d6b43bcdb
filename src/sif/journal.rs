//! Atomic, durable updates: transactions and the update journal.
//!
//! The reference library writes every change in place, with no fsync and no journal
//! (docs/FORMAT.md, How the reference library changes an image): a crash in the middle of an OCI-SIF update can leave a file with
//! no root index. sifmount keeps the bytes of every update identical to upstream's, but
//! makes the whole update atomic and durable with a write-ahead journal kept *beside*
//! the image.
//!
//! # Transactions
//!
//! [`SifImage::transaction`] runs a closure against an in-memory overlay of the image:
//! reads see the image as the closure has changed it so far, writes, zeroed ranges,
//! truncations and copies (`Storage::copy_range`) change only memory. The overlay does not log the calls; it
//! keeps what the file would be, as pieces taken from the old file at some offset, from
//! bytes written, or zeros. If the closure fails, the overlay is dropped and the header
//! and descriptors in memory are put back: the file was never touched. If it succeeds,
//! the pieces become a short plan and are committed:
//!
//! 1. **Plan.** In order: `Copy{src, dst, len, sha256}` for every piece of the old file
//!    that ends up at another offset (the hash is of the source bytes); `SetLen{len}`, the
//!    new length; then `Write{offset, bytes}` and `Zero{offset, len}` for everything else
//!    that differs. Inside the old length a write keeps only the runs of bytes that
//!    actually change (every change rewrites the whole descriptor table; an attach alters
//!    a few slots of it). Ranges that are zeros beyond the old length are not written:
//!    they are holes, as upstream leaves them. A copy whose destination overlaps the source
//!    of any copy is journaled as a write of its bytes instead. Undo data is the old
//!    bytes of every range inside the old length that the plan overwrites or truncates.
//! 2. **Journal.** The plan, the old and new lengths, the undo data and what identifies
//!    the file are written to `<image>.sifmount-journal` beside the image's canonical path
//!    (`journal_file.rs`; any other [`JournalStore`], `journal_store.rs`) with a SHA-256
//!    checksum over all of it (the record's bytes are `journal_record.rs`); the journal
//!    file and its directory are fsynced.
//! 3. **Apply.** The plan is applied to the image in order, and the image is fsynced.
//! 4. **Clear.** The journal is removed and the directory fsynced.
//!
//! A commit therefore costs four fsyncs (journal file, directory, image, directory), and
//! journals the bytes the update writes plus the old bytes it overwrites: about 5 KB for
//! an attach (the new blobs, the changed descriptors and header before and after, the
//! freed objects). A copied range costs 57 bytes of journal, however large it is.
//!
//! # Which file a journal is of
//!
//! The checksum only tells a whole record from a torn one; it says nothing of which file
//! the record is for. A journal found beside an image may be of a file that has since
//! been replaced by another (`mv`, `rsync`, a download over it), of the same file
//! rewritten in place (`cp` over it), or planted by someone who can write the directory
//! but not the image. So a record names its file, by device and inode, and the state it
//! started from, by its *anchor*: the SHA-256 of the bytes of the old header and
//! descriptor table that the update leaves alone. Those bytes are the same before the
//! update, after it and at every point in between, so a file whose identity and anchor
//! match is the file the update started from, however far the update got before the
//! crash; any other file is refused ([`SifError::JournalRefused`], naming the image and
//! the journal and saying what to do) and nothing is written to it. A read-only open
//! ignores such a journal, with a warning: it did not touch this file. Format 1
//! journals, which name no file, are refused as unknown. Who may have written the
//! journal file at all, and how it is opened, is `journal_file.rs`.
//!
//! # Why any crash leaves the old state or the new one
//!
//! * Before the journal is durable, the image has not been touched. A journal torn by a
//!   crash fails its checksum and is discarded on the next open: the old state.
//! * Once it is durable, the next read-write open (or `sifmount --recover IMAGE`) replays
//!   the whole plan from the start before reading the header: the new state. Writes,
//!   zeroed ranges and the truncation are absolute, so replaying them over a partly
//!   applied file gives the same bytes. Copies are the exception, since a later step may
//!   overwrite a copy's source;
//!   the plan is ordered so that this is safe: all copies come first, no copy writes
//!   where another reads, and nothing after them writes where they wrote. On replay, a
//!   copy whose destination already hashes to the recorded digest is skipped (a previous
//!   attempt completed it, and its source may be gone); otherwise no later step can have
//!   run yet, so its source is intact, which the replay checks before copying.
//! * If replay itself cannot finish (the disk is full, say), the undo data restores the
//!   old state instead; if that fails too the journal stays, and the image is not opened.
//!
//! Other readers (siftool, SingularityCE) never look at the journal; they see a valid
//! SIF whenever no update is in flight. A read-only open that finds a valid journal fails
//! with [`SifError::PendingUpdate`] rather than read a half-written file; it ignores (with
//! a warning) a torn one, which the image was never touched for.
//!
//! # Errors from the disk
//!
//! When applying fails (EIO, ENOSPC) the commit writes the undo data back, truncates to
//! the old length, fsyncs and removes the journal, and returns the error: the file is then
//! exactly the old one. When even that fails, the journal is left for the next open to
//! complete the update, and the [`SifImage`] refuses further changes
//! ([`SifError::UpdateInterrupted`]). A failure to write the journal leaves the image
//! untouched. Undo data is limited to [`MAX_UNDO`] bytes (an update that zeroes a large
//! object could need gigabytes); beyond that an update is journaled for redo only, and a
//! failure while applying it is completed on the next open instead of undone.
//!
//! Every change a journaled image makes outside an explicit transaction (an `add_object`,
//! a `delete_objects`, ...) is a transaction of its own (`SifImage::change`). An image
//! without a journal ([`SifImage::from_storage`], [`SifImage::create`]) writes those in
//! place as upstream does; explicit transactions on it still take effect all at once or
//! not at all in the absence of crashes, but are not crash-safe.
//!
//! A transaction holds the bytes it writes in memory until it commits, and journals them:
//! right for the kilobytes of a signature, not for adding gigabyte layers (use
//! [`SifImage::create`] for new images).

use std::fs::OpenOptions;
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::digest::Hasher;
use super::error::{Result, SifError};
use super::header::{Header, HEADER_SIZE};
use super::image::{OpenMode, SifImage};
use super::journal_file::{FileJournal, UntrustedJournal};
use super::journal_record::{decode, Decoded, Op, Record};
use super::journal_store::{JournalStore, Journaling};
use super::overlay::{Detached, Map, Overlay, Src};
use super::storage::Storage;

/// The most undo data a commit journals (see the module documentation).
pub const MAX_UNDO: u64 = 64 << 20;

const CHUNK: u64 = 1 << 20;

/// What opening an image for writing (or [`SifImage::recover`]) found beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoveryOutcome {
    /// No journal: the last update completed.
    Nothing,
    /// An interrupted update was completed: the image is in its new state.
    RolledForward,
    /// An interrupted update could not be completed (its replay failed) and was undone:
    /// the image is in its old state.
    RolledBack,
    /// A journal torn by a crash while it was written was removed; the image had not been
    /// touched yet, so it is in its old state.
    DiscardedTornJournal,
}

/// Turns what a transaction made of the image into a plan (see the module
/// documentation), reading the old bytes it needs from `base`. `anchored` are the old
/// header's and descriptor table's ranges (sorted, disjoint).
fn plan(
    map: &Map,
    base: &dyn Storage,
    base_len: u64,
    anchored: &[(u64, u64)],
) -> io::Result<Record> {
    struct Move {
        src: u64,
        dst: u64,
        len: u64,
    }
    let mut moves: Vec<Move> = Vec::new();
    let mut rest: Vec<Op> = Vec::new();
    for p in &map.pieces {
        match &p.src {
            Src::Base(pos) if *pos == p.start => {}
            Src::Base(pos) => match moves.last_mut() {
                Some(m) if m.dst + m.len == p.start && m.src + m.len == *pos => m.len += p.len,
                _ => moves.push(Move {
                    src: *pos,
                    dst: p.start,
                    len: p.len,
                }),
            },
            Src::Data(b, o) => {
                let bytes = &b[*o..*o + p.len as usize];
                // Inside the old length only what differs is written (and so journaled
                // and undone): the descriptor table is rewritten whole by every change,
                // but an attach alters a few of its slots.
                let inside = base_len.saturating_sub(p.start).min(p.len) as usize;
                if inside > 0 {
                    let mut old = vec![0u8; inside];
                    base.read_exact_at(&mut old, p.start)?;
                    for (a, b) in changed_runs(&old, &bytes[..inside]) {
                        push_write(&mut rest, p.start + a as u64, &bytes[a..b]);
                    }
                }
                if inside < bytes.len() {
                    push_write(&mut rest, p.start + inside as u64, &bytes[inside..]);
                }
            }
            // Zeros beyond the old length are left to the new length and to the writes
            // after them: a hole, as upstream leaves padding.
            Src::Zero if p.start >= base_len => {}
            Src::Zero => {
                let end = p.end().min(base_len);
                match rest.last_mut() {
                    Some(Op::Zero { offset, len }) if *offset + *len == p.start => {
                        *len = end - *offset
                    }
                    _ => rest.push(Op::Zero {
                        offset: p.start,
                        len: end - p.start,
                    }),
                }
            }
        }
    }

    let overlaps = |a: u64, alen: u64, b: u64, blen: u64| a < b + blen && b < a + alen;
    let mut ops = Vec::new();
    let mut inline = Vec::new();
    for m in &moves {
        if moves.iter().any(|o| overlaps(m.dst, m.len, o.src, o.len)) {
            // Replaying it could read bytes another copy already overwrote.
            let mut bytes = vec![0u8; m.len as usize];
            base.read_exact_at(&mut bytes, m.src)?;
            inline.push(Op::Write {
                offset: m.dst,
                bytes,
            });
        } else {
            ops.push(Op::Copy {
                src: m.src,
                dst: m.dst,
                len: m.len,
                sha256: hash_range(base, m.src, m.len)?,
            });
        }
    }
    // Truncating before the writes frees space before they need any; every write lies
    // below the new length, so the order does not change the result. The writes go in
    // file order: the header and the table, which readers in other processes check after
    // each read (src/tree/mod.rs, `Tree::read`), change before any object's bytes do.
    ops.push(Op::SetLen { len: map.len });
    ops.extend(inline);
    ops.extend(rest);

    let merged = changed_ranges(&ops, base_len);
    let anchored: Vec<(u64, u64)> = anchored
        .iter()
        .map(|&(a, b)| (a.min(base_len), b.min(base_len)))
        .filter(|(a, b)| a < b)
        .collect();
    let anchor = anchor_hash(base, &anchored, &merged)?;
    let total: u64 = merged.iter().map(|(a, b)| b - a).sum();
    let undo = if total > MAX_UNDO {
        log::info!(
            "the update overwrites {total} bytes, more than the {MAX_UNDO} kept to undo it; \
             if it cannot be applied, the next open completes it"
        );
        None
    } else {
        let mut undo = Vec::with_capacity(merged.len());
        for (a, b) in merged {
            let mut bytes = vec![0u8; (b - a) as usize];
            base.read_exact_at(&mut bytes, a)?;
            undo.push((a, bytes));
        }
        Some(undo)
    };
    Ok(Record {
        image: base.identity(),
        old_len: base_len,
        new_len: map.len,
        anchored,
        anchor,
        ops,
        undo,
    })
}

/// The old header's and descriptor table's ranges, sorted and disjoint: what an anchor
/// covers. One range when the table follows the header, as upstream writes it; two once
/// a growth has moved the table after the objects.
fn anchored_ranges(header: &Header) -> Vec<(u64, u64)> {
    let head = (0, HEADER_SIZE as u64);
    let start = header.descriptors_offset.max(0) as u64;
    let table = (
        start,
        start.saturating_add(header.descriptors_size.max(0) as u64),
    );
    let mut ranges = vec![head];
    if table.0 < table.1 {
        if table.0 <= head.1 {
            ranges[0] = (0, head.1.max(table.1));
        } else {
            ranges.push(table);
        }
    }
    ranges
}

/// The ranges inside the old length that a plan overwrites or truncates, sorted and
/// merged: what its undo data holds, and what the anchor leaves out.
fn changed_ranges(ops: &[Op], old_len: u64) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = ops
        .iter()
        .filter_map(|op| match op {
            Op::SetLen { len } => Some((*len, old_len)),
            other => other.written(),
        })
        .map(|(a, b)| (a, b.min(old_len)))
        .filter(|(a, b)| a < b)
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (a, b) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

/// The SHA-256 of the bytes of `anchored` (sorted, disjoint) outside `changed` (sorted,
/// merged), in order. Only the header and the table are read, wherever the table is: a
/// table grown after the last object (grow.rs) must not make every later update hash
/// the objects before it.
fn anchor_hash(
    s: &dyn Storage,
    anchored: &[(u64, u64)],
    changed: &[(u64, u64)],
) -> io::Result<[u8; 32]> {
    let mut h = Hasher::default();
    let mut buf = Vec::new();
    let mut feed = |from: u64, to: u64, h: &mut Hasher| -> io::Result<()> {
        let mut pos = from;
        while pos < to {
            let n = CHUNK.min(to - pos) as usize;
            buf.resize(n, 0);
            s.read_exact_at(&mut buf, pos)?;
            h.update(&buf);
            pos += n as u64;
        }
        Ok(())
    };
    for &(lo, hi) in anchored {
        let mut at = lo;
        for &(a, b) in changed {
            if b <= at {
                continue;
            }
            if a >= hi {
                break;
            }
            if a > at {
                feed(at, a, &mut h)?;
            }
            at = at.max(b);
        }
        if at < hi {
            feed(at, hi, &mut h)?;
        }
    }
    Ok(*h.finish().as_bytes())
}

/// Why `rec` must not be applied to `s`, if it must not: it is of another file, or of
/// this one in a state the update cannot have left it in.
fn foreign_to(s: &dyn Storage, rec: &Record) -> io::Result<Option<String>> {
    let here = s.identity();
    if rec.image != here {
        return Ok(Some(match (rec.image, here) {
            (Some(was), Some(now)) => format!(
                "it records an update of the file at {was}, and the image is now the file at \
                 {now}: the image was replaced (moved, copied or downloaded over) after that \
                 update was interrupted"
            ),
            (Some(was), None) => {
                format!("it records an update of the file at {was}, which this image is not")
            }
            (None, _) => "it does not say which file it belongs to".to_string(),
        }));
    }
    let rewritten = "the image's header and descriptor table are neither those the update \
                     started from nor anything it could have made of them: the file was \
                     rewritten after the update was interrupted";
    match anchor_hash(s, &rec.anchored, &changed_ranges(&rec.ops, rec.old_len)) {
        Ok(sum) if sum == rec.anchor => Ok(None),
        Ok(_) => Ok(Some(rewritten.to_string())),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Some(rewritten.to_string())),
        Err(e) => Err(e),
    }
}

/// Appends a write, joined to the previous one when it continues it.
fn push_write(ops: &mut Vec<Op>, at: u64, data: &[u8]) {
    match ops.last_mut() {
        Some(Op::Write { offset, bytes }) if *offset + bytes.len() as u64 == at => {
            bytes.extend_from_slice(data)
        }
        _ => ops.push(Op::Write {
            offset: at,
            bytes: data.to_vec(),
        }),
    }
}

/// The ranges where `new` differs from `old` (same length); ranges less than a
/// descriptor's worth of equal bytes apart are joined, so that a changed slot is one
/// write rather than a field at a time.
fn changed_runs(old: &[u8], new: &[u8]) -> Vec<(usize, usize)> {
    const JOIN: usize = 64;
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < new.len() {
        if old[i] == new[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < new.len() && old[i] != new[i] {
            i += 1;
        }
        match runs.last_mut() {
            Some(last) if start - last.1 < JOIN => last.1 = i,
            _ => runs.push((start, i)),
        }
    }
    runs
}

fn hash_range(s: &dyn Storage, offset: u64, len: u64) -> io::Result<[u8; 32]> {
    let mut h = Hasher::default();
    let mut buf = vec![0u8; CHUNK.min(len) as usize];
    let mut done = 0u64;
    while done < len {
        let n = CHUNK.min(len - done) as usize;
        s.read_exact_at(&mut buf[..n], offset + done)?;
        h.update(&buf[..n]);
        done += n as u64;
    }
    Ok(*h.finish().as_bytes())
}

/// Whether `[offset, offset + len)` exists and hashes to `want`.
fn range_holds(s: &dyn Storage, offset: u64, len: u64, want: &[u8; 32]) -> io::Result<bool> {
    if offset.saturating_add(len) > s.len()? {
        return Ok(false);
    }
    Ok(hash_range(s, offset, len)? == *want)
}

/// Applies a plan; `replay` when the file may hold part of an earlier attempt.
fn apply(s: &dyn Storage, rec: &Record, replay: bool) -> io::Result<()> {
    for op in &rec.ops {
        match op {
            Op::Copy {
                src,
                dst,
                len,
                sha256,
            } => {
                if replay {
                    if range_holds(s, *dst, *len, sha256)? {
                        continue;
                    }
                    if !range_holds(s, *src, *len, sha256)? {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "the {len} bytes to move from offset {src} to {dst} are no \
                                 longer at {src}"
                            ),
                        ));
                    }
                }
                s.copy_range(*src, *dst, *len)?;
            }
            Op::Write { offset, bytes } => s.write_all_at(bytes, *offset)?,
            Op::Zero { offset, len } => s.zero_range(*offset, *len)?,
            Op::SetLen { len } => s.set_len(*len)?,
        }
    }
    Ok(())
}

/// Puts the old bytes back, whatever part of the plan was applied, and makes them
/// durable. The caller checked that the record has undo data.
fn undo(s: &dyn Storage, rec: &Record) -> io::Result<()> {
    for (offset, bytes) in rec.undo.as_deref().unwrap_or(&[]) {
        s.write_all_at(bytes, *offset)?;
    }
    s.set_len(rec.old_len)?;
    s.sync()
}

/// Completes or undoes the update a journal records, or discards a torn journal.
pub(super) fn recover_with(
    storage: &dyn Storage,
    journal: &dyn JournalStore,
) -> Result<RecoveryOutcome> {
    let name = journal.name();
    let bytes = match journal.load() {
        Ok(None) => return Ok(RecoveryOutcome::Nothing),
        Ok(Some(b)) => b,
        Err(e) => {
            if let Some(why) = UntrustedJournal::in_error(&e) {
                return Err(SifError::JournalRefused {
                    journal: name,
                    why: why.to_string(),
                    advice: UNTRUSTED_ADVICE.to_string(),
                });
            }
            return Err(SifError::io(
                format!("cannot read the update journal {name}"),
                e,
            ));
        }
    };
    let rec = match decode(&bytes) {
        Decoded::Valid(r) => match foreign_to(storage, &r) {
            Ok(None) => r,
            Ok(Some(why)) => {
                return Err(SifError::JournalRefused {
                    journal: name,
                    why,
                    advice: FOREIGN_ADVICE.to_string(),
                })
            }
            Err(e) => {
                return Err(SifError::io(
                    format!("cannot check that the update journal {name} is of this image"),
                    e,
                ))
            }
        },
        Decoded::Unsupported(version) => {
            return Err(SifError::UnsupportedJournal {
                journal: name,
                version,
            })
        }
        Decoded::Invalid(why) => {
            log::warn!(
                "{name}: discarding an incomplete update journal ({why}); the image had not \
                 been changed"
            );
            journal.clear().map_err(|e| {
                SifError::io(
                    format!("cannot remove the incomplete update journal {name}"),
                    e,
                )
            })?;
            return Ok(RecoveryOutcome::DiscardedTornJournal);
        }
    };
    let _publishing = storage.publish_lock(true);
    let outcome = match apply(storage, &rec, true).and_then(|()| storage.sync()) {
        Ok(()) => {
            log::warn!("{name}: recovered an interrupted update (completed it)");
            RecoveryOutcome::RolledForward
        }
        Err(e) if rec.undo.is_some() => {
            undo(storage, &rec).map_err(|u| {
                SifError::UpdateInterrupted(format!(
                    "cannot complete the interrupted update recorded in {name} ({e}) nor undo \
                     it ({u}); the journal is kept for another attempt"
                ))
            })?;
            log::warn!(
                "{name}: recovered an interrupted update (could not complete it: {e}; undid \
                 it instead)"
            );
            RecoveryOutcome::RolledBack
        }
        Err(e) => {
            return Err(SifError::UpdateInterrupted(format!(
                "cannot complete the interrupted update recorded in {name}: {e}; the journal \
                 is kept for another attempt once the cause is fixed"
            )))
        }
    };
    journal.clear().map_err(|e| {
        SifError::io(
            format!("the interrupted update is recovered, but {name} cannot be removed"),
            e,
        )
    })?;
    Ok(outcome)
}

/// What to do about a file at the journal's name that sifmount cannot have written.
const UNTRUSTED_ADVICE: &str = "Find out who put it there; once it is removed, the image \
     opens read-write as it is (read-only opens ignore it)";

/// What to do about a journal of another file, or of this one before it was rewritten.
const FOREIGN_ADVICE: &str = "If the image was replaced on purpose, the interrupted update \
     belonged to the file it replaced: remove the journal. If not, put the file it belongs \
     to back in its place and run `sifmount --recover` on it";

/// For read-only opens: fails when a whole journal says an update of this very file is
/// half-applied. Anything else at the journal's name did not touch this file, and is
/// ignored with a warning.
fn check_no_pending(storage: &dyn Storage, journal: &dyn JournalStore) -> Result<()> {
    let name = journal.name();
    match journal.load() {
        Ok(None) => Ok(()),
        Ok(Some(bytes)) => match decode(&bytes) {
            Decoded::Valid(rec) => match foreign_to(storage, &rec) {
                Ok(Some(why)) => {
                    log::warn!(
                        "{name}: ignoring an update journal that is not of this image ({why})"
                    );
                    Ok(())
                }
                // A file that cannot be read to check cannot be read safely either.
                Ok(None) | Err(_) => Err(SifError::PendingUpdate { journal: name }),
            },
            Decoded::Unsupported(_) => Err(SifError::PendingUpdate { journal: name }),
            Decoded::Invalid(why) => {
                log::warn!(
                    "{name}: ignoring an incomplete update journal ({why}); the image had not \
                     been changed for it"
                );
                Ok(())
            }
        },
        Err(e) => {
            // Neither a file sifmount could have written nor one a reader can see says
            // anything about this image; reading it as it is is the best a reader can do.
            match UntrustedJournal::in_error(&e) {
                Some(why) => log::warn!("{name}: ignoring it: {why}; reading the image as is"),
                None => log::warn!(
                    "{name}: cannot read the update journal ({e}); reading the image as is"
                ),
            }
            Ok(())
        }
    }
}

impl SifImage {
    /// Reads an image on any storage with its update journal: a read-write open first
    /// completes (or undoes) an update a crash interrupted; a read-only open fails with
    /// [`SifError::PendingUpdate`] when there is one. Every change made afterwards is
    /// atomic and durable (module documentation).
    pub fn from_storage_with_journal(
        storage: Box<dyn Storage>,
        journal: Box<dyn JournalStore>,
        mode: OpenMode,
    ) -> Result<SifImage> {
        match mode {
            OpenMode::ReadWrite => {
                recover_with(storage.as_ref(), journal.as_ref())?;
            }
            OpenMode::ReadOnly => check_no_pending(storage.as_ref(), journal.as_ref())?,
        }
        let mut image = SifImage::from_storage(storage, mode)?;
        image.journal = Journaling::new(Some(journal));
        Ok(image)
    }

    /// Completes or undoes an interrupted update of the image at `path`, or removes a torn
    /// journal (`sifmount --recover`). The image is not otherwise checked.
    pub fn recover(path: impl AsRef<Path>) -> Result<RecoveryOutcome> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| SifError::io("cannot open", e).in_file(&shown))?;
        let journal = FileJournal::for_open_image(path, &file)
            .map_err(|e| SifError::io("cannot find the update journal", e).in_file(&shown))?;
        recover_with(&file, &journal).map_err(|e| e.in_file(&shown))
    }

    /// Runs `f` as one atomic update (module documentation): either everything it
    /// changes reaches the image, durably if the image has a journal, or nothing does and
    /// the header and descriptors in memory are as before. A transaction inside another
    /// joins it; if it fails, what it changed is undone in memory and the outer one goes
    /// on.
    pub fn transaction<T, E>(
        &mut self,
        f: impl FnOnce(&mut SifImage) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<SifError>,
    {
        self.check_writable()?;
        if let Some(overlay) = self.journal.overlay.clone() {
            let saved = (self.header.clone(), self.slots.clone(), overlay.snapshot());
            let result = f(self);
            if result.is_err() {
                (self.header, self.slots) = (saved.0, saved.1);
                overlay.restore(saved.2);
            }
            return result;
        }

        let base_len = self
            .storage
            .len()
            .map_err(|e| SifError::io("cannot read image size", e))?;
        let base = std::mem::replace(&mut self.storage, Box::new(Detached));
        let overlay = Arc::new(Overlay::new(base, base_len));
        self.storage = Box::new(overlay.clone());
        self.journal.overlay = Some(overlay);
        let (header, slots) = (self.header.clone(), self.slots.clone());
        let anchored = anchored_ranges(&header);

        let result = f(self);

        self.storage = Box::new(Detached);
        let Some(Ok(overlay)) = self.journal.overlay.take().map(Arc::try_unwrap) else {
            // Nothing outside this module holds the overlay, so this cannot happen; if it
            // did, the base is unreachable and the image must not be used.
            let why = "internal error: a transaction lost the image's storage; reopen the image";
            self.journal.broken = Some(why.to_string());
            return Err(SifError::UpdateInterrupted(why.to_string()).into());
        };
        debug_assert_eq!(overlay.base_len(), base_len);
        let (base, map) = overlay.into_parts();
        self.storage = base;
        let value = match result {
            Ok(v) => v,
            Err(e) => {
                (self.header, self.slots) = (header, slots);
                return Err(e);
            }
        };
        if let Err(e) = self.commit(&map, base_len, &anchored) {
            (self.header, self.slots) = (header, slots);
            return Err(e.into());
        }
        Ok(value)
    }

    /// Makes one change (an add, a delete, a set, a growth of the table): in a transaction
    /// of its own when the image has a journal and none is running, so that every change
    /// of a journaled image is atomic and durable (module documentation); otherwise
    /// directly, as part of the running transaction, or in place as upstream writes on an
    /// image without a journal. Either way only on a writable image.
    pub(super) fn change<T>(&mut self, f: impl FnOnce(&mut SifImage) -> Result<T>) -> Result<T> {
        if self.journal.wants_transaction() {
            // `transaction` checks that the image is writable before it starts.
            return self.transaction(f);
        }
        self.check_writable()?;
        f(self)
    }

    /// Journals, applies and syncs what a transaction made of the image.
    fn commit(&mut self, map: &Map, base_len: u64, anchored: &[(u64, u64)]) -> Result<()> {
        let base = self.storage.as_ref();
        let rec = plan(map, base, base_len, anchored)
            .map_err(|e| SifError::io("cannot read the bytes an update replaces", e))?;
        if rec.is_noop() {
            return Ok(());
        }
        let journal = self.journal.store.as_deref();
        if let Some(j) = journal {
            if let Err(e) = j.store(&rec.encode()) {
                if let Err(c) = j.clear() {
                    let why = format!(
                        "cannot write the update journal {} ({e}) nor remove what was written \
                         of it ({c}); the image is unchanged, but opening it read-write may \
                         complete the update",
                        j.name()
                    );
                    self.journal.broken = Some(why.clone());
                    return Err(SifError::UpdateInterrupted(why));
                }
                return Err(SifError::io(
                    format!(
                        "cannot write the update journal {}; the image is unchanged",
                        j.name()
                    ),
                    e,
                ));
            }
        }
        // Readers in other processes that re-read the image wait until it is whole again
        // (publish.rs); released when this function returns, after the undo if any.
        let _publishing = base.publish_lock(true);
        let failed = match apply(base, &rec, false).and_then(|()| base.sync()) {
            Ok(()) => {
                if let Some(j) = journal {
                    if let Err(e) = j.clear() {
                        // The update is complete and durable; replaying the journal over
                        // it changes nothing, and the next commit replaces it.
                        log::warn!(
                            "the update is complete, but its journal {} cannot be removed: {e}",
                            j.name()
                        );
                    }
                }
                return Ok(());
            }
            Err(e) => e,
        };
        let later = match journal {
            Some(j) => format!(
                "opening the image read-write (or `sifmount --recover IMAGE`) completes it from \
                 its journal {}",
                j.name()
            ),
            None => "the image has no journal to recover from and may be damaged".to_string(),
        };
        if rec.undo.is_none() {
            let why = format!(
                "cannot complete the update ({failed}), and it is too large to undo in place; \
                 {later}"
            );
            self.journal.broken = Some(why.clone());
            return Err(SifError::UpdateInterrupted(why));
        }
        if let Err(u) = undo(base, &rec) {
            let why = format!("cannot complete the update ({failed}) nor undo it ({u}); {later}");
            self.journal.broken = Some(why.clone());
            return Err(SifError::UpdateInterrupted(why));
        }
        if let Some(j) = journal {
            if let Err(c) = j.clear() {
                let why = format!(
                    "cannot complete the update ({failed}); the image was restored, but its \
                     journal {} cannot be removed ({c}), so opening it read-write will \
                     complete the update",
                    j.name()
                );
                self.journal.broken = Some(why.clone());
                return Err(SifError::UpdateInterrupted(why));
            }
        }
        Err(SifError::io(
            "cannot write the update; the image is unchanged",
            failed,
        ))
    }
}
