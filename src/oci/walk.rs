//! The order in which oci-tools writes the blobs an index references (docs/FORMAT.md, Writing one
//! step 3, §7.6 step 3): for an image its layers, its config, then the manifest; for a
//! nested index its children first, then the index itself.

use std::collections::HashSet;

use super::error::{OciError, Result};
use super::media_type;
use super::model::{Descriptor, References};
use crate::sif::Digest;

/// Nested indexes deeper than this are refused: real images nest one level (a manifest
/// list under the root index), and a bound keeps hostile files from exhausting the stack.
pub const MAX_INDEX_DEPTH: usize = 8;

/// What to do with an entry that is neither an image nor an index.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OtherMediaTypes {
    /// Write the referenced blob (oci-tools `Write`).
    WriteBlob,
    /// Refuse, as oci-tools' update does ("unexpected media type").
    Reject,
}

/// Lists every digest `entries` reference, in write order, duplicates included; the
/// first listing of a document gives what it references, later ones only its own digest.
/// Callers keep the first of each digest, so the order is the same as if every listing
/// were walked, but a graph of indexes that each list the next many times (a few
/// kilobytes unfolding into billions of paths) is walked once per document. An index
/// that lists itself through its entries (possible only with digests that do not match
/// the bytes) is refused.
pub fn blobs_in_write_order(
    entries: &[Descriptor],
    fetch: &dyn Fn(&Digest) -> Result<Vec<u8>>,
    others: OtherMediaTypes,
) -> Result<Vec<Digest>> {
    let fetch = |d: &Digest| fetch(d).map(Some);
    let named = named_blobs(entries, &fetch, others)?;
    Ok(named.into_iter().map(|(d, _)| d).collect())
}

/// The document that names a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Namer {
    RootIndex,
    Index(Digest),
    Manifest(Digest),
}

/// Where in its document a blob is named; positions count from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Entry(usize),
    Config,
    Layer(usize),
}

/// One naming of a blob: by which document, and where in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Naming {
    pub by: Namer,
    pub role: Role,
}

impl std::fmt::Display for Naming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.by {
            Namer::RootIndex => write!(f, "the root index")?,
            Namer::Index(d) => write!(f, "index {d}")?,
            Namer::Manifest(d) => write!(f, "manifest {d}")?,
        }
        match self.role {
            Role::Entry(i) => write!(f, " (entry {i})"),
            Role::Config => write!(f, " (config)"),
            Role::Layer(i) => write!(f, " (layer {i})"),
        }
    }
}

/// [`blobs_in_write_order`] with who names each digest. `fetch` gives `None` for a
/// document that is not to be walked (absent from the image, say): its own digest is
/// still listed, what it references is not.
pub fn named_blobs(
    entries: &[Descriptor],
    fetch: &dyn Fn(&Digest) -> Result<Option<Vec<u8>>>,
    others: OtherMediaTypes,
) -> Result<Vec<(Digest, Naming)>> {
    let mut out = Vec::new();
    let mut state = Walk {
        fetch,
        others,
        done: HashSet::new(),
        open: Vec::new(),
    };
    walk(entries, Namer::RootIndex, &mut state, 0, &mut out)?;
    Ok(out)
}

struct Walk<'f> {
    fetch: &'f dyn Fn(&Digest) -> Result<Option<Vec<u8>>>,
    others: OtherMediaTypes,
    /// Indexes and manifests already walked.
    done: HashSet<Digest>,
    /// The indexes being walked, outermost first.
    open: Vec<Digest>,
}

fn walk(
    entries: &[Descriptor],
    by: Namer,
    st: &mut Walk<'_>,
    depth: usize,
    out: &mut Vec<(Digest, Naming)>,
) -> Result<()> {
    for (i, e) in entries.iter().enumerate() {
        let named = Naming {
            by,
            role: Role::Entry(i),
        };
        let document =
            media_type::is_index(&e.media_type) || media_type::is_manifest(&e.media_type);
        if st.open.contains(&e.digest) {
            return Err(OciError::Invalid {
                what: format!("image index {}", e.digest),
                problem: "lists itself through its own entries (a cycle)".into(),
            });
        }
        if document && !st.done.insert(e.digest) {
            out.push((e.digest, named));
            continue;
        }
        if media_type::is_index(&e.media_type) {
            if depth >= MAX_INDEX_DEPTH {
                return Err(OciError::Invalid {
                    what: format!("image index {}", e.digest),
                    problem: format!("indexes nested more than {MAX_INDEX_DEPTH} deep"),
                });
            }
            if let Some(bytes) = (st.fetch)(&e.digest)? {
                let refs = References::parse(&bytes, &e.digest)?;
                st.open.push(e.digest);
                let children = refs.manifests.as_deref().unwrap_or(&[]);
                walk(children, Namer::Index(e.digest), st, depth + 1, out)?;
                st.open.pop();
            }
        } else if media_type::is_manifest(&e.media_type) {
            if let Some(bytes) = (st.fetch)(&e.digest)? {
                let refs = References::parse(&bytes, &e.digest)?;
                let me = Namer::Manifest(e.digest);
                out.extend(refs.layers.iter().flatten().enumerate().map(|(i, l)| {
                    let role = Role::Layer(i);
                    (l.digest, Naming { by: me, role })
                }));
                let config = refs.config.ok_or_else(|| OciError::Invalid {
                    what: format!("manifest {}", e.digest),
                    problem: "has no config".into(),
                })?;
                let role = Role::Config;
                out.push((config.digest, Naming { by: me, role }));
            }
        } else if st.others == OtherMediaTypes::Reject {
            return Err(OciError::UnexpectedMediaType {
                digest: e.digest,
                media_type: e.media_type.clone(),
            });
        }
        out.push((e.digest, named));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn doc(map: &mut HashMap<Digest, Vec<u8>>, value: serde_json::Value) -> Digest {
        let bytes = serde_json::to_vec(&value).unwrap();
        let d = Digest::of(&bytes);
        map.insert(d, bytes);
        d
    }

    fn entry(mt: &str, d: &Digest) -> serde_json::Value {
        serde_json::json!({"mediaType": mt, "size": 1, "digest": d.to_string()})
    }

    fn entries(v: Vec<serde_json::Value>) -> Vec<Descriptor> {
        serde_json::from_value(serde_json::Value::Array(v)).unwrap()
    }

    #[test]
    fn a_document_listed_again_adds_only_its_digest() {
        let mut docs = HashMap::new();
        let (layer, config) = (Digest::of(b"layer"), Digest::of(b"config"));
        let m = doc(
            &mut docs,
            serde_json::json!({"config": entry("c", &config), "layers": [entry("l", &layer)]}),
        );
        let i = doc(
            &mut docs,
            serde_json::json!({"manifests": [entry(media_type::OCI_MANIFEST, &m)]}),
        );
        let list = entries(vec![
            entry(media_type::OCI_INDEX, &i),
            entry(media_type::OCI_MANIFEST, &m),
            entry(media_type::OCI_INDEX, &i),
        ]);
        let fetch = |d: &Digest| Ok(docs[d].clone());
        let order = blobs_in_write_order(&list, &fetch, OtherMediaTypes::Reject).unwrap();
        assert_eq!(order, vec![layer, config, m, i, m, i]);
    }

    #[test]
    fn a_cycle_is_refused() {
        // Only a digest that is not the bytes' own can make one.
        let me = Digest::of(b"not the index");
        let index = serde_json::to_vec(
            &serde_json::json!({"manifests": [entry(media_type::OCI_INDEX, &me)]}),
        )
        .unwrap();
        let fetch = |_: &Digest| Ok(index.clone());
        let list = entries(vec![entry(media_type::OCI_INDEX, &me)]);
        let e = blobs_in_write_order(&list, &fetch, OtherMediaTypes::Reject).unwrap_err();
        assert!(e.to_string().contains("a cycle"), "{e}");
    }

    #[test]
    fn a_wide_graph_is_walked_once_per_document() {
        // Eight levels each listing the next 50 times: 50^8 paths, 9 documents.
        let mut docs = HashMap::new();
        let mut below = entry(
            media_type::OCI_MANIFEST,
            &doc(
                &mut docs,
                serde_json::json!({"config": entry("c", &Digest::of(b"c"))}),
            ),
        );
        for _ in 0..MAX_INDEX_DEPTH {
            let level = doc(&mut docs, serde_json::json!({"manifests": vec![below; 50]}));
            below = entry(media_type::OCI_INDEX, &level);
        }
        let fetches = std::cell::Cell::new(0);
        let fetch = |d: &Digest| {
            fetches.set(fetches.get() + 1);
            Ok(docs[d].clone())
        };
        blobs_in_write_order(&entries(vec![below]), &fetch, OtherMediaTypes::Reject).unwrap();
        assert_eq!(fetches.get(), MAX_INDEX_DEPTH + 1);
    }
}
