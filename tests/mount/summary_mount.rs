//! `/cosign/SUMMARY` and `/cosign/summary.json` through a real mount (the man page, THE
//! SUMMARY): `cat` shows the signatures in `cosign tree`'s shape with their verdicts, the
//! JSON parses and names entries one can `cd` to, an attach through a read-write mount
//! shows up in both at once, and the files refuse changes.
//!
//! Needs /dev/fuse, `fusermount3` and coreutils (`cat`, `touch`); fails, saying how to
//! install what is missing, rather than skipping.

use std::fs;
use std::io::ErrorKind;

use serde_json::Value;

use crate::common::mounted::{assert_ok, ls, run_tool, Mode, Mount};
use crate::common::{self, cosign_data, upstream};
use sifmount::tree::{SUMMARY_JSON, SUMMARY_TEXT};

const TWO_SIGNATURES: &str = "generated/squashfs-image.signed2.oci.sif";
const UNSIGNED: &str = "generated/squashfs-image.oci.sif";

fn json(m: &Mount) -> Value {
    let bytes = fs::read(m.path("cosign").join(SUMMARY_JSON)).unwrap();
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("summary.json: {e}"))
}

fn cat_summary(m: &Mount) -> String {
    let out = run_tool("cat", "coreutils", &[&m.path("cosign").join(SUMMARY_TEXT)]);
    assert_ok(&out, "cat MP/cosign/SUMMARY", m);
    out.stdout.clone()
}

#[test]
fn cat_shows_the_signatures_verified_and_the_json_names_entries_to_cd_to() {
    let key = upstream("generated/example-cosign.pub");
    let m = Mount::new(
        &upstream(TWO_SIGNATURES),
        Mode::Foreground,
        &["-o", "ro", "--key", key.to_str().unwrap()],
    );
    let listed: Vec<String> = fs::read_dir(m.path("cosign"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        listed.iter().any(|n| n == SUMMARY_TEXT) && listed.iter().any(|n| n == SUMMARY_JSON),
        "{listed:?}"
    );
    let text = cat_summary(&m);
    let image = &ls(&m.path("images"))[0];
    assert!(
        text.contains(&format!(
            "📦 Supply Chain Security Related artifacts for an image: images/{image}@sha256:"
        )),
        "{text}"
    );
    assert!(
        text.contains("signed: yes; verified: yes (2 of 2 signing entries listed)"),
        "{text}"
    );
    let entries = ls(&m.path("cosign"));
    assert_eq!(entries.len(), 2, "{entries:?}");
    for e in &entries {
        let line = text.lines().find(|l| l.contains(e.as_str())).unwrap();
        assert!(line.contains("✅ ok: verified with"), "{line}");
    }

    let j = json(&m);
    assert_eq!(j["verifying"], true);
    let shown = &j["images"][0];
    assert_eq!(shown["name"], image.as_str());
    assert_eq!(shown["verified"], true);
    let mut named: Vec<String> = shown["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["entry"].as_str().unwrap().to_string())
        .collect();
    named.sort();
    assert_eq!(named, entries);
    for e in &named {
        let payload = fs::read(m.path("cosign").join(e).join("payload")).unwrap();
        let digest = shown["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["entry"] == e.as_str())
            .unwrap()["digest"]
            .clone();
        assert_eq!(
            digest,
            sifmount::sif::Digest::of(&payload).to_string(),
            "{e}: the listed digest is the payload's"
        );
    }
}

#[test]
fn an_attach_through_a_read_write_mount_shows_in_the_summary_which_refuses_changes() {
    let dir = tempfile::tempdir().unwrap();
    let image = common::writable_copy_of(&upstream(UNSIGNED), dir.path(), "image.oci.sif");
    let key = cosign_data("keys/synth-cosign.key");
    let m = Mount::with_env(
        &image,
        Mode::Foreground,
        &["--key", key.to_str().unwrap()],
        &[("COSIGN_PASSWORD", "test-password")],
    );
    let before = cat_summary(&m);
    assert!(
        before.contains("signed: no (no signatures, attestations, SBOMs or referrers)"),
        "{before}"
    );
    assert_eq!(json(&m)["images"][0]["signed"], false);

    let images = ls(&m.path("images"));
    let out = run_tool(
        "touch",
        "coreutils",
        &[&m.path("cosign").join("sign").join(&images[0])],
    );
    assert_ok(&out, "touch MP/cosign/sign/IMAGE", &m);
    let sigs: Vec<String> = ls(&m.path("cosign"))
        .into_iter()
        .filter(|n| n.starts_with("sig-"))
        .collect();
    assert_eq!(sigs.len(), 1, "log:\n{}", m.log_text());

    let after = cat_summary(&m);
    let line = after
        .lines()
        .find(|l| l.contains(sigs[0].as_str()))
        .unwrap_or_else(|| panic!("{} in\n{after}", sigs[0]));
    assert!(line.contains("🍒 sha256:"), "{line}");
    assert!(
        after.contains("└── 🔐 Signatures for an image tag: "),
        "{after}"
    );
    let j = json(&m);
    assert_eq!(j["images"][0]["signed"], true, "{j:#}");
    assert_eq!(j["images"][0]["signatures"][0]["entry"], sigs[0].as_str());
    assert_eq!(j["entries"], 1);

    // Generated files: not drops, and not changed or removed (EPERM from the volume for
    // root, EACCES from the kernel's mode check for anyone else).
    let summary = m.path("cosign").join(SUMMARY_TEXT);
    for (what, result) in [
        ("write", fs::write(&summary, b"mine\n")),
        ("unlink", fs::remove_file(&summary)),
        (
            "write json",
            fs::write(m.path("cosign").join(SUMMARY_JSON), b"{}"),
        ),
    ] {
        let e = result.expect_err(what);
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{what}: {e}");
    }
    assert_eq!(cat_summary(&m), after, "unchanged");
}
