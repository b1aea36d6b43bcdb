//! Writing a new OCI-SIF from a root index and its blobs (oci-tools `Write`,
//! docs/FORMAT.md, Writing one).

use std::collections::HashSet;
use std::path::Path;

use super::error::{OciError, Result};
use super::image::OciSif;
use super::model::{Descriptor, Index};
use super::source::{append_blob, require_blob, require_bytes, BlobSource};
use super::walk::{blobs_in_write_order, OtherMediaTypes};
use crate::sif::{
    ChangeTime, CreateOptions, DataType, Digest, FileJournal, ObjectInput, SifError, SifImage,
    Storage,
};

/// Writes a deterministic OCI-SIF holding `root_index` (stored verbatim) and every blob it
/// references, taken from `source`, with `spare` free descriptors. Objects are appended
/// in oci-tools' order, so the file is byte-identical to upstream's; a blob referenced
/// twice is written once (upstream writes it twice, which breaks lookups by digest).
pub fn write_oci_sif(
    storage: Box<dyn Storage>,
    root_index: &[u8],
    source: &dyn BlobSource,
    spare: i64,
) -> Result<OciSif> {
    write_oci_sif_with(storage, root_index, &[], source, spare)
}

/// [`write_oci_sif`], also holding the documents `unlisted` describes, and what they
/// reference, though the root index does not list them: the OCI 1.1 referrers a layout
/// keeps only among its blobs ([`LayoutDir::referrers`](super::LayoutDir::referrers)).
/// Their objects come after the root index's blobs, in the order given; one the root
/// index reaches anyway is written once, where the root index puts it.
pub fn write_oci_sif_with(
    storage: Box<dyn Storage>,
    root_index: &[u8],
    unlisted: &[Descriptor],
    source: &dyn BlobSource,
    spare: i64,
) -> Result<OciSif> {
    if spare < 0 {
        return Err(
            SifError::InvalidArgument(format!("negative spare descriptor count {spare}")).into(),
        );
    }
    let index = Index::parse(root_index)?;
    let fetch = |d: &Digest| require_bytes(source, d);
    let mut order = blobs_in_write_order(index.entries(), &fetch, OtherMediaTypes::WriteBlob)?;
    order.extend(blobs_in_write_order(
        unlisted,
        &fetch,
        OtherMediaTypes::WriteBlob,
    )?);
    let mut seen = HashSet::new();
    let unique: Vec<Digest> = order.into_iter().filter(|d| seen.insert(*d)).collect();
    for d in &unique {
        require_blob(source, d)?;
    }
    let opts = CreateOptions {
        capacity: unique.len() as i64 + 1 + spare,
        ..CreateOptions::deterministic()
    };
    let mut sif = SifImage::create(storage, &opts, Vec::new())?;
    for d in &unique {
        append_blob(&mut sif, d, source)?;
    }
    sif.add_object(
        ObjectInput::new(DataType::OciRootIndex, root_index),
        ChangeTime::Auto,
    )?;
    OciSif::from_written(sif)
}

/// [`write_oci_sif`] to a new file at `path` (replacing any file there). A failed write
/// removes the partial file.
pub fn write_oci_sif_at_path(
    path: impl AsRef<Path>,
    root_index: &[u8],
    source: &dyn BlobSource,
    spare: i64,
) -> Result<OciSif> {
    write_oci_sif_at_path_with(path, root_index, &[], source, spare)
}

/// [`write_oci_sif_with`] to a new file at `path`, as [`write_oci_sif_at_path`] writes.
pub fn write_oci_sif_at_path_with(
    path: impl AsRef<Path>,
    root_index: &[u8],
    unlisted: &[Descriptor],
    source: &dyn BlobSource,
    spare: i64,
) -> Result<OciSif> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    // A journal left by an interrupted update of the file being replaced must never be
    // replayed onto the new one (src/sif/journal.rs).
    let journal = FileJournal::for_image(path).map_err(|e| {
        OciError::Sif(
            SifError::Io {
                context: "cannot look for the update journal".into(),
                source: e,
            }
            .in_file(&shown),
        )
    })?;
    journal.clear_if_present().map_err(|e| {
        OciError::Sif(
            SifError::Io {
                context: format!(
                    "cannot remove the old update journal {}",
                    journal.path().display()
                ),
                source: e,
            }
            .in_file(&shown),
        )
    })?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| {
            OciError::Sif(
                SifError::Io {
                    context: "cannot create".into(),
                    source: e,
                }
                .in_file(&shown),
            )
        })?;
    write_oci_sif_with(Box::new(file), root_index, unlisted, source, spare).map_err(|e| {
        let _ = std::fs::remove_file(path);
        e.in_file(&shown)
    })
}
