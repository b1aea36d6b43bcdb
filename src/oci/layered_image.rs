//! Images built the way go-containerregistry builds them from `empty.Image` by appending
//! layers (`mutate.Append`): the shape of every cosign signature and attestation image
//! (docs/FORMAT.md, The signature image).

use super::gojson::{write_array, write_str, GoObject};
use super::media_type;
use super::model::{Descriptor, Manifest};
use crate::sif::Digest;

/// Go's zero time as go-containerregistry writes it in configs.
const ZERO_TIME_RFC3339: &str = "0001-01-01T00:00:00Z";

/// The config of an empty image with uncompressed layers whose digests are `diff_ids`:
/// empty architecture and OS, zero creation time, one zero-time history entry per layer.
pub fn config_for_layers(diff_ids: &[Digest]) -> Vec<u8> {
    let mut out = String::new();
    let mut o = GoObject::begin(&mut out);
    o.str("architecture", "");
    o.str("created", ZERO_TIME_RFC3339);
    write_array(o.key("history"), diff_ids, |h, _| {
        let mut entry = GoObject::begin(h);
        entry.str("created", ZERO_TIME_RFC3339);
        entry.end();
    });
    o.str("os", "");
    let mut rootfs = GoObject::begin(o.key("rootfs"));
    rootfs.str("type", "layers");
    write_array(rootfs.key("diff_ids"), diff_ids, |r, d| {
        write_str(r, &d.to_string())
    });
    rootfs.end();
    o.key("config").push_str("{}");
    o.end();
    out.into_bytes()
}

/// Which family of media types the manifest and config use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaTypes {
    Oci,
    /// Docker schema 2 (cosign with `COSIGN_DOCKER_MEDIA_TYPES=1`).
    Docker,
}

/// The manifest of an empty image plus `layers` (descriptors with their annotations),
/// with `config` the bytes from [`config_for_layers`].
pub fn manifest_for_layers(config: &[u8], layers: Vec<Descriptor>, types: MediaTypes) -> Manifest {
    let (manifest_type, config_type) = match types {
        MediaTypes::Oci => (media_type::OCI_MANIFEST, media_type::OCI_CONFIG),
        MediaTypes::Docker => (media_type::DOCKER_MANIFEST, media_type::DOCKER_CONFIG),
    };
    Manifest {
        schema_version: 2,
        media_type: Some(manifest_type.to_string()),
        config: Descriptor::of(config_type, config),
        layers,
        annotations: None,
        subject: None,
        artifact_type: None,
    }
}
