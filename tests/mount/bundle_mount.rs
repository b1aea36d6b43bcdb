//! Sigstore bundles dropped into a real read-write mount's `/cosign` (the man page,
//! ATTACHING, "Sigstore bundles"): `cp x.sigstore.json MNT/cosign/` commits at close as
//! cosign 3 stores a bundle (an OCI 1.1 referrer listed under a `_cosign:` name,
//! docs/FORMAT.md, Cosign: referrers), the entry shows and verifies like any referrer,
//! `rm -r` gives back the file as it was, and refusals say why in an `.error` file and
//! change nothing.
//!
//! Needs /dev/fuse, `fusermount3`, `skopeo`, `siftool` and coreutils; fails, saying how to
//! install what is missing, rather than skipping.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::cosign_sif::{
    cosign_referrer_manifest, empty_image_sif, layout_sif, with_created,
};
use crate::common::mounted::{self, assert_ok, cp, ls, read, run_tool, write_close, Mode, Mount};
use crate::common::{assert_bytes_eq, cosign_data};
use sifmount::oci::{BlobSource, Descriptor, Index, LayoutDir, OciSif, REF_NAME};
use sifmount::sif::OpenMode;

const BUNDLE: &str = "cosign-repo/oci-attestation.sigstore.json";
const GITHUB: &str = "https://github.com/login/oauth";
const V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const SYNTH: &str = "synth-referrer-bundle";
const SYNTH_BUNDLE: &str =
    "sha256:8e6954b1fa340c6e20730710edc847a8718088833cf619213c1a3a7f7b07e407";
const HELLO_LAYOUT: &str = "ocitools-hello-world-cosign-manifest";
const SOME_TIME: &str = "2025-01-01T00:00:00Z";

/// The one `ref-…` entry in `/cosign`.
fn referrer_entry(m: &Mount) -> String {
    let refs: Vec<String> = ls(&m.path("cosign"))
        .into_iter()
        .filter(|n| n.starts_with("ref-"))
        .collect();
    let [entry] = refs.as_slice() else {
        panic!("one referrer entry: {refs:?}; log:\n{}", m.log_text())
    };
    entry.clone()
}

fn skopeo(args: &[&str]) -> mounted::Output {
    mounted::require_tool("skopeo", "skopeo");
    mounted::run(Command::new("skopeo").args(args), mounted::TOOL_TIMEOUT)
}

/// The synth layout's key-signed bundle, as a file `name` in `dir`.
fn synth_bundle_file(dir: &Path, name: &str) -> PathBuf {
    let bytes = LayoutDir::new(cosign_data(SYNTH))
        .read_blob(&SYNTH_BUNDLE.parse().unwrap())
        .unwrap()
        .expect("the synth layout holds its bundle");
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

fn hello_image(dir: &Path) -> PathBuf {
    let path = dir.join("hello.oci.sif");
    layout_sif(&cosign_data(HELLO_LAYOUT), &path, false);
    path
}

#[test]
fn a_real_keyless_bundle_attaches_verifies_and_goes_with_rm_r() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("empty.oci.sif");
    let target = empty_image_sif(&image);
    let before = read(&image);
    let bundle_path = cosign_data(BUNDLE);
    let bundle = read(&bundle_path);

    // verify_drops with another identity: refused at close, nothing written.
    let m = Mount::new(
        &image,
        Mode::Foreground,
        &[
            "--certificate-identity",
            "someone@example.com",
            "--certificate-oidc-issuer",
            GITHUB,
            "-o",
            "verify_drops",
        ],
    );
    let got = write_close(&m.path("cosign").join("att.sigstore.json"), &bundle);
    assert_eq!(
        got.map_err(|e| e.raw_os_error()),
        Err(Some(libc::EPERM)),
        "log:\n{}",
        m.log_text()
    );
    let why = fs::read_to_string(m.path("cosign").join("att.sigstore.json.error")).unwrap();
    assert!(
        why.contains("the certificate's identity cody@soyland.com is not"),
        "{why}"
    );
    m.unmount();
    assert_bytes_eq(&read(&image), &before, "the image after a refused drop");

    // With the identity that signed it (and verify_drops): attached.
    let m = Mount::new(
        &image,
        Mode::Foreground,
        &[
            "--certificate-identity",
            "cody@soyland.com",
            "--certificate-oidc-issuer",
            GITHUB,
            "-o",
            "verify_drops",
        ],
    );
    let mp = m.mountpoint.to_str().unwrap().to_string();
    let alone = skopeo(&["inspect", &format!("oci:{mp}")]);
    assert_ok(&alone, "skopeo inspect oci:MNT before the drop", &m);

    let out = cp(&[&bundle_path, &m.path("cosign")]);
    assert_ok(&out, "cp oci-attestation.sigstore.json MNT/cosign/", &m);
    let entry = referrer_entry(&m);
    let entry_dir = m.path("cosign").join(&entry);
    assert!(
        entry.starts_with(&format!("ref-{}-", &target.hex()[..13])),
        "{entry}"
    );
    assert_bytes_eq(
        &read(&entry_dir.join("payload")),
        &bundle,
        "the entry's payload",
    );
    assert_eq!(
        fs::read_to_string(entry_dir.join("media-type"))
            .unwrap()
            .trim(),
        V03
    );
    let verified = fs::read_to_string(entry_dir.join("verified")).unwrap();
    assert!(
        verified
            .starts_with("ok: signed by cody@soyland.com (issuer https://github.com/login/oauth)"),
        "{verified}"
    );

    // The root index: the image still the one entry without a name; the referrer named.
    let index = Index::parse(&read(&m.path("index.json"))).unwrap();
    let unnamed: Vec<&Descriptor> = index
        .entries()
        .iter()
        .filter(|e| e.annotation(REF_NAME).is_none())
        .collect();
    assert_eq!(unnamed.len(), 1, "{:?}", index.entries());
    assert_eq!(unnamed[0].digest, target);
    let named: Vec<&Descriptor> = index
        .entries()
        .iter()
        .filter(|e| e.annotation(REF_NAME).is_some())
        .collect();
    assert_eq!(named.len(), 1, "{:?}", index.entries());
    let name = named[0].ref_name().unwrap();
    assert!(
        name.starts_with("_cosign:"),
        "SingularityCE skips it: {name}"
    );
    let manifest = read(&m.path("blobs/sha256").join(named[0].digest.hex()));
    let statement = statement_of(&bundle);
    assert_bytes_eq(
        &with_created(&manifest, SOME_TIME),
        &cosign_referrer_manifest(
            &bundle,
            V03,
            statement["predicateType"].as_str(),
            unnamed[0],
            SOME_TIME,
        ),
        "the referrer manifest (COSIGN.md §6.1)",
    );
    assert_eq!(
        ls(&m.path("images")),
        [format!("sha256-{}", &target.hex()[..12])]
    );

    // skopeo reads the image as before; at the root, now two manifests, it asks which.
    let image_dir = format!("oci:{mp}/images/sha256-{}", &target.hex()[..12]);
    let out = skopeo(&["inspect", &image_dir]);
    assert_ok(&out, "skopeo inspect oci:MNT/images/<image>", &m);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["Digest"], target.to_string());
    let root = skopeo(&["inspect", &format!("oci:{mp}")]);
    assert!(
        !root.success() && root.stderr.contains("more than one image"),
        "{}",
        root.stderr
    );

    // siftool, the reference reader, lists every object.
    let objects = OciSif::open(&image, OpenMode::ReadOnly)
        .unwrap()
        .sif()
        .descriptors()
        .count();
    let out = run_tool("siftool", "siftool", &[&"list", &image]);
    assert_ok(&out, "siftool list", &m);
    let rows = out
        .stdout
        .lines()
        .filter(|l| {
            l.split('|')
                .next()
                .is_some_and(|id| id.trim().parse::<u32>().is_ok())
        })
        .count();
    assert_eq!(rows, objects, "{}", out.stdout);

    // rm -r: gone, and the file is what it was before the drop, byte for byte.
    let out = run_tool("rm", "coreutils", &[&"-r", &entry_dir]);
    assert_ok(&out, &format!("rm -r MNT/cosign/{entry}"), &m);
    assert!(
        ls(&m.path("cosign")).is_empty(),
        "{:?}",
        ls(&m.path("cosign"))
    );
    m.unmount();
    assert_bytes_eq(&read(&image), &before, "the image after attach and rm -r");
}

fn statement_of(bundle: &[u8]) -> serde_json::Value {
    let env = sifmount::cosign::bundle_envelope(bundle).unwrap().unwrap();
    serde_json::from_slice(&env.payload).unwrap()
}

#[test]
fn a_key_signed_bundle_verifies_and_verify_drops_refuses_it_under_another_key() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = synth_bundle_file(dir.path(), "synth.sigstore.json");
    let key = cosign_data("keys/synth-cosign.pub");
    let other = cosign_data("keys/singularity-cosign.pub");

    // Under another key with verify_drops: refused at close, said why, nothing written.
    let image = hello_image(dir.path());
    let before = read(&image);
    let m = Mount::new(
        &image,
        Mode::Foreground,
        &["--key", other.to_str().unwrap(), "-o", "verify_drops"],
    );
    let cosign = m.path("cosign");
    let got = write_close(&cosign.join("synth.sigstore.json"), &read(&bundle));
    assert_eq!(
        got.map_err(|e| e.raw_os_error()),
        Err(Some(libc::EPERM)),
        "log:\n{}",
        m.log_text()
    );
    let why = fs::read_to_string(cosign.join("synth.sigstore.json.error")).unwrap();
    assert!(
        why.contains("synth.sigstore.json")
            && why.contains("does not verify, and this mount takes only signatures that do"),
        "{why}"
    );
    assert!(!ls(&cosign).iter().any(|n| n.starts_with("ref-")));
    m.unmount();
    assert_bytes_eq(&read(&image), &before, "the image after a refused drop");

    // Under its key: attached and verified; the same bundle again changes nothing.
    let m = Mount::new(
        &image,
        Mode::Foreground,
        &["--key", key.to_str().unwrap(), "-o", "verify_drops"],
    );
    let out = cp(&[&bundle, &m.path("cosign")]);
    assert_ok(&out, "cp synth.sigstore.json MNT/cosign/", &m);
    let entry = referrer_entry(&m);
    let verified = fs::read_to_string(m.path("cosign").join(&entry).join("verified")).unwrap();
    assert!(verified.starts_with("ok: verified with "), "{verified}");
    let attached = read(&image);
    assert_ne!(attached, before);
    let again = dir.path().join("again.sigstore.json");
    fs::copy(&bundle, &again).unwrap();
    let out = cp(&[&again, &m.path("cosign")]);
    assert_ok(&out, "cp again.sigstore.json MNT/cosign/", &m);
    assert_eq!(referrer_entry(&m), entry);
    assert_bytes_eq(
        &read(&image),
        &attached,
        "the image after the same bundle again",
    );
    m.unmount();
}

/// Each refused with EINVAL at close and an `.error` naming the file and the problem; the
/// image is unchanged.
#[test]
fn bad_bundles_are_refused_through_the_mount() {
    let dir = tempfile::tempdir().unwrap();
    let image = hello_image(dir.path());
    let before = read(&image);
    let synth = read(&synth_bundle_file(dir.path(), "synth.sigstore.json"));
    let text = String::from_utf8(synth.clone()).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "elsewhere.sigstore.json",
            read(&cosign_data(BUNDLE)),
            "is a manifest or index in this image",
        ),
        (
            "truncated.sigstore.json",
            synth[..synth.len() - 40].to_vec(),
            "not valid JSON",
        ),
        (
            "unknown.sigstore.json",
            text.replacen(V03, "application/vnd.dev.sigstore.bundle.v0.9+json", 1)
                .into_bytes(),
            "is not a bundle version sifmount knows",
        ),
    ];
    let m = Mount::new(&image, Mode::Foreground, &[]);
    let cosign = m.path("cosign");
    for (name, bytes, problem) in cases {
        let got = write_close(&cosign.join(name), &bytes);
        assert_eq!(
            got.map_err(|e| e.raw_os_error()),
            Err(Some(libc::EINVAL)),
            "{name}; log:\n{}",
            m.log_text()
        );
        let why = fs::read_to_string(cosign.join(format!("{name}.error")))
            .unwrap_or_else(|e| panic!("{name}.error: {e}; log:\n{}", m.log_text()));
        assert!(why.contains(name) && why.contains(problem), "{name}: {why}");
        assert_eq!(why.trim_end().lines().count(), 1, "{why}");
    }
    assert!(!ls(&cosign).iter().any(|n| n.starts_with("ref-")));
    m.unmount();
    assert_bytes_eq(&read(&image), &before, "the image after refused bundles");
}

/// A referrer `cosign save` left unlisted (found by scanning blobs) is shown but not
/// removed: rm -r says why, and the file is unchanged.
#[test]
fn an_unlisted_referrer_is_not_removed() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("synth.oci.sif");
    layout_sif(&cosign_data(SYNTH), &image, true);
    let before = read(&image);
    let m = Mount::new(&image, Mode::Foreground, &[]);
    let entry = referrer_entry(&m);
    let out = run_tool("rm", "coreutils", &[&"-r", &m.path("cosign").join(&entry)]);
    assert!(!out.success(), "rm -r of an unlisted referrer succeeded");
    assert!(ls(&m.path("cosign")).contains(&entry));
    assert!(
        m.log_text().contains("not listed in the root index"),
        "log:\n{}",
        m.log_text()
    );
    m.unmount();
    assert_bytes_eq(&read(&image), &before, "the image after a refused rm -r");
}
