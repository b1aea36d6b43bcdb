//! The order in which oci-tools writes the blobs an index references (spec/SIF.md §7.3
//! step 3, §7.6 step 3): for an image its layers, its config, then the manifest; for a
//! nested index its children first, then the index itself.

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

/// Lists every digest `entries` reference, in write order, duplicates included.
pub fn blobs_in_write_order(
    entries: &[Descriptor],
    fetch: &dyn Fn(&Digest) -> Result<Vec<u8>>,
    others: OtherMediaTypes,
) -> Result<Vec<Digest>> {
    let mut out = Vec::new();
    walk(entries, fetch, others, 0, &mut out)?;
    Ok(out)
}

fn walk(
    entries: &[Descriptor],
    fetch: &dyn Fn(&Digest) -> Result<Vec<u8>>,
    others: OtherMediaTypes,
    depth: usize,
    out: &mut Vec<Digest>,
) -> Result<()> {
    if depth > MAX_INDEX_DEPTH {
        return Err(OciError::Invalid {
            what: "image index".into(),
            problem: format!("indexes nested more than {MAX_INDEX_DEPTH} deep"),
        });
    }
    for e in entries {
        if media_type::is_index(&e.media_type) {
            let refs = References::parse(&fetch(&e.digest)?, &e.digest)?;
            walk(
                refs.manifests.as_deref().unwrap_or(&[]),
                fetch,
                others,
                depth + 1,
                out,
            )?;
        } else if media_type::is_manifest(&e.media_type) {
            let refs = References::parse(&fetch(&e.digest)?, &e.digest)?;
            out.extend(refs.layers.iter().flatten().map(|l| l.digest));
            let config = refs.config.ok_or_else(|| OciError::Invalid {
                what: format!("manifest {}", e.digest),
                problem: "has no config".into(),
            })?;
            out.push(config.digest);
        } else if others == OtherMediaTypes::Reject {
            return Err(OciError::UnexpectedMediaType {
                digest: e.digest,
                media_type: e.media_type.clone(),
            });
        }
        out.push(e.digest);
    }
    Ok(())
}
