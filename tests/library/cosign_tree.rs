//! The `/cosign` directory of the tree (the man page, ATTACHING), without a kernel: every
//! signature and attestation of the real cosign fixtures appears once with the bytes of
//! the source layout, referrers and containers/image signatures appear with every
//! annotation file, and `verified` says what `cosign verify --key` would.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::lookup::tree_names as names;
use crate::common::{cosign_data, cosign_key as key, cosign_sif, upstream};
use base64::Engine as _;
use sifmount::cosign::{PublicKey, Trust};
use sifmount::sif::{DataType, Digest, OpenMode, SifImage};
use sifmount::tree::{Kind, Tree, TreeOptions};

fn open(path: &Path, keys: Vec<PublicKey>) -> Tree {
    let (tree, report) = Tree::open_with(
        path,
        &TreeOptions {
            trust: Trust::keys(keys),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        report.warnings.is_empty(),
        "{}: {:?}",
        path.display(),
        report.warnings
    );
    tree
}

fn read(tree: &Tree, path: &str) -> Vec<u8> {
    let a = tree.resolve(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut buf = vec![0u8; a.size as usize];
    assert_eq!(tree.read(a.ino, 0, &mut buf).unwrap(), buf.len());
    buf
}

fn text(tree: &Tree, path: &str) -> String {
    String::from_utf8(read(tree, path)).unwrap()
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

/// Checks every `_cosign` layer of `layout` against the tree's `/cosign`; returns how
/// many entries that is.
fn check_against_layout(tree: &Tree, layout: &Path) -> usize {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut expected = Vec::new();
    for entry in index["manifests"].as_array().unwrap() {
        let Some(name) = entry["annotations"]["org.opencontainers.image.ref.name"].as_str() else {
            continue;
        };
        let tag = name.strip_prefix("_cosign:sha256-").unwrap();
        let (hex, suffix) = tag.split_once('.').unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&blob(layout, entry["digest"].as_str().unwrap())).unwrap();
        for (i, layer) in manifest["layers"].as_array().unwrap().iter().enumerate() {
            let dir = format!("cosign/{suffix}-{}-{}", &hex[..13], i + 1);
            expected.push(dir.clone());
            let payload = blob(layout, layer["digest"].as_str().unwrap());
            assert_eq!(
                read(tree, &format!("{dir}/payload")),
                payload,
                "{dir}/payload"
            );
            let annotations: BTreeMap<String, String> =
                serde_json::from_value(layer["annotations"].clone()).unwrap_or_default();
            let shown: BTreeMap<String, String> =
                serde_json::from_slice(&read(tree, &format!("{dir}/annotations"))).unwrap();
            assert_eq!(shown, annotations, "{dir}/annotations");
            let sig = &annotations["dev.cosignproject.cosign/signature"];
            assert_eq!(
                &text(tree, &format!("{dir}/signature")),
                sig,
                "{dir}/signature"
            );
            let target = text(tree, &format!("{dir}/target"));
            assert_eq!(
                target.lines().next(),
                Some(format!("sha256:{hex}").as_str())
            );
            assert_eq!(
                text(tree, &format!("{dir}/media-type")),
                format!("{}\n", layer["mediaType"].as_str().unwrap())
            );
            if suffix == "att" {
                let envelope: serde_json::Value = serde_json::from_slice(&payload).unwrap();
                let statement = base64::engine::general_purpose::STANDARD
                    .decode(envelope["payload"].as_str().unwrap())
                    .unwrap();
                assert_eq!(read(tree, &format!("{dir}/statement.json")), statement);
                let st: serde_json::Value = serde_json::from_slice(&statement).unwrap();
                assert_eq!(
                    text(tree, &format!("{dir}/predicate-type")),
                    format!("{}\n", st["predicateType"].as_str().unwrap())
                );
            } else {
                assert!(tree.resolve(&format!("{dir}/statement.json")).is_err());
            }
        }
    }
    let mut shown: Vec<String> = names(tree, "cosign")
        .into_iter()
        .map(|n| format!("cosign/{n}"))
        .collect();
    shown.sort();
    expected.sort();
    assert_eq!(
        shown, expected,
        "every layer appears once, and nothing else"
    );
    expected.len()
}

#[test]
fn real_single_image_fixture_shows_its_signature_and_attestation() {
    let tree = open(
        &upstream("generated/hello-world-cosign-manifest.oci.sif"),
        vec![],
    );
    let layout = cosign_data("ocitools-hello-world-cosign-manifest");
    assert_eq!(check_against_layout(&tree, &layout), 2);
    let sig = "cosign/sig-432f982638b3a-1";
    assert_eq!(
        text(&tree, &format!("{sig}/target")),
        "sha256:432f982638b3aefab73cc58ab28f5c16e96fdb504e8c134fc58dff4bae8bf338\n\
         images/sha256-432f982638b3\n"
    );
    assert_eq!(
        names(&tree, "images/sha256-432f982638b3/signatures"),
        ["att-432f982638b3a-1", "sig-432f982638b3a-1"]
    );
    let link = tree
        .resolve("images/sha256-432f982638b3/signatures/sig-432f982638b3a-1")
        .unwrap();
    assert_eq!(link.kind, Kind::Symlink);
    assert_eq!(
        tree.readlink(link.ino).unwrap(),
        "../../../cosign/sig-432f982638b3a-1"
    );
    // The payload is the blob itself (one inode, two names).
    let payload = tree.resolve(&format!("{sig}/payload")).unwrap();
    let blob = tree
        .resolve("blobs/sha256/bbfb5811b9c372086df099d763e00380ea89957b527694c98327fc1a96bf9464")
        .unwrap();
    assert_eq!(payload.ino, blob.ino);
    assert!(
        tree.resolve(&format!("{sig}/verified")).is_err(),
        "no --key, no verified file"
    );
}

#[test]
fn real_multi_arch_fixture_shows_every_platform_signature_once() {
    let tree = open(
        &upstream("generated/hello-world-cosign-manifest-list.oci.sif"),
        vec![],
    );
    let layout = cosign_data("ocitools-hello-world-cosign-manifest-list");
    assert_eq!(check_against_layout(&tree, &layout), 11);
    // Platform images link their own signatures; the list links its own and the .att.
    let amd64 = "images/sha256-00e1ee7c898a/linux-amd64";
    let own = names(&tree, &format!("{amd64}/signatures"));
    assert_eq!(own.len(), 1, "{own:?}");
    let target = text(&tree, &format!("cosign/{}/target", own[0]));
    assert_eq!(target.lines().nth(1), Some(amd64));
    assert_eq!(
        names(&tree, "images/sha256-00e1ee7c898a/signatures").len(),
        2
    );
}

#[test]
fn real_fixtures_verify_with_their_key_and_fail_with_another() {
    for file in [
        "generated/hello-world-cosign-manifest.oci.sif",
        "generated/hello-world-cosign-manifest-list.oci.sif",
    ] {
        let good = open(&upstream(file), vec![key("keys/singularity-cosign.pub")]);
        let bad = open(&upstream(file), vec![key("keys/synth-cosign.pub")]);
        for entry in names(&good, "cosign") {
            let ok = text(&good, &format!("cosign/{entry}/verified"));
            assert!(ok.starts_with("ok"), "{file}: {entry}: {ok}");
            assert!(ok.contains("singularity-cosign.pub"), "{ok}");
            let failed = text(&bad, &format!("cosign/{entry}/verified"));
            assert!(
                failed.starts_with("failed") && failed.contains("does not verify"),
                "{file}: {entry}: {failed}"
            );
        }
    }
}

#[test]
fn a_tampered_payload_reports_the_digest_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("tampered.sif");
    std::fs::copy(
        upstream("generated/hello-world-cosign-manifest.oci.sif"),
        &copy,
    )
    .unwrap();
    let payload: Digest = "sha256:bbfb5811b9c372086df099d763e00380ea89957b527694c98327fc1a96bf9464"
        .parse()
        .unwrap();
    {
        let sif = SifImage::open(&copy, OpenMode::ReadWrite).unwrap();
        let (_, d) = sif
            .descriptors()
            .find(|(_, d)| {
                d.data_type() == DataType::OciBlob
                    && d.oci_digest().and_then(Result::ok) == Some(payload)
            })
            .unwrap();
        // Change "cosign container image signature" into "Cosign …": same size.
        let bytes = sif.read_object(d).unwrap();
        let at = bytes.windows(6).position(|w| w == b"cosign").unwrap();
        sif.storage()
            .write_all_at(b"C", d.offset as u64 + at as u64)
            .unwrap();
    }
    let tree = open(&copy, vec![key("keys/singularity-cosign.pub")]);
    let verdict = text(&tree, "cosign/sig-432f982638b3a-1/verified");
    assert!(
        verdict.starts_with("failed") && verdict.contains("digest"),
        "{verdict}"
    );
    assert!(text(&tree, "cosign/att-432f982638b3a-1/verified").starts_with("ok"));
}

#[test]
fn appended_second_signature_is_a_second_entry_verified_by_its_own_key() {
    let dir = tempfile::tempdir().unwrap();
    let sif = dir.path().join("two.sif");
    let layout = cosign_data("synth-append-second-signature");
    cosign_sif::layout_sif(&layout, &sif, false);
    let keys = vec![
        key("keys/singularity-cosign.pub"),
        key("keys/synth-cosign.pub"),
    ];
    let tree = open(&sif, keys);
    check_against_layout(&tree, &layout);
    for (entry, key_name) in [
        ("sig-432f982638b3a-1", "singularity-cosign.pub"),
        ("sig-432f982638b3a-2", "synth-cosign.pub"),
    ] {
        let v = text(&tree, &format!("cosign/{entry}/verified"));
        assert!(v.starts_with("ok") && v.contains(key_name), "{entry}: {v}");
    }
}

#[test]
fn a_referrer_bundle_left_as_a_stray_blob_appears_as_an_entry() {
    let dir = tempfile::tempdir().unwrap();
    let sif = dir.path().join("referrer.sif");
    let layout = cosign_data("synth-referrer-bundle");
    cosign_sif::layout_sif(&layout, &sif, true);
    let tree = open(&sif, vec![key("keys/synth-cosign.pub")]);
    let entry = "cosign/ref-432f982638b3a-d9fda2f803ef";
    assert_eq!(names(&tree, "cosign"), ["ref-432f982638b3a-d9fda2f803ef"]);
    let bundle = "sha256:8e6954b1fa340c6e20730710edc847a8718088833cf619213c1a3a7f7b07e407";
    assert_eq!(
        read(&tree, &format!("{entry}/payload")),
        blob(&layout, bundle)
    );
    assert_eq!(
        text(&tree, &format!("{entry}/media-type")),
        "application/vnd.dev.sigstore.bundle.v0.3+json\n"
    );
    assert_eq!(
        text(&tree, &format!("{entry}/predicate-type")),
        "https://sigstore.dev/cosign/sign/v1\n"
    );
    let statement: serde_json::Value =
        serde_json::from_slice(&read(&tree, &format!("{entry}/statement.json"))).unwrap();
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        "432f982638b3aefab73cc58ab28f5c16e96fdb504e8c134fc58dff4bae8bf338"
    );
    let v = text(&tree, &format!("{entry}/verified"));
    assert!(v.starts_with("ok"), "{v}");
    assert_eq!(
        names(&tree, "images/sha256-432f982638b3/signatures"),
        ["ref-432f982638b3a-d9fda2f803ef"]
    );
}

#[test]
fn containers_image_signatures_show_every_annotation_file() {
    let cases = [
        ("dir-img-cosign-valid", "cosign.pub", &["signature"][..]),
        ("dir-img-cosign-valid-2", "cosign.pub", &["signature"][..]),
        (
            "dir-img-cosign-key-rekor-valid",
            "cosign2.pub",
            &["bundle", "signature"][..],
        ),
        (
            "dir-img-cosign-fulcio-rekor-valid",
            "",
            &["bundle", "certificate", "chain", "signature"][..],
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (fixture, key_file, files) in cases {
        let src = cosign_data(&format!("containers-image/{fixture}"));
        let sif = dir.path().join(format!("{fixture}.sif"));
        let target = cosign_sif::containers_image_sif(&src, &sif);
        let signatures = cosign_sif::dir_signatures(&src);
        let keys = vec![
            key("containers-image/cosign.pub"),
            key("containers-image/cosign2.pub"),
        ];
        let tree = open(&sif, keys);
        let entries = names(&tree, "cosign");
        assert_eq!(entries.len(), signatures.len(), "{fixture}");
        for (i, sig) in signatures.iter().enumerate() {
            let entry = format!("cosign/sig-{}-{}", &target.hex()[..13], i + 1);
            assert_eq!(read(&tree, &format!("{entry}/payload")), sig.payload);
            for file in files {
                let key = sifmount::cosign::ANNOTATION_FILES
                    .iter()
                    .find(|(_, f)| f == file)
                    .unwrap()
                    .0;
                assert_eq!(
                    text(&tree, &format!("{entry}/{file}")),
                    sig.annotations[key],
                    "{fixture}: {entry}/{file}"
                );
            }
            let present: Vec<String> = names(&tree, &entry)
                .into_iter()
                .filter(|n| {
                    [
                        "bundle",
                        "certificate",
                        "chain",
                        "signature",
                        "rfc3161timestamp",
                    ]
                    .contains(&n.as_str())
                })
                .collect();
            assert_eq!(present, files, "{fixture}: exactly the annotations present");
            let v = text(&tree, &format!("{entry}/verified"));
            if key_file.is_empty() {
                assert!(
                    v.starts_with("failed"),
                    "{fixture}: keyless, no key verifies: {v}"
                );
            } else {
                assert!(
                    v.starts_with("ok") && v.contains(key_file),
                    "{fixture}: {v}"
                );
            }
        }
    }
}
