//! Regression tests for what the fuzz targets (fuzz/, fuzz/README.md) found. Each test
//! names the target and the finding, and rebuilds the failing input from the project's own
//! writer (the fuzzers' inputs were mutations of shared test files, which the project
//! does not copy), keeping the field values that mattered.

use std::sync::Arc;

use crate::common::images;
use sifmount::sif::{
    ChangeTime, CreateOptions, DataType, DeleteOptions, Descriptor, Header, MemStorage,
    ObjectInput, OpenMode, SifImage, DESCRIPTOR_SIZE, HEADER_SIZE,
};
use sifmount::tree::ROOT;
use sifmount::volume::{Volume, VolumeOptions};

/// A small native image in memory: two generic objects, two spare slots.
fn small_image() -> Vec<u8> {
    let storage = Arc::new(MemStorage::default());
    SifImage::create(
        Box::new(storage.clone()),
        &CreateOptions {
            capacity: 4,
            ..CreateOptions::deterministic()
        },
        vec![
            ObjectInput::new(DataType::Generic, &b"first object"[..]),
            ObjectInput::new(DataType::Generic, &b"second object"[..]),
        ],
    )
    .expect("a small image in memory");
    storage.to_vec()
}

/// `bytes` with its header changed by `patch`.
fn patched(mut bytes: Vec<u8>, patch: impl FnOnce(&mut Header)) -> Vec<u8> {
    let mut raw = [0u8; HEADER_SIZE];
    raw.copy_from_slice(&bytes[..HEADER_SIZE]);
    let mut h = Header::decode(&raw);
    patch(&mut h);
    bytes[..HEADER_SIZE].copy_from_slice(&h.encode());
    bytes
}

/// Every kind of change, each of which must be refused with a message containing `want`,
/// leaving the bytes as they were; reading still works.
fn assert_readable_but_unchangeable(bytes: &[u8], want: &str) {
    let ro = SifImage::from_storage(
        Box::new(MemStorage::new(bytes.to_vec())),
        OpenMode::ReadOnly,
    )
    .expect("the image opens read-only");
    for (_, d) in ro.descriptors() {
        assert!(ro.read_object(d).is_ok(), "object {} reads", d.id);
    }
    let storage = Arc::new(MemStorage::new(bytes.to_vec()));
    let mut sif = SifImage::from_storage(Box::new(storage.clone()), OpenMode::ReadWrite)
        .expect("the image opens read-write: only changes are refused");
    let add = sif.add_object(
        ObjectInput::new(DataType::Generic, &b"new"[..]),
        ChangeTime::Zero,
    );
    let grow = sif.ensure_free_slots(sif.free_slots() + 1, ChangeTime::Zero);
    let delete = sif.delete_object(
        1,
        DeleteOptions {
            zero: true,
            compact: true,
            time: ChangeTime::Zero,
        },
    );
    for (what, result) in [
        ("add", add.map(|_| ())),
        ("grow", grow.map(|_| ())),
        ("delete", delete),
    ] {
        let e = result.expect_err(what).to_string();
        assert!(e.contains(want), "{what}: {e}");
    }
    assert_eq!(storage.to_vec(), bytes, "a refused change writes nothing");
}

/// sif_open, out-of-memory: a header whose data offset (3,103,796,076) lies past the end
/// of a 17 KB file. The image validated, and adding an object placed it at the data
/// offset, so the in-memory image grew to 3 GB (on disk: a sparse file that large, or
/// exabytes for a larger offset); a compacting delete truncated the file "up" to it too.
#[test]
fn sif_open_data_offset_past_the_end_of_the_file_is_never_written_to() {
    let bytes = patched(small_image(), |h| h.data_offset = 3_103_796_076);
    assert_readable_but_unchangeable(&bytes, "data offset 3103796076 is past the end of the file");
}

/// The same check's other half: a data section ending inside the descriptor table would
/// have the next object written over the table.
#[test]
fn sif_open_data_section_inside_the_descriptor_table_is_never_written_to() {
    let empty = {
        let storage = Arc::new(MemStorage::default());
        SifImage::create(
            Box::new(storage.clone()),
            &CreateOptions {
                capacity: 4,
                ..CreateOptions::deterministic()
            },
            Vec::new(),
        )
        .expect("an empty image");
        storage.to_vec()
    };
    let bytes = patched(empty, |h| h.data_offset = 4200);
    let storage = Arc::new(MemStorage::new(bytes.clone()));
    let mut sif = SifImage::from_storage(Box::new(storage.clone()), OpenMode::ReadWrite)
        .expect("opens read-write");
    let e = sif
        .add_object(
            ObjectInput::new(DataType::Generic, &b"x"[..]),
            ChangeTime::Zero,
        )
        .expect_err("an add would land in the table");
    assert!(e.to_string().contains("inside the descriptor table"), "{e}");
    assert_eq!(storage.to_vec(), bytes);
}

/// What the finding meant for a mount: an attach to such an OCI-SIF fails at `close(2)`
/// with the reason, and the file keeps its length (it was being extended to the offset).
#[test]
fn sif_open_attach_to_an_image_with_a_data_offset_past_its_end_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.oci.sif");
    let written = images::write_demo_image(&path);
    let bytes = patched(std::fs::read(&path).unwrap(), |h| h.data_offset = 1 << 40);
    std::fs::write(&path, &bytes).unwrap();

    let (v, _) = Volume::open(
        &path,
        VolumeOptions {
            writable: true,
            ..Default::default()
        },
    )
    .expect("the image still mounts read-write: it is readable");
    let cosign = v.lookup(ROOT, b"cosign").unwrap().ino;
    let payload = format!(
        "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"\"}},\"image\":{{\
         \"docker-manifest-digest\":\"{}\"}},\"type\":\"cosign container image signature\"}},\
         \"optional\":null}}",
        written.manifest
    );
    let mut last = Ok(());
    for (name, data) in [
        ("p", payload.as_bytes()),
        ("p.sig", &b"MEUCIQDc1jz3hF1p0dM9m5ldl6HgQHn2wLr2D0N0b9iM4QXl5gIgFzUvB8m0y9ZkD7y8J1E0Z4bgq3mJv8w0k1vE0eVZ3gE="[..]),
    ] {
        let (attr, fh) = v.create(cosign, name.as_bytes()).unwrap();
        v.write_at(attr.ino, fh, 0, data).unwrap();
        last = v.flush(attr.ino, fh);
        v.release(attr.ino, fh);
    }
    let e = last.expect_err("the commit is refused").to_string();
    assert!(
        e.contains("data offset 1099511627776 is past the end"),
        "{e}"
    );
    drop(v);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the image is unchanged"
    );
}

/// sif_open, crash: an image whose object in slot 1 has ID 5 (IDs need only be unique;
/// the reference writer happens to use the slot number plus one). An add into free slot
/// 4 gave the new object ID 5 too, and the image failed validation from then on ("object
/// ID 5 is also used by slot 1"): one attach made it unreadable.
#[test]
fn sif_open_an_added_object_never_reuses_an_id_held_in_another_slot() {
    let mut bytes = small_image();
    let table = sifmount::sif::DEFAULT_DESCRIPTORS_OFFSET as usize;
    let at = table + DESCRIPTOR_SIZE;
    let mut d = Descriptor::decode(&bytes[at..at + DESCRIPTOR_SIZE]);
    assert_eq!(d.id, 2, "slot 1 of the template holds ID 2");
    d.id = 4;
    bytes[at..at + DESCRIPTOR_SIZE].copy_from_slice(&d.encode());

    let storage = Arc::new(MemStorage::new(bytes));
    let mut sif = SifImage::from_storage(Box::new(storage.clone()), OpenMode::ReadWrite)
        .expect("unique IDs that are not slot numbers are valid");
    // Slot 2 is free, so its natural ID is 3; then slot 3, whose natural ID 4 is taken.
    let third = sif
        .add_object(
            ObjectInput::new(DataType::Generic, &b"3"[..]),
            ChangeTime::Zero,
        )
        .unwrap();
    let fourth = sif
        .add_object(
            ObjectInput::new(DataType::Generic, &b"4"[..]),
            ChangeTime::Zero,
        )
        .unwrap();
    assert_eq!(
        third, 3,
        "the slot number plus one, as upstream, when it is free"
    );
    assert_eq!(fourth, 2, "the smallest ID no other object holds");
    drop(sif);
    let reopened = SifImage::from_storage(
        Box::new(MemStorage::new(storage.to_vec())),
        OpenMode::ReadOnly,
    )
    .unwrap_or_else(|e| panic!("the image no longer opens: {e}"));
    let ids: Vec<u32> = reopened.descriptors().map(|(_, d)| d.id).collect();
    assert_eq!(ids, [1, 4, 3, 2]);
    let d = reopened.descriptor_by_id(2).unwrap();
    assert_eq!(reopened.read_object(d).unwrap(), b"4");
}

/// The check of `sif_open_data_offset_past_the_end_of_the_file_is_never_written_to` keeps
/// legacy images changeable: the v1 writer's fixed data offset 32768 lies past the end of
/// its empty images (upstream's `empty.sif` is 32176 bytes), and an add goes there.
#[test]
fn sif_open_the_legacy_data_offset_past_the_end_of_an_empty_image_is_still_written_to() {
    let storage = Arc::new(MemStorage::default());
    SifImage::create(
        Box::new(storage.clone()),
        &CreateOptions::deterministic(),
        Vec::new(),
    )
    .expect("an empty image");
    let bytes = patched(storage.to_vec(), |h| h.data_offset = 32768);
    assert_eq!(
        bytes.len(),
        32176,
        "48 slots end the table, and the file, at 32176"
    );
    let storage = Arc::new(MemStorage::new(bytes));
    let mut sif = SifImage::from_storage(Box::new(storage.clone()), OpenMode::ReadWrite).unwrap();
    let id = sif
        .add_object(
            ObjectInput::new(DataType::Generic, &b"legacy"[..]),
            ChangeTime::Zero,
        )
        .expect("an add to a legacy empty image");
    assert_eq!(sif.descriptor_by_id(id).unwrap().offset, 32768);
}

/// oci_parse, crash: the integer 5555…5 (64 digits) is a float to JSON readers. Written the
/// Go way it came out as `5.555555555555555e+63`, which reads back as another float,
/// written `5.5555555555555555e+63`: serde_json's default parser rounded it one unit in
/// the last place off, where Go's (and now ours) rounds correctly and writes the latter.
#[test]
fn oci_parse_floats_are_written_as_go_writes_them() {
    let input = "5".repeat(64);
    let v: serde_json::Value = serde_json::from_str(&input).unwrap();
    let mut once = String::new();
    sifmount::oci::gojson::write_value(&mut once, &v);
    assert_eq!(
        once, "5.5555555555555555e+63",
        "what Go's encoding/json writes"
    );
    let back: serde_json::Value = serde_json::from_str(&once).unwrap();
    let mut twice = String::new();
    sifmount::oci::gojson::write_value(&mut twice, &back);
    assert_eq!(twice, once, "writing is a fixed point");
}
