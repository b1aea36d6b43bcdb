//! Finding every signature, attestation, SBOM and referrer in an OCI-SIF, from every
//! convention in use (docs/FORMAT.md, Tags and where they live, §6):
//!
//! * root-index entries named `_cosign:sha256-<hex>.sig|.att|.sbom` (SingularityCE,
//!   oci-tools): one entry per layer of that image;
//! * root-index entries with a `kind` annotation (`cosign save`): the signature and
//!   attestation images of the layout's one image;
//! * OCI 1.1 referrers: manifests with a `subject`, listed in the root index or (as
//!   `cosign save` leaves them) present only as blobs.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{is_cosign_ref, KIND_ANNOTATION};
use crate::oci::{Descriptor, Index, OciSif};
use crate::sif::Digest;

/// Hex digits of the target digest in an entry name (as in the man page's examples).
const TARGET_PREFIX: usize = 13;
/// Hex digits of a referrer manifest's digest in its entry name.
const REFERRER_PREFIX: usize = 12;
/// Stray blobs larger than this are not read while looking for referrer manifests: a
/// manifest is a few hundred bytes, and reading layers would make mounting slow.
const MAX_STRAY_MANIFEST: i64 = 1 << 20;
/// cosign refuses signature images with more layers (`maxLayers`); so does discovery, so
/// a hostile image cannot make a mount list millions of entries from one manifest.
pub const MAX_LAYERS: usize = 1000;
/// How a referrer manifest names its subject, unless it spells the key with `\u`
/// escapes (which JSON readers decode, so such a manifest is parsed in full).
const SUBJECT_KEY: &[u8] = b"\"subject\"";

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A simple-signing payload with its signature annotation (`.sig`).
    Signature,
    /// A DSSE envelope (`.att`).
    Attestation,
    /// An SBOM attachment (`.sbom`): no signature of its own.
    Sbom,
    /// A layer of an OCI 1.1 referrer manifest (sigstore bundles among them).
    Referrer,
}

impl EntryKind {
    /// The prefix of entry names: `sig`, `att`, `sbom`, `ref`.
    pub fn short_name(self) -> &'static str {
        match self {
            EntryKind::Signature => "sig",
            EntryKind::Attestation => "att",
            EntryKind::Sbom => "sbom",
            EntryKind::Referrer => "ref",
        }
    }

    fn from_tag_suffix(suffix: &str) -> Option<EntryKind> {
        match suffix {
            "sig" => Some(EntryKind::Signature),
            "att" => Some(EntryKind::Attestation),
            "sbom" => Some(EntryKind::Sbom),
            _ => None,
        }
    }
}

/// Where an entry was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A root-index entry with this `org.opencontainers.image.ref.name`.
    Tag(String),
    /// A root-index entry with this `kind` annotation (`cosign save`).
    SaveKind(String),
    /// A referrer manifest; `listed` says whether the root index lists it.
    Referrer { listed: bool },
}

/// One signature, attestation, SBOM or referrer layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `<kind>-<13 hex of the target>-<n>`: stable across remounts and appends (new
    /// layers go last), unique in the image.
    pub name: String,
    pub kind: EntryKind,
    /// The manifest or index this entry is about.
    pub target: Digest,
    /// The signature image's (or referrer's) manifest.
    pub manifest: Digest,
    /// Position of the layer in that manifest.
    pub layer_index: usize,
    /// The layer descriptor: media type, payload digest and size, annotations.
    pub layer: Descriptor,
    pub origin: Origin,
}

impl Entry {
    /// The layer's annotations (empty when it has none).
    pub fn annotations(&self) -> BTreeMap<String, String> {
        self.layer.annotations.clone().unwrap_or_default()
    }
}

/// Everything found, and what could not be used and why.
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    pub entries: Vec<Entry>,
    pub warnings: Vec<String>,
}

/// Finds every entry of `oci`. Never fails: what cannot be read is reported in
/// `warnings` and left out.
pub fn discover(oci: &OciSif) -> Discovery {
    let mut d = Discovery::default();
    let index = match oci.root_index_bytes().and_then(|b| Index::parse(&b)) {
        Ok(index) => index,
        Err(e) => {
            d.warnings
                .push(format!("root index: {e}; no cosign entries"));
            return d;
        }
    };
    let mut found = Found::default();
    let save_target = cosign_save_target(&index);
    for entry in index.entries() {
        if let Some(name) = entry.ref_name().filter(|n| is_cosign_ref(n)) {
            found.tagged(oci, entry, name, &mut d);
        } else if let Some(kind) = entry.annotation(KIND_ANNOTATION) {
            found.saved(oci, entry, kind, save_target.as_ref(), &mut d);
        }
    }
    let listed: HashSet<Digest> = index.entries().iter().map(|e| e.digest).collect();
    for entry in index.entries() {
        found.referrer(oci, &entry.digest, true, &mut d);
    }
    // Referrers `cosign save` leaves unlisted: any small blob nothing references that is
    // a manifest with a subject.
    let reachable = oci.reachable_blobs(index.entries().iter().map(|e| e.digest));
    let strays: Vec<Digest> = oci
        .blobs()
        .filter(|(digest, desc)| {
            !listed.contains(digest)
                && !reachable.contains(digest)
                && desc.size <= MAX_STRAY_MANIFEST
        })
        .map(|(digest, _)| digest)
        .collect();
    for digest in strays {
        found.referrer(oci, &digest, false, &mut d);
    }
    d.entries = found.entries;
    d
}

/// The one image a `cosign save` layout holds (`kind` image or imageIndex).
fn cosign_save_target(index: &Index) -> Option<Digest> {
    let mut images = index.entries().iter().filter(|e| {
        matches!(
            e.annotation(KIND_ANNOTATION),
            Some("dev.cosignproject.cosign/image" | "dev.cosignproject.cosign/imageIndex")
        )
    });
    let first = images.next()?;
    images.next().is_none().then_some(first.digest)
}

/// Entries found so far, with the numbering state that makes names unique.
#[derive(Default)]
struct Found {
    entries: Vec<Entry>,
    names: HashSet<String>,
    /// The next counter to try for each base name, so that a name taken by the n-th
    /// signature image with the same tag costs one try, not n.
    next: HashMap<String, usize>,
    /// Manifests already read as signature images, whether they gave entries or not (a
    /// referrer listed twice, or both listed and tagged, gives its entries once; a
    /// broken one listed 100,000 times is read and reported once).
    manifests: HashSet<Digest>,
    /// Blobs already probed for a `subject`: the root index may list one blob any
    /// number of times, and each probe reads it whole.
    probed: HashSet<Digest>,
}

impl Found {
    fn tagged(&mut self, oci: &OciSif, entry: &Descriptor, ref_name: &str, d: &mut Discovery) {
        // is_cosign_ref guarantees `_cosign:sha256-<64 hex>.<suffix>`.
        let tag = &ref_name["_cosign:".len()..];
        let (digest_part, suffix) = tag.split_once('.').unwrap_or((tag, ""));
        let Some(kind) = EntryKind::from_tag_suffix(suffix) else {
            return;
        };
        let Ok(target) = digest_part.replacen('-', ":", 1).parse::<Digest>() else {
            d.warnings.push(format!("{ref_name}: not a sha256 digest"));
            return;
        };
        self.layers_of(
            oci,
            entry.digest,
            kind,
            target,
            Origin::Tag(ref_name.to_string()),
            d,
        );
    }

    fn saved(
        &mut self,
        oci: &OciSif,
        entry: &Descriptor,
        kind_annotation: &str,
        target: Option<&Digest>,
        d: &mut Discovery,
    ) {
        let kind = match kind_annotation {
            "dev.cosignproject.cosign/sigs" => EntryKind::Signature,
            "dev.cosignproject.cosign/atts" => EntryKind::Attestation,
            _ => return,
        };
        let Some(target) = target else {
            d.warnings.push(format!(
                "{}: {kind_annotation} image, but the layout does not hold exactly one image to \
                 attach it to",
                entry.digest
            ));
            return;
        };
        let origin = Origin::SaveKind(kind_annotation.to_string());
        self.layers_of(oci, entry.digest, kind, *target, origin, d);
    }

    /// `digest` as a referrer manifest, if it is one.
    fn referrer(&mut self, oci: &OciSif, digest: &Digest, listed: bool, d: &mut Discovery) {
        if self.manifests.contains(digest) || !self.probed.insert(*digest) {
            return;
        }
        let Ok(bytes) = oci.read_blob(digest) else {
            return;
        };
        // Every image's manifest is probed: a scan for the key is far cheaper than parsing
        // a manifest of thousands of layers only to find it has no subject.
        let has_key = bytes.windows(SUBJECT_KEY.len()).any(|w| w == SUBJECT_KEY);
        if !has_key && !bytes.windows(2).any(|w| w == b"\\u") {
            return;
        }
        let Ok(doc) = serde_json::from_slice::<ReferrerProbe>(&bytes) else {
            return;
        };
        let Some(subject) = doc.subject else {
            return;
        };
        if doc.layers.is_none() {
            // An index with a subject: not a signature artifact sifmount shows.
            return;
        }
        self.layers_of(
            oci,
            *digest,
            EntryKind::Referrer,
            subject.digest,
            Origin::Referrer { listed },
            d,
        );
    }

    /// One entry per layer of the manifest `manifest`.
    fn layers_of(
        &mut self,
        oci: &OciSif,
        manifest: Digest,
        kind: EntryKind,
        target: Digest,
        origin: Origin,
        d: &mut Discovery,
    ) {
        if !self.manifests.insert(manifest) {
            return;
        }
        let refs = match oci.read_blob(&manifest).and_then(|b| {
            serde_json::from_slice::<SignatureLayers>(&b).map_err(|e| crate::oci::OciError::Json {
                what: format!("manifest {manifest}"),
                source: e,
            })
        }) {
            Ok(r) => r,
            Err(e) => {
                d.warnings
                    .push(format!("{} image {manifest}: {e}", kind.short_name()));
                return;
            }
        };
        let layers = refs.layers.unwrap_or_default();
        if layers.len() > MAX_LAYERS {
            d.warnings.push(format!(
                "{} image {manifest}: {} layers, more than the {MAX_LAYERS} cosign allows; \
                 showing the first {MAX_LAYERS}",
                kind.short_name(),
                layers.len()
            ));
        }
        let hex = target.hex();
        for (i, layer) in layers.into_iter().take(MAX_LAYERS).enumerate() {
            let base = match kind {
                EntryKind::Referrer => format!(
                    "ref-{}-{}",
                    &hex[..TARGET_PREFIX],
                    &manifest.hex()[..REFERRER_PREFIX]
                ),
                _ => format!("{}-{}-{}", kind.short_name(), &hex[..TARGET_PREFIX], i + 1),
            };
            // A referrer with several layers, or the same tag shape reached twice
            // (`.sig` tag and `kind`), gets a counter.
            let mut name = if kind == EntryKind::Referrer && i > 0 {
                format!("{base}-{}", i + 1)
            } else {
                base.clone()
            };
            if self.names.contains(&name) {
                let n = self.next.entry(base.clone()).or_insert(2);
                name = format!("{base}.{n}");
                while self.names.contains(&name) {
                    *n += 1;
                    name = format!("{base}.{n}");
                }
                *n += 1;
            }
            self.names.insert(name.clone());
            if oci.blob(&layer.digest).is_none() {
                d.warnings.push(format!(
                    "{name}: payload blob {} is not in the image",
                    layer.digest
                ));
            }
            self.entries.push(Entry {
                name,
                kind,
                target,
                manifest,
                layer_index: i,
                layer,
                origin: origin.clone(),
            });
        }
    }
}

/// A signature image's manifest: its layers in full, since their annotations make the
/// entries (the shared [`crate::oci::References`] keeps only layer digests).
#[derive(serde::Deserialize)]
struct SignatureLayers {
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

/// Just enough of a manifest to tell a referrer.
#[derive(serde::Deserialize)]
struct ReferrerProbe {
    #[serde(default)]
    subject: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}
