//! `-o require_signed` (the man page, CONTENT TRUST): `/images` shows only the images
//! with an entry that verifies under the mount's keys or identities, and the blobs that
//! only other images use are withheld: listed, but every open and read of them is
//! refused (EACCES), wherever they appear (`/blobs`, `/sif/objects`, links).
//!
//! What signatures are made of stays readable: the signature images, referrers and
//! payloads under `/cosign`, which is how a user finds out why an image is not shown.

use std::collections::{HashMap, HashSet};

use super::build::Builder;
use super::{Content, NodeData};
use crate::oci::OciSif;
use crate::sif::Digest;

impl Builder<'_> {
    /// Hides the images that do not verify and records the blobs withheld, by the slot
    /// of their object. Runs after every verdict is known.
    pub(super) fn require_signed(&mut self, oci: &OciSif, images_dir: super::Ino) {
        let signature_manifests: HashSet<Digest> = self
            .cosign_entries
            .iter()
            .map(|(_, e)| e.manifest)
            .collect();
        let mut readable = oci.reachable_blobs(signature_manifests.iter().copied());
        readable.extend(self.cosign_entries.iter().map(|(_, e)| e.layer.digest));

        let (trusted, untrusted): (Vec<_>, Vec<_>) = self
            .image_dirs
            .iter()
            .filter(|i| !i.holds_entries)
            .partition(|i| i.verified.unwrap_or(0) > 0);
        readable.extend(oci.reachable_blobs(trusted.iter().map(|i| i.digest)));
        let hidden_names: HashSet<String> = self
            .image_dirs
            .iter()
            .filter(|i| i.holds_entries || i.verified.unwrap_or(0) == 0)
            .map(|i| i.name.clone())
            .collect();
        let withheld: HashSet<Digest> = oci
            .reachable_blobs(untrusted.iter().map(|i| i.digest))
            .into_iter()
            .filter(|d| !readable.contains(d))
            .collect();

        let mut slots = HashMap::new();
        for digest in withheld {
            let Some(&ino) = self.blobs.get(&digest) else {
                continue;
            };
            if let NodeData::File(Content::Range { slot, .. }) = &self.node(ino).data {
                slots.insert(*slot, digest);
            }
        }
        self.withheld = slots;
        if let NodeData::Dir(entries) = &mut self.node_mut(images_dir).data {
            entries.retain(|e| !hidden_names.contains(&e.name));
        }
        self.image_dirs.retain(|i| !hidden_names.contains(&i.name));
        if !hidden_names.is_empty() {
            log::info!(
                "{}: require_signed: {} of the images under /images not shown (no entry \
                 verifies), {} blobs withheld",
                self.path,
                hidden_names.len(),
                self.withheld.len()
            );
        }
    }
}
