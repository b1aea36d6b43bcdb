//! Conformance, cosign images (§3 of the conformance cases in the specification kept with the test data (docs/FORMAT.md says where)): cosign signature and attestation images rebuilt byte for byte
//! from their layers, and SingularityCE's way of storing them in an OCI-SIF.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::common::{self, assert_bytes_eq, testdata, upstream};
use sifmount::cosign::{attach_with_style, prepare, AttachOutcome, DropFiles, EntryKind};
use sifmount::oci::layered_image::{config_for_layers, manifest_for_layers, MediaTypes};
use sifmount::oci::{BlobSource, Descriptor, EntryStyle, Index, LayoutDir, Manifest, OciSif};
use sifmount::sif::{Digest, MemStorage, OpenMode, SifImage};

/// Rebuilds every `_cosign:` image of a real cosign layout from its payloads and
/// annotations alone and compares manifest and config with the stored bytes.
fn rebuild_cosign_images(layout_name: &str) -> usize {
    let layout = LayoutDir::new(testdata().join("cosign").join(layout_name));
    let index = Index::parse(&layout.index_bytes().unwrap()).unwrap();
    let mut rebuilt = 0;
    for entry in index.entries() {
        let Some(name) = entry.ref_name().filter(|n| n.starts_with("_cosign:")) else {
            continue;
        };
        let stored_manifest = layout.read_blob(&entry.digest).unwrap().unwrap();
        let parsed = Manifest::parse(&stored_manifest).unwrap();
        // Rebuild each layer descriptor from the payload bytes and its annotations only.
        let layers: Vec<Descriptor> = parsed
            .layers
            .iter()
            .map(|l| {
                let payload = layout.read_blob(&l.digest).unwrap().unwrap();
                let mut d = Descriptor::of(&l.media_type, &payload);
                d.annotations = l.annotations.clone();
                d
            })
            .collect();
        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.digest).collect();
        let config = config_for_layers(&diff_ids);
        let stored_config = layout.read_blob(&parsed.config.digest).unwrap().unwrap();
        assert_bytes_eq(
            &config,
            &stored_config,
            &format!("{layout_name} {name} config"),
        );
        let manifest = manifest_for_layers(&config, layers, MediaTypes::Oci).to_go_json();
        assert_bytes_eq(
            &manifest,
            &stored_manifest,
            &format!("{layout_name} {name} manifest"),
        );
        assert_eq!(Digest::of(&manifest), entry.digest);
        rebuilt += 1;
    }
    rebuilt
}

#[test]
fn real_cosign_manifests_and_configs_rebuild_exactly() {
    let single = rebuild_cosign_images("ocitools-hello-world-cosign-manifest");
    let list = rebuild_cosign_images("ocitools-hello-world-cosign-manifest-list");
    assert_eq!((single, list), (2, 11), "cosign images rebuilt");
}

#[test]
fn synthetic_two_layer_signature_image_rebuilds_exactly() {
    // The two-layer .sig image after an append, and the untouched .att image.
    assert_eq!(rebuild_cosign_images("synth-append-second-signature"), 2);
}

/// One `singularity sign --cosign` step done with the library, from what a user would
/// copy out of the signed file: the payload and the layer annotations as JSON.
fn sign_step(
    image: &mut OciSif,
    payload: &[u8],
    annotations: &BTreeMap<String, String>,
    style: EntryStyle,
) {
    let drop = DropFiles {
        payload: Some(payload.to_vec()),
        annotations: Some(serde_json::to_vec(annotations).unwrap()),
        ..DropFiles::default()
    };
    let attachment = prepare(image, &drop)
        .unwrap()
        .expect("payload and signature annotation make a complete drop");
    assert_eq!(attachment.kind, EntryKind::Signature);
    assert_eq!(
        attach_with_style(image, &attachment, style).unwrap(),
        AttachOutcome::Attached
    );
}

#[test]
fn singularity_sign_twice_is_byte_identical() {
    let mut compared = 0;
    for (prefix, style) in [
        ("squashfs-image", EntryStyle::Singularity45),
        ("squashfs-image.v44", EntryStyle::Singularity44),
    ] {
        let base = std::fs::read(upstream(&format!("generated/{prefix}.oci.sif"))).unwrap();
        let mem = Arc::new(MemStorage::new(base));
        let sif = SifImage::from_storage(Box::new(mem.clone()), OpenMode::ReadWrite).unwrap();
        let mut image = OciSif::from_sif(sif).unwrap();
        for step in ["signed1", "signed2"] {
            let path = format!("generated/{prefix}.{step}.oci.sif");
            let signed = OciSif::open(upstream(&path), OpenMode::ReadOnly).unwrap();
            let (payload, annotations) = common::last_signature_layer(&signed);
            sign_step(&mut image, &payload, &annotations, style);
            assert_bytes_eq(
                &mem.to_vec(),
                &std::fs::read(upstream(&path)).unwrap(),
                &path,
            );
            assert!(image.verify_blobs().unwrap().is_empty());
            compared += 1;
        }
    }
    assert_eq!(compared, 4);
}
