//! `sifmount --verify IMAGE` with a key or a certificate identity, run as a user runs it:
//! the exit status, one line per entry, the summary per image, `--image`, `--output
//! json`, and the options that are refused rather than ignored (the man page, VERIFYING).

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use super::cli::{assert_status, sifmount};
use crate::common::{self, cosign_data, cosign_sif};

const COSIGN_IMAGE: &str = "generated/hello-world-cosign-manifest.oci.sif";
/// The manifest the signature and attestation of COSIGN_IMAGE sign, and its key.
const SIGNED: &str = "432f982638b3aefab73cc58ab28f5c16e96fdb504e8c134fc58dff4bae8bf338";
const KEY: &str = "keys/singularity-cosign.pub";
const OTHER_KEY: &str = "containers-image/cosign2.pub";
const GITHUB: &str = "https://github.com/login/oauth";

/// `sifmount --verify IMAGE ARGS...`.
fn verify(image: &Path, args: &[&str]) -> Output {
    let mut all: Vec<&std::ffi::OsStr> = vec!["--verify".as_ref(), image.as_os_str()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    sifmount(&all)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `--certificate-identity SUBJECT --certificate-oidc-issuer` GitHub's issuer.
fn identity(subject: &str) -> [&str; 4] {
    [
        "--certificate-identity",
        subject,
        "--certificate-oidc-issuer",
        GITHUB,
    ]
}

fn path_of(rel: &str) -> String {
    cosign_data(rel).display().to_string()
}

#[test]
fn the_right_key_verifies_every_entry_and_exits_0() {
    let image = common::upstream(COSIGN_IMAGE);
    let key = path_of(KEY);
    let o = verify(&image, &["--key", &key]);
    assert_status(&o, 0);
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            format!("9 blobs verified: {}", image.display()),
            format!("sha256-432f982638b3: att-432f982638b3a-1: ok: verified with {key}"),
            format!("sha256-432f982638b3: sig-432f982638b3a-1: ok: verified with {key}"),
            format!("sha256-432f982638b3: verified by 2 of 2 entries (sha256:{SIGNED})"),
        ],
        "{out}"
    );
}

#[test]
fn another_key_fails_every_entry_and_exits_1() {
    // The mistake that used to print "blobs verified" and exit 0.
    let image = common::upstream(COSIGN_IMAGE);
    let key = path_of(OTHER_KEY);
    let o = verify(&image, &["--key", &key]);
    assert_status(&o, 1);
    let out = text(&o.stdout);
    for entry in ["att-432f982638b3a-1", "sig-432f982638b3a-1"] {
        assert!(
            out.contains(&format!(
                "sha256-432f982638b3: {entry}: failed: signature does not verify with {key}\n"
            )),
            "{out}"
        );
    }
    assert!(
        out.ends_with(&format!(
            "sha256-432f982638b3: not verified: none of 2 entries verifies (sha256:{SIGNED})\n"
        )),
        "{out}"
    );
    // Either key of two verifies: one verifying entry is enough, as for cosign.
    let o = verify(&image, &["--key", &key, "--key", &path_of(KEY)]);
    assert_status(&o, 0);
}

#[test]
fn output_json_prints_the_verified_payloads_as_cosign_does() {
    let image = common::upstream(COSIGN_IMAGE);
    let o = verify(&image, &["--key", &path_of(KEY), "--output", "json"]);
    assert_status(&o, 0);
    // The report goes to stderr, so that stdout is one JSON document.
    assert!(
        text(&o.stderr).contains("verified by 2 of 2 entries"),
        "{}",
        text(&o.stderr)
    );
    let json: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o.stdout)));
    let items = json.as_array().expect("an array, as cosign prints");
    assert_eq!(items.len(), 2, "{json}");
    let signature = items
        .iter()
        .find(|v| v["critical"]["type"] == "cosign container image signature")
        .expect("the simple-signing payload");
    assert_eq!(
        signature["critical"]["image"]["docker-manifest-digest"],
        format!("sha256:{SIGNED}")
    );
    let envelope = items
        .iter()
        .find(|v| v["payloadType"] == "application/vnd.in-toto+json")
        .expect("the attestation's DSSE envelope");
    assert!(envelope["signatures"][0]["sig"].is_string(), "{envelope}");

    // Nothing verified: an empty array, exit 1.
    let o = verify(&image, &["--key", &path_of(OTHER_KEY), "--output", "json"]);
    assert_status(&o, 1);
    assert_eq!(text(&o.stdout), "[]\n");
}

#[test]
fn a_keyless_bundle_verifies_by_identity_and_issuer_only() {
    let dir = tempfile::tempdir().unwrap();
    let sif = dir.path().join("empty-with-bundle.oci.sif");
    let bundle = std::fs::read(cosign_data("cosign-repo/oci-attestation.sigstore.json")).unwrap();
    let target = cosign_sif::empty_image_with_bundle(&bundle, &sif);
    let o = verify(&sif, &identity("cody@soyland.com"));
    assert_status(&o, 0);
    let out = text(&o.stdout);
    assert!(
        out.contains(": ok: signed by cody@soyland.com (issuer https://github.com/login/oauth), logged at 2025-02-28T19:18:11Z\n"),
        "{out}"
    );
    assert!(
        out.ends_with(&format!("verified by 1 of 1 entries ({target})\n")),
        "{out}"
    );
    // The referrer manifest holding the bundle is listed in the root index, so it is an
    // image under /images too, but not one that needs a signature.
    assert_eq!(out.matches(" verified by ").count(), 1, "{out}");
    assert!(!out.contains("not verified"), "{out}");

    // A regexp for either, as cosign's -regexp options (unanchored, RE2 syntax).
    let o = verify(
        &sif,
        &[
            "--certificate-identity-regexp",
            "@soyland\\.com$",
            "--certificate-oidc-issuer-regexp",
            "github",
        ],
    );
    assert_status(&o, 0);

    let o = verify(&sif, &identity("mitr@redhat.com"));
    assert_status(&o, 1);
    let out = text(&o.stdout);
    assert!(
        out.contains(
            ": failed: the certificate's identity cody@soyland.com is not mitr@redhat.com\n"
        ),
        "{out}"
    );

    // The staging root does not vouch for a production certificate.
    let staging = path_of("sigstore/trusted_root.staging.json");
    let o = verify(
        &sif,
        &[
            &identity("cody@soyland.com")[..],
            &["--trusted-root", &staging],
        ]
        .concat(),
    );
    assert_status(&o, 1);
    assert!(
        text(&o.stdout).contains(": failed: does not verify against "),
        "{}",
        text(&o.stdout)
    );

    // A key does not verify a keyless bundle.
    let o = verify(&sif, &["--key", &path_of(KEY)]);
    assert_status(&o, 1);
}

#[test]
fn output_json_of_a_keyless_signature_adds_subject_issuer_and_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let sif = dir.path().join("keyless.oci.sif");
    let fixture = cosign_data("containers-image/dir-img-cosign-fulcio-rekor-valid");
    let target = cosign_sif::containers_image_sif_with_target(&fixture, &sif, |_| {});
    let o = verify(
        &sif,
        &[&identity("mitr@redhat.com")[..], &["--output", "json"]].concat(),
    );
    // The fixture has no config or layers: the blob check fails, so the exit status is 1
    // even though the signature verifies.
    assert_status(&o, 1);
    let report = text(&o.stderr);
    assert!(
        report.contains(&format!("verified by 1 of 1 entries ({target})")),
        "{report}"
    );
    let json: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o.stdout)));
    let [item] = json.as_array().unwrap().as_slice() else {
        panic!("one payload: {json}")
    };
    assert_eq!(
        item["critical"]["image"]["docker-manifest-digest"],
        target.to_string()
    );
    let optional = &item["optional"];
    assert_eq!(optional["Subject"], "mitr@redhat.com", "{item}");
    assert_eq!(optional["Issuer"], GITHUB, "{item}");
    // cosign's Bundle: the SET and the log entry as Rekor returned them.
    assert_eq!(
        optional["Bundle"]["Payload"]["integratedTime"], 1674247893,
        "{item}"
    );
    assert!(
        optional["Bundle"]["SignedEntryTimestamp"].is_string(),
        "{item}"
    );
}

#[test]
fn image_selects_one_image_by_name_or_digest() {
    let image = common::upstream(COSIGN_IMAGE);
    let key = path_of(KEY);
    for select in [
        "sha256-432f982638b3",
        &SIGNED[..12],
        &format!("sha256:{SIGNED}"),
    ] {
        let o = verify(&image, &["--key", &key, "--image", select]);
        assert_status(&o, 0);
        assert!(
            text(&o.stdout).contains("verified by 2 of 2 entries"),
            "{select}: {}",
            text(&o.stdout)
        );
    }
    let o = verify(&image, &["--key", &key, "--image", "nope"]);
    assert_status(&o, 2);
    assert!(
        text(&o.stderr).contains(
            "--image nope: {} has no image of that name or digest (its images: sha256-432f982638b3)"
                .replace("{}", &image.display().to_string())
                .as_str()
        ),
        "{}",
        text(&o.stderr)
    );
    // Fewer than 12 hex digits would too easily name the wrong image.
    let o = verify(&image, &["--key", &key, "--image", &SIGNED[..8]]);
    assert_status(&o, 2);
}

#[test]
fn trust_options_are_refused_where_they_would_be_ignored() {
    let image = common::upstream(COSIGN_IMAGE);
    let key = path_of(KEY);
    let refused = |args: &[&std::ffi::OsStr], says: &str| {
        let o = sifmount(args);
        assert_status(&o, 2);
        assert!(
            text(&o.stderr).contains(says),
            "{args:?}: {}",
            text(&o.stderr)
        );
    };
    refused(
        &[
            "--inspect".as_ref(),
            image.as_os_str(),
            "--key".as_ref(),
            key.as_ref(),
        ],
        "apply to a mount and to --verify only",
    );
    refused(
        &[
            "--verify".as_ref(),
            image.as_os_str(),
            "--certificate-identity".as_ref(),
            "x@y".as_ref(),
        ],
        "a certificate identity needs an issuer",
    );
    refused(
        &[
            "--verify".as_ref(),
            image.as_os_str(),
            "--certificate-oidc-issuer".as_ref(),
            GITHUB.as_ref(),
        ],
        "an OIDC issuer needs an identity",
    );
    // --image and --output choose what to verify: without a key or identity there is
    // nothing they would change.
    refused(
        &[
            "--verify".as_ref(),
            image.as_os_str(),
            "--image".as_ref(),
            "sha256-432f982638b3".as_ref(),
        ],
        "--image",
    );
    refused(
        &[
            "--verify".as_ref(),
            image.as_os_str(),
            "--output".as_ref(),
            "json".as_ref(),
        ],
        "--output",
    );
    // A key file that is not a key: named, before anything is checked.
    let o = verify(
        &image,
        &["--key", &path_of("sigstore/trusted_root.prod.json")],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(
        text(&o.stderr).contains("trusted_root.prod.json"),
        "{}",
        text(&o.stderr)
    );
    assert!(o.stdout.is_empty(), "{}", text(&o.stdout));
}
