//! Reading an image's header and descriptor table, and the checks they pass before
//! anything trusts them (docs/FORMAT.md, Header): an open (`image.rs`,
//! `SifImage::from_storage`) and a walk of the table long after it
//! ([`for_each_used_descriptor`]) read them the same way.

use std::collections::HashMap;

use super::descriptor::{Descriptor, DESCRIPTOR_SIZE};
use super::error::{Result, SifError};
use super::header::{Header, HEADER_SIZE, MAX_DESCRIPTORS};
use super::storage::Storage;

/// Reads the header of the image in `storage` and checks it; also gives the file's length.
pub(super) fn read_header(storage: &dyn Storage) -> Result<(Header, u64)> {
    let len = storage
        .len()
        .map_err(|e| SifError::io("cannot read image size", e))?;
    if len < HEADER_SIZE as u64 {
        return Err(SifError::NotSif(format!(
            "file is {len} bytes, shorter than the {HEADER_SIZE}-byte SIF header"
        )));
    }
    let mut hb = [0u8; HEADER_SIZE];
    storage
        .read_exact_at(&mut hb, 0)
        .map_err(|e| SifError::io("cannot read header", e))?;
    let header = Header::decode(&hb);
    header.check_identity()?;
    validate_header(&header, len)?;
    Ok((header, len))
}

/// Gives `each` the descriptor table of a checked header a chunk of decoded slots at a
/// time: a 10,000-slot table is 6 MB as bytes and as much again decoded, and holding
/// both at once would double a mount's peak memory.
pub(super) fn read_table(
    storage: &dyn Storage,
    header: &Header,
    mut each: impl FnMut(&[Descriptor]),
) -> Result<()> {
    const CHUNK_SLOTS: usize = 1792;
    let total = header.descriptors_total as usize;
    let mut chunk = vec![0u8; total.min(CHUNK_SLOTS) * DESCRIPTOR_SIZE];
    let mut decoded = Vec::with_capacity(total.min(CHUNK_SLOTS));
    let mut done = 0;
    while done < total {
        let n = (total - done).min(CHUNK_SLOTS);
        let bytes = &mut chunk[..n * DESCRIPTOR_SIZE];
        let at = header.descriptors_offset as u64 + (done * DESCRIPTOR_SIZE) as u64;
        storage
            .read_exact_at(bytes, at)
            .map_err(|e| SifError::io("cannot read descriptor table", e))?;
        decoded.clear();
        decoded.extend(bytes.chunks_exact(DESCRIPTOR_SIZE).map(Descriptor::decode));
        each(&decoded);
        done += n;
    }
    Ok(())
}

/// Calls `each` with every used descriptor of the image in `storage` and its slot, in
/// slot order, without keeping the table: for documents made long after a mount read it
/// (`/sif/descriptors.json`). The header is checked; the descriptors are not.
pub fn for_each_used_descriptor(
    storage: &dyn Storage,
    mut each: impl FnMut(usize, &Descriptor),
) -> Result<()> {
    let (header, _) = read_header(storage)?;
    let mut slot = 0;
    read_table(storage, &header, |chunk| {
        for d in chunk {
            if d.used {
                each(slot, d);
            }
            slot += 1;
        }
    })
}

/// Header checks beyond the reference reader's (docs/FORMAT.md, Header).
fn validate_header(h: &Header, file_len: u64) -> Result<()> {
    let bad = |s: String| Err(SifError::InvalidHeader(s));
    if !(0..=MAX_DESCRIPTORS).contains(&h.descriptors_total) {
        return bad(format!(
            "descriptor count {} is outside 0..={MAX_DESCRIPTORS}",
            h.descriptors_total
        ));
    }
    if !(0..=h.descriptors_total).contains(&h.descriptors_free) {
        return bad(format!(
            "free descriptor count {} is outside 0..={}",
            h.descriptors_free, h.descriptors_total
        ));
    }
    let expected = h.descriptors_total * DESCRIPTOR_SIZE as i64;
    if h.descriptors_size != expected {
        return bad(format!(
            "descriptor table size {} is not {} descriptors x {DESCRIPTOR_SIZE} bytes = {expected}",
            h.descriptors_size, h.descriptors_total
        ));
    }
    if h.descriptors_offset < HEADER_SIZE as i64 {
        return bad(format!(
            "descriptor table offset {} overlaps the header",
            h.descriptors_offset
        ));
    }
    // A `match` rather than `Option::is_none_or`, which is newer than the crate's MSRV.
    let table_fits = match h.descriptors_offset.checked_add(h.descriptors_size) {
        Some(end) => end as u64 <= file_len,
        None => false,
    };
    if !table_fits {
        return bad(format!(
            "descriptor table [{}, +{}) extends past the end of the file ({file_len} bytes)",
            h.descriptors_offset, h.descriptors_size
        ));
    }
    if h.data_offset < 0 {
        return bad(format!("negative data offset {}", h.data_offset));
    }
    Ok(())
}

/// Per-object checks: IDs unique and non-zero, every object inside the file and clear of
/// the header, the table and every other object.
pub(super) fn validate_descriptors(h: &Header, slots: &[Descriptor], file_len: u64) -> Result<()> {
    let mut ids: HashMap<u32, usize> = HashMap::new();
    let mut extents: Vec<(i64, i64, usize)> = Vec::new();
    let table = (
        h.descriptors_offset,
        h.descriptors_offset + h.descriptors_size,
    );
    for (slot, d) in slots.iter().enumerate().filter(|(_, d)| d.used) {
        let bad = |problem: String| {
            Err(SifError::InvalidDescriptor {
                slot,
                id: d.id,
                problem,
            })
        };
        if d.id == 0 {
            return bad("object ID is 0".into());
        }
        if let Some(other) = ids.insert(d.id, slot) {
            return bad(format!("object ID {} is also used by slot {other}", d.id));
        }
        // Name the field that is wrong: a message quoting a valid offset next to a
        // negative size sends the reader looking in the wrong place.
        if d.offset < 0 {
            return bad(format!("negative offset {}", d.offset));
        }
        if d.size < 0 {
            return bad(format!("negative size {}", d.size));
        }
        // An end beyond i64 is a corrupt descriptor, not a large file: say so rather
        // than report it as past the end.
        let Some(end) = d.offset.checked_add(d.size) else {
            return bad(format!(
                "offset {} + size {} overflows a 64-bit file offset",
                d.offset, d.size
            ));
        };
        if end as u64 > file_len {
            return bad(format!(
                "object [{}, +{}) extends past the end of the file ({file_len} bytes)",
                d.offset, d.size
            ));
        }
        if d.size == 0 {
            continue;
        }
        if d.offset < HEADER_SIZE as i64 {
            return bad(format!("object at {} overlaps the header", d.offset));
        }
        if d.offset < table.1 && end > table.0 {
            return bad(format!(
                "object [{}, {end}) overlaps the descriptor table [{}, {})",
                d.offset, table.0, table.1
            ));
        }
        extents.push((d.offset, end, slot));
    }
    extents.sort_unstable();
    for w in extents.windows(2) {
        let ((_, end_a, slot_a), (start_b, _, slot_b)) = (w[0], w[1]);
        if start_b < end_a {
            let d = &slots[slot_b];
            return Err(SifError::InvalidDescriptor {
                slot: slot_b,
                id: d.id,
                problem: format!(
                    "object [{}, {}) overlaps object {} in slot {slot_a}",
                    d.offset,
                    d.end(),
                    slots[slot_a].id
                ),
            });
        }
    }
    Ok(())
}
