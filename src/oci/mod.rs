//! The OCI image layout stored in a SIF (docs/FORMAT.md, OCI-SIF–8): the root index, blobs by
//! digest, writing a new OCI-SIF and updating one in place with the upstream algorithm.
//!
//! This layer knows the SIF format and OCI JSON; it knows nothing of cosign or FUSE.
#![forbid(unsafe_code)]

mod error;
pub mod gojson;
mod image;
pub mod layered_image;
mod model;
mod source;
mod walk;
mod write;

pub use error::{OciError, Result};
pub use image::{BlobMismatch, ImageKind, MissingBlob, OciSif, UpdateOutcome, MAX_DOCUMENT_SIZE};
pub(crate) use model::References;
pub use model::{Descriptor, EntryStyle, Index, Manifest, Platform, REF_NAME};
pub use source::{BlobSource, LayoutDir, MemBlobs, NoBlobs, Sources};
pub use walk::{Namer, Naming, Role, MAX_INDEX_DEPTH};
pub use write::{
    write_oci_sif, write_oci_sif_at_path, write_oci_sif_at_path_with, write_oci_sif_with,
};

/// Media types that matter for walking and writing.
pub mod media_type {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const SIF_SQUASHFS_LAYER: &str = "application/vnd.sylabs.image.layer.v1.squashfs";

    /// An image index or Docker manifest list.
    pub fn is_index(mt: &str) -> bool {
        mt == OCI_INDEX || mt == DOCKER_MANIFEST_LIST
    }

    /// An OCI or Docker schema 2 image manifest.
    pub fn is_manifest(mt: &str) -> bool {
        mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
    }
}
