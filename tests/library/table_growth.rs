//! Growing a full descriptor table (`src/sif/grow.rs`): 100 signatures
//! onto an image with SingularityCE's 8 spare descriptors, attaches onto upstream images
//! with none, a hand-built native image with a partition, a forced growth of every upstream
//! SIF, and `siftool` reading the results. Every grown image is reopened and validated.
//!
//! Needs `siftool` (`apt-get install siftool`, Debian's 2.8.3) for the upstream-reader
//! test; it fails, saying so, when siftool is missing.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use crate::common::{
    self, assert_bytes_eq, images, read_upstream, upstream, upstream_sifs, MemOci as Mem,
};
use sifmount::cosign::{attach, cosign_ref_name, discover, prepare, DropFiles, EntryKind};
use sifmount::oci::{Index, Manifest, OciSif};
use sifmount::sif::{
    fs_type, part_type, ChangeTime, CreateOptions, DataType, DeleteOptions, Digest, MemStorage,
    ObjectInput, OpenMode, SifError, SifImage, Storage, DESCRIPTOR_SIZE, MAX_DESCRIPTORS,
    ZERO_TIME,
};

/// Valid standard base64, as the signature annotation must be; attach does not verify.
const SIGNATURE: &str = "c2lmbW91bnQgdGFibGUgZ3Jvd3RoIHRlc3Qgc2lnbmF0dXJl";

/// An OCI-SIF in memory.
impl Mem {
    /// The digest of the first root-index entry: the image signatures are about.
    fn target(&self) -> Digest {
        self.oci.root_index().unwrap().entries()[0].digest
    }

    /// Attaches simple-signing signature number `n` for `target`.
    fn sign(&mut self, target: &Digest, n: usize) {
        let drop = DropFiles {
            payload: Some(payload(target, n)),
            signature: Some(format!("{SIGNATURE}\n").into_bytes()),
            ..DropFiles::default()
        };
        let a = prepare(&self.oci, &drop)
            .unwrap_or_else(|e| panic!("prepare signature {n}: {e}"))
            .expect("payload and signature make a complete drop");
        attach(&mut self.oci, &a).unwrap_or_else(|e| panic!("attach signature {n}: {e}"));
    }

    fn total(&self) -> i64 {
        self.oci.sif().header().descriptors_total
    }
}

/// A cosign simple-signing payload; `n` makes each one distinct.
fn payload(target: &Digest, n: usize) -> Vec<u8> {
    common::simple_signing_for(
        "example.com/sifmount/growth",
        target,
        &format!(r#"{{"timestamp":{}}}"#, 1_700_000_000 + n as i64),
    )
}

/// Opens `bytes` read-only with every check of the library, naming `what` on failure.
fn reopen(bytes: Vec<u8>, what: &str) -> SifImage {
    let sif = SifImage::from_storage(Box::new(MemStorage::new(bytes)), OpenMode::ReadOnly)
        .unwrap_or_else(|e| panic!("{what}: the image does not reopen: {e}"));
    check_header(&sif, what);
    sif
}

/// The header agrees with the table and the objects: free count, table size, data
/// offset right after the table (or later), data size up to the last object.
fn check_header(sif: &SifImage, what: &str) {
    let h = sif.header();
    let total = sif.slots().len();
    assert_eq!(h.descriptors_total, total as i64, "{what}: total");
    assert_eq!(
        h.descriptors_free,
        sif.free_slots() as i64,
        "{what}: the header's free count matches the table"
    );
    assert_eq!(
        h.descriptors_size,
        (total * DESCRIPTOR_SIZE) as i64,
        "{what}: table size"
    );
    let table_end = h.descriptors_offset + h.descriptors_size;
    assert!(
        h.data_offset >= table_end,
        "{what}: data offset {} is inside the table (ends at {table_end})",
        h.data_offset
    );
    let max_end = sif
        .descriptors()
        .map(|(_, d)| d.end())
        .fold(h.data_offset, i64::max);
    assert_eq!(
        h.data_size,
        max_end - h.data_offset,
        "{what}: data size = last object end - data offset"
    );
    for (slot, d) in sif.descriptors() {
        assert!(
            d.size == 0 || d.end() <= h.descriptors_offset || d.offset >= table_end,
            "{what}: object {} in slot {slot} at {} is inside the table",
            d.id,
            d.offset
        );
    }
}

/// Every object's bytes by ID.
fn objects_by_id(sif: &SifImage) -> BTreeMap<u32, Vec<u8>> {
    sif.descriptors()
        .map(|(_, d)| (d.id, sif.read_object(d).unwrap()))
        .collect()
}

/// The layers of the `.sig` image for `target`.
fn signature_layers(oci: &OciSif, target: &Digest) -> usize {
    let name = cosign_ref_name(EntryKind::Signature, target).unwrap();
    let root: Index = oci.root_index().unwrap();
    let entry = root
        .entries()
        .iter()
        .find(|e| e.ref_name() == Some(name.as_str()))
        .unwrap_or_else(|| panic!("no {name} in the root index"));
    Manifest::parse(&oci.read_blob(&entry.digest).unwrap())
        .unwrap()
        .layers
        .len()
}

/// What [`hundred_signatures`] found.
struct Signed {
    bytes: Vec<u8>,
    /// (signature number, total before, total after) of each growth.
    growths: Vec<(usize, i64, i64)>,
}

/// Attaches 100 signatures to upstream's `generated/squashfs-image.oci.sif` (8 spare
/// descriptors), reopening and validating the image after each.
fn hundred_signatures() -> Signed {
    let original = read_upstream("generated/squashfs-image.oci.sif");
    let mut image = Mem::open(original.clone());
    assert_eq!(
        image.oci.sif().free_slots(),
        8,
        "the base image has 8 spare"
    );
    let original_blobs: Vec<(Digest, Vec<u8>)> = image
        .oci
        .blobs()
        .map(|(d, _)| (d, image.oci.read_blob(&d).unwrap()))
        .collect();
    assert_eq!(original_blobs.len(), 3, "layer, config, manifest");
    let target = image.target();
    let mut growths = Vec::new();
    for n in 1..=100 {
        let before = image.total();
        image.sign(&target, n);
        if image.total() != before {
            growths.push((n, before, image.total()));
        }
        let what = format!("after signature {n}");
        let oci = OciSif::from_sif(reopen(image.bytes(), &what))
            .unwrap_or_else(|e| panic!("{what}: not an OCI-SIF: {e}"));
        assert_eq!(oci.verify_blobs().unwrap(), vec![], "{what}");
        assert_eq!(signature_layers(&oci, &target), n, "{what}");
    }
    let bytes = image.bytes();
    let oci = OciSif::from_sif(reopen(bytes.clone(), "after 100 signatures")).unwrap();
    let sif = oci.sif();
    assert_eq!(
        sif.header().modified_at,
        ZERO_TIME,
        "a deterministic image keeps the zero time"
    );
    assert_eq!(sif.header().created_at, ZERO_TIME);
    let found = discover(&oci);
    assert_eq!(found.warnings, Vec::<String>::new());
    let signatures = found
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::Signature && e.target == target)
        .count();
    assert_eq!(signatures, 100, "discover finds every signature");
    for (digest, want) in &original_blobs {
        let d = oci.blob(digest).expect("the original blobs are kept");
        assert_bytes_eq(
            &sif.read_object(d).unwrap(),
            want,
            &format!("original blob {digest}"),
        );
    }
    assert_eq!(
        oci.root_index().unwrap().entries()[0].digest,
        target,
        "the image entry stays first"
    );
    Signed { bytes, growths }
}

#[test]
fn a_hundred_signatures_onto_eight_spare_descriptors() {
    let signed = hundred_signatures();
    let sif = reopen(signed.bytes.clone(), "final");
    println!(
        "100 signatures: {} growth(s) {:?} (signature, total before, total after); final \
         total {}, {} used, {} free, file {} bytes",
        signed.growths.len(),
        signed.growths,
        sif.slots().len(),
        sif.used_count(),
        sif.free_slots(),
        signed.bytes.len()
    );
    // 8 spare slots take the first six signatures (+3, then +1 each), as upstream.
    assert_eq!(
        signed.growths[0].0, 7,
        "the seventh signature grows the table first"
    );
    assert!(
        signed.growths.len() <= 5,
        "geometric growth: {:?}",
        signed.growths
    );
    // 4 image objects + 3 for the first signature + 1 for each further one.
    assert_eq!(sif.used_count(), 4 + 3 + 99);
}

/// The first six signatures fit in the spare slots: nothing about the file changes from
/// what upstream writes (the byte-identity with SingularityCE's files for the first two is
/// checked in tests/library/cosign_attach.rs; here, that no growth has happened).
#[test]
fn no_growth_while_the_spare_slots_suffice() {
    let mut image = Mem::open(read_upstream("generated/squashfs-image.oci.sif"));
    let target = image.target();
    for n in 1..=6 {
        image.sign(&target, n);
        assert_eq!(image.total(), 12, "signature {n}");
        assert_eq!(image.oci.sif().header().data_offset, 4096 + 12 * 585);
    }
    assert_eq!(image.oci.sif().free_slots(), 0);
}

#[test]
fn ensure_free_slots_writes_nothing_when_there_are_enough() {
    let bytes = read_upstream("generated/squashfs-image.oci.sif");
    let storage = Arc::new(MemStorage::new(bytes.clone()));
    let mut sif = SifImage::from_storage(Box::new(storage.clone()), OpenMode::ReadWrite).unwrap();
    for needed in 0..=8 {
        let g = sif
            .ensure_free_slots(needed, ChangeTime::At(1_800_000_000))
            .unwrap();
        assert!(!g.grew(), "{needed} needed");
        assert!(!g.relocated());
    }
    assert_bytes_eq(&storage.to_vec(), &bytes, "nothing written");
}

#[test]
fn ensure_free_slots_refuses_beyond_the_descriptor_limit_and_writes_nothing() {
    let bytes = read_upstream("generated/squashfs-image.oci.sif");
    let storage = Arc::new(MemStorage::new(bytes.clone()));
    let mut sif = SifImage::from_storage(Box::new(storage.clone()), OpenMode::ReadWrite).unwrap();
    let too_many = MAX_DESCRIPTORS as usize - sif.used_count() + 1;
    let err = sif
        .ensure_free_slots(too_many, ChangeTime::Auto)
        .unwrap_err();
    assert!(
        matches!(err.kind(), SifError::InsufficientCapacity { .. }),
        "{err}"
    );
    assert_bytes_eq(&storage.to_vec(), &bytes, "a refused growth writes nothing");
    assert_eq!(sif.slots().len(), 12);
}

#[test]
fn a_read_only_image_is_not_grown() {
    let bytes = read_upstream("generated/squashfs-image.oci.sif");
    let mut sif =
        SifImage::from_storage(Box::new(MemStorage::new(bytes)), OpenMode::ReadOnly).unwrap();
    let err = sif.ensure_free_slots(9, ChangeTime::Auto).unwrap_err();
    assert!(matches!(err.kind(), SifError::ReadOnly), "{err}");
}

/// A hand-built native image: a small object and an empty one right after the table, a
/// 4096-aligned partition, and two objects past it. The grown table goes after the last
/// object; not one object or descriptor field of an object changes.
#[test]
fn growth_moves_no_object_and_writes_the_table_after_the_last() {
    let small = [0xa1u8; 100];
    let part: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let after = b"after the partition".to_vec();
    let far = vec![0xfeu8; 20_000];
    let storage = Arc::new(MemStorage::default());
    let opts = CreateOptions {
        capacity: 5,
        time: Some(1_000),
        id: Some([7; 16]),
        ..CreateOptions::default()
    };
    let objects = vec![
        ObjectInput::new(DataType::Generic, &small[..]).name("small"),
        ObjectInput::new(DataType::Generic, &b""[..]).name("empty"),
        ObjectInput::partition(&part[..], fs_type::SQUASHFS, part_type::PRIM_SYS, "amd64")
            .unwrap()
            .time(500),
        ObjectInput::new(DataType::GenericJson, &after[..]).group(2),
        ObjectInput::new(DataType::Generic, &far[..]),
    ];
    SifImage::create(Box::new(storage.clone()), &opts, objects).unwrap();
    let old_file = storage.to_vec();
    let mut sif = SifImage::from_storage(Box::new(storage.clone()), OpenMode::ReadWrite).unwrap();
    let before: Vec<_> = sif.slots().to_vec();
    let old_bytes = objects_by_id(&sif);
    let old_end = sif.data_end();
    let old_table = 4096..4096 + 5 * 585;
    assert_eq!(
        before[0].offset, old_table.end as i64,
        "first object right after the table"
    );
    assert_eq!(sif.free_slots(), 0);

    let g = sif.ensure_free_slots(1, ChangeTime::At(2_000)).unwrap();
    // max(2 × 5, 5 + 8, 5 + 1) slots, written where the data ended.
    assert_eq!((g.old_total, g.new_total), (5, 13));
    assert_eq!((g.old_offset, g.new_offset), (4096, old_end));
    assert!(g.relocated());

    let bytes = storage.to_vec();
    let new_table_end = old_end + 13 * 585;
    assert_eq!(
        bytes.len() as i64,
        new_table_end,
        "the file ends with the new table"
    );
    assert_bytes_eq(
        &bytes[..old_end as usize][128..],
        &old_file[128..old_end as usize],
        "nothing before the old data end changes but the header: no object moved, and the \
         old table is left as it was",
    );
    let sif = reopen(bytes.clone(), "grown native image");
    let h = sif.header();
    assert_eq!(h.descriptors_total, 13);
    assert_eq!(h.descriptors_free, 8);
    assert_eq!(h.descriptors_offset, old_end);
    assert_eq!(h.data_offset, new_table_end);
    assert_eq!(h.data_size, 0);
    assert_eq!((h.created_at, h.modified_at), (1_000, 2_000));
    assert_eq!(h.arch_name(), "amd64");
    assert_eq!(
        objects_by_id(&sif),
        old_bytes,
        "every object keeps its bytes"
    );
    assert_eq!(
        &sif.slots()[..5],
        &before[..],
        "every descriptor is as it was"
    );
    for (i, d) in sif.slots().iter().enumerate().skip(5) {
        assert!(!d.used, "slot {i} is new and free");
        let at = (old_end as usize) + i * 585;
        assert_eq!(
            &bytes[at..at + 585],
            &[0u8; 585][..],
            "new slot {i} is all zero"
        );
    }
    check_header(&sif, "grown native image");

    // An add goes after the new table, where upstream's rule puts it.
    let mut sif = SifImage::from_storage(Box::new(storage.clone()), OpenMode::ReadWrite).unwrap();
    let id = sif
        .add_object(
            ObjectInput::new(DataType::Generic, &b"new"[..]),
            ChangeTime::Auto,
        )
        .unwrap();
    assert_eq!(id, 6, "the first free slot");
    assert_eq!(sif.descriptor_by_id(6).unwrap().offset, new_table_end);
    check_header(&reopen(storage.to_vec(), "after an add"), "after an add");
    // A compacting delete of everything after the table truncates at its end, not into it.
    let mut sif = SifImage::from_storage(Box::new(storage.clone()), OpenMode::ReadWrite).unwrap();
    sif.delete_objects(
        |d| d.id == 6,
        DeleteOptions {
            zero: true,
            compact: true,
            time: ChangeTime::Auto,
        },
    )
    .unwrap();
    assert_eq!(storage.to_vec().len() as i64, new_table_end);
    let sif = reopen(storage.to_vec(), "after a compacting delete");
    assert_eq!(objects_by_id(&sif), old_bytes);
}

/// A table with nothing after it (an image with no objects) grows where it is.
#[test]
fn a_table_with_no_object_after_it_grows_in_place() {
    let storage = Arc::new(MemStorage::default());
    let opts = CreateOptions {
        capacity: 2,
        ..CreateOptions::deterministic()
    };
    SifImage::create(Box::new(storage.clone()), &opts, Vec::new()).unwrap();
    let mut sif = SifImage::from_storage(Box::new(storage.clone()), OpenMode::ReadWrite).unwrap();
    let g = sif.ensure_free_slots(3, ChangeTime::Auto).unwrap();
    assert_eq!((g.old_total, g.new_total), (2, 10));
    assert!(!g.relocated(), "{g:?}");
    let sif = reopen(storage.to_vec(), "grown empty image");
    assert_eq!(sif.header().descriptors_offset, 4096);
    assert_eq!(sif.header().data_offset, 4096 + 10 * 585);
    check_header(&sif, "grown empty image");
}

/// oci-tools writes no spare descriptors: the first attach onto its goldens grows.
#[test]
fn attach_onto_images_with_no_spare_descriptors() {
    let mut tried = 0;
    for rel in [
        "sylabs-oci-tools/pkg/sif/testdata/TestWrite/DockerManifest.golden",
        "sylabs-oci-tools/pkg/sif/testdata/TestWrite/ManyLayers.golden",
        "generated/hello-world-docker-v2-manifest.oci.sif",
    ] {
        let original = read_upstream(rel);
        let mut image = Mem::open(original);
        assert_eq!(image.oci.sif().free_slots(), 0, "{rel} has no spare");
        let old: Vec<(Digest, Vec<u8>)> = image
            .oci
            .blobs()
            .map(|(d, _)| (d, image.oci.read_blob(&d).unwrap()))
            .collect();
        let old_total = image.total();
        let target = image.target();
        image.sign(&target, 1);
        println!("{rel}: {old_total} -> {} slots", image.total());
        assert!(image.total() > old_total, "{rel}: grown");
        let oci = OciSif::from_sif(reopen(image.bytes(), rel)).unwrap();
        assert_eq!(oci.verify_blobs().unwrap(), vec![], "{rel}");
        assert_eq!(signature_layers(&oci, &target), 1, "{rel}");
        let found = discover(&oci);
        assert_eq!(
            found
                .entries
                .iter()
                .filter(|e| e.kind == EntryKind::Signature)
                .count(),
            1,
            "{rel}"
        );
        // The image's own blobs are intact.
        for (digest, bytes) in &old {
            assert_bytes_eq(
                &oci.read_blob(digest).unwrap(),
                bytes,
                &format!("{rel}: blob {digest}"),
            );
        }
        // A second attach fits in the grown table.
        let total = image.total();
        image.sign(&target, 2);
        assert_eq!(image.total(), total, "{rel}: no second growth");
        reopen(image.bytes(), rel);
        tried += 1;
    }
    assert_eq!(tried, 3);
}

/// Every upstream SIF that opens, grown by one slot more than it has free: it reopens,
/// every object keeps its bytes and its descriptor, OCI blobs still verify.
#[test]
fn forced_growth_of_every_upstream_sif() {
    let (mut grown, mut relocated) = (0, 0);
    for path in upstream_sifs() {
        let what = path.display().to_string();
        let bytes = std::fs::read(&path).unwrap();
        let storage = Arc::new(MemStorage::new(bytes));
        let Ok(mut sif) = SifImage::from_storage(Box::new(storage.clone()), OpenMode::ReadWrite)
        else {
            continue; // a deliberately broken file
        };
        let before = sif.slots().to_vec();
        let old = objects_by_id(&sif);
        let needed = sif.free_slots() + 1;
        let g = sif
            .ensure_free_slots(needed, ChangeTime::Auto)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(g.grew(), "{what}");
        let after = reopen(storage.to_vec(), &what);
        assert!(after.free_slots() >= needed, "{what}");
        assert_eq!(objects_by_id(&after), old, "{what}: object bytes");
        for (slot, d) in before.iter().enumerate() {
            assert_eq!(&after.slots()[slot], d, "{what}: slot {slot} is as it was");
        }
        check_header(&after, &what);
        if let Ok(oci) = OciSif::from_sif(after) {
            assert_eq!(oci.verify_blobs().unwrap(), vec![], "{what}");
        }
        grown += 1;
        relocated += usize::from(g.relocated());
    }
    println!("{grown} upstream SIFs grown, {relocated} with the table written at the end");
    assert!(grown >= 100, "only {grown} upstream SIFs opened");
}

/// siftool 2.8.3 (the reference reader and writer) reads every grown image and dumps its
/// objects byte-identically, and its own add and delete work on the result.
#[test]
fn siftool_reads_grown_images() {
    require_siftool();
    let dir = tempfile::tempdir().unwrap();
    let mut images: Vec<(String, Vec<u8>)> = Vec::new();
    images.push(("100 signatures".into(), hundred_signatures().bytes));
    let mut zero = Mem::open(read_upstream(
        "sylabs-oci-tools/pkg/sif/testdata/TestWrite/DockerManifest.golden",
    ));
    let target = zero.target();
    zero.sign(&target, 1);
    images.push(("DockerManifest.golden + 1 signature".into(), zero.bytes()));
    for rel in [
        "sylabs-sif/test/images/one-group.sif",
        "sylabs-sif/test/images/two-groups.sif",
    ] {
        if !upstream(rel).exists() {
            continue;
        }
        let storage = Arc::new(MemStorage::new(read_upstream(rel)));
        let mut sif =
            SifImage::from_storage(Box::new(storage.clone()), OpenMode::ReadWrite).unwrap();
        let needed = sif.free_slots() + 1;
        sif.ensure_free_slots(needed, ChangeTime::Auto).unwrap();
        images.push((format!("{rel} grown"), storage.to_vec()));
    }
    assert!(images.len() >= 3, "the native test images are missing");
    for (i, (what, bytes)) in images.iter().enumerate() {
        let file = dir.path().join(format!("grown-{i}.sif"));
        std::fs::write(&file, bytes).unwrap();
        let list = String::from_utf8_lossy(&siftool(&[&"list", &file], what)).into_owned();
        siftool(&[&"info", &"1", &file], what);
        let sif = reopen(bytes.clone(), what);
        let rows = list.lines().filter(|l| l.contains('|')).count();
        assert_eq!(
            rows,
            sif.used_count() + 1,
            "{what}: siftool lists every object"
        );
        for (_, d) in sif.descriptors() {
            let id = d.id.to_string();
            let dumped = siftool(&[&"dump", &id, &file], what);
            assert_bytes_eq(
                &dumped,
                &sif.read_object(d).unwrap(),
                &format!("{what}: siftool dump {id}"),
            );
        }
        // Upstream's append, then upstream's delete, on the grown file.
        let extra = dir.path().join(format!("extra-{i}.json"));
        std::fs::write(&extra, format!("{{\"grown\": {i}}}")).unwrap();
        siftool(&[&"add", &file, &extra, &"--datatype", &"6"], what);
        let added = reopen(std::fs::read(&file).unwrap(), what);
        check_header(&added, &format!("{what} + siftool add"));
        let (_, new) = added
            .descriptors()
            .max_by_key(|(_, d)| d.offset)
            .expect("the image has objects");
        assert_eq!(
            added.read_object(new).unwrap(),
            std::fs::read(&extra).unwrap(),
            "{what}: siftool's object is the last one"
        );
        let mut kept = objects_by_id(&sif);
        kept.insert(new.id, std::fs::read(&extra).unwrap());
        assert_eq!(
            objects_by_id(&added),
            kept,
            "{what}: siftool add kept every object"
        );
        let first = sif
            .descriptors()
            .next()
            .map(|(_, d)| d.id)
            .expect("objects");
        siftool(&[&"del", &first.to_string(), &file], what);
        let deleted = reopen(std::fs::read(&file).unwrap(), what);
        check_header(&deleted, &format!("{what} + siftool del"));
        kept.remove(&first);
        assert_eq!(
            objects_by_id(&deleted),
            kept,
            "{what}: siftool del removed only {first}"
        );
        siftool(&[&"list", &file], what);
    }
}

fn require_siftool() {
    if let Err(e) = Command::new("siftool").arg("version").output() {
        panic!(
            "siftool is needed by this test but cannot be run ({e}): install it with \
             `apt-get install -y siftool` (Debian's siftool 2.8.3)"
        );
    }
}

/// Runs `siftool <args>` and returns what it printed; fails showing its output unless it
/// exits 0.
fn siftool(args: &[&dyn AsRef<std::ffi::OsStr>], what: &str) -> Vec<u8> {
    let out = Command::new("siftool")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run siftool: {e}"));
    assert!(
        out.status.success(),
        "{what}: siftool {:?} failed ({}): {}{}",
        args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// One growth of an image on disk whose first layer is 1 GiB: the layer lies where the
/// table would grow, so the table is written after it and nothing is copied.
#[test]
#[ignore = "writes 1 GiB images to disk and times a growth after a 1 GiB layer; run with \
            `cargo test --release --test library table_growth:: -- --ignored --nocapture`"]
fn time_one_growth_with_a_1_gib_first_layer() {
    const GIB: u64 = 1 << 30;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.oci.sif");
    let blob = images::GeneratedBlob::new(42, GIB);
    let written = images::write_image(&path, &[(blob.digest, GIB)], &blob, 0);
    // Start from clean pages, so that writing back the new image does not count.
    std::fs::File::open(&path).unwrap().sync_all().unwrap();

    let mut sif = SifImage::open(&path, OpenMode::ReadWrite).unwrap();
    let needed = sif.free_slots() + 1;
    let start = Instant::now();
    let g = sif.ensure_free_slots(needed, ChangeTime::Auto).unwrap();
    let grown = start.elapsed();
    sif.sync().unwrap();
    let synced = start.elapsed();
    assert!(
        g.relocated(),
        "the layer is in the way: the table goes after it"
    );
    println!(
        "1 GiB first layer: growth {} -> {} slots took {grown:.2?} ({:.0} MiB/s), {synced:.2?} \
         with fsync",
        g.old_total,
        g.new_total,
        1024.0 / grown.as_secs_f64()
    );
    drop(sif);

    let oci = OciSif::open(&path, OpenMode::ReadWrite).unwrap();
    check_header(oci.sif(), "1 GiB image");
    let start = Instant::now();
    assert_eq!(oci.verify_blobs().unwrap(), vec![]);
    println!("verifying the layer took {:.2?}", start.elapsed());
    assert!(oci.blob(&written.layers[0]).is_some());

    // The attach that needs the growth, end to end, on a fresh copy.
    let path2 = dir.path().join("big2.oci.sif");
    drop(oci);
    std::fs::remove_file(&path).unwrap();
    images::write_image(&path2, &[(blob.digest, GIB)], &blob, 0);
    std::fs::File::open(&path2).unwrap().sync_all().unwrap();
    let mut oci = OciSif::open(&path2, OpenMode::ReadWrite).unwrap();
    let target = written.manifest;
    let drop_files = DropFiles {
        payload: Some(payload(&target, 1)),
        signature: Some(SIGNATURE.as_bytes().to_vec()),
        ..DropFiles::default()
    };
    let a = prepare(&oci, &drop_files).unwrap().unwrap();
    let start = Instant::now();
    attach(&mut oci, &a).unwrap();
    oci.sif().sync().unwrap();
    println!(
        "attach onto the 0-spare 1 GiB image (growth included, with fsync) took {:.2?}",
        start.elapsed()
    );
    check_header(oci.sif(), "1 GiB image after attach");
}

/// The file storage's `copy_range` (copy_file_range(2), or a buffered copy for
/// overlapping ranges) copies exactly what a copy through a buffer would, extending the
/// file when the destination reaches past its end.
#[test]
fn file_copy_range_copies_like_a_buffer() {
    let original: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for (src, dst, len) in [
        (0u64, 3_000_000u64, 3_000_000u64), // past the end: extends the file
        (100, 2_000_000, 999_999),          // inside, disjoint
        (10, 500_000, 1_500_000),           // overlapping, forwards
        (1_000_000, 10, 1_500_000),         // overlapping, backwards
        (5, 5, 1000),                       // onto itself
        (7, 8, 0),                          // nothing
    ] {
        let file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut &file, &original).unwrap();
        Storage::copy_range(&file, src, dst, len).unwrap();
        let mut want = original.clone();
        let moved = want[src as usize..(src + len) as usize].to_vec();
        let end = (dst + len) as usize;
        if want.len() < end {
            want.resize(end, 0);
        }
        want[dst as usize..end].copy_from_slice(&moved);
        let mut got = Vec::new();
        std::io::Seek::seek(&mut &file, std::io::SeekFrom::Start(0)).unwrap();
        std::io::Read::read_to_end(&mut &file, &mut got).unwrap();
        assert_bytes_eq(
            &got,
            &want,
            &format!("copy {len} bytes from {src} to {dst}"),
        );
    }
    // Reading past the end fails, as a read does.
    let file = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut &file, &original[..1000]).unwrap();
    assert!(Storage::copy_range(&file, 500, 2000, 1000).is_err());
}

/// An attach that grows the table of an image whose first layer lies right after it
/// leaves the layer where it is, byte for byte (a reader of the layer at its offset, such
/// as a container running from it, never loses it), and adds only the new table and the
/// signature to the file: nothing is copied.
#[test]
fn a_growth_leaves_a_large_first_layer_where_it_is() {
    const LAYER: u64 = 16 << 20;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.oci.sif");
    let blob = images::GeneratedBlob::new(7, LAYER);
    let written = images::write_image(&path, &[(blob.digest, LAYER)], &blob, 0);
    let len_before = std::fs::metadata(&path).unwrap().len();
    let layer_at = |oci: &OciSif| {
        oci.sif()
            .descriptors()
            .find(|(_, d)| d.size as u64 == LAYER)
            .map(|(_, d)| d.offset)
            .expect("the layer is in the image")
    };

    let mut oci = OciSif::open(&path, OpenMode::ReadWrite).unwrap();
    let offset = layer_at(&oci);
    let total = oci.sif().slots().len();
    let drop_files = DropFiles {
        payload: Some(payload(&written.manifest, 1)),
        signature: Some(SIGNATURE.as_bytes().to_vec()),
        ..DropFiles::default()
    };
    let a = prepare(&oci, &drop_files).unwrap().unwrap();
    attach(&mut oci, &a).unwrap();
    assert!(oci.sif().slots().len() > total, "the attach grew the table");
    drop(oci);

    let len = std::fs::metadata(&path).unwrap().len();
    assert!(
        len < len_before + (1 << 20),
        "nothing was copied: the file grew from {len_before} to {len} bytes"
    );
    let oci = OciSif::open(&path, OpenMode::ReadOnly).unwrap();
    assert_eq!(layer_at(&oci), offset, "the layer did not move");
    check_header(oci.sif(), "after the attach");
    assert_eq!(
        oci.verify_blobs().unwrap(),
        vec![],
        "every blob still verifies"
    );
}

/// Records every range read from an image in memory.
struct ReadLog {
    inner: Arc<MemStorage>,
    reads: Arc<std::sync::Mutex<Vec<(u64, u64)>>>,
}

impl Storage for ReadLog {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let range = (offset, offset + buf.len() as u64);
        self.reads
            .lock()
            .expect("no test thread panics holding it")
            .push(range);
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Once a growth has moved the table after a large layer, an attach reads the header,
/// the table and what it changes, never the layer: the journal's anchor covers the
/// header and the table where they are, not everything before the table's end (which
/// once made every attach on a 1 GiB image hash the gigabyte).
#[test]
fn attaches_after_a_relocating_growth_read_no_byte_of_the_objects() {
    const LAYER: u64 = 4 << 20;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.oci.sif");
    let blob = images::GeneratedBlob::new(11, LAYER);
    let written = images::write_image(&path, &[(blob.digest, LAYER)], &blob, 0);
    let mem = Arc::new(MemStorage::new(std::fs::read(&path).unwrap()));
    let reads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let storage = ReadLog {
        inner: mem.clone(),
        reads: reads.clone(),
    };
    let sif = SifImage::from_storage_with_journal(
        Box::new(storage),
        Box::new(sifmount::sif::MemJournal::default()),
        OpenMode::ReadWrite,
    )
    .unwrap();
    let mut oci = OciSif::from_sif(sif).unwrap();
    let layer = oci
        .sif()
        .descriptors()
        .find(|(_, d)| d.size as u64 == LAYER)
        .map(|(_, d)| (d.offset as u64, (d.offset + d.size) as u64))
        .expect("the layer is in the image");
    let sign = |oci: &mut OciSif, n: usize| {
        let drop = DropFiles {
            payload: Some(payload(&written.manifest, n)),
            signature: Some(SIGNATURE.as_bytes().to_vec()),
            ..DropFiles::default()
        };
        let a = prepare(oci, &drop).unwrap().unwrap();
        attach(oci, &a).unwrap_or_else(|e| panic!("attach {n}: {e}"));
    };
    let mut n = 0;
    while (oci.sif().header().descriptors_offset as u64) < layer.1 {
        n += 1;
        assert!(n < 64, "64 attaches never moved the table after the layer");
        sign(&mut oci, n);
    }
    for more in 1..=3 {
        reads.lock().unwrap().clear();
        sign(&mut oci, n + more);
        let touched: Vec<_> = reads
            .lock()
            .unwrap()
            .iter()
            .copied()
            .filter(|&(a, b)| a < layer.1 && layer.0 < b)
            .collect();
        assert_eq!(
            touched,
            vec![],
            "attach {more} after the growth read these ranges of the layer at {layer:?}"
        );
    }
    drop(oci);
    let reopened =
        OciSif::from_sif(SifImage::from_storage(Box::new(mem), OpenMode::ReadOnly).unwrap())
            .unwrap();
    check_header(reopened.sif(), "after the attaches");
    assert_eq!(reopened.verify_blobs().unwrap(), vec![]);
}
