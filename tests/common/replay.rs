//! "Another program" updating a SIF file in place, write by write, as SingularityCE does:
//! for tests that watch mounts of an image while it is rewritten under them.
//!
//! SingularityCE changes an OCI-SIF (signing it, adding or removing images) through
//! oci-tools' `UpdateRootIndex` on sylabs/sif's `FileImage` (docs/FORMAT.md, How the reference library changes an image,
//! §7.6), never writing a new file and renaming it:
//!
//! 1. one `DeleteObjects(zero, compact)` of every object the new state no longer has
//!    (always including the old root index): each object's bytes overwritten with zeros
//!    in slot order, then the file truncated to the end of the last object that remains,
//!    then the whole descriptor table (the deleted slots zeroed) and then the header
//!    (DescriptorsFree up, DataSize down). The truncation comes before the table and
//!    header, as sylabs/sif's `DeleteObjects` does it (pkg/sif/delete.go): for a while the
//!    table still describes objects that lie past the end of the file;
//! 2. one `AddObject` per new object, in the order of their slots (each takes the lowest
//!    free slot, so the order they were added in is their slot order, the root index
//!    last): its bytes written at its offset, then the whole table with its slot filled
//!    in, then the header (DescriptorsFree down, DataSize up).
//!
//! [`replay_update`] derives every intermediate state from the file before and the file
//! after (both as SingularityCE left them) and writes it with the same system calls, in
//! the same order: `pwrite` of data, `ftruncate`, one `pwrite` per 585-byte descriptor
//! (as the library's `binary.Write` of each descriptor), `pwrite` of the 128-byte header.
//! It sleeps between steps so that concurrent readers meet every intermediate state, and
//! finally checks that the file is byte for byte the file after.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::thread;
use std::time::Duration;

pub const HEADER_SIZE: usize = 128;
pub const DESCRIPTOR_SIZE: usize = 585;

// Header fields (docs/FORMAT.md, Header).
const MODIFIED_AT: usize = 72;
const DESCRIPTORS_FREE: usize = 80;
const DESCRIPTORS_TOTAL: usize = 88;
const DESCRIPTORS_OFFSET: usize = 96;
const DATA_OFFSET: usize = 112;
const DATA_SIZE: usize = 120;
// Descriptor fields (docs/FORMAT.md, Descriptor table).
const USED: usize = 4;
const OFFSET: usize = 17;
const SIZE: usize = 25;

fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn put_i64(b: &mut [u8], at: usize, v: i64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A file's header and descriptor table, as raw bytes.
#[derive(Clone, PartialEq, Eq)]
struct Layout {
    header: Vec<u8>,
    slots: Vec<Vec<u8>>,
}

impl Layout {
    fn of(bytes: &[u8], what: &str) -> Layout {
        assert!(
            bytes.len() >= HEADER_SIZE && &bytes[32..42] == b"SIF_MAGIC\0",
            "{what}: not a SIF"
        );
        let header = bytes[..HEADER_SIZE].to_vec();
        let total = i64_at(&header, DESCRIPTORS_TOTAL) as usize;
        let at = i64_at(&header, DESCRIPTORS_OFFSET) as usize;
        assert!(
            bytes.len() >= at + total * DESCRIPTOR_SIZE,
            "{what}: the descriptor table runs past the end of the file"
        );
        let slots = (0..total)
            .map(|i| bytes[at + i * DESCRIPTOR_SIZE..at + (i + 1) * DESCRIPTOR_SIZE].to_vec())
            .collect();
        Layout { header, slots }
    }

    fn descriptors_offset(&self) -> u64 {
        i64_at(&self.header, DESCRIPTORS_OFFSET) as u64
    }

    fn data_offset(&self) -> i64 {
        i64_at(&self.header, DATA_OFFSET)
    }

    fn table(&self) -> Vec<u8> {
        self.slots.concat()
    }

    /// sylabs/sif's `calculatedDataSize`: from DataOffset to the end of the last used
    /// object.
    fn calculated_data_size(&self) -> i64 {
        let end = self
            .slots
            .iter()
            .filter(|s| used(s))
            .map(|s| extent(s).0 + extent(s).1)
            .max()
            .map_or(self.data_offset(), |e| e as i64);
        end - self.data_offset()
    }
}

fn used(slot: &[u8]) -> bool {
    slot[USED] != 0
}

/// An object's (offset, size).
fn extent(slot: &[u8]) -> (u64, u64) {
    (i64_at(slot, OFFSET) as u64, i64_at(slot, SIZE) as u64)
}

/// What an update did: how many writes it made (each followed by the pause), how many
/// objects it deleted and added.
#[derive(Clone, Copy, Debug, Default)]
pub struct Replayed {
    pub steps: usize,
    pub deleted: usize,
    pub added: usize,
}

/// The open image and the pause after each write.
struct Writer<'a> {
    file: &'a File,
    path: &'a Path,
    pause: Duration,
    steps: usize,
}

impl Writer<'_> {
    fn step(&mut self) {
        self.steps += 1;
        thread::sleep(self.pause);
    }

    fn pwrite(&mut self, bytes: &[u8], at: u64, what: &str) {
        self.file
            .write_all_at(bytes, at)
            .unwrap_or_else(|e| panic!("{}: pwrite {what} at {at}: {e}", self.path.display()));
    }

    /// The whole table, one descriptor at a time, then the pause.
    fn table(&mut self, layout: &Layout) {
        let at = layout.descriptors_offset();
        for (i, slot) in layout.slots.iter().enumerate() {
            let off = at + (i * DESCRIPTOR_SIZE) as u64;
            self.pwrite(slot, off, &format!("descriptor {i}"));
        }
        self.step();
    }

    fn header(&mut self, layout: &Layout) {
        self.pwrite(&layout.header, 0, "the header");
        self.step();
    }

    fn truncate(&mut self, len: u64) {
        self.file
            .set_len(len)
            .unwrap_or_else(|e| panic!("{}: ftruncate to {len}: {e}", self.path.display()));
        self.step();
    }
}

/// Rewrites the SIF at `path`, which must hold exactly `before`, into exactly `after`, in
/// place and in SingularityCE's write order (see the module comment), sleeping `pause`
/// after every write. Both files must have the same table (no update grows it), and
/// every object the two share (same slot, same descriptor) must have the same bytes in
/// both. Fails the test when the file does not end up byte-identical to `after`.
pub fn replay_update(path: &Path, before: &[u8], after: &[u8], pause: Duration) -> Replayed {
    let old = Layout::of(before, "the file before");
    let new = Layout::of(after, "the file after");
    // Everything but ModifiedAt, DescriptorsFree and DataSize stays (no growth, no new
    // primary partition in an OCI-SIF).
    for (lo, hi) in [(0, MODIFIED_AT), (DESCRIPTORS_TOTAL, DATA_SIZE)] {
        assert_eq!(
            old.header[lo..hi],
            new.header[lo..hi],
            "header bytes {lo}..{hi} differ: not an in-place update"
        );
    }
    let mut deleted = Vec::new();
    let mut added = Vec::new();
    for (i, (o, n)) in old.slots.iter().zip(&new.slots).enumerate() {
        if o == n {
            if used(o) {
                let (off, size) = extent(o);
                let range = off as usize..(off + size) as usize;
                assert!(
                    before[range.clone()] == after[range],
                    "slot {i} is the same descriptor in both files but its bytes differ"
                );
            }
            continue;
        }
        if used(o) {
            deleted.push(i);
        }
        if used(n) {
            added.push(i);
        }
    }

    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {} for writing: {e}", path.display()));
    let now = read_all(&file, path);
    assert!(
        now == before,
        "{}: does not hold the expected bytes before the update ({} bytes, expected {})",
        path.display(),
        now.len(),
        before.len()
    );
    let mut w = Writer {
        file: &file,
        path,
        pause,
        steps: 0,
    };
    // The state the header and table describe as the update goes: deterministic images
    // (every OCI-SIF oci-tools writes) get the zero time for every ModifiedAt, so the
    // after file's value is the one each step writes.
    let mut cur = old.clone();
    cur.header[MODIFIED_AT..MODIFIED_AT + 8]
        .copy_from_slice(&new.header[MODIFIED_AT..MODIFIED_AT + 8]);
    let mut free = i64_at(&old.header, DESCRIPTORS_FREE);

    // 1. DeleteObjects(zero = true, compact = true).
    if !deleted.is_empty() {
        for &i in &deleted {
            let (off, size) = extent(&old.slots[i]);
            w.pwrite(
                &vec![0u8; size as usize],
                off,
                &format!("zeros over slot {i}"),
            );
            w.step();
            cur.slots[i] = vec![0u8; DESCRIPTOR_SIZE];
            free += 1;
        }
        let data_size = cur.calculated_data_size();
        put_i64(&mut cur.header, DESCRIPTORS_FREE, free);
        put_i64(&mut cur.header, DATA_SIZE, data_size);
        w.truncate((cur.data_offset() + data_size) as u64);
        w.table(&cur);
        w.header(&cur);
    }

    // 2. One AddObject per new object, in slot order: data, table, header.
    let mut last_end = 0;
    for &i in &added {
        let (off, size) = extent(&new.slots[i]);
        assert!(
            off >= last_end,
            "slot {i} lies before the object added before it: not appended in slot order"
        );
        last_end = off + size;
        w.pwrite(
            &after[off as usize..(off + size) as usize],
            off,
            &format!("the data of slot {i}"),
        );
        w.step();
        cur.slots[i] = new.slots[i].clone();
        free -= 1;
        put_i64(&mut cur.header, DESCRIPTORS_FREE, free);
        let data_size = (off + size) as i64 - cur.data_offset();
        put_i64(&mut cur.header, DATA_SIZE, data_size);
        w.table(&cur);
        w.header(&cur);
    }

    // The steps above derived the after file's header and table exactly; write them once
    // more (same bytes) as the last step, then check the whole file.
    assert!(
        cur == new,
        "the derived end state differs from the after file's header and table"
    );
    w.table(&new);
    w.header(&new);
    let now = read_all(&file, path);
    assert_eq!(
        now.len(),
        after.len(),
        "{}: length after the update",
        path.display()
    );
    if let Some(at) = now.iter().zip(after).position(|(a, b)| a != b) {
        panic!(
            "{}: differs from the after file at offset {at} after the update",
            path.display()
        );
    }
    Replayed {
        steps: w.steps,
        deleted: deleted.len(),
        added: added.len(),
    }
}

fn read_all(file: &File, path: &Path) -> Vec<u8> {
    let len = file
        .metadata()
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .len();
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    bytes
}
