//! Any bytes as a SIF: open and validate, then everything a reader does with an image that
//! validated (every descriptor accessor, every object read three ways, the integrity
//! streams, the OCI view, cosign discovery, the whole mounted tree), then one change of each
//! kind on a writable copy, after which the image must still open.
#![no_main]

use std::io::Read;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use sifmount::oci::{ImageKind, OciSif};
use sifmount::sif::{
    integrity, ChangeTime, DataType, DeleteOptions, MemStorage, ObjectInput, OpenMode, SifImage,
};
use sifmount::tree::{Tree, TreeOptions};

fuzz_target!(init: { sifmount_fuzz::init("sif_open") }, |data: &[u8]| {
    let Ok(sif) = SifImage::from_storage(Box::new(MemStorage::new(data.to_vec())), OpenMode::ReadOnly)
    else {
        return;
    };
    read_everything(&sif, data.len() as u64);

    if let ImageKind::OciSif { .. } = ImageKind::of(&sif) {
        if let Ok(oci) = OciSif::from_sif(sif) {
            let _ = oci.root_index();
            let _ = oci.verify_blobs();
            let digests: Vec<_> = oci.blobs().map(|(d, _)| d).collect();
            for d in &digests {
                let _ = oci.image_manifest(d);
                let _ = oci.image_index(d);
                let _ = oci.image_config(d);
            }
            let _ = sifmount::cosign::discover(&oci);
        }
    }

    // The mount's view, built from a file as a mount builds it.
    let path = sifmount_fuzz::scratch_file("sif_open.sif", data);
    let options = TreeOptions {
        trust: sifmount::cosign::Trust::keys(sifmount_fuzz::keys().to_vec()),
        ..Default::default()
    };
    if let Ok((tree, _report)) = Tree::open_with(&path, &options) {
        sifmount_fuzz::walk_tree(&tree);
    }

    change_a_copy(data);
});

fn read_everything(sif: &SifImage, file_len: u64) {
    let h = sif.header();
    let _ = (h.arch_name(), h.arch_code(), h.uuid(), h.is_deterministic());
    let _ = h.launch_script_bytes();
    let _ = integrity::header_stream(h);
    assert_eq!(sif.used_count() + sif.free_slots(), sif.slots().len());
    assert!(sif.data_end() >= 0);
    for (_, d) in sif.descriptors() {
        let _ = (
            d.name(),
            d.data_type().display_name(),
            d.group_id(),
            d.link(),
        );
        let _ = (
            d.typed_extra(),
            d.oci_digest(),
            d.partition(),
            d.describe_extra(),
        );
        let _ = d.is_primary_partition();
        assert!(
            d.end() as u64 <= file_len,
            "a validated object lies inside the file"
        );
        let whole = sif.read_object(d).expect("a validated object reads");
        assert_eq!(whole.len() as u64, d.size as u64);
        let mut streamed = Vec::new();
        sif.object_reader(d)
            .read_to_end(&mut streamed)
            .expect("a validated object streams");
        assert_eq!(streamed, whole);
        let digest = sif.digest_object(d).expect("a validated object hashes");
        assert_eq!(digest, sifmount::sif::Digest::of(&whole));
        assert_eq!(
            sif.descriptor_by_id(d.id).map(|x| x.id).ok(),
            Some(d.id),
            "IDs are unique"
        );
        let rel = integrity::relative_id(sif, d);
        assert_eq!(integrity::descriptor_stream(d, rel).len(), 557);
    }
    let _ = sif.find_one(|d| d.is_primary_partition());
}

/// One add, a table growth and a delete on a writable copy in memory: whatever succeeds
/// must leave an image that opens, with the added object readable.
fn change_a_copy(data: &[u8]) {
    let storage = Arc::new(MemStorage::new(data.to_vec()));
    let Ok(mut sif) = SifImage::from_storage(Box::new(storage.clone()), OpenMode::ReadWrite) else {
        panic!("an image that opened read-only opens read-write");
    };
    let added = sif
        .add_object(
            ObjectInput::new(DataType::Generic, &b"sifmount fuzz"[..]).name("fuzz"),
            ChangeTime::Zero,
        )
        .ok();
    let grown = sif
        .ensure_free_slots(sif.free_slots() + 2, ChangeTime::Zero)
        .is_ok();
    let first = sif
        .descriptors()
        .map(|(_, d)| d.id)
        .find(|&id| Some(id) != added);
    let deleted = first.and_then(|id| {
        sif.delete_object(
            id,
            DeleteOptions {
                zero: true,
                compact: true,
                time: ChangeTime::Zero,
            },
        )
        .ok()
        .map(|()| id)
    });
    drop(sif);
    let after = storage.to_vec();
    let reopened = SifImage::from_storage(Box::new(MemStorage::new(after)), OpenMode::ReadOnly)
        .unwrap_or_else(|e| {
            panic!(
                "changed image no longer opens (added {added:?}, grown {grown}, deleted \
                 {deleted:?}): {e}"
            )
        });
    if let Some(id) = added {
        let d = reopened
            .descriptor_by_id(id)
            .unwrap_or_else(|e| panic!("added object {id} is gone: {e}"));
        assert_eq!(reopened.read_object(d).unwrap(), b"sifmount fuzz");
    }
    if let Some(id) = deleted {
        assert!(
            reopened.descriptor_by_id(id).is_err(),
            "deleted object {id} is still there"
        );
    }
}
