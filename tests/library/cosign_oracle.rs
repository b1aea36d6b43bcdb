//! sifmount's verdicts against a verifier nobody here wrote: sigstore-js
//! (`tests/oracle/sigstore-js`, pinned by its `package-lock.json`; the test runs
//! `npm ci` there when it is not installed yet, and `.ci/run` does so first). Each case is verified by sifmount and by sigstore-js, offline,
//! against the same trusted root; both must agree, and the cases include verifying and
//! failing ones so that agreement cannot come from one answer for all.
//!
//! A legacy cosign layer is handed to sigstore-js as the v0.1 bundle sifmount reads its
//! annotations as (`layer_as_bundle`), with the payload as the artifact. What sigstore-js
//! does not know about, the in-toto subject or `docker-manifest-digest` against the
//! image, is not compared here (`cosign_keyless.rs` checks it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;

use super::cosign_keyless::{
    empty_image_digest, fixture, keyless_trust, move_log_time, root, verify_dir, BUNDLE, GITHUB,
    KEYLESS, KEY_REKOR,
};
use crate::common::cosign_sif::DirSignature;
use crate::common::{cosign_data, cosign_key};
use sifmount::cosign::{
    layer_as_bundle, verify, EntryKind, Subject, Trust, Verdict, BUNDLE_MEDIA_TYPE_PREFIX,
};
use sifmount::sif::Digest;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const PROD: &str = "sigstore/trusted_root.prod.json";
const STAGING: &str = "sigstore/trusted_root.staging.json";

/// The oracle's directory, installed from its lock file (`npm ci`) when it is not yet;
/// fails, naming what is missing, when that cannot be done.
fn oracle() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/sigstore-js");
    let installed = dir.join("node_modules/@sigstore/verify/package.json");
    if !installed.is_file() {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "npm cannot be run ({e}): the sigstore-js cross-check needs node and npm \
                     (`apt-get install nodejs npm`; .ci/run does this)"
                )
            });
        assert!(
            out.status.success() && installed.is_file(),
            "`npm ci --prefix {}` failed ({}): {}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir
}

/// One question put to both verifiers.
struct Case {
    name: &'static str,
    ours: Verdict,
    bundle: String,
    artifact: Option<Vec<u8>>,
    root: &'static str,
    key: Option<&'static str>,
    identity: Option<(&'static str, &'static str)>,
}

/// sigstore-js's answer: `Ok(())` when it verifies, else its reason.
fn sigstore_js(oracle: &Path, case: &Case, scratch: &Path) -> Result<(), String> {
    let bundle = scratch.join(format!("{}.bundle.json", case.name));
    std::fs::write(&bundle, &case.bundle).unwrap();
    let mut cmd = Command::new("node");
    cmd.arg(oracle.join("verify.js"))
        .arg("--root")
        .arg(cosign_data(case.root))
        .arg("--bundle")
        .arg(&bundle);
    if let Some(bytes) = &case.artifact {
        let artifact = scratch.join(format!("{}.artifact", case.name));
        std::fs::write(&artifact, bytes).unwrap();
        cmd.arg("--artifact").arg(artifact);
    }
    if let Some(key) = case.key {
        cmd.arg("--key").arg(cosign_data(key));
    }
    if let Some((san, issuer)) = case.identity {
        cmd.args(["--identity", san, "--issuer", issuer]);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("node cannot be run ({e}): install nodejs and npm"));
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match out.status.code() {
        Some(0) if stdout == "verified" => Ok(()),
        Some(1) if stdout.starts_with("failed: ") => Err(stdout),
        _ => panic!(
            "{}: sigstore-js did not run: {:?} {stdout} {}",
            case.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn subject<'a>(sig: &'a DirSignature, recorded: &'a Digest, target: &'a Digest) -> Subject<'a> {
    Subject {
        kind: EntryKind::Signature,
        media_type: &sig.media_type,
        payload: &sig.payload,
        recorded_digest: recorded,
        annotations: &sig.annotations,
        target,
    }
}

/// A case for a legacy layer of a `dir:` fixture.
fn legacy_case(
    name: &'static str,
    sig: &DirSignature,
    target: &Digest,
    trust: &Trust,
    root: &'static str,
    key: Option<&'static str>,
    identity: Option<(&'static str, &'static str)>,
) -> Case {
    let recorded = Digest::of(&sig.payload);
    let bundle =
        layer_as_bundle(&subject(sig, &recorded, target)).unwrap_or_else(|e| panic!("{name}: {e}"));
    Case {
        name,
        ours: verify_dir(sig, target, trust),
        bundle,
        artifact: Some(sig.payload.clone()),
        root,
        key,
        identity,
    }
}

fn with_annotations(sig: &DirSignature, annotations: BTreeMap<String, String>) -> DirSignature {
    DirSignature {
        media_type: sig.media_type.clone(),
        payload: sig.payload.clone(),
        annotations,
    }
}

fn staging(trust: Trust) -> Trust {
    Trust {
        root: Some(root(STAGING)),
        ..trust
    }
}

#[test]
fn sifmount_and_sigstore_js_agree_on_every_real_signature_and_its_changes() {
    let oracle = oracle();
    let mut cases = Vec::new();

    // The keyless signature: its identity, others, the staging root, a changed payload
    // byte, a moved log time.
    let (sig, target) = fixture(KEYLESS);
    let mitr = ("mitr@redhat.com", GITHUB);
    let trust = keyless_trust(mitr.0, mitr.1);
    cases.push(legacy_case(
        "keyless",
        &sig,
        &target,
        &trust,
        PROD,
        None,
        Some(mitr),
    ));
    let other = ("someone@redhat.com", GITHUB);
    cases.push(legacy_case(
        "keyless-other-identity",
        &sig,
        &target,
        &keyless_trust(other.0, other.1),
        PROD,
        None,
        Some(other),
    ));
    let google = ("mitr@redhat.com", "https://accounts.google.com");
    cases.push(legacy_case(
        "keyless-other-issuer",
        &sig,
        &target,
        &keyless_trust(google.0, google.1),
        PROD,
        None,
        Some(google),
    ));
    cases.push(legacy_case(
        "keyless-staging",
        &sig,
        &target,
        &staging(keyless_trust(mitr.0, mitr.1)),
        STAGING,
        None,
        Some(mitr),
    ));
    let mut changed = with_annotations(&sig, sig.annotations.clone());
    let at = changed
        .payload
        .windows(7)
        .position(|w| w == b"cosign ")
        .expect("the simple-signing payload names cosign");
    changed.payload[at] = b'C';
    cases.push(legacy_case(
        "keyless-payload-byte",
        &changed,
        &target,
        &trust,
        PROD,
        None,
        Some(mitr),
    ));
    let mut moved = with_annotations(&sig, sig.annotations.clone());
    move_log_time(&mut moved.annotations, 1);
    cases.push(legacy_case(
        "keyless-log-time",
        &moved,
        &target,
        &trust,
        PROD,
        None,
        Some(mitr),
    ));

    // The key-signed signature with its Rekor entry: the SET under either root, moved.
    let (sig, target) = fixture(KEY_REKOR);
    let key = "containers-image/cosign2.pub";
    let keys = || Trust::keys(vec![cosign_key(key)]);
    cases.push(legacy_case(
        "key-rekor",
        &sig,
        &target,
        &keys(),
        PROD,
        Some(key),
        None,
    ));
    cases.push(legacy_case(
        "key-rekor-staging",
        &sig,
        &target,
        &staging(keys()),
        STAGING,
        Some(key),
        None,
    ));
    let mut moved = with_annotations(&sig, sig.annotations.clone());
    move_log_time(&mut moved.annotations, -60);
    cases.push(legacy_case(
        "key-rekor-log-time",
        &moved,
        &target,
        &keys(),
        PROD,
        Some(key),
        None,
    ));

    // The real v0.3 bundle: its identity, another, the staging root, a changed
    // statement byte.
    let bundle = std::fs::read(cosign_data(BUNDLE)).unwrap();
    let empty = empty_image_digest();
    let bundle_case = |name, bytes: &[u8], trust: Trust, root, identity| {
        let media_type = format!("{BUNDLE_MEDIA_TYPE_PREFIX}.v0.3+json");
        let annotations = BTreeMap::new();
        let recorded = Digest::of(bytes);
        let ours = verify(
            &Subject {
                kind: EntryKind::Referrer,
                media_type: &media_type,
                payload: bytes,
                recorded_digest: &recorded,
                annotations: &annotations,
                target: &empty,
            },
            &trust,
        );
        Case {
            name,
            ours,
            bundle: String::from_utf8(bytes.to_vec()).unwrap(),
            artifact: None,
            root,
            key: None,
            identity: Some(identity),
        }
    };
    let cody = ("cody@soyland.com", GITHUB);
    cases.push(bundle_case(
        "bundle",
        &bundle,
        keyless_trust(cody.0, cody.1),
        PROD,
        cody,
    ));
    cases.push(bundle_case(
        "bundle-other-identity",
        &bundle,
        keyless_trust(mitr.0, mitr.1),
        PROD,
        mitr,
    ));
    cases.push(bundle_case(
        "bundle-staging",
        &bundle,
        staging(keyless_trust(cody.0, cody.1)),
        STAGING,
        cody,
    ));
    let mut json: Value = serde_json::from_slice(&bundle).unwrap();
    let mut statement = B64
        .decode(json["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let at = statement.windows(8).position(|w| w == b"https://").unwrap();
    statement[at] = b'H';
    json["dsseEnvelope"]["payload"] = B64.encode(&statement).into();
    cases.push(bundle_case(
        "bundle-statement-byte",
        &serde_json::to_vec(&json).unwrap(),
        keyless_trust(cody.0, cody.1),
        PROD,
        cody,
    ));

    let scratch = tempfile::tempdir().unwrap();
    let mut verified = Vec::new();
    let mut disagreements = Vec::new();
    for case in &cases {
        let theirs = sigstore_js(&oracle, case, scratch.path());
        let ours_ok = matches!(case.ours, Verdict::Verified { .. });
        eprintln!(
            "{}: sifmount {} sigstore-js {theirs:?}",
            case.name,
            case.ours.to_file_text().trim_end()
        );
        if ours_ok != theirs.is_ok() {
            disagreements.push(format!(
                "{}: sifmount {:?}, sigstore-js {theirs:?}",
                case.name, case.ours
            ));
        }
        if ours_ok {
            verified.push(case.name);
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
    // The cases that should verify, and only those, did: agreement is not "both fail".
    assert_eq!(verified, ["keyless", "key-rekor", "bundle"]);
}
