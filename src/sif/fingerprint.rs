//! How readers in other processes learn that an image changed: its fingerprint, a hash
//! of its header and descriptor table. Every change any writer makes to what the image
//! holds changes one of them, so a mount that compares fingerprints notices every
//! committed change. A mount takes them under the publish lock (`publish.rs`;
//! src/tree/mod.rs, `Tree::open_with` and `Tree::image_changed`), so that none is of an
//! image half-way through a sifmount update.

use std::hash::{Hash, Hasher};
use std::io;

use super::descriptor::DESCRIPTOR_SIZE;
use super::header::{Header, HEADER_SIZE, MAX_DESCRIPTORS};
use super::storage::Storage;

/// The fingerprint of the image's header and descriptor table (module documentation).
/// An image too short for its header, or whose table does not fit, has a fingerprint
/// too: of what it has of them. Bytes appended past the table alone do not change it:
/// until a table names them, the image holds nothing new.
pub fn fingerprint(storage: &dyn Storage) -> io::Result<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let len = storage.len()?;
    let mut header = [0u8; HEADER_SIZE];
    let n = (HEADER_SIZE as u64).min(len) as usize;
    storage.read_exact_at(&mut header[..n], 0)?;
    header.hash(&mut h);
    {
        let parsed = Header::decode(&header);
        let total = parsed.descriptors_total.clamp(0, MAX_DESCRIPTORS) as u64;
        let start = parsed.descriptors_offset.max(0) as u64;
        let end = start
            .saturating_add(total * DESCRIPTOR_SIZE as u64)
            .min(len);
        let mut at = start;
        let mut buf = vec![0u8; (1 << 20).min(end.saturating_sub(start)) as usize];
        while at < end {
            let n = buf.len().min((end - at) as usize);
            storage.read_exact_at(&mut buf[..n], at)?;
            buf[..n].hash(&mut h);
            at += n as u64;
        }
    }
    Ok(h.finish())
}
