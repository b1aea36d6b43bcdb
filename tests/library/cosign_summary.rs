//! `/cosign/SUMMARY` and `/cosign/summary.json` (the man page, THE SUMMARY) on the real
//! fixtures, without a kernel: they list exactly the entries discovery finds, each under
//! the image it is about with its kind and layer digest, and say whether each image is
//! signed and, with a key or identity, verified.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::common::{cosign_data, cosign_key as key, cosign_sif, upstream};
use crate::cosign_keyless::{keyless_trust, GITHUB, KEYLESS};
use sifmount::cosign::{discover, EntryKind, Trust};
use sifmount::oci::OciSif;
use sifmount::sif::OpenMode;
use sifmount::tree::{Tree, TreeOptions, SUMMARY_JSON, SUMMARY_TEXT};

const ONE_SIGNATURE: &str = "generated/squashfs-image.signed1.oci.sif";
const TWO_SIGNATURES: &str = "generated/squashfs-image.signed2.oci.sif";
const SIGNED_AND_ATTESTED: &str = "generated/hello-world-cosign-manifest.oci.sif";
const MULTI_ARCH: &str = "generated/hello-world-cosign-manifest-list.oci.sif";
/// The key the upstream squashfs images are signed with.
const SQUASHFS_KEY: &str = "generated/example-cosign.pub";

fn open(path: &Path, trust: Trust) -> Tree {
    let options = TreeOptions {
        trust,
        ..Default::default()
    };
    let (tree, report) = Tree::open_with(path, &options).unwrap();
    // (The containers/image fixtures hold the manifest without its blobs: warnings about
    // /images, none about the entries.)
    assert!(
        !report.warnings.iter().any(|w| w.contains(": cosign")),
        "{:?}",
        report.warnings
    );
    tree
}

fn read(tree: &Tree, path: &str) -> Vec<u8> {
    let a = tree.resolve(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut buf = vec![0u8; a.size as usize];
    assert_eq!(tree.read(a.ino, 0, &mut buf).unwrap(), buf.len(), "{path}");
    buf
}

/// The JSON array each kind is listed in.
fn list_of(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Signature => "signatures",
        EntryKind::Attestation => "attestations",
        EntryKind::Sbom => "sboms",
        EntryKind::Referrer => "referrers",
    }
}

/// The summary of `path` as a tree with `trust` shows it, checked against discovery on
/// the same file: every entry listed once, under its target, in its kind's list, with
/// its layer digest and manifest, in both files. Returns the JSON and the text.
fn checked_summary(path: &Path, trust: Trust) -> (Value, String) {
    let tree = open(path, trust);
    let cosign = tree.resolve("cosign").unwrap().ino;
    let listed: Vec<&str> = tree
        .entries(cosign)
        .unwrap()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert!(
        listed.contains(&SUMMARY_TEXT) && listed.contains(&SUMMARY_JSON),
        "ls /cosign shows the summary: {listed:?}"
    );
    let text = String::from_utf8(read(&tree, &format!("cosign/{SUMMARY_TEXT}"))).unwrap();
    let json: Value =
        serde_json::from_slice(&read(&tree, &format!("cosign/{SUMMARY_JSON}"))).unwrap();

    let oci = OciSif::open(path, OpenMode::ReadOnly).unwrap();
    let found = discover(&oci);
    assert!(found.warnings.is_empty(), "{:?}", found.warnings);
    // name → (list, layer digest, manifest, target)
    let want: BTreeMap<String, (String, String, String, String)> = found
        .entries
        .iter()
        .map(|e| {
            let v = (
                list_of(e.kind).to_string(),
                e.layer.digest.to_string(),
                e.manifest.to_string(),
                e.target.to_string(),
            );
            (e.name.clone(), v)
        })
        .collect();
    assert_eq!(want.len(), found.entries.len(), "entry names are unique");

    let mut got = BTreeMap::new();
    let targets = json["images"]
        .as_array()
        .unwrap()
        .iter()
        .chain(json["other_targets"].as_array().unwrap());
    for t in targets {
        let target = t["digest"].as_str().unwrap();
        for list in ["signatures", "attestations", "sboms", "referrers"] {
            for e in t[list].as_array().unwrap() {
                let name = e["entry"].as_str().unwrap().to_string();
                let v = (
                    list.to_string(),
                    e["digest"].as_str().unwrap().to_string(),
                    e["manifest"].as_str().unwrap().to_string(),
                    target.to_string(),
                );
                assert!(got.insert(name.clone(), v).is_none(), "{name} listed twice");
            }
        }
    }
    assert_eq!(
        got,
        want,
        "{}: summary.json lists what discovery finds",
        path.display()
    );
    assert_eq!(json["schema"], 1);
    assert_eq!(json["entries"], found.entries.len());
    assert_eq!(json["omitted_entries"], 0);
    assert_eq!(json["omitted_targets"], 0);

    // The text: one layer line per entry, with its digest and its directory name.
    for (name, (_, digest, _, _)) in &want {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(&format!(" {name}")))
            .collect();
        assert_eq!(lines.len(), 1, "{name}: {lines:?}\n{text}");
        assert!(
            lines[0].starts_with("   ├── 🍒 ") || lines[0].starts_with("   └── 🍒 "),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].contains(&format!("🍒 {digest} {name}")),
            "{}",
            lines[0]
        );
    }
    let layer_lines = text.lines().filter(|l| l.contains("🍒")).count();
    assert_eq!(layer_lines, want.len(), "{text}");
    // Each image's block starts as cosign tree's output does.
    for image in json["images"].as_array().unwrap() {
        let header = format!(
            "📦 Supply Chain Security Related artifacts for an image: images/{}@{}",
            image["name"].as_str().unwrap(),
            image["digest"].as_str().unwrap()
        );
        assert!(text.lines().any(|l| l == header), "{header} in\n{text}");
        assert_eq!(
            image["path"],
            format!("images/{}", image["name"].as_str().unwrap())
        );
    }
    (json, text)
}

fn only_image(json: &Value) -> &Value {
    let images = json["images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "{json:#}");
    &images[0]
}

#[test]
fn one_and_two_signatures_are_listed_in_cosign_tree_shape() {
    for (file, n) in [(ONE_SIGNATURE, 1), (TWO_SIGNATURES, 2)] {
        let (json, text) = checked_summary(&upstream(file), Trust::default());
        let image = only_image(&json);
        assert_eq!(image["signatures"].as_array().unwrap().len(), n, "{file}");
        assert_eq!(image["signed"], true);
        assert_eq!(image["verified"], Value::Null, "no key: not checked");
        assert_eq!(json["verifying"], false);
        let name = image["name"].as_str().unwrap();
        let hex = image["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap();
        let tag = format!("└── 🔐 Signatures for an image tag: images/{name}:sha256-{hex}.sig");
        assert!(text.lines().any(|l| l == tag), "{tag} in\n{text}");
        assert!(
            text.contains("signed: yes; verified: not checked"),
            "{text}"
        );
        // The last layer of a section is drawn as the last branch.
        let layers: Vec<&str> = text.lines().filter(|l| l.contains("🍒")).collect();
        assert!(layers.last().unwrap().starts_with("   └──"), "{text}");
        assert!(
            layers[..n - 1].iter().all(|l| l.starts_with("   ├──")),
            "{text}"
        );
    }
}

#[test]
fn a_signature_and_an_attestation_are_in_their_own_sections() {
    let (json, text) = checked_summary(&upstream(SIGNED_AND_ATTESTED), Trust::default());
    let image = only_image(&json);
    assert_eq!(
        image["signatures"][0]["entry"], "sig-432f982638b3a-1",
        "{json:#}"
    );
    assert_eq!(image["attestations"][0]["entry"], "att-432f982638b3a-1");
    assert_eq!(
        image["attestations"][0]["media_type"],
        "application/vnd.dsse.envelope.v1+json"
    );
    assert!(text.contains("└── 💾 Attestations for an image tag: images/sha256-432f982638b3:sha256-432f982638b3aefab73cc58ab28f5c16e96fdb504e8c134fc58dff4bae8bf338.att\n"), "{text}");
}

#[test]
fn platform_signatures_of_a_multi_arch_image_are_other_targets_with_their_path() {
    let (json, _) = checked_summary(&upstream(MULTI_ARCH), Trust::default());
    let image = only_image(&json);
    assert_eq!(image["signatures"].as_array().unwrap().len(), 1);
    let others = json["other_targets"].as_array().unwrap();
    assert_eq!(others.len(), 9, "one per platform");
    for t in others {
        let path = t["path"].as_str().unwrap();
        assert!(
            path.starts_with(&format!(
                "images/{}/linux-",
                image["name"].as_str().unwrap()
            )),
            "{path}"
        );
        assert_eq!(t["name"], Value::Null);
        assert_eq!(t["signed"], true);
    }
}

#[test]
fn with_the_right_key_every_entry_is_verified_and_with_another_none() {
    let path = upstream(TWO_SIGNATURES);
    let (json, text) = checked_summary(&path, Trust::keys(vec![key_at(SQUASHFS_KEY)]));
    let image = only_image(&json);
    assert_eq!(json["verifying"], true);
    assert_eq!(image["verified"], true);
    for s in image["signatures"].as_array().unwrap() {
        assert_eq!(s["verified"], true, "{s}");
        let verdict = s["verdict"].as_str().unwrap();
        assert!(
            verdict.starts_with("ok: verified with") && verdict.contains("example-cosign.pub"),
            "{verdict}"
        );
    }
    assert!(
        text.contains("signed: yes; verified: yes (2 of 2 signing entries listed)"),
        "{text}"
    );
    assert_eq!(text.matches(" ✅ ok: verified with").count(), 2, "{text}");

    let (json, text) = checked_summary(&path, Trust::keys(vec![key("keys/synth-cosign.pub")]));
    let image = only_image(&json);
    assert_eq!(image["signed"], true);
    assert_eq!(image["verified"], false);
    for s in image["signatures"].as_array().unwrap() {
        assert_eq!(s["verified"], false, "{s}");
        assert!(
            s["verdict"].as_str().unwrap().starts_with("failed: "),
            "{s}"
        );
    }
    assert!(
        text.contains("signed: yes; verified: no (none of 2 signing entries listed)"),
        "{text}"
    );
    assert_eq!(text.matches(" ❌ failed: ").count(), 2, "{text}");
}

fn key_at(rel: &str) -> sifmount::cosign::PublicKey {
    sifmount::cosign::PublicKey::load(&upstream(rel)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_keyless_signature_is_verified_by_its_identity() {
    let dir = tempfile::tempdir().unwrap();
    let sif = dir.path().join("keyless.oci.sif");
    cosign_sif::containers_image_sif_with_target(&cosign_data(KEYLESS), &sif, |_| {});
    let (json, _) = checked_summary(&sif, keyless_trust("mitr@redhat.com", GITHUB));
    let image = only_image(&json);
    assert_eq!(image["verified"], true);
    let verdict = image["signatures"][0]["verdict"].as_str().unwrap();
    assert!(
        verdict.starts_with("ok: signed by mitr@redhat.com"),
        "{verdict}"
    );
    let (json, _) = checked_summary(&sif, keyless_trust("other@redhat.com", GITHUB));
    assert_eq!(only_image(&json)["verified"], false);
}

#[test]
fn a_referrer_bundle_is_listed_under_its_manifest_and_signs_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let sif = dir.path().join("referrer.sif");
    cosign_sif::layout_sif(&cosign_data("synth-referrer-bundle"), &sif, true);
    let (json, text) = checked_summary(&sif, Trust::keys(vec![key("keys/synth-cosign.pub")]));
    let image = only_image(&json);
    let r = &image["referrers"][0];
    assert_eq!(r["entry"], "ref-432f982638b3a-d9fda2f803ef");
    assert_eq!(
        r["media_type"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    assert!(r["manifest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:d9fda2f803ef"));
    assert_eq!(image["signed"], true, "a bundle vouches for its subject");
    assert_eq!(image["verified"], true);
    let section = format!(
        "└── 🔗 application/vnd.dev.sigstore.bundle.v0.3+json artifacts via OCI referrer: \
         images/{}@{}",
        image["name"].as_str().unwrap(),
        r["manifest"].as_str().unwrap()
    );
    assert!(text.lines().any(|l| l == section), "{section} in\n{text}");
}

#[test]
fn an_unsigned_image_says_so() {
    let (json, text) = checked_summary(
        &upstream("generated/squashfs-image.oci.sif"),
        Trust::default(),
    );
    let image = only_image(&json);
    assert_eq!(image["signed"], false);
    assert_eq!(json["entries"], 0);
    assert!(
        text.contains("└── signed: no (no signatures, attestations, SBOMs or referrers)\n"),
        "{text}"
    );
}
