//! Cosign discovery over an OCI-SIF whose signature images come from the input.
//!
//! The input is up to eight documents separated by [`sifmount_fuzz::PART_SEPARATOR`]:
//!
//! | part | stored as | listed in the root index as |
//! |------|-----------|-----------------------------|
//! | 0 | blob | `_cosign:sha256-<image>.sig`, and again with `kind: …/sigs` |
//! | 1 | blob | `_cosign:sha256-<image>.att` |
//! | 2 | blob | an entry with no name (a referrer when it has a `subject`) |
//! | 3 | blob | not listed (a stray referrer, as `cosign save` leaves them) |
//! | 4 | blob | not listed (a payload the manifests can name by digest) |
//! | 5 | blob | not listed; also dropped as a payload with a signature |
//! | 6, 7 | blobs | not listed |
//!
//! The image's one real image (the demo manifest) carries `kind: …/image`. Then: every
//! entry found is checked for unique names and verified with the test keys, the mounted
//! tree is read in full, a valid signature is attached to a writable copy (and a drop of
//! part 5), and the first tagged entry found is detached; each change that succeeds must
//! leave an OCI-SIF that opens, with the attached entry discoverable.
#![no_main]

use std::collections::HashSet;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use sifmount::cosign::{self, DropFiles, EntryKind, Origin, Subject};
use sifmount::oci::{media_type, Index, OciSif};
use sifmount::sif::{MemStorage, OpenMode, SifImage};
use sifmount::tree::{Tree, TreeOptions};
use sifmount_fuzz::{demo, entry, oci_image, scratch_file, split_parts, walk_tree};

const MAX_PARTS: usize = 8;

fuzz_target!(init: { sifmount_fuzz::init("cosign_discover") }, |data: &[u8]| {
    let parts = split_parts(data, MAX_PARTS);
    let image = build(&parts);

    let oci = open(image.clone());
    let found = cosign::discover(&oci);
    let mut names = HashSet::new();
    let trust = cosign::Trust::keys(sifmount_fuzz::keys().to_vec());
    for e in &found.entries {
        assert!(names.insert(e.name.clone()), "entry name {} is unique", e.name);
        assert!(!e.name.contains('/') && !e.name.starts_with('.'), "entry name {:?}", e.name);
        let payload = oci.read_blob(&e.layer.digest).unwrap_or_default();
        let annotations = e.annotations();
        let _ = cosign::verify(
            &Subject {
                kind: e.kind,
                media_type: &e.layer.media_type,
                payload: &payload,
                recorded_digest: &e.layer.digest,
                annotations: &annotations,
                target: &e.target,
            },
            &trust,
        );
    }

    let path = scratch_file("cosign.sif", &image);
    let options = TreeOptions {
        trust: sifmount::cosign::Trust::keys(sifmount_fuzz::keys().to_vec()),
        ..Default::default()
    };
    if let Ok((tree, _)) = Tree::open_with(&path, &options) {
        walk_tree(&tree);
    }

    attach_valid(&image);
    if let Some(payload) = parts.get(5) {
        drop_payload(&image, payload);
    }
    let tagged = found.entries.iter().find_map(|e| match &e.origin {
        Origin::Tag(name) => Some((name.clone(), e.layer_index, e.layer.digest)),
        _ => None,
    });
    if let Some((ref_name, layer, digest)) = tagged {
        let storage = Arc::new(MemStorage::new(image));
        let mut oci = open_on(storage.clone());
        if cosign::detach(&mut oci, &ref_name, layer, &digest).is_ok() {
            drop(oci);
            let after = open(storage.to_vec());
            let left = cosign::discover(&after);
            assert!(
                !left.entries.iter().any(|e| matches!(&e.origin, Origin::Tag(n) if *n == ref_name)
                    && e.layer.digest == digest && e.layer_index == layer),
                "the detached layer is gone"
            );
        }
    }
});

fn build(parts: &[&[u8]]) -> Vec<u8> {
    let d = demo();
    let target = d.manifest_digest.hex();
    let mut index = Index::empty();
    let image_kind = Some("dev.cosignproject.cosign/image");
    index.append(
        entry(media_type::OCI_MANIFEST, &d.manifest, None, image_kind),
        None,
    );
    if let Some(p) = parts.first() {
        let sig = format!("_cosign:sha256-{target}.sig");
        index.append(entry(media_type::OCI_MANIFEST, p, Some(&sig), None), None);
        let sigs = Some("dev.cosignproject.cosign/sigs");
        index.append(entry(media_type::OCI_MANIFEST, p, None, sigs), None);
    }
    if let Some(p) = parts.get(1) {
        let att = format!("_cosign:sha256-{target}.att");
        index.append(entry(media_type::OCI_MANIFEST, p, Some(&att), None), None);
    }
    if let Some(p) = parts.get(2) {
        index.append(entry(media_type::OCI_MANIFEST, p, None, None), None);
    }
    let mut blobs: Vec<&[u8]> = d.blobs().to_vec();
    blobs.extend(parts.iter().copied());
    oci_image(&blobs, &index.to_go_json(), 4)
}

fn open(bytes: Vec<u8>) -> OciSif {
    open_on(Arc::new(MemStorage::new(bytes)))
}

fn open_on(storage: Arc<MemStorage>) -> OciSif {
    let sif = SifImage::from_storage(Box::new(storage), OpenMode::ReadWrite)
        .unwrap_or_else(|e| panic!("an image made or changed by the library does not open: {e}"));
    OciSif::from_sif(sif).unwrap_or_else(|e| panic!("not an OCI-SIF: {e}"))
}

/// A simple-signing payload for the demo image, as `cosign sign` writes it.
fn valid_payload() -> Vec<u8> {
    format!(
        "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"\"}},\"image\":{{\
         \"docker-manifest-digest\":\"{}\"}},\"type\":\"cosign container image signature\"}},\
         \"optional\":null}}",
        demo().manifest_digest
    )
    .into_bytes()
}

/// Signature text in the form cosign writes (what it says is not checked on attach).
const SIGNATURE: &[u8] = b"MEUCIQDc1jz3hF1p0dM9m5ldl6HgQHn2wLr2D0N0b9iM4QXl5gIgFzUvB8m0y9ZkD7y8J1E0Z4bgq3mJv8w0k1vE0eVZ3gE=";

/// Attaches a valid signature to a writable copy: it must land and be found.
fn attach_valid(image: &[u8]) {
    let storage = Arc::new(MemStorage::new(image.to_vec()));
    let mut oci = open_on(storage.clone());
    let files = DropFiles {
        payload: Some(valid_payload()),
        signature: Some(SIGNATURE.to_vec()),
        ..Default::default()
    };
    let Ok(Some(a)) = cosign::prepare(&oci, &files) else {
        return;
    };
    if cosign::attach(&mut oci, &a).is_err() {
        return;
    }
    drop(oci);
    let after = open(storage.to_vec());
    let found = cosign::discover(&after);
    assert!(
        found
            .entries
            .iter()
            .any(|e| e.kind == EntryKind::Signature && e.layer.digest == a.layer.digest),
        "an attached signature is discovered: {:?}",
        found.warnings
    );
}

/// Drops `payload` with a signature as `cp` would: judged, and attached if accepted.
fn drop_payload(image: &[u8], payload: &[u8]) {
    let storage = Arc::new(MemStorage::new(image.to_vec()));
    let mut oci = open_on(storage.clone());
    let files = DropFiles {
        payload: Some(payload.to_vec()),
        signature: Some(SIGNATURE.to_vec()),
        ..Default::default()
    };
    let _ = cosign::drop_annotations(&files);
    let Ok(Some(a)) = cosign::prepare(&oci, &files) else {
        return;
    };
    if cosign::attach(&mut oci, &a).is_ok() {
        drop(oci);
        let _ = cosign::discover(&open(storage.to_vec()));
    }
}
