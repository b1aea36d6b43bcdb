//! Where new blobs come from when writing or updating an OCI-SIF, and how one is taken
//! into the image.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::error::{OciError, Result};
use super::model::{Descriptor, Manifest};
use crate::sif::{ChangeTime, DataType, Digest, ObjectInput, SifImage};

/// A read-only store of blobs by digest.
pub trait BlobSource {
    /// The blob's size and a reader over its bytes; `None` when this source does not hold
    /// it.
    fn open_blob(&self, digest: &Digest) -> io::Result<Option<(u64, Box<dyn Read + '_>)>>;

    /// Reads a whole blob (for manifests and other small documents).
    fn read_blob(&self, digest: &Digest) -> io::Result<Option<Vec<u8>>> {
        match self.open_blob(digest)? {
            None => Ok(None),
            Some((size, mut r)) => {
                let mut v = Vec::with_capacity(size.min(1 << 24) as usize);
                r.read_to_end(&mut v)?;
                Ok(Some(v))
            }
        }
    }
}

/// Blobs held in memory, keyed by their own digest.
#[derive(Default, Clone, Debug)]
pub struct MemBlobs(HashMap<Digest, Vec<u8>>);

impl MemBlobs {
    pub fn new() -> MemBlobs {
        MemBlobs::default()
    }

    /// Adds a blob and returns its digest.
    pub fn insert(&mut self, bytes: Vec<u8>) -> Digest {
        let d = Digest::of(&bytes);
        self.0.insert(d, bytes);
        d
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl BlobSource for MemBlobs {
    fn open_blob(&self, digest: &Digest) -> io::Result<Option<(u64, Box<dyn Read + '_>)>> {
        Ok(self
            .0
            .get(digest)
            .map(|b| (b.len() as u64, Box::new(b.as_slice()) as Box<dyn Read>)))
    }
}

/// An OCI image layout directory (`blobs/sha256/<hex>`).
#[derive(Clone, Debug)]
pub struct LayoutDir(PathBuf);

impl LayoutDir {
    pub fn new(path: impl AsRef<Path>) -> LayoutDir {
        LayoutDir(path.as_ref().to_path_buf())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The layout's `index.json` bytes.
    pub fn index_bytes(&self) -> io::Result<Vec<u8>> {
        std::fs::read(self.0.join("index.json"))
    }

    /// The OCI 1.1 referrer manifests among the layout's blobs: image manifests with a
    /// `subject` that the layout also holds. `cosign save` (and `oras`) leave referrers
    /// this way, without an `index.json` entry, so that only a scan of the blobs finds
    /// them. Sorted by digest, so that a conversion writes them in the same order on
    /// every run. A blob whose name is not a digest, or too large to be a manifest, or
    /// that is not a manifest with a subject, is passed over.
    pub fn referrers(&self) -> io::Result<Vec<Descriptor>> {
        let dir = self.0.join("blobs/sha256");
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let Some(digest) = entry
                .file_name()
                .to_str()
                .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok())
            else {
                continue;
            };
            let meta = entry.metadata()?;
            if !meta.is_file() || meta.len() > super::MAX_DOCUMENT_SIZE as u64 {
                continue;
            }
            let bytes = std::fs::read(entry.path())?;
            let Ok(manifest) = Manifest::parse(&bytes) else {
                continue;
            };
            let Some(subject) = &manifest.subject else {
                continue;
            };
            if !dir.join(subject.digest.hex()).is_file() {
                continue;
            }
            let media_type = manifest
                .media_type
                .as_deref()
                .unwrap_or(super::media_type::OCI_MANIFEST);
            let mut d = Descriptor::of_digest(media_type, digest, bytes.len() as u64);
            d.artifact_type = manifest.artifact_type.clone();
            found.push(d);
        }
        found.sort_by(|a, b| a.digest.as_bytes().cmp(b.digest.as_bytes()));
        Ok(found)
    }
}

impl BlobSource for LayoutDir {
    fn open_blob(&self, digest: &Digest) -> io::Result<Option<(u64, Box<dyn Read + '_>)>> {
        let p = self.0.join("blobs/sha256").join(digest.hex());
        match File::open(&p) {
            Ok(f) => {
                let len = f.metadata()?.len();
                Ok(Some((len, Box::new(f))))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Several sources, asked in order.
pub struct Sources<'a>(pub Vec<&'a dyn BlobSource>);

impl BlobSource for Sources<'_> {
    fn open_blob(&self, digest: &Digest) -> io::Result<Option<(u64, Box<dyn Read + '_>)>> {
        for s in &self.0 {
            if let Some(b) = s.open_blob(digest)? {
                return Ok(Some(b));
            }
        }
        Ok(None)
    }
}

/// A source with no blobs (for updates that only remove or reorder).
pub struct NoBlobs;

impl BlobSource for NoBlobs {
    fn open_blob(&self, _: &Digest) -> io::Result<Option<(u64, Box<dyn Read + '_>)>> {
        Ok(None)
    }
}

/// A blob that must be in `source`: its size and reader, or an error naming it.
pub(crate) fn require_blob<'s>(
    source: &'s dyn BlobSource,
    digest: &Digest,
) -> Result<(u64, Box<dyn Read + 's>)> {
    source
        .open_blob(digest)
        .map_err(|e| OciError::Source {
            digest: *digest,
            source: e,
        })?
        .ok_or(OciError::MissingBlob(*digest))
}

/// A whole JSON document (manifest or index) that must be in `source`, at most
/// [`MAX_DOCUMENT_SIZE`](super::MAX_DOCUMENT_SIZE) bytes.
pub(crate) fn require_bytes(source: &dyn BlobSource, digest: &Digest) -> Result<Vec<u8>> {
    let (size, reader) = require_blob(source, digest)?;
    let max = super::MAX_DOCUMENT_SIZE as u64;
    if size > max {
        return Err(OciError::Invalid {
            what: format!("blob {digest}"),
            problem: format!("{size} bytes is more than the {max} bytes a JSON document may have"),
        });
    }
    let mut v = Vec::with_capacity(size as usize);
    reader
        .take(max + 1)
        .read_to_end(&mut v)
        .map_err(|e| OciError::Source {
            digest: *digest,
            source: e,
        })?;
    Ok(v)
}

/// Appends one blob from `source` as an OCI blob object and checks that the bytes hash
/// to the digest they were asked for.
pub(crate) fn append_blob(
    sif: &mut SifImage,
    digest: &Digest,
    source: &dyn BlobSource,
) -> Result<()> {
    let (_, reader) = require_blob(source, digest)?;
    let id = sif.add_object(
        ObjectInput::new(DataType::OciBlob, reader),
        ChangeTime::Auto,
    )?;
    let written = sif
        .descriptor_by_id(id)?
        .oci_digest()
        .expect("OCI objects carry a digest")?;
    if written != *digest {
        return Err(OciError::DigestMismatch {
            expected: *digest,
            actual: written,
        });
    }
    Ok(())
}
