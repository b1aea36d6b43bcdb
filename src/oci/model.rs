//! The OCI documents sifmount reads and writes itself: descriptors, indexes and
//! manifests, with the field order go-containerregistry uses (docs/FORMAT.md, The root index,
//! docs/FORMAT.md, The signature image).
//!
//! Parsing is lenient where real files are (`"manifests":null`, `{}` as a root index,
//! Docker media types, pretty-printed input); writing is exact. Fields this model does
//! not know are dropped on re-serialization, as they are upstream.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::error::{OciError, Result};
use super::gojson::{write_array, write_str, write_string_map, GoObject};
use super::media_type;
use crate::sif::Digest;

/// The annotation that names an entry of an index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    #[serde(default)]
    pub size: i64,
    pub digest: Digest,
    /// Embedded content, base64 as stored.
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub urls: Option<Vec<String>>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A descriptor of `bytes` with this media type.
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor::of_digest(media_type, Digest::of(bytes), bytes.len() as u64)
    }

    /// A descriptor of content known by its digest and size (a layer streamed, not held).
    pub fn of_digest(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            size: size as i64,
            digest,
            data: None,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        }
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// The `org.opencontainers.image.ref.name` annotation.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotation(REF_NAME)
    }

    pub fn set_annotation(&mut self, key: &str, value: &str) {
        self.annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_string(), value.to_string());
    }

    /// Removes an annotation, dropping the map when it becomes empty (Go omits it then).
    pub fn remove_annotation(&mut self, key: &str) {
        if let Some(m) = self.annotations.as_mut() {
            m.remove(key);
            if m.is_empty() {
                self.annotations = None;
            }
        }
    }

    /// Go field order: mediaType, size, digest, data, urls, annotations, platform,
    /// artifactType.
    pub fn write_go(&self, out: &mut String) {
        self.write_go_named(out, None)
    }

    /// [`Descriptor::write_go`], with the reference name `ref_name` instead of its own
    /// when given. Written from the descriptor, not a copy: an entry may carry a million
    /// annotations.
    fn write_go_named(&self, out: &mut String, ref_name: Option<&str>) {
        let mut o = GoObject::begin(out);
        o.str("mediaType", &self.media_type);
        o.int("size", self.size);
        o.str("digest", &self.digest.to_string());
        o.str_opt("data", self.data.as_deref());
        if let Some(urls) = self.urls.as_ref().filter(|u| !u.is_empty()) {
            write_str_array(o.key("urls"), urls);
        }
        match ref_name {
            None => {
                if let Some(a) = self.annotations.as_ref().filter(|a| !a.is_empty()) {
                    write_string_map(o.key("annotations"), a);
                }
            }
            Some(name) => {
                let (key, value) = (REF_NAME.to_string(), name.to_string());
                let others = self
                    .annotations
                    .iter()
                    .flatten()
                    .filter(|(k, _)| k.as_str() != REF_NAME);
                write_string_map(
                    o.key("annotations"),
                    others.chain(std::iter::once((&key, &value))),
                );
            }
        }
        if let Some(p) = &self.platform {
            p.write_go(o.key("platform"));
        }
        o.str_opt("artifactType", self.artifact_type.as_deref());
        o.end();
    }
}

/// The platform of an index entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, rename = "os.version")]
    pub os_version: Option<String>,
    #[serde(default, rename = "os.features")]
    pub os_features: Option<Vec<String>>,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub features: Option<Vec<String>>,
}

impl Platform {
    fn write_go(&self, out: &mut String) {
        let mut o = GoObject::begin(out);
        o.str("architecture", &self.architecture);
        o.str("os", &self.os);
        o.str_opt("os.version", self.os_version.as_deref());
        if let Some(f) = self.os_features.as_ref().filter(|f| !f.is_empty()) {
            write_str_array(o.key("os.features"), f);
        }
        o.str_opt("variant", self.variant.as_deref());
        if let Some(f) = self.features.as_ref().filter(|f| !f.is_empty()) {
            write_str_array(o.key("features"), f);
        }
        o.end();
    }

    /// `os/arch[/variant]`, as container tools print it.
    pub fn to_path(&self) -> String {
        match self.variant.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => format!("{}/{}/{}", self.os, self.architecture, v),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

/// An image index (OCI) or manifest list (Docker), including the root index.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    #[serde(default)]
    pub schema_version: i64,
    #[serde(default)]
    pub media_type: Option<String>,
    /// `None` is Go's nil slice, written as `null` (an index whose entries were all
    /// removed); `Some(vec![])` is written as `[]`.
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub subject: Option<Descriptor>,
}

impl Index {
    /// An empty OCI index (`[]`, as `SIFEmpty` writes it).
    pub fn empty() -> Index {
        Index {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.to_string()),
            manifests: Some(Vec::new()),
            annotations: None,
            subject: None,
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Index> {
        serde_json::from_slice(bytes).map_err(|e| OciError::Json {
            what: "image index".into(),
            source: e,
        })
    }

    pub fn entries(&self) -> &[Descriptor] {
        self.manifests.as_deref().unwrap_or(&[])
    }

    /// Compact JSON in go-containerregistry's field order: schemaVersion, mediaType,
    /// manifests, annotations, subject.
    pub fn to_go_json(&self) -> Vec<u8> {
        let mut out = String::new();
        let mut o = GoObject::begin(&mut out);
        o.int("schemaVersion", self.schema_version);
        o.str_opt("mediaType", self.media_type.as_deref());
        let m = o.key("manifests");
        match &self.manifests {
            None => m.push_str("null"),
            Some(list) => write_descriptor_array(m, list),
        }
        if let Some(a) = self.annotations.as_ref().filter(|a| !a.is_empty()) {
            write_string_map(o.key("annotations"), a);
        }
        if let Some(s) = &self.subject {
            s.write_go(o.key("subject"));
        }
        o.end();
        out.into_bytes()
    }

    /// What [`Index::to_go_json`] gives for [`Index::empty`] holding just `entry`, without
    /// copying it: an entry can carry a million annotations.
    pub fn single_entry_go_json(entry: &Descriptor) -> Vec<u8> {
        let mut out = String::new();
        let mut o = GoObject::begin(&mut out);
        o.int("schemaVersion", 2);
        o.str_opt("mediaType", Some(media_type::OCI_INDEX));
        write_descriptor_array(o.key("manifests"), std::slice::from_ref(entry));
        o.end();
        out.into_bytes()
    }

    /// [`Index::single_entry_go_json`] with the entry's reference name set to `ref_name`
    /// (the layouts under `/images`, docs/FORMAT.md).
    pub fn single_entry_named_go_json(entry: &Descriptor, ref_name: &str) -> Vec<u8> {
        let mut out = String::new();
        let mut o = GoObject::begin(&mut out);
        o.int("schemaVersion", 2);
        o.str_opt("mediaType", Some(media_type::OCI_INDEX));
        write_array(o.key("manifests"), std::slice::from_ref(entry), |out, e| {
            e.write_go_named(out, Some(ref_name))
        });
        o.end();
        out.into_bytes()
    }

    /// Appends an entry at the end. With a reference name, the name moves to the new
    /// entry: any other entry carrying it loses the annotation but stays
    /// (oci-tools `OptAppendReference`).
    pub fn append(&mut self, mut entry: Descriptor, ref_name: Option<&str>) {
        let list = self.manifests.get_or_insert_with(Vec::new);
        if let Some(name) = ref_name {
            for e in list.iter_mut().filter(|e| e.ref_name() == Some(name)) {
                e.remove_annotation(REF_NAME);
            }
            entry.set_annotation(REF_NAME, name);
        }
        list.push(entry);
    }

    /// Removes every entry `matches` selects; returns how many. An index left with no
    /// entries has a nil list, as upstream's.
    pub fn remove(&mut self, matches: impl Fn(&Descriptor) -> bool) -> usize {
        let Some(list) = self.manifests.as_mut() else {
            return 0;
        };
        let before = list.len();
        list.retain(|e| !matches(e));
        let removed = before - list.len();
        if removed > 0 && list.is_empty() {
            self.manifests = None;
        }
        removed
    }
}

/// How an update writes the root-index entries it adds (docs/FORMAT.md, Cosign).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryStyle {
    /// SingularityCE ≤ 4.4 (go-containerregistry < 0.21.6): no `artifactType`.
    Singularity44,
    /// SingularityCE 4.5: added entries carry `artifactType`, written after
    /// `annotations`. What sifmount writes.
    Singularity45,
}

impl Index {
    /// Replaces the entry named `ref_name` (if any) by a new entry for `manifest`, at the
    /// end of the list and carrying that name: oci-tools `ReplaceImage` with
    /// `match.Name(ref_name)` and `OptAppendReference(ref_name)`, as SingularityCE uses it to
    /// store a cosign signature image.
    pub fn replace_named(
        &mut self,
        ref_name: &str,
        manifest_bytes: &[u8],
        manifest: &Manifest,
        style: EntryStyle,
    ) {
        self.remove(|e| e.ref_name() == Some(ref_name));
        let media_type = manifest
            .media_type
            .clone()
            .unwrap_or_else(|| media_type::OCI_MANIFEST.to_string());
        let mut entry = Descriptor::of(&media_type, manifest_bytes);
        if style == EntryStyle::Singularity45 {
            entry.artifact_type = Some(manifest.effective_artifact_type().to_string());
        }
        self.append(entry, Some(ref_name));
    }
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default)]
    pub schema_version: i64,
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub subject: Option<Descriptor>,
    #[serde(default)]
    pub artifact_type: Option<String>,
}

impl Manifest {
    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        serde_json::from_slice(bytes).map_err(|e| OciError::Json {
            what: "image manifest".into(),
            source: e,
        })
    }

    /// Compact JSON in go-containerregistry's field order: schemaVersion, mediaType,
    /// config, layers, annotations, subject, artifactType.
    pub fn to_go_json(&self) -> Vec<u8> {
        let mut out = String::new();
        let mut o = GoObject::begin(&mut out);
        o.int("schemaVersion", self.schema_version);
        o.str_opt("mediaType", self.media_type.as_deref());
        self.config.write_go(o.key("config"));
        write_descriptor_array(o.key("layers"), &self.layers);
        if let Some(a) = self.annotations.as_ref().filter(|a| !a.is_empty()) {
            write_string_map(o.key("annotations"), a);
        }
        if let Some(s) = &self.subject {
            s.write_go(o.key("subject"));
        }
        o.str_opt("artifactType", self.artifact_type.as_deref());
        o.end();
        out.into_bytes()
    }

    /// What go-containerregistry ≥ 0.21.6 records as an index entry's `artifactType`:
    /// the manifest's own, else its config media type.
    pub fn effective_artifact_type(&self) -> &str {
        self.artifact_type
            .as_deref()
            .filter(|a| !a.is_empty())
            .unwrap_or(&self.config.media_type)
    }
}

fn write_descriptor_array(out: &mut String, list: &[Descriptor]) {
    write_array(out, list, |o, d| d.write_go(o));
}

fn write_str_array(out: &mut String, list: &[String]) {
    write_array(out, list, |o, s| write_str(o, s));
}

/// Just enough of any manifest or index to walk what it references.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct References {
    #[serde(default)]
    pub config: Option<Descriptor>,
    /// Only the digests: every walker needs just that, and a full descriptor is some
    /// 500 bytes in memory, 5 MB for a manifest of 10,000 layers kept while a tree builds.
    #[serde(default)]
    pub layers: Option<Vec<LayerRef>>,
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
}

/// A manifest's layer, as [`References`] reads it (other fields are skipped unparsed).
#[derive(Debug, Deserialize)]
pub(crate) struct LayerRef {
    pub digest: Digest,
}

impl References {
    pub fn parse(bytes: &[u8], digest: &Digest) -> Result<References> {
        serde_json::from_slice(bytes).map_err(|e| OciError::Json {
            what: format!("manifest {digest}"),
            source: e,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_entry_index_is_the_empty_index_holding_it() {
        let mut entry = Descriptor::of(media_type::OCI_MANIFEST, b"{}");
        entry.set_annotation(REF_NAME, "a\"b");
        entry.set_annotation("z", "\u{1}");
        let mut index = Index::empty();
        index.manifests = Some(vec![entry.clone()]);
        assert_eq!(Index::single_entry_go_json(&entry), index.to_go_json());
    }

    #[test]
    fn a_named_single_entry_index_replaces_or_adds_the_reference_name() {
        let mut entry = Descriptor::of(media_type::OCI_MANIFEST, b"{}");
        entry.set_annotation("z", "1");
        let mut named = entry.clone();
        named.set_annotation(REF_NAME, "latest");
        let mut index = Index::empty();
        index.manifests = Some(vec![named.clone()]);
        assert_eq!(
            Index::single_entry_named_go_json(&entry, "latest"),
            index.to_go_json()
        );
        entry.set_annotation(REF_NAME, "docker.io/x:1");
        assert_eq!(
            Index::single_entry_named_go_json(&entry, "latest"),
            index.to_go_json()
        );
    }
}
