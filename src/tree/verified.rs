//! Small image objects served from a copy whose digest was checked.
//!
//! The check after each read ([`super::Tree::read`]) proves the bytes were the object's
//! against sifmount's own updates, which change the descriptor table before they write
//! over an object. Another program's in-place update (SingularityCE's `sign --cosign`,
//! the reference library under `siftool`) writes first and changes the table last, so
//! for a moment an object's descriptor still stands over zeros or new bytes. An OCI
//! object is named by its digest, and small ones are cheap to hash: root indexes,
//! manifests, configs and signature payloads (all of at most [`VERIFIED_MAX`] bytes) are
//! read whole, hashed against the digest their descriptor holds, and served from that
//! copy; bytes that are not the object are never served (man page, ONE IMAGE, MANY MOUNTS).

use std::sync::{Arc, Mutex};

use lru::LruCache;

/// Objects up to this size are served digest-checked. A layer is larger, and is only
/// ever zeroed by another program once it is removed from the image.
pub(super) const VERIFIED_MAX: u64 = 1 << 20;

/// Bytes of checked copies kept per tree, least recently read dropped first.
const KEPT_BYTES: usize = 16 << 20;

/// Which object a copy is of: its offset in the image and its identity
/// (`build::object_identity`).
type Key = (u64, u64);

/// The checked copies of one tree.
pub(super) struct VerifiedObjects {
    copies: Mutex<Kept>,
}

struct Kept {
    lru: LruCache<Key, Arc<[u8]>>,
    bytes: usize,
}

impl Default for VerifiedObjects {
    fn default() -> Self {
        VerifiedObjects {
            copies: Mutex::new(Kept {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
        }
    }
}

impl VerifiedObjects {
    // A panic while the lock was held leaves a cache whose entries are each whole and
    // checked: using it on is safe.
    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.copies.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn get(&self, offset: u64, identity: u64) -> Option<Arc<[u8]>> {
        self.kept().lru.get(&(offset, identity)).cloned()
    }

    /// Keeps `bytes`, checked to be the object at `offset` with `identity`.
    pub(super) fn keep(&self, offset: u64, identity: u64, bytes: Arc<[u8]>) {
        let mut kept = self.kept();
        let len = bytes.len();
        if let Some(old) = kept.lru.put((offset, identity), bytes) {
            kept.bytes -= old.len();
        }
        kept.bytes += len;
        while kept.bytes > KEPT_BYTES {
            match kept.lru.pop_lru() {
                Some((_, dropped)) => kept.bytes -= dropped.len(),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_past_the_limit_drop_the_least_recently_read() {
        let v = VerifiedObjects::default();
        let mib: Arc<[u8]> = vec![7u8; 1 << 20].into();
        for i in 0..20u64 {
            v.keep(i, 0, mib.clone());
            assert!(v.get(0, 0).is_some(), "the one read each time stays");
        }
        assert!(v.kept().bytes <= KEPT_BYTES);
        assert!(v.get(1, 0).is_none(), "an early one was dropped");
        assert!(v.get(19, 0).is_some());
        v.keep(19, 0, mib.clone());
        let kept = v.kept();
        assert_eq!(
            kept.bytes,
            kept.lru.len() << 20,
            "a copy kept twice counts once"
        );
    }
}
