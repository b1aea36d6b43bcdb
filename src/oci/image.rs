//! An open OCI-SIF: the root index and every blob by digest, and the in-place update
//! algorithm of oci-tools (docs/FORMAT.md, What makes a SIF an OCI-SIF).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::error::{OciError, Result};
use super::model::{Index, References};
use super::source::{append_blob, require_blob, require_bytes, BlobSource};
use super::walk::{blobs_in_write_order, named_blobs, Naming, OtherMediaTypes};
use crate::sif::{
    ChangeTime, DataType, DeleteOptions, Descriptor as SifDescriptor, Digest, ObjectInput,
    OpenMode, SifError, SifImage,
};

/// The largest index, manifest or config read whole. Real ones are kilobytes (a root
/// index listing a thousand signature images is about 250 KB); the bound keeps a hostile
/// image from making a reader allocate the size of the file.
pub const MAX_DOCUMENT_SIZE: i64 = 64 << 20;

/// What a SIF holds, as SingularityCE decides it (docs/FORMAT.md, What makes a SIF an OCI-SIF).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// No OCI root index: a native SIF.
    Native,
    /// Exactly one root index, in this slot.
    OciSif { root_slot: usize },
    /// Several root indexes: neither a usable OCI-SIF nor a native SIF.
    Ambiguous { slots: Vec<usize> },
}

impl ImageKind {
    pub fn of(sif: &SifImage) -> ImageKind {
        let roots: Vec<usize> = sif
            .descriptors()
            .filter(|(_, d)| d.data_type() == DataType::OciRootIndex)
            .map(|(i, _)| i)
            .collect();
        match roots.as_slice() {
            [] => ImageKind::Native,
            [one] => ImageKind::OciSif { root_slot: *one },
            _ => ImageKind::Ambiguous { slots: roots },
        }
    }
}

/// A blob whose bytes do not hash to the digest its descriptor records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobMismatch {
    pub slot: usize,
    pub id: u32,
    pub recorded: Digest,
    pub actual: Digest,
}

/// A blob that the root index, or a document it reaches, names but the image lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingBlob {
    pub digest: Digest,
    /// Every naming of it, in write order.
    pub named_by: Vec<Naming>,
}

/// What an update did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateOutcome {
    /// The new root index equals the stored one: nothing was written.
    pub unchanged: bool,
    /// Objects deleted (the old root index included).
    pub deleted: usize,
    /// Objects appended (the new root index included).
    pub added: usize,
}

/// An OCI-SIF: a SIF with exactly one OCI root index.
#[derive(Debug)]
pub struct OciSif {
    sif: SifImage,
    root_slot: usize,
    /// First slot holding each blob digest (root index excluded).
    blobs: HashMap<Digest, usize>,
    /// Manifests and indexes already parsed by [`OciSif::references`], by digest: a blob's
    /// digest fixes its bytes, so an entry never goes stale.
    parsed: std::sync::Mutex<HashMap<Digest, std::sync::Arc<References>>>,
}

impl OciSif {
    /// Opens an OCI-SIF; errors name the path.
    pub fn open(path: impl AsRef<Path>, mode: OpenMode) -> Result<OciSif> {
        let shown = path.as_ref().display().to_string();
        let sif = SifImage::open(path, mode)?;
        OciSif::from_sif(sif).map_err(|e| e.in_file(&shown))
    }

    /// Checks that `sif` is an OCI-SIF: exactly one root index, every OCI digest
    /// well-formed, the root index valid JSON.
    pub fn from_sif(sif: SifImage) -> Result<OciSif> {
        let root_slot = match ImageKind::of(&sif) {
            ImageKind::Native => return Err(OciError::NotOciSif),
            ImageKind::Ambiguous { slots } => {
                return Err(OciError::MultipleRootIndexes {
                    count: slots.len(),
                    slots,
                })
            }
            ImageKind::OciSif { root_slot } => root_slot,
        };
        let blobs = index_blobs(&sif)?;
        let image = OciSif {
            sif,
            root_slot,
            blobs,
            parsed: Default::default(),
        };
        // Only the syntax is checked here: upstream's own test corpus has a root index
        // whose entries carry truncated digests, and such a file must still open. Its
        // entries fail when they are used (`root_index`).
        let bytes = image.root_index_bytes()?;
        serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).map_err(|e| OciError::Invalid {
            what: format!(
                "root index (slot {}, id {})",
                root_slot,
                image.root_index_descriptor().id
            ),
            problem: format!("not valid JSON: {e}"),
        })?;
        Ok(image)
    }

    pub fn sif(&self) -> &SifImage {
        &self.sif
    }

    pub fn into_sif(self) -> SifImage {
        self.sif
    }

    pub fn root_index_descriptor(&self) -> &SifDescriptor {
        &self.sif.slots()[self.root_slot]
    }

    /// The slot of the root index in the descriptor table.
    pub fn root_slot(&self) -> usize {
        self.root_slot
    }

    /// The root index bytes exactly as stored.
    pub fn root_index_bytes(&self) -> Result<Vec<u8>> {
        self.read_document(self.root_index_descriptor(), "root index")
    }

    pub fn root_index(&self) -> Result<Index> {
        Index::parse(&self.root_index_bytes()?)
    }

    /// The descriptor holding a blob (the first, when a digest is stored twice).
    pub fn blob(&self, digest: &Digest) -> Option<&SifDescriptor> {
        self.blobs.get(digest).map(|&slot| &self.sif.slots()[slot])
    }

    /// Every distinct blob digest with its descriptor, in slot order.
    pub fn blobs(&self) -> impl Iterator<Item = (Digest, &SifDescriptor)> {
        let mut v: Vec<(Digest, usize)> = self.blobs.iter().map(|(d, s)| (*d, *s)).collect();
        v.sort_by_key(|&(_, s)| s);
        v.into_iter().map(|(d, s)| (d, &self.sif.slots()[s]))
    }

    /// A whole blob's bytes, for JSON documents (manifests, indexes, configs): blobs over
    /// [`MAX_DOCUMENT_SIZE`] are refused rather than loaded. Stream large blobs with
    /// [`BlobSource::open_blob`].
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let d = self.blob(digest).ok_or(OciError::MissingBlob(*digest))?;
        self.read_document(d, &format!("blob {digest}"))
    }

    fn read_document(&self, d: &SifDescriptor, what: &str) -> Result<Vec<u8>> {
        if d.size > MAX_DOCUMENT_SIZE {
            return Err(OciError::Invalid {
                what: what.to_string(),
                problem: format!(
                    "{} bytes is more than the {MAX_DOCUMENT_SIZE} bytes a JSON document may have",
                    d.size
                ),
            });
        }
        Ok(self.sif.read_object(d)?)
    }

    /// An image manifest parsed with `oci-spec` (OCI or Docker schema 2).
    pub fn image_manifest(&self, digest: &Digest) -> Result<oci_spec::image::ImageManifest> {
        parse_spec(
            &self.read_blob(digest)?,
            &format!("image manifest {digest}"),
        )
    }

    /// An image index or Docker manifest list parsed with `oci-spec`.
    pub fn image_index(&self, digest: &Digest) -> Result<oci_spec::image::ImageIndex> {
        parse_spec(&self.read_blob(digest)?, &format!("image index {digest}"))
    }

    /// An image configuration parsed with `oci-spec`.
    pub fn image_config(&self, digest: &Digest) -> Result<oci_spec::image::ImageConfiguration> {
        parse_spec(&self.read_blob(digest)?, &format!("image config {digest}"))
    }

    /// Hashes every OCI blob (not the root index, as `singularity verify` does) and
    /// reports those whose bytes do not match their recorded digest.
    pub fn verify_blobs(&self) -> Result<Vec<BlobMismatch>> {
        let mut bad = Vec::new();
        for (slot, d) in self.sif.descriptors() {
            if d.data_type() != DataType::OciBlob {
                continue;
            }
            let recorded = recorded_digest(slot, d)?;
            let actual = self.sif.digest_object(d)?;
            if actual != recorded {
                bad.push(BlobMismatch {
                    slot,
                    id: d.id,
                    recorded,
                    actual,
                });
            }
        }
        Ok(bad)
    }

    /// Walks the root index through nested indexes and manifests (cosign signature
    /// images included) and reports every blob named but not stored. A stored document
    /// whose bytes do not match its digest is not walked: [`OciSif::verify_blobs`]
    /// reports it, and what it names cannot be trusted.
    pub fn missing_blobs(&self) -> Result<Vec<MissingBlob>> {
        let index = self.root_index()?;
        let fetch = |d: &Digest| -> Result<Option<Vec<u8>>> {
            if !self.blobs.contains_key(d) {
                return Ok(None);
            }
            let bytes = self.read_blob(d)?;
            Ok((Digest::of(&bytes) == *d).then_some(bytes))
        };
        let named = named_blobs(index.entries(), &fetch, OtherMediaTypes::WriteBlob)?;
        let mut missing: Vec<MissingBlob> = Vec::new();
        let mut at: HashMap<Digest, usize> = HashMap::new();
        for (digest, naming) in named {
            if self.blobs.contains_key(&digest) {
                continue;
            }
            match at.get(&digest) {
                Some(&i) => missing[i].named_by.push(naming),
                None => {
                    at.insert(digest, missing.len());
                    missing.push(MissingBlob {
                        digest,
                        named_by: vec![naming],
                    });
                }
            }
        }
        Ok(missing)
    }

    /// Replaces the root index with `new_index`, writing the blobs it needs from
    /// `source` and deleting those it no longer references: oci-tools' `UpdateRootIndex`,
    /// byte for byte (docs/FORMAT.md, Updating one in place). Unlike upstream, every check (media types,
    /// blobs present) is made before anything is deleted, a blob referenced twice is
    /// written once, and a descriptor table too small for the update is grown first
    /// ([`SifImage::ensure_free_slots`]; with enough free slots the bytes are upstream's).
    pub fn update_root_index(
        &mut self,
        new_index: &[u8],
        source: &dyn BlobSource,
    ) -> Result<UpdateOutcome> {
        if self.root_index_descriptor().oci_digest().transpose()? == Some(Digest::of(new_index)) {
            return Ok(UpdateOutcome {
                unchanged: true,
                ..Default::default()
            });
        }
        let index = Index::parse(new_index)?;
        let fetch = |d: &Digest| -> Result<Vec<u8>> {
            if self.blobs.contains_key(d) {
                return self.read_blob(d);
            }
            require_bytes(source, d)
        };
        let wanted = blobs_in_write_order(index.entries(), &fetch, OtherMediaTypes::Reject)?;

        let mut keep = HashSet::new();
        let mut new = Vec::new();
        let mut seen = HashSet::new();
        for d in wanted {
            if self.blobs.contains_key(&d) {
                keep.insert(d);
            } else if seen.insert(d) {
                new.push(d);
            } else {
                log::debug!("blob {d} is referenced twice; writing it once");
            }
        }
        for d in &new {
            require_blob(source, d)?;
        }
        let doomed = |d: &SifDescriptor| match d.oci_digest() {
            Some(Ok(digest)) => !keep.contains(&digest),
            _ => false,
        };
        // One transaction (src/sif/journal.rs): a crash anywhere in the growth, the
        // deletions and the appends leaves the old image or the new one.
        let deleted = self.sif.transaction(|sif| -> Result<usize> {
            let freed = sif.descriptors().filter(|(_, d)| doomed(d)).count();
            let free = sif.free_slots();
            if free + freed < new.len() + 1 {
                // The deletions free `freed` slots for the new objects: grow the table for the
                // rest (docs/FORMAT.md, Header has upstream fail here), failing before anything is
                // written only when it cannot grow.
                let grown = sif.ensure_free_slots(new.len() + 1 - freed, ChangeTime::Auto);
                if let Err(e) = grown {
                    if !matches!(e.kind(), SifError::InsufficientCapacity { .. }) {
                        return Err(e.into());
                    }
                    return Err(OciError::InsufficientCapacity {
                        needed: new.len() + 1,
                        available: free + freed,
                        free,
                        freed,
                    });
                }
            }

            let deleted = sif.delete_objects(
                doomed,
                DeleteOptions {
                    zero: true,
                    compact: true,
                    time: ChangeTime::Auto,
                },
            )?;
            for d in &new {
                append_blob(sif, d, source)?;
            }
            sif.add_object(
                ObjectInput::new(DataType::OciRootIndex, new_index),
                ChangeTime::Auto,
            )?;
            Ok(deleted)
        })?;
        self.reindex()?;
        Ok(UpdateOutcome {
            unchanged: false,
            deleted,
            added: new.len() + 1,
        })
    }

    /// Deletes every blob with this digest, zeroing it and truncating the file when it
    /// was at the end; the root index is not touched (oci-tools `RemoveBlob`).
    pub fn remove_blob(&mut self, digest: &Digest) -> Result<()> {
        // A transaction of its own, so that the zeroing, the truncation and the table
        // write reach the file together or not at all.
        self.sif.transaction(|sif| {
            sif.delete_objects(
                |d| {
                    d.data_type() == DataType::OciBlob
                        && d.oci_digest().and_then(|r| r.ok()) == Some(*digest)
                },
                DeleteOptions {
                    zero: true,
                    compact: true,
                    time: ChangeTime::Auto,
                },
            )
        })?;
        self.reindex()
    }

    fn reindex(&mut self) -> Result<()> {
        self.root_slot = match ImageKind::of(&self.sif) {
            ImageKind::OciSif { root_slot } => root_slot,
            ImageKind::Native => return Err(OciError::NotOciSif),
            ImageKind::Ambiguous { slots } => {
                return Err(OciError::MultipleRootIndexes {
                    count: slots.len(),
                    slots,
                })
            }
        };
        self.blobs = index_blobs(&self.sif)?;
        Ok(())
    }

    /// Every blob `roots` reference, directly or through manifests and indexes, the
    /// roots included; read tolerantly (a missing or broken document just ends that
    /// branch, and nesting past [`crate::oci::MAX_INDEX_DEPTH`] is not followed).
    pub fn reachable_blobs(&self, roots: impl IntoIterator<Item = Digest>) -> HashSet<Digest> {
        let mut seen = HashSet::new();
        let mut todo: Vec<(Digest, usize)> = roots.into_iter().map(|d| (d, 0)).collect();
        while let Some((digest, depth)) = todo.pop() {
            if !seen.insert(digest) || depth > crate::oci::MAX_INDEX_DEPTH {
                continue;
            }
            let Ok(refs) = self.references(&digest) else {
                continue;
            };
            if let Some(c) = &refs.config {
                seen.insert(c.digest);
            }
            seen.extend(refs.layers.iter().flatten().map(|l| l.digest));
            todo.extend(
                refs.manifests
                    .iter()
                    .flatten()
                    .map(|m| (m.digest, depth + 1)),
            );
        }
        seen
    }

    /// What the manifest or index `digest` references, parsed once for all the readers
    /// that walk it while a tree is built (a manifest of 10,000 layers is a megabyte).
    pub(crate) fn references(&self, digest: &Digest) -> Result<std::sync::Arc<References>> {
        let cached = |m: &HashMap<Digest, std::sync::Arc<References>>| m.get(digest).cloned();
        if let Some(r) = self.parsed.lock().ok().as_deref().and_then(cached) {
            return Ok(r);
        }
        let refs = std::sync::Arc::new(References::parse(&self.read_blob(digest)?, digest)?);
        if let Ok(mut m) = self.parsed.lock() {
            m.insert(*digest, refs.clone());
        }
        Ok(refs)
    }

    /// Wraps a freshly written image (its root index is known to be in place).
    pub(crate) fn from_written(sif: SifImage) -> Result<OciSif> {
        let mut image = OciSif {
            sif,
            root_slot: 0,
            blobs: HashMap::new(),
            parsed: Default::default(),
        };
        image.reindex()?;
        Ok(image)
    }
}

impl BlobSource for OciSif {
    fn open_blob(
        &self,
        digest: &Digest,
    ) -> std::io::Result<Option<(u64, Box<dyn std::io::Read + '_>)>> {
        Ok(self.blob(digest).map(|d| {
            (
                d.size as u64,
                Box::new(self.sif.object_reader(d)) as Box<dyn std::io::Read>,
            )
        }))
    }
}

fn parse_spec<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| OciError::Json {
        what: what.to_string(),
        source: e,
    })
}

fn recorded_digest(slot: usize, d: &SifDescriptor) -> Result<Digest> {
    d.oci_digest()
        .expect("only OCI descriptors are asked for a digest")
        .map_err(|e| {
            OciError::Sif(SifError::InvalidDescriptor {
                slot,
                id: d.id,
                problem: e.to_string(),
            })
        })
}

/// Maps every blob digest to its first slot; later duplicates are logged and ignored, as
/// a reader must tolerate what upstream's non-deduplicating writer produces.
fn index_blobs(sif: &SifImage) -> Result<HashMap<Digest, usize>> {
    let mut blobs = HashMap::new();
    for (slot, d) in sif.descriptors() {
        if !d.data_type().is_oci() {
            continue;
        }
        let digest = recorded_digest(slot, d)?;
        if d.data_type() != DataType::OciBlob {
            continue;
        }
        if let Some(first) = blobs.get(&digest) {
            log::warn!(
                "blob {digest} is stored twice (slots {first} and {slot}); using slot {first}"
            );
            continue;
        }
        blobs.insert(digest, slot);
    }
    Ok(blobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::source::MemBlobs;
    use crate::oci::walk::{Namer, Role};
    use crate::oci::write::write_oci_sif;
    use crate::oci::{media_type, REF_NAME};
    use crate::sif::MemStorage;

    fn entry(mt: &str, d: &Digest) -> serde_json::Value {
        serde_json::json!({"mediaType": mt, "size": 1, "digest": d.to_string()})
    }

    fn json(v: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn missing_blobs_are_named_by_every_document_that_names_them() {
        let mut blobs = MemBlobs::new();
        let (l0, l1) = (blobs.insert(b"l0".to_vec()), blobs.insert(b"l1".to_vec()));
        let (sig_layer, config) = (blobs.insert(b"sig".to_vec()), blobs.insert(b"{}".to_vec()));
        let layers = |ls: &[Digest]| -> Vec<serde_json::Value> {
            ls.iter().map(|l| entry("layer", l)).collect()
        };
        let m = blobs.insert(json(serde_json::json!({
            "config": entry(media_type::OCI_CONFIG, &config), "layers": layers(&[l0, l1])
        })));
        let sig = blobs.insert(json(serde_json::json!({
            "config": entry(media_type::OCI_CONFIG, &config), "layers": layers(&[sig_layer])
        })));
        let nested = blobs.insert(json(
            serde_json::json!({"manifests": [entry(media_type::OCI_MANIFEST, &m)]}),
        ));
        let mut signature = entry(media_type::OCI_MANIFEST, &sig);
        signature["annotations"] = serde_json::json!({});
        signature["annotations"][REF_NAME] = "_cosign:sha256-x.sig".into();
        let root = json(serde_json::json!({"manifests": [
            entry(media_type::OCI_INDEX, &nested),
            entry(media_type::OCI_MANIFEST, &m),
            signature,
        ]}));
        let storage = Box::new(MemStorage::new(Vec::new()));
        let mut oci = write_oci_sif(storage, &root, &blobs, 4).unwrap();
        assert_eq!(oci.missing_blobs().unwrap(), vec![]);

        oci.remove_blob(&l1).unwrap();
        oci.remove_blob(&config).unwrap();
        let by = |by, role| Naming { by, role };
        let layer1 = MissingBlob {
            digest: l1,
            named_by: vec![by(Namer::Manifest(m), Role::Layer(1))],
        };
        assert_eq!(
            oci.missing_blobs().unwrap(),
            vec![
                layer1.clone(),
                MissingBlob {
                    digest: config,
                    named_by: vec![
                        by(Namer::Manifest(m), Role::Config),
                        by(Namer::Manifest(sig), Role::Config),
                    ],
                },
            ]
        );
        assert_eq!(
            layer1.named_by[0].to_string(),
            format!("manifest {m} (layer 1)")
        );

        // A missing manifest is reported; what it would name cannot be known.
        oci.remove_blob(&sig).unwrap();
        let missing = oci.missing_blobs().unwrap();
        assert_eq!(missing.len(), 3, "{missing:?}");
        assert_eq!(
            missing[1].named_by,
            vec![by(Namer::Manifest(m), Role::Config)]
        );
        assert_eq!(
            missing[2],
            MissingBlob {
                digest: sig,
                named_by: vec![by(Namer::RootIndex, Role::Entry(2))],
            }
        );
        assert_eq!(
            missing[2].named_by[0].to_string(),
            "the root index (entry 2)"
        );
    }

    #[test]
    fn a_document_that_is_not_its_digest_is_not_walked() {
        // The flipped byte turns "config" into "Xonfig": parsed, the manifest would be an
        // error that hides the mismatch verify_blobs reports.
        let mut blobs = MemBlobs::new();
        let config = blobs.insert(b"{}".to_vec());
        let m = blobs.insert(json(serde_json::json!({
            "config": entry(media_type::OCI_CONFIG, &config), "layers": []
        })));
        let root = json(serde_json::json!({"manifests": [entry(media_type::OCI_MANIFEST, &m)]}));
        let storage = Box::new(MemStorage::new(Vec::new()));
        let oci = write_oci_sif(storage, &root, &blobs, 0).unwrap();
        let d = oci.blob(&m).unwrap().clone();
        let sif = oci.into_sif();
        let at = d.offset as u64 + 2;
        sif.storage().write_all_at(b"X", at).unwrap();
        let oci = OciSif::from_sif(sif).unwrap();
        assert_eq!(oci.missing_blobs().unwrap(), vec![]);
        assert_eq!(oci.verify_blobs().unwrap().len(), 1);
    }
}
