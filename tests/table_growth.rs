//! Growing a full descriptor table (issue 6, item 3; `src/sif/grow.rs`): 100 signatures
//! onto an image with SingularityCE's 8 spare descriptors, attaches onto upstream images
//! with none, a hand-built native image with a partition, a forced growth of every upstream
//! SIF, and `siftool` reading the results. Every grown image is reopened and validated.
//!
//! Needs `siftool` (`apt-get install siftool`, Debian's 2.8.3) for the upstream-reader
//! test; it fails, saying so, when siftool is missing.

mod common;
#[path = "common/images.rs"]
mod images;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use common::{assert_bytes_eq, read_upstream, upstream, upstream_sifs};
use sifmount::cosign::{attach, cosign_ref_name, discover, prepare, DropFiles, EntryKind};
use sifmount::oci::{Index, Manifest, OciSif};
use sifmount::sif::{
    fs_type, part_type, ChangeTime, CreateOptions, DataType, Digest, MemStorage, ObjectInput,
    OpenMode, SifError, SifImage, Storage, DESCRIPTOR_SIZE, MAX_DESCRIPTORS, ZERO_TIME,
};

/// Valid standard base64, as the signature annotation must be; attach does not verify.
const SIGNATURE: &str = "c2lmbW91bnQgdGFibGUgZ3Jvd3RoIHRlc3Qgc2lnbmF0dXJl";

/// An OCI-SIF in memory.
struct Mem {
    storage: Arc<MemStorage>,
    oci: OciSif,
}

impl Mem {
    fn open(bytes: Vec<u8>) -> Mem {
        let storage = Arc::new(MemStorage::new(bytes));
        let sif = SifImage::from_storage(Box::new(storage.clone()), OpenMode::ReadWrite).unwrap();
        Mem {
            storage,
            oci: OciSif::from_sif(sif).unwrap(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        self.storage.to_vec()
    }

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
    serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": {"docker-reference": "example.com/sifmount/growth"},
            "image": {"docker-manifest-digest": target.to_string()},
            "type": "cosign container image signature",
        },
        "optional": {"timestamp": 1_700_000_000 + n as i64},
    }))
    .unwrap()
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
            d.size == 0 || d.offset >= table_end,
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
/// checked in tests/cosign_attach.rs; here, that no growth has happened).
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
        assert!(g.moved.is_empty());
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
/// 4096-aligned partition straddling the new table end, and two objects past it.
#[test]
fn growth_moves_only_the_objects_in_the_way_and_keeps_their_alignment() {
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
    let mut sif = SifImage::from_storage(Box::new(storage.clone()), OpenMode::ReadWrite).unwrap();
    let before: Vec<_> = sif.slots().to_vec();
    let old_bytes = objects_by_id(&sif);
    let old_end = sif.data_end();
    assert_eq!(
        before[0].offset,
        4096 + 5 * 585,
        "first object right after the table"
    );
    assert_eq!(before[2].offset % 4096, 0);
    assert_eq!(sif.free_slots(), 0);

    let g = sif.ensure_free_slots(1, ChangeTime::At(2_000)).unwrap();
    // max(2 × 5, 5 + 8, 5 + 1) slots: the table now ends at 4096 + 13 × 585 = 11701.
    assert_eq!((g.old_total, g.new_total), (5, 13));
    let new_table_end = 4096 + 13 * 585;
    assert!(before[2].offset < new_table_end && before[2].end() > new_table_end);
    assert!(
        before[3].offset >= new_table_end,
        "the fourth object is clear"
    );
    let moved: Vec<u32> = g.moved.iter().map(|m| m.id).collect();
    assert_eq!(
        moved,
        vec![1, 2, 3],
        "small, empty and partition move, in file order"
    );

    let bytes = storage.to_vec();
    let sif = reopen(bytes.clone(), "grown native image");
    let h = sif.header();
    assert_eq!(h.descriptors_total, 13);
    assert_eq!(h.descriptors_free, 8);
    assert_eq!(h.data_offset, new_table_end);
    assert_eq!((h.created_at, h.modified_at), (1_000, 2_000));
    assert_eq!(h.arch_name(), "amd64");
    assert_eq!(
        objects_by_id(&sif),
        old_bytes,
        "every object keeps its bytes"
    );

    let after_slots = sif.slots();
    // Placed as adds would be: small at the old end, empty after it, the partition at
    // the next multiple of 4096.
    assert_eq!(after_slots[0].offset, old_end);
    assert_eq!(after_slots[0].size_with_padding, 100);
    assert_eq!(after_slots[1].offset, old_end + 100);
    assert_eq!(after_slots[1].size_with_padding, 0);
    let part_at = (old_end + 100 + 4095) / 4096 * 4096;
    assert_eq!(after_slots[2].offset, part_at);
    assert_eq!(
        after_slots[2].size_with_padding,
        part_at - (old_end + 100) + 5000
    );
    assert_eq!(
        after_slots[2].offset % 4096,
        0,
        "the partition stays aligned"
    );
    assert_eq!(h.data_size, part_at + 5000 - new_table_end);
    assert_eq!(bytes.len() as i64, part_at + 5000);
    for i in 0..3 {
        let (mut a, mut b) = (after_slots[i].clone(), before[i].clone());
        a.offset = 0;
        a.size_with_padding = 0;
        b.offset = 0;
        b.size_with_padding = 0;
        assert_eq!(a, b, "slot {i}: only offset and padding change");
    }
    assert_eq!(
        &after_slots[3..5],
        &before[3..5],
        "objects past the table stay put"
    );
    for (i, d) in after_slots.iter().enumerate().skip(5) {
        assert!(!d.used, "slot {i} is new and free");
        assert_eq!(
            &bytes[4096 + i * 585..4096 + (i + 1) * 585],
            &[0u8; 585][..],
            "new slot {i} is all zero"
        );
    }
    // The grown image takes an add where upstream would place it: after the partition.
    let mut sif = SifImage::from_storage(Box::new(storage.clone()), OpenMode::ReadWrite).unwrap();
    let id = sif
        .add_object(
            ObjectInput::new(DataType::Generic, &b"new"[..]),
            ChangeTime::Auto,
        )
        .unwrap();
    assert_eq!(id, 6, "the first free slot");
    assert_eq!(sif.descriptor_by_id(6).unwrap().offset, part_at + 5000);
    reopen(storage.to_vec(), "grown native image after an add");
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
/// every object keeps its bytes, moved partitions stay aligned, objects not in the way
/// stay put, OCI blobs still verify.
#[test]
fn forced_growth_of_every_upstream_sif() {
    let (mut grown, mut moved_any) = (0, 0);
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
        let moved: Vec<usize> = g.moved.iter().map(|m| m.slot).collect();
        for (slot, d) in before.iter().enumerate().filter(|(_, d)| d.used) {
            let now = &after.slots()[slot];
            if moved.contains(&slot) {
                if d.data_type() == DataType::Partition {
                    assert_eq!(now.offset % 4096, 0, "{what}: slot {slot} aligned");
                }
            } else {
                assert_eq!(now, d, "{what}: slot {slot} not in the way stays put");
            }
        }
        if let Ok(oci) = OciSif::from_sif(after) {
            assert_eq!(oci.verify_blobs().unwrap(), vec![], "{what}");
        }
        grown += 1;
        moved_any += usize::from(!g.moved.is_empty());
    }
    println!("{grown} upstream SIFs grown, {moved_any} with objects moved");
    assert!(grown >= 100, "only {grown} upstream SIFs opened");
}

/// siftool 2.8.3 (the reference reader) reads every grown image and dumps moved objects
/// byte-identically.
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
        let list = siftool(&["list"], &file, what);
        siftool(&["info", "1"], &file, what);
        let sif = reopen(bytes.clone(), what);
        let rows = list.lines().filter(|l| l.contains('|')).count();
        assert_eq!(
            rows,
            sif.used_count() + 1,
            "{what}: siftool lists every object"
        );
        for (_, d) in sif.descriptors() {
            let id = d.id.to_string();
            let dumped = Command::new("siftool")
                .args(["dump", &id])
                .arg(&file)
                .output()
                .unwrap();
            assert!(dumped.status.success(), "{what}: siftool dump {id}");
            assert_bytes_eq(
                &dumped.stdout,
                &sif.read_object(d).unwrap(),
                &format!("{what}: siftool dump {id}"),
            );
        }
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

/// Runs `siftool <args> <file>`; fails showing its output unless it exits 0.
fn siftool(args: &[&str], file: &Path, what: &str) -> String {
    let out = Command::new("siftool")
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run siftool: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what}: siftool {args:?} failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// One growth of an image on disk whose first layer is 1 GiB: the layer lies where the
/// table grows, so the growth copies it to the end of the file.
#[test]
#[ignore = "writes a 2 GiB image to disk and times a growth that copies 1 GiB; run with \
            `cargo test --release --test table_growth -- --ignored --nocapture`"]
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
    assert_eq!(g.moved.len(), 1, "only the layer is in the way");
    assert_eq!(g.moved[0].size as u64, GIB);
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
    println!("verifying the moved layer took {:.2?}", start.elapsed());
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

/// Moving a large first layer out of the table's way gives its old place back to the file
/// system (a hole), so the file does not use twice the layer's size on disk, and the
/// image still verifies. On a real, journaled file: the release follows the commit.
#[test]
fn a_moved_layer_leaves_a_hole_not_a_copy() {
    use std::os::unix::fs::MetadataExt;
    const LAYER: u64 = 16 << 20;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.oci.sif");
    let blob = images::GeneratedBlob::new(7, LAYER);
    let written = images::write_image(&path, &[(blob.digest, LAYER)], &blob, 0);
    let on_disk = |p: &Path| std::fs::metadata(p).unwrap().blocks() * 512;
    let before = on_disk(&path);
    assert!(
        before >= LAYER,
        "the layer is allocated: {before} bytes on disk"
    );

    let mut oci = OciSif::open(&path, OpenMode::ReadWrite).unwrap();
    let drop_files = DropFiles {
        payload: Some(payload(&written.manifest, 1)),
        signature: Some(SIGNATURE.as_bytes().to_vec()),
        ..DropFiles::default()
    };
    let a = prepare(&oci, &drop_files).unwrap().unwrap();
    attach(&mut oci, &a).unwrap();
    drop(oci);

    let len = std::fs::metadata(&path).unwrap().len();
    let after = on_disk(&path);
    assert!(
        len >= 2 * LAYER,
        "the layer moved to the end: the file is {len} bytes"
    );
    assert!(
        after < before + LAYER / 2,
        "its old place was given back: {after} bytes on disk for a {len}-byte file \
         (was {before})"
    );
    let oci = OciSif::open(&path, OpenMode::ReadOnly).unwrap();
    assert_eq!(
        oci.verify_blobs().unwrap(),
        vec![],
        "every blob still verifies"
    );
    assert!(!path.with_extension("sif.sifmount-journal").exists());
}
