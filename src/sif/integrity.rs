//! The byte streams that native SIF signatures cover (docs/FORMAT.md, How the reference library changes an image). OCI-SIF and
//! cosign do not use them; they are here so that native images can be checked later.

use super::descriptor::Descriptor;
use super::header::Header;
use super::image::SifImage;

/// Launch script, magic, version and ID: 61 bytes.
pub fn header_stream(h: &Header) -> Vec<u8> {
    let mut out = Vec::with_capacity(61);
    out.extend_from_slice(&h.launch_script);
    out.extend_from_slice(&h.magic);
    out.extend_from_slice(&h.version);
    out.extend_from_slice(&h.id);
    out
}

/// The signed fields of a descriptor: 557 bytes. ID, group, offset, padding and
/// modification time are left out so that objects can move without breaking signatures;
/// the ID is replaced by its position within the group.
pub fn descriptor_stream(d: &Descriptor, relative_id: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(557);
    out.extend_from_slice(&d.data_type_raw.to_le_bytes());
    out.push(u8::from(d.used));
    out.extend_from_slice(&relative_id.to_le_bytes());
    out.extend_from_slice(&d.linked_id_raw.to_le_bytes());
    out.extend_from_slice(&d.size.to_le_bytes());
    out.extend_from_slice(&d.created_at.to_le_bytes());
    out.extend_from_slice(&d.uid.to_le_bytes());
    out.extend_from_slice(&d.gid.to_le_bytes());
    out.extend_from_slice(&d.name);
    out.extend_from_slice(&d.extra);
    out
}

/// ID minus the smallest ID among used objects with the same raw group.
pub fn relative_id(image: &SifImage, d: &Descriptor) -> u32 {
    let min = image
        .descriptors()
        .filter(|(_, o)| o.group_id_raw == d.group_id_raw)
        .map(|(_, o)| o.id)
        .min()
        .unwrap_or(d.id);
    d.id - min
}
