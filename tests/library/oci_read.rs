//! Reading OCI-SIFs: every upstream OCI-SIF opens, its root index parses, every blob it
//! references is present and hashes to its digest; the odd root indexes real files
//! have are accepted; broken OCI-SIFs give errors that say what is wrong.

use std::sync::Arc;

use crate::common::{upstream, upstream_sifs};
use sifmount::oci::{media_type, ImageKind, OciError, OciSif};
use sifmount::sif::{CreateOptions, DataType, Digest, MemStorage, ObjectInput, OpenMode, SifImage};

const REMOVED_LAYER: &str =
    "sha256:7050e35b49f5e348c4809f5eff915842962cb813f32062d3bbdd35c750dd7d01";

#[test]
fn every_upstream_oci_sif_reads_and_verifies() {
    let (mut oci, mut native) = (0, 0);
    for path in upstream_sifs() {
        let shown = path.display();
        let sif =
            SifImage::open(&path, OpenMode::ReadOnly).unwrap_or_else(|e| panic!("{shown}: {e}"));
        match ImageKind::of(&sif) {
            ImageKind::Native => {
                native += 1;
                continue;
            }
            ImageKind::Ambiguous { .. } => panic!("{shown}: several root indexes"),
            ImageKind::OciSif { .. } => {}
        }
        let image = OciSif::from_sif(sif).unwrap_or_else(|e| panic!("{shown}: {e}"));
        if path.ends_with("sylabs-sif/test/images/one-object-oci-root-index.sif") {
            // Upstream's sample index has truncated digests: the file opens, the index
            // does not parse, and the error names the bad digest.
            let err = image.root_index().unwrap_err().to_string();
            assert!(err.contains("sha256:abcdef1234567890"), "{err}");
            oci += 1;
            continue;
        }
        let index = image.root_index().unwrap();
        assert!(
            image.verify_blobs().unwrap().is_empty(),
            "{shown}: blob digest mismatch"
        );
        // Everything the root index references is in the file (one level of nesting).
        for entry in index.entries() {
            let bytes = image
                .read_blob(&entry.digest)
                .unwrap_or_else(|e| panic!("{shown}: {e}"));
            assert_eq!(bytes.len() as i64, entry.size, "{shown}: {}", entry.digest);
            if media_type::is_manifest(&entry.media_type) {
                let m = image.image_manifest(&entry.digest).unwrap();
                for l in m.layers() {
                    let d: Digest = l.digest().to_string().parse().unwrap();
                    // RemoveBlob's golden is the image after its layer was deleted.
                    let removed = path.ends_with("TestRemoveBlob/Valid.golden")
                        && d.to_string() == REMOVED_LAYER;
                    assert_eq!(image.blob(&d).is_some(), !removed, "{shown}: layer {d}");
                }
                let c: Digest = m.config().digest().to_string().parse().unwrap();
                image
                    .image_config(&c)
                    .unwrap_or_else(|e| panic!("{shown}: {e}"));
            } else if media_type::is_index(&entry.media_type) {
                let nested = image.image_index(&entry.digest).unwrap();
                for m in nested.manifests() {
                    let d: Digest = m.digest().to_string().parse().unwrap();
                    assert!(image.blob(&d).is_some(), "{shown}: manifest {d} missing");
                }
            }
        }
        oci += 1;
    }
    // 50 oci-tools goldens, 9 generated files, empty.oci.sif, one-object-oci-root-index.sif.
    assert_eq!(
        (oci, native),
        (61, 90),
        "OCI-SIF and native SIF files under testdata/upstream"
    );
}

#[test]
fn odd_root_indexes_are_accepted() {
    // `{}` and a newline, real UUID and times.
    let empty = OciSif::open(
        upstream("sylabs-singularity/test/images/empty.oci.sif"),
        OpenMode::ReadOnly,
    )
    .unwrap();
    assert_eq!(empty.root_index_bytes().unwrap(), b"{}\n");
    assert!(empty.root_index().unwrap().entries().is_empty());

    // A Docker manifest list as the root index.
    let list = OciSif::open(
        upstream("sylabs-oci-tools/pkg/sif/testdata/TestWrite/DockerManifestList.golden"),
        OpenMode::ReadOnly,
    )
    .unwrap();
    let idx = list.root_index().unwrap();
    assert_eq!(
        idx.media_type.as_deref(),
        Some(media_type::DOCKER_MANIFEST_LIST)
    );
    assert_eq!(idx.entries().len(), 9);
    assert!(idx.entries().iter().all(|e| e.platform.is_some()));

    // "manifests": null after every entry was removed.
    let none = OciSif::open(
        upstream("sylabs-oci-tools/pkg/sif/testdata/TestRemoveManifests/NilMatcher.golden"),
        OpenMode::ReadOnly,
    )
    .unwrap();
    let bytes = none.root_index_bytes().unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains(r#""manifests":null"#));
    let idx = none.root_index().unwrap();
    assert!(idx.manifests.is_none());
    assert_eq!(idx.to_go_json(), bytes, "re-serializes to the same bytes");

    // Pretty-printed, stored verbatim from a layout.
    let pretty = OciSif::open(
        upstream("generated/hello-world-cosign-manifest.oci.sif"),
        OpenMode::ReadOnly,
    )
    .unwrap();
    let idx = pretty.root_index().unwrap();
    assert_eq!(idx.entries().len(), 3);
    let names: Vec<_> = idx.entries().iter().filter_map(|e| e.ref_name()).collect();
    assert_eq!(names.len(), 2);
    assert!(names
        .iter()
        .all(|n| n.starts_with("_cosign:sha256-432f9826")));
}

fn mem_image(objects: Vec<ObjectInput<'_>>) -> (Arc<MemStorage>, SifImage) {
    let mem = Arc::new(MemStorage::default());
    let sif = SifImage::create(
        Box::new(mem.clone()),
        &CreateOptions::deterministic(),
        objects,
    )
    .unwrap();
    (mem, sif)
}

#[test]
fn duplicate_blobs_are_tolerated_first_wins() {
    let (_, sif) = mem_image(vec![
        ObjectInput::new(DataType::OciBlob, &b"same"[..]),
        ObjectInput::new(DataType::OciBlob, &b"same"[..]),
        ObjectInput::new(
            DataType::OciRootIndex,
            &br#"{"schemaVersion":2,"manifests":[]}"#[..],
        ),
    ]);
    let image = OciSif::from_sif(sif).unwrap();
    let d = Digest::of(b"same");
    assert_eq!(image.blob(&d).unwrap().id, 1);
    assert_eq!(image.blobs().count(), 1);
}

#[test]
fn native_and_ambiguous_images_are_told_apart() {
    let (_, native) = mem_image(vec![ObjectInput::new(DataType::Generic, &b"x"[..])]);
    assert_eq!(ImageKind::of(&native), ImageKind::Native);
    assert!(matches!(OciSif::from_sif(native), Err(OciError::NotOciSif)));

    let (_, two) = mem_image(vec![
        ObjectInput::new(DataType::OciRootIndex, &b"{}"[..]),
        ObjectInput::new(DataType::OciRootIndex, &b"{ }"[..]),
    ]);
    let err = OciSif::from_sif(two).unwrap_err();
    assert!(
        err.to_string()
            .contains("2 OCI root indexes (slots [0, 1])"),
        "{err}"
    );
}

#[test]
fn verify_reports_a_changed_byte() {
    let (mem, sif) = mem_image(vec![
        ObjectInput::new(DataType::OciBlob, &b"layer bytes"[..]),
        ObjectInput::new(DataType::OciRootIndex, &b"{}"[..]),
    ]);
    let offset = sif.slots()[0].offset as u64;
    let image = OciSif::from_sif(sif).unwrap();
    assert!(image.verify_blobs().unwrap().is_empty());
    let mut bytes = mem.to_vec();
    bytes[offset as usize + 3] ^= 1;
    let changed =
        SifImage::from_storage(Box::new(MemStorage::new(bytes)), OpenMode::ReadOnly).unwrap();
    let bad = OciSif::from_sif(changed).unwrap().verify_blobs().unwrap();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].id, 1);
    assert_eq!(bad[0].recorded, Digest::of(b"layer bytes"));
    assert_ne!(bad[0].actual, bad[0].recorded);
}

#[test]
fn broken_oci_sifs_say_what_is_wrong() {
    use sifmount::sif::{ChangeTime, Extra};
    // A blob whose recorded digest is not hex.
    let (_, mut sif) = mem_image(vec![
        ObjectInput::new(DataType::OciBlob, &b"blob"[..]),
        ObjectInput::new(DataType::OciRootIndex, &b"{}"[..]),
    ]);
    let bad = format!("sha256:{}", "zz".repeat(32));
    sif.set_metadata(1, Extra::Other(bad.clone().into_bytes()), ChangeTime::Auto)
        .unwrap();
    let err = OciSif::from_sif(sif).unwrap_err().to_string();
    assert!(err.contains("slot 0 (id 1)") && err.contains(&bad), "{err}");

    // A digest of another algorithm.
    let (_, mut sif) = mem_image(vec![ObjectInput::new(DataType::OciRootIndex, &b"{}"[..])]);
    sif.set_metadata(1, Extra::Other(b"sha512:00".to_vec()), ChangeTime::Auto)
        .unwrap();
    let err = OciSif::from_sif(sif).unwrap_err().to_string();
    assert!(err.contains("sha512:00"), "{err}");

    // A root index that is not JSON, and one that is empty.
    for bytes in [&b"not json"[..], &b""[..], &b"{\"manifests\":[{]}"[..]] {
        let (_, sif) = mem_image(vec![ObjectInput::new(DataType::OciRootIndex, bytes)]);
        let err = OciSif::from_sif(sif).unwrap_err().to_string();
        assert!(
            err.contains("root index (slot 0, id 1)") && err.contains("JSON"),
            "{err}"
        );
    }

    // A root index whose entries are not descriptors parses lazily and fails with the
    // reason when used.
    let (_, sif) = mem_image(vec![ObjectInput::new(
        DataType::OciRootIndex,
        &br#"{"manifests":[{"digest":"md5:00"}]}"#[..],
    )]);
    let image = OciSif::from_sif(sif).unwrap();
    let err = image.root_index().unwrap_err().to_string();
    assert!(err.contains("md5:00"), "{err}");
}

#[test]
fn update_refuses_unknown_media_types_and_missing_blobs_without_changing_anything() {
    use sifmount::oci::{Descriptor, Index, MemBlobs, NoBlobs};
    let mem = Arc::new(MemStorage::default());
    let mut image = sifmount::oci::write_oci_sif(
        Box::new(mem.clone()),
        &Index::empty().to_go_json(),
        &NoBlobs,
        4,
    )
    .unwrap();
    let before = mem.to_vec();

    let mut idx = Index::empty();
    idx.append(Descriptor::of("text/plain", b"hello"), None);
    let mut blobs = MemBlobs::new();
    blobs.insert(b"hello".to_vec());
    let err = image
        .update_root_index(&idx.to_go_json(), &blobs)
        .unwrap_err();
    assert!(err.to_string().contains("text/plain"), "{err}");
    assert_eq!(mem.to_vec(), before);

    let mut idx = Index::empty();
    idx.append(Descriptor::of(media_type::OCI_MANIFEST, b"{}"), None);
    let err = image
        .update_root_index(&idx.to_go_json(), &NoBlobs)
        .unwrap_err();
    assert!(matches!(err, OciError::MissingBlob(_)), "{err}");
    assert_eq!(mem.to_vec(), before);

    // The same index again is a no-op.
    let out = image
        .update_root_index(&Index::empty().to_go_json(), &NoBlobs)
        .unwrap();
    assert!(out.unchanged);
    assert_eq!(mem.to_vec(), before);
}

#[test]
fn oversized_root_index_is_refused_not_loaded() {
    let mut huge = vec![b' '; sifmount::oci::MAX_DOCUMENT_SIZE as usize + 1];
    huge[0] = b'{';
    *huge.last_mut().unwrap() = b'}';
    let (_, sif) = mem_image(vec![ObjectInput::new(DataType::OciRootIndex, &huge[..])]);
    let err = OciSif::from_sif(sif).unwrap_err().to_string();
    assert!(
        err.contains("root index") && err.contains("a JSON document may have"),
        "{err}"
    );
}
