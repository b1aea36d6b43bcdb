//! Any bytes as an OCI document, three ways:
//!
//! 1. straight through the parsers (the project's index and manifest models, oci-spec's
//!    types, the Go-style JSON writer), checking that what the writers write parses back
//!    to the same thing;
//! 2. as the root index of a small valid OCI-SIF: open, mount (build and read the whole
//!    tree), and the upstream update algorithm replacing the template's root index with
//!    these bytes, after which the image must open with exactly them as its root index;
//! 3. as a manifest blob of such an image, listed as a manifest, as an index, and (stored
//!    a second time under a digest that is not its own) as an entry that the document can
//!    reference from inside itself, so that cycles and self-references are reachable.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use sifmount::oci::{gojson, media_type, Index, Manifest, MemBlobs, OciSif};
use sifmount::sif::{Digest, MemStorage, OpenMode, SifImage};
use sifmount::tree::{Tree, TreeOptions};
use sifmount_fuzz::{demo, entry, image_with, oci_image, scratch_file, walk_tree};

/// The digest the second copy of the document is recorded under ("self" in the
/// dictionary): `sha256:` and 64 `5`s.
fn self_digest() -> Digest {
    Digest::from_bytes([0x55; 32])
}

fuzz_target!(init: { sifmount_fuzz::init("oci_parse") }, |data: &[u8]| {
    parsers(data);
    as_root_index(data);
    as_manifest(data);
});

fn parsers(data: &[u8]) {
    if let Ok(index) = Index::parse(data) {
        let written = index.to_go_json();
        let again = Index::parse(&written)
            .unwrap_or_else(|e| panic!("a written index does not parse: {e}"));
        // Descriptors keep only what the model knows, so a second write is exact.
        assert_eq!(
            again.to_go_json(),
            written,
            "writing an index is a fixed point"
        );
        for e in index.entries() {
            let _ = e.ref_name();
            if let Some(p) = &e.platform {
                let _ = p.to_path();
            }
        }
        let mut index = index;
        let _ = index.remove(|e| e.ref_name().is_some());
    }
    if let Ok(m) = Manifest::parse(data) {
        let written = m.to_go_json();
        let again = Manifest::parse(&written)
            .unwrap_or_else(|e| panic!("a written manifest does not parse: {e}"));
        assert_eq!(
            again.to_go_json(),
            written,
            "writing a manifest is a fixed point"
        );
        let _ = m.effective_artifact_type();
        let mut index = Index::empty();
        index.replace_named("x", &written, &m, sifmount::oci::EntryStyle::Singularity45);
        Index::parse(&index.to_go_json()).expect("an index with a manifest entry parses");
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let mut once = String::new();
        gojson::write_value(&mut once, &v);
        let back: serde_json::Value = serde_json::from_str(&once)
            .unwrap_or_else(|e| panic!("Go-style JSON {once:?} does not parse: {e}"));
        let mut twice = String::new();
        gojson::write_value(&mut twice, &back);
        assert_eq!(once, twice, "Go-style JSON is a fixed point");
    }
    let _ = serde_json::from_slice::<oci_spec::image::ImageIndex>(data);
    let _ = serde_json::from_slice::<oci_spec::image::ImageManifest>(data);
    let _ = serde_json::from_slice::<oci_spec::image::ImageConfiguration>(data);
}

fn mount_and_walk(name: &str, image: &[u8]) {
    let path = scratch_file(name, image);
    let options = TreeOptions {
        trust: sifmount::cosign::Trust::keys(sifmount_fuzz::keys().to_vec()),
        ..Default::default()
    };
    if let Ok((tree, _)) = Tree::open_with(&path, &options) {
        walk_tree(&tree);
    }
}

fn as_root_index(data: &[u8]) {
    let d = demo();
    let image = oci_image(&d.blobs(), data, 2);
    mount_and_walk("root-index.sif", &image);

    // The update algorithm, as an attach runs it, from the valid template to `data`.
    let storage = Arc::new(MemStorage::new(d.image.clone()));
    let sif = SifImage::from_storage(Box::new(storage.clone()), OpenMode::ReadWrite)
        .expect("the template opens");
    let mut oci = OciSif::from_sif(sif).expect("the template is an OCI-SIF");
    let mut source = MemBlobs::new();
    for b in d.blobs() {
        source.insert(b.to_vec());
    }
    if oci.update_root_index(data, &source).is_ok() {
        drop(oci);
        let after = SifImage::from_storage(
            Box::new(MemStorage::new(storage.to_vec())),
            OpenMode::ReadOnly,
        )
        .unwrap_or_else(|e| panic!("the updated image does not open: {e}"));
        let oci = OciSif::from_sif(after)
            .unwrap_or_else(|e| panic!("the updated image is not an OCI-SIF: {e}"));
        assert_eq!(
            oci.root_index_bytes().unwrap(),
            data,
            "the new root index is stored verbatim"
        );
        let bad = oci.verify_blobs().expect("the updated image's blobs hash");
        assert!(
            bad.is_empty(),
            "blobs written by an update match their digests: {bad:?}"
        );
    }
}

fn as_manifest(data: &[u8]) {
    let d = demo();
    let mut index = Index::empty();
    index.append(entry(media_type::OCI_MANIFEST, data, None, None), None);
    index.append(
        entry(media_type::OCI_INDEX, data, Some("as-index"), None),
        None,
    );
    let mut looped = entry(media_type::OCI_INDEX, b"", Some("self"), None);
    looped.digest = self_digest();
    index.append(looped, None);
    let blobs = [&d.layer[..], &d.config[..], &d.manifest[..], data, data];
    let image = image_with(&blobs, &index.to_go_json(), 1, &[(4, self_digest())]);
    mount_and_walk("manifest.sif", &image);
}
