//! Growing a full descriptor table in place (issue 6, item 3).
//!
//! The reference library never grows its table (spec/SIF.md §3.1): an add into a full
//! table fails. sifmount grows it instead, in a way every upstream reader and writer
//! still understands:
//!
//! * The table stays at `DescriptorsOffset`: readers find it through the header, and
//!   upstream writers append after `max(DataOffset, last object end)`, so a table moved
//!   to the end of the file would be overwritten by the next upstream add.
//! * The table grows into the bytes after it. Every object lying in
//!   `[DescriptorsOffset, new table end)` (in an OCI-SIF: the first objects, which start
//!   right at `DataOffset`) is copied to the end of the data, placed as an add would place
//!   it (§5: partitions 4096-aligned, everything else packed), and its descriptor's
//!   `Offset` and `SizeWithPadding` are updated; ID, times, name and metadata are kept.
//!   Nothing else moves.
//! * Order: every object is copied first (the destinations lie after every object, so no
//!   source is overwritten before it has been copied), then the whole table (new slots
//!   all zero) is written over the vacated bytes, then the header, as every change of the
//!   library ends.
//! * Header: `DescriptorsTotal`, `DescriptorsSize`, `DescriptorsFree` for the new size,
//!   `DataOffset` = the new table end (never lowered), `DataSize` = last object end −
//!   `DataOffset`, `ModifiedAt` by the usual [`ChangeTime`] rule.
//!
//! The capacity grows geometrically (at least doubling, at least 8 more slots), so a
//! stream of attaches grows the table a logarithmic number of times; it is capped at
//! [`MAX_DESCRIPTORS`], the most an image may have to be opened.
//!
//! On an image with an update journal the growth is one transaction (journal.rs), or part
//! of the caller's: the moves are journaled as copies, not as their bytes.
//!
//! The bytes the moved objects occupied beyond the new table end stay unreferenced: an
//! interior hole, like those upstream's deletes leave, which later growths take first
//! without moving anything. When that is a megabyte or more, its disk blocks are given
//! back (`fallocate` punching a hole, once the growth has committed), so that moving a
//! 1 GiB layer does not leave the file using 2 GiB of disk.

use super::descriptor::{DataType, Descriptor, DESCRIPTOR_SIZE};
use super::error::{Result, SifError};
use super::image::{ChangeTime, SifImage, MAX_DESCRIPTORS};

/// Slots a growth adds at the least.
const MIN_GROWTH: usize = 8;

/// What [`SifImage::ensure_free_slots`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Growth {
    /// Table capacity before.
    pub old_total: usize,
    /// Table capacity after; equal to `old_total` when nothing had to be done.
    pub new_total: usize,
    /// The objects copied out of the table's way, in the order they were placed.
    pub moved: Vec<MovedObject>,
}

impl Growth {
    /// Whether the table was grown (and anything written).
    pub fn grew(&self) -> bool {
        self.new_total > self.old_total
    }
}

/// An object that a growth moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MovedObject {
    pub slot: usize,
    pub id: u32,
    pub size: i64,
    pub old_offset: i64,
    pub new_offset: i64,
}

impl SifImage {
    /// Makes sure at least `needed` descriptor slots are free, growing the table when they
    /// are not (see the module documentation for how). With enough free slots nothing is
    /// written, so the image stays byte-identical to what upstream would have.
    ///
    /// Fails with [`SifError::InsufficientCapacity`], before writing anything, when the
    /// grown table would exceed [`MAX_DESCRIPTORS`] slots.
    pub fn ensure_free_slots(&mut self, needed: usize, time: ChangeTime) -> Result<Growth> {
        self.check_writable()?;
        let old_total = self.slots.len();
        let free = self.free_slots();
        if free >= needed {
            return Ok(Growth {
                old_total,
                new_total: old_total,
                moved: Vec::new(),
            });
        }
        // A journaled image makes every change atomic (journal.rs).
        if self.journal.wants_transaction() {
            return self.transaction(move |s| s.ensure_free_slots(needed, time));
        }
        let used = old_total - free;
        let limit = MAX_DESCRIPTORS as usize;
        let insufficient = || SifError::InsufficientCapacity {
            free: free as i64,
            needed: needed as i64,
        };
        let at_least = used.checked_add(needed).ok_or_else(insufficient)?;
        if at_least > limit {
            return Err(insufficient());
        }
        let new_total = (old_total.saturating_mul(2))
            .max(old_total + MIN_GROWTH)
            .max(at_least)
            .min(limit);

        let table_start = self.header.descriptors_offset;
        let table_end = table_start + (new_total * DESCRIPTOR_SIZE) as i64;
        let data_offset = self.header.data_offset.max(table_end);

        // Objects in the way, in file order so that they keep their relative order.
        let mut in_way: Vec<usize> = self
            .descriptors()
            .filter(|(_, d)| {
                if d.size == 0 {
                    (table_start..table_end).contains(&d.offset)
                } else {
                    d.offset < table_end && d.end() > table_start
                }
            })
            .map(|(i, _)| i)
            .collect();
        in_way.sort_by_key(|&i| (self.slots[i].offset, i));

        // Place them as consecutive adds would, after every object (the movers' current
        // places included, so that no copy lands on its own source).
        let mut end = self
            .descriptors()
            .map(|(_, d)| d.end())
            .fold(data_offset, i64::max);
        let mut moved = Vec::with_capacity(in_way.len());
        let mut padded = Vec::with_capacity(in_way.len());
        for &slot in &in_way {
            let d = &self.slots[slot];
            let align = alignment(d.data_type());
            let offset = if align > 0 {
                (end + align - 1) / align * align
            } else {
                end
            };
            moved.push(MovedObject {
                slot,
                id: d.id,
                size: d.size,
                old_offset: d.offset,
                new_offset: offset,
            });
            padded.push(offset - end + d.size);
            end = offset + d.size;
        }

        // Copy every object before anything overwrites a source.
        for m in &moved {
            self.storage()
                .copy_range(m.old_offset as u64, m.new_offset as u64, m.size as u64)
                .map_err(|e| SifError::io(format!("cannot move object {}", m.id), e))?;
        }
        if let Some(last) = moved.last().filter(|m| m.size == 0) {
            // An empty object last still ends the file where an add would leave it.
            self.storage()
                .write_all_at(&[], last.new_offset as u64)
                .map_err(|e| SifError::io(format!("cannot move object {}", last.id), e))?;
        }

        let t = self.change_time(time);
        for (m, size_with_padding) in moved.iter().zip(padded) {
            let d = &mut self.slots[m.slot];
            d.offset = m.new_offset;
            d.size_with_padding = size_with_padding;
        }
        self.slots.resize(new_total, Descriptor::unused());
        let data_end = self.data_end().max(data_offset);
        let h = &mut self.header;
        h.descriptors_total = new_total as i64;
        h.descriptors_size = (new_total * DESCRIPTOR_SIZE) as i64;
        h.descriptors_free = (new_total - used) as i64;
        h.data_offset = data_offset;
        h.data_size = data_end - data_offset;
        h.modified_at = t;
        self.write_table_and_header()?;
        self.release_vacated(&moved, table_end);
        log::info!(
            "descriptor table grown from {old_total} to {new_total} slots, {} object(s) moved",
            moved.len()
        );
        Ok(Growth {
            old_total,
            new_total,
            moved,
        })
    }
}

/// Moved objects smaller than this leave their old place as it is: giving back a few
/// blocks is not worth a system call, and later growths fill the hole first anyway.
const RELEASE_AT_LEAST: u64 = 1 << 20;

impl SifImage {
    /// Gives back the disk blocks of the moved objects' old places past the new table, so
    /// that moving a 1 GiB layer does not leave the file using 2 GiB: at once, or, inside
    /// a transaction, once it has committed.
    fn release_vacated(&mut self, moved: &[MovedObject], table_end: i64) {
        for m in moved {
            let start = m.old_offset.max(table_end) as u64;
            let end = (m.old_offset + m.size) as u64;
            if end <= start || end - start < RELEASE_AT_LEAST {
                continue;
            }
            if self.journal.in_transaction() {
                self.journal.released.push((start, end - start));
            } else if let Err(e) = self.storage().release_range(start, end - start) {
                log::debug!("cannot give back the old place of object {}: {e}", m.id);
            }
        }
    }
}

/// Where an add places an object of this type by default (spec/SIF.md §5).
fn alignment(t: DataType) -> i64 {
    match t {
        DataType::Partition => 4096,
        _ => 0,
    }
}
