//! Reading every SIF file of the upstream test data (its inventory, INVENTORY.md, and
//! the specification kept with the test data (docs/FORMAT.md says where)).
//!
//! * every `.sif` and every whole-image `.golden` opens read-only and validates, and all of
//!   its objects can be read (OCI objects also match their stored digest);
//! * every row of INVENTORY.md's table "Every SIF-format file" agrees with what the
//!   library reads: file size, used/total descriptors, determinism and object types;
//! * the legacy (v1-library) busybox images read correctly.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{self, read_upstream, upstream};
use sifmount::sif::{
    fs_type, part_type, DataType, Extra, Link, OpenMode, SifImage, HEADER_SIZE, MAGIC,
};

/// `.golden` files that are whole SIF images, by where they live. The other goldens of
/// sylabs-sif (single descriptors, integrity streams) and of oci-tools' sourcesink
/// (manifests, blobs) are not images.
fn is_image_golden(rel: &str) -> bool {
    if !rel.ends_with(".golden") {
        return false;
    }
    let oci_tools = ["sylabs-oci-tools/", "sylabs-oci-tools-pre-artifactType/"];
    if oci_tools.iter().any(|p| rel.starts_with(p)) {
        return rel.contains("/pkg/sif/testdata/")
            || rel.contains("/pkg/sourcesink/testdata/TestSIFWrite/");
    }
    if let Some(rest) = rel.strip_prefix("sylabs-sif/pkg/sif/testdata/") {
        let streams = [
            "TestNewDescriptorInput/",
            "TestHeader_GetIntegrityReader/",
            "TestDescriptor_GetIntegrityReader/",
        ];
        return !streams.iter().any(|s| rest.starts_with(s));
    }
    false
}

fn has_sif_magic(path: &Path) -> bool {
    let b = std::fs::read(path).unwrap();
    b.len() >= HEADER_SIZE && &b[32..42] == MAGIC
}

/// Every SIF file of the test data: `.sif` files, whole-image goldens, and (so that none
/// is missed) any other `.golden` that starts like a SIF header.
fn sif_files() -> Vec<String> {
    let files: Vec<String> = common::upstream_files_under("")
        .into_iter()
        .filter(|f| {
            f.ends_with(".sif")
                || is_image_golden(f)
                || (f.ends_with(".golden") && has_sif_magic(&upstream(f)))
        })
        .collect();
    for f in &files {
        assert!(
            has_sif_magic(&upstream(f)),
            "{f} is expected to be a SIF image"
        );
    }
    files
}

/// Opens and fully checks one image; returns it for further checks.
fn open_and_check(rel: &str) -> SifImage {
    let path = upstream(rel);
    let image = SifImage::open(&path, OpenMode::ReadOnly)
        .unwrap_or_else(|e| panic!("{rel}: does not open: {e}"));
    let h = image.header();
    let len = image.file_len().unwrap();
    assert_eq!(len, std::fs::metadata(&path).unwrap().len(), "{rel}: size");
    assert_eq!(
        image.slots().len() as i64,
        h.descriptors_total,
        "{rel}: slot count"
    );
    assert_eq!(
        image.free_slots() as i64,
        h.descriptors_free,
        "{rel}: header free count disagrees with the table"
    );
    assert!(
        image.data_end() as u64 <= len.max(h.data_offset as u64),
        "{rel}: data end"
    );
    for (slot, d) in image.descriptors() {
        let what = format!("{rel}: slot {slot} (id {})", d.id);
        let bytes = image
            .read_object(d)
            .unwrap_or_else(|e| panic!("{what}: unreadable: {e}"));
        assert_eq!(bytes.len() as i64, d.size, "{what}: size");
        if let Some(digest) = d.oci_digest() {
            let digest = digest.unwrap_or_else(|e| panic!("{what}: bad digest: {e}"));
            // A stored digest may legitimately be stale (docs/FORMAT.md, Descriptor table: a set operation): the set
            // goldens overwrite it without touching the data. Nowhere else.
            let stale_on_purpose = ["TestFileImage_SetOCIBlobDigest/", "TestSetMetadata/"]
                .iter()
                .any(|dir| rel.contains(dir));
            if !stale_on_purpose {
                assert_eq!(
                    image.digest_object(d).unwrap(),
                    digest,
                    "{what}: content does not match the stored digest"
                );
            }
        }
    }
    image
}

#[test]
fn every_sif_file_opens_and_validates() {
    let files = sif_files();
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &files {
        open_and_check(f);
        let kind = if f.ends_with(".golden") {
            ".golden"
        } else {
            ".sif"
        };
        *by_kind.entry(kind).or_default() += 1;
    }
    // The corpora the specification lists must all be there.
    for prefix in [
        "sylabs-sif/test/images/",
        "sylabs-singularity/test/images/",
        "sylabs-singularity/e2e/testdata/",
        "generated/",
        "sylabs-oci-tools/pkg/sif/testdata/",
        "sylabs-oci-tools/pkg/sourcesink/testdata/TestSIFWrite/",
        "sylabs-oci-tools-pre-artifactType/pkg/sif/testdata/",
        "sylabs-sif/pkg/sif/testdata/",
    ] {
        assert!(
            files.iter().any(|f| f.starts_with(prefix)),
            "no SIF file found under {prefix}"
        );
    }
    eprintln!("{} SIF files open and validate: {by_kind:?}", files.len());
    assert!(files.len() >= 150, "only {} SIF files found", files.len());
}

/// The object-type names INVENTORY.md uses.
fn inventory_type_name(t: DataType) -> String {
    match t {
        DataType::Deffile => "Deffile".into(),
        DataType::Partition => "FS".into(),
        DataType::Signature => "Signature".into(),
        DataType::GenericJson => "GenericJSON".into(),
        DataType::Generic => "Generic".into(),
        DataType::CryptoMessage => "CryptoMsg".into(),
        DataType::Sbom => "SBOM".into(),
        DataType::OciRootIndex => "OCI.RootIndex".into(),
        DataType::OciBlob => "OCI.Blob".into(),
        other => format!("{other:?}"),
    }
}

struct Row {
    path: String,
    bytes: u64,
    used: usize,
    total: i64,
    deterministic: bool,
    types: BTreeMap<String, usize>,
}

/// Parses `{'OCI.Blob': 3, 'OCI.RootIndex': 1}`.
fn parse_types(s: &str) -> BTreeMap<String, usize> {
    let inner = s
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim();
    if inner.is_empty() {
        return BTreeMap::new();
    }
    inner
        .split(',')
        .map(|kv| {
            let (k, v) = kv
                .split_once(':')
                .unwrap_or_else(|| panic!("bad types {s:?}"));
            (
                k.trim().trim_matches('\'').to_string(),
                v.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("bad count in {s:?}")),
            )
        })
        .collect()
}

/// The rows of the table "Every SIF-format file" of INVENTORY.md.
fn inventory_rows() -> Vec<Row> {
    let text = String::from_utf8(read_upstream("INVENTORY.md")).unwrap();
    let section = text
        .split("## Every SIF-format file")
        .nth(1)
        .expect("INVENTORY.md has the table \"Every SIF-format file\"");
    let section = section.split("\n## ").next().unwrap();
    let mut rows = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 5, "bad inventory row {line:?}");
        let (used, total) = cells[2].split_once('/').expect("used/total");
        rows.push(Row {
            path: cells[0].trim_matches('`').to_string(),
            bytes: cells[1].parse().expect("size"),
            used: used.parse().expect("used"),
            total: total.parse().expect("total"),
            deterministic: match cells[3] {
                "det" => true,
                "nondet" => false,
                other => panic!("bad det column {other:?}"),
            },
            types: parse_types(cells[4]),
        });
    }
    rows
}

/// Rows of INVENTORY.md that describe an older version of the file. The three
/// SingularityCE-style files were regenerated under the 4.5 root-index rule (docs/FORMAT.md,
/// The root index: entries carry `artifactType`), but the table still lists the 4.4 versions,
/// which now live beside them as `*.v44.*`. For these rows the test checks the listed
/// values against the `.v44` file, and that the listed file differs from it only by the
/// `artifactType` fields of its root index.
const INVENTORY_ERRATA: [(&str, &str); 3] = [
    (
        "generated/squashfs-image.oci.sif",
        "generated/squashfs-image.v44.oci.sif",
    ),
    (
        "generated/squashfs-image.signed1.oci.sif",
        "generated/squashfs-image.v44.signed1.oci.sif",
    ),
    (
        "generated/squashfs-image.signed2.oci.sif",
        "generated/squashfs-image.v44.signed2.oci.sif",
    ),
];

/// The root index of `rel` and its `artifactType` fields' total length.
fn artifact_type_bytes(rel: &str) -> u64 {
    const FIELD: &str = r#","artifactType":"application/vnd.oci.image.config.v1+json""#;
    let image = open_and_check(rel);
    let root = image
        .find_one(|d| d.data_type() == DataType::OciRootIndex)
        .unwrap();
    let text = String::from_utf8(image.read_object(root).unwrap()).unwrap();
    (text.matches(FIELD).count() * FIELD.len()) as u64
}

#[test]
fn inventory_table_matches_the_files() {
    let rows = inventory_rows();
    let mut failures = Vec::new();
    for row in &rows {
        let described = match INVENTORY_ERRATA.iter().find(|(f, _)| *f == row.path) {
            Some(&(file, v44)) => {
                let extra = artifact_type_bytes(file);
                assert!(extra > 0, "{file}: root index without artifactType");
                assert_eq!(
                    artifact_type_bytes(v44),
                    0,
                    "{v44}: root index with artifactType"
                );
                let (a, b) = (open_and_check(file), open_and_check(v44));
                assert_eq!(
                    a.file_len().unwrap(),
                    b.file_len().unwrap() + extra,
                    "{file} should differ from {v44} only by artifactType"
                );
                v44
            }
            None => row.path.as_str(),
        };
        let image = open_and_check(described);
        let h = image.header();
        let mut types: BTreeMap<String, usize> = BTreeMap::new();
        for (_, d) in image.descriptors() {
            *types.entry(inventory_type_name(d.data_type())).or_default() += 1;
        }
        let got = (
            image.file_len().unwrap(),
            image.used_count(),
            h.descriptors_total,
            h.is_deterministic(),
            &types,
        );
        let want = (
            row.bytes,
            row.used,
            row.total,
            row.deterministic,
            &row.types,
        );
        if got != want {
            failures.push(format!(
                "{}: (size, used, total, det, types) = {got:?}, INVENTORY.md says {want:?}",
                row.path
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!(
        "{} INVENTORY.md rows agree with the files ({} through INVENTORY_ERRATA)",
        rows.len(),
        INVENTORY_ERRATA.len()
    );
    assert!(
        rows.len() >= 100,
        "only {} inventory rows parsed",
        rows.len()
    );
}

/// A few files checked field by field against the worked examples of the specification kept with the test data (docs/FORMAT.md says where).
#[test]
fn header_and_descriptor_fields() {
    // docs/FORMAT.md, Header and §7.3: TestWrite/DockerManifest.golden.
    let image = open_and_check("sylabs-oci-tools/pkg/sif/testdata/TestWrite/DockerManifest.golden");
    let h = image.header();
    assert_eq!(
        (
            h.descriptors_free,
            h.descriptors_total,
            h.descriptors_offset,
            h.descriptors_size
        ),
        (0, 4, 4096, 2340)
    );
    assert_eq!((h.data_offset, h.data_size), (6436, 5532));
    assert_eq!(h.arch_code(), "00");
    assert!(h.launch_script_bytes().is_empty());
    let placed: Vec<_> = image
        .descriptors()
        .map(|(slot, d)| {
            (
                slot,
                d.id,
                d.data_type(),
                d.offset,
                d.size,
                d.group_id(),
                d.link(),
            )
        })
        .collect();
    assert_eq!(
        placed,
        [
            (0, 1, DataType::OciBlob, 6436, 3208, 1, Link::None),
            (1, 2, DataType::OciBlob, 9644, 1485, 1, Link::None),
            (2, 3, DataType::OciBlob, 11129, 525, 1, Link::None),
            (3, 4, DataType::OciRootIndex, 11654, 314, 1, Link::None),
        ]
    );
    let root = image.descriptor_by_id(4).unwrap();
    assert_eq!(root.size_with_padding, 314);
    assert!(root
        .oci_digest()
        .unwrap()
        .unwrap()
        .to_string()
        .starts_with("sha256:7043de9b"));

    // docs/FORMAT.md, Where objects go: one-group.sif, partitions aligned to 4096.
    let image = open_and_check("sylabs-sif/test/images/one-group.sif");
    let h = image.header();
    assert_eq!((h.data_offset, h.arch_name()), (32176, "386"));
    let parts: Vec<_> = image
        .descriptors()
        .map(|(_, d)| {
            (
                d.offset,
                d.size,
                d.size_with_padding,
                d.partition().unwrap(),
            )
        })
        .collect();
    assert_eq!((parts[0].0, parts[0].1, parts[0].2), (32768, 4, 596));
    assert_eq!((parts[1].0, parts[1].1, parts[1].2), (36864, 4096, 8188));
    assert_eq!(
        (parts[0].3 .0, parts[0].3 .1),
        (fs_type::RAW, part_type::SYSTEM)
    );
    assert_eq!(
        (parts[1].3 .0, parts[1].3 .1),
        (fs_type::SQUASHFS, part_type::PRIM_SYS)
    );

    // The minimal OCI-SIF of SingularityCE: a 3-byte root index, real UUID and time.
    let image = open_and_check("sylabs-singularity/test/images/empty.oci.sif");
    assert_eq!(
        image.header().uuid(),
        "5971df2a-358a-48a3-a5df-651c93974856"
    );
    assert_eq!(image.header().created_at, 1_689_330_683);
    let root = image
        .find_one(|d| d.data_type() == DataType::OciRootIndex)
        .unwrap();
    assert_eq!(image.read_object(root).unwrap(), b"{}\n");

    // A signed corpus image: the signature is linked to group 1 and has no fingerprint
    // (DSSE).
    let image = open_and_check("sylabs-sif/test/images/one-group-signed-dsse.sif");
    let sig = image
        .find_one(|d| d.data_type() == DataType::Signature)
        .unwrap();
    assert_eq!((sig.id, sig.group_id(), sig.link()), (3, 0, Link::Group(1)));
    match sig.typed_extra().unwrap() {
        Extra::Signature { hash_type, entity } => {
            assert_eq!(hash_type, 1);
            assert!(entity[..20].iter().all(|&b| b == 0));
        }
        other => panic!("unexpected extra {other:?}"),
    }
}

/// Legacy native SIFs made by Singularity 3.x with the v1 library (docs/FORMAT.md, How the reference library changes an image).
#[test]
fn legacy_busybox_images() {
    for (arch, code) in [("amd64", "02"), ("arm64", "04"), ("ppc64le", "06")] {
        let rel = format!("sylabs-singularity/e2e/testdata/busybox_{arch}.sif");
        let image = open_and_check(&rel);
        let h = image.header();
        assert_eq!(h.data_offset, 32768, "{rel}: v1 data offset");
        assert_eq!(
            (h.arch_code(), h.arch_name()),
            (code.to_string(), arch),
            "{rel}"
        );
        assert!(!h.is_deterministic(), "{rel}");

        let names: Vec<String> = image.descriptors().map(|(_, d)| d.name()).collect();
        assert_eq!(
            names[..3],
            [".", "inspect-metadata.json", "oci-config.json"],
            "{rel}"
        );
        assert!(names[3].starts_with("squashfs-"), "{rel}: {names:?}");

        let by_type = |t: DataType| image.find_one(|d| d.data_type() == t).unwrap();
        let def = image.read_object(by_type(DataType::Deffile)).unwrap();
        assert!(
            def.starts_with(b"BootStrap: docker\nFrom: busybox"),
            "{rel}"
        );

        let meta = image
            .find_one(|d| d.name() == "inspect-metadata.json")
            .unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&image.read_object(meta).unwrap()).unwrap();
        assert!(json["data"]["attributes"].is_object(), "{rel}");
        let config = image.find_one(|d| d.name() == "oci-config.json").unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&image.read_object(config).unwrap()).unwrap();
        assert_eq!(json["Cmd"][0], "sh", "{rel}");

        let root = by_type(DataType::Partition);
        assert!(root.is_primary_partition(), "{rel}");
        assert_eq!(root.partition().unwrap().0, fs_type::SQUASHFS);
        let mut magic = [0u8; 4];
        image.read_object_at(root, 0, &mut magic).unwrap();
        assert_eq!(&magic, b"hsqs", "{rel}: squashfs superblock");
        // Page-aligned objects and the UID/GID the v1 library recorded.
        assert!(
            image.descriptors().all(|(_, d)| d.offset % 4096 == 0),
            "{rel}"
        );

        let sig = by_type(DataType::Signature);
        assert_eq!(sig.link(), Link::Group(1), "{rel}");
        assert_ne!(sig.uid, 0, "{rel}: v1 records the signer's uid");
        let text = image.read_object(sig).unwrap();
        assert!(
            text.starts_with(b"-----BEGIN PGP SIGNED MESSAGE-----"),
            "{rel}"
        );
    }
}
