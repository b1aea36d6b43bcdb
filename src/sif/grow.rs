//! Growing a full descriptor table without moving any object.
//!
//! The reference library never grows its table (docs/FORMAT.md, Header): an add into a full
//! table fails. sifmount grows it instead, in a way every upstream reader and writer
//! still understands, and without touching a byte of any object: another process may be
//! reading any of them at its offset (a read-only mount, or a container running from a
//! layer through squashfuse or a loop device), and moving one would pull the bytes from
//! under it.
//!
//! * When the bytes after the table hold no object (an interior hole, or an image with
//!   no data yet), the table grows where it is.
//! * Otherwise the whole table is written, at its new size, after the last object, and
//!   the header's `DescriptorsOffset` points there. Readers find the table only through
//!   the header (docs/FORMAT.md, Header). `DataOffset` becomes the new table's end and
//!   `DataSize` 0, so an upstream add, which appends at `max(DataOffset, last object
//!   end)` (§5), appends after the table, and a compacting delete, which truncates at
//!   `DataOffset + DataSize` with the size never below zero, never cuts it off. The old
//!   table is left as it was: unreferenced bytes, as a delete leaves.
//! * Header: `DescriptorsTotal`, `DescriptorsSize`, `DescriptorsFree` for the new size,
//!   `ModifiedAt` by the usual [`ChangeTime`] rule; the table is written before the
//!   header, as every change of the library ends.
//!
//! The capacity grows geometrically (at least doubling, at least 8 more slots), so a
//! stream of attaches grows the table a logarithmic number of times and the old tables
//! left behind add up to less than the current one; it is capped at [`MAX_DESCRIPTORS`],
//! the most an image may have to be opened.
//!
//! On an image with an update journal the growth is one transaction (journal.rs), or part
//! of the caller's.

use super::descriptor::{Descriptor, DESCRIPTOR_SIZE};
use super::error::{Result, SifError};
use super::header::MAX_DESCRIPTORS;
use super::image::{ChangeTime, SifImage};
use super::slots::Slots;

/// Slots a growth adds at the least.
const MIN_GROWTH: usize = 8;

/// What [`SifImage::ensure_free_slots`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Growth {
    /// Table capacity before.
    pub old_total: usize,
    /// Table capacity after; equal to `old_total` when nothing had to be done.
    pub new_total: usize,
    /// Where the table was before and is now (the same when it grew in place).
    pub old_offset: i64,
    pub new_offset: i64,
}

impl Growth {
    /// Whether the table was grown (and anything written).
    pub fn grew(&self) -> bool {
        self.new_total > self.old_total
    }

    /// Whether the table was written at a new place.
    pub fn relocated(&self) -> bool {
        self.new_offset != self.old_offset
    }
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
        let old_offset = self.header.descriptors_offset;
        let free = self.free_slots();
        if free >= needed {
            return Ok(Growth {
                old_total,
                new_total: old_total,
                old_offset,
                new_offset: old_offset,
            });
        }
        self.change(move |s| s.grow_table(needed, time))
    }

    /// Grows the table so that `needed` slots are free; `ensure_free_slots` found fewer.
    fn grow_table(&mut self, needed: usize, time: ChangeTime) -> Result<Growth> {
        let old_total = self.slots.len();
        let old_offset = self.header.descriptors_offset;
        let free = self.free_slots();
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
        let new_size = (new_total * DESCRIPTOR_SIZE) as i64;

        // In place when no object lies where the grown table would reach.
        let in_place_end = old_offset + new_size;
        let in_the_way = self.descriptors().any(|(_, d)| {
            if d.size == 0 {
                (old_offset..in_place_end).contains(&d.offset)
            } else {
                d.offset < in_place_end && d.end() > old_offset
            }
        });
        let new_offset = if in_the_way {
            self.data_end()
        } else {
            old_offset
        };
        let table_end = new_offset + new_size;

        let t = self.change_time(time);
        let mut all: Vec<Descriptor> = self.slots.to_vec();
        all.resize(new_total, Descriptor::unused());
        // Every slot is written: at a new place, none of the table is there yet.
        self.slots = if new_offset == old_offset {
            let mut s = Slots::written(all[..old_total].to_vec());
            s.resize(new_total, Descriptor::unused());
            s
        } else {
            Slots::unwritten(all)
        };
        let h = &mut self.header;
        h.descriptors_total = new_total as i64;
        h.descriptors_size = new_size;
        h.descriptors_free = (new_total - used) as i64;
        h.descriptors_offset = new_offset;
        h.data_offset = h.data_offset.max(table_end);
        let data_end = self.data_end();
        let h = &mut self.header;
        h.data_size = data_end - h.data_offset;
        h.modified_at = t;
        self.write_table_and_header()?;
        log::info!(
            "descriptor table grown from {old_total} to {new_total} slots{}",
            if new_offset == old_offset {
                String::new()
            } else {
                format!(", written at offset {new_offset} (was {old_offset}); no object moved")
            }
        );
        Ok(Growth {
            old_total,
            new_total,
            old_offset,
            new_offset,
        })
    }
}
