//! Verification as `cosign verify` does it beyond a key (the man page, VERIFYING): keyless
//! signatures (Fulcio certificate, SCT, Rekor SET, identity and issuer), the Rekor entry
//! of a key-signed signature, and a real sigstore bundle v0.3, each against real
//! material, and each negative case failing for its own reason.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;

use crate::common::cosign_sif::{self, dir_signatures, DirSignature};
use crate::common::{cosign_data, cosign_key, lookup::tree_names};
use sifmount::cosign::{
    utc, verify, EntryKind, Identity, Matcher, Signer, Subject, Trust, TrustRoot, Verdict,
    REKOR_BUNDLE_ANNOTATION,
};
use sifmount::sif::Digest;
use sifmount::tree::{Tree, TreeOptions};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub(crate) const KEYLESS: &str = "containers-image/dir-img-cosign-fulcio-rekor-valid";
pub(crate) const KEY_REKOR: &str = "containers-image/dir-img-cosign-key-rekor-valid";
pub(crate) const BUNDLE: &str = "cosign-repo/oci-attestation.sigstore.json";
pub(crate) const GITHUB: &str = "https://github.com/login/oauth";

/// ORIGINS.md: when Rekor logged each signature.
const KEYLESS_LOG_TIME: i64 = 1674247893;
const KEY_REKOR_LOG_TIME: i64 = 1674251859;

pub(crate) fn identity(subject: &str, issuer: &str) -> Identity {
    Identity {
        subject: Matcher::Exact(subject.into()),
        issuer: Matcher::Exact(issuer.into()),
    }
}

pub(crate) fn keyless_trust(subject: &str, issuer: &str) -> Trust {
    Trust {
        identity: Some(identity(subject, issuer)),
        ..Trust::default()
    }
}

pub(crate) fn root(rel: &str) -> TrustRoot {
    TrustRoot::load(&cosign_data(rel)).unwrap()
}

/// One signature of a `dir:` fixture, as an entry about `target`.
pub(crate) fn verify_dir(sig: &DirSignature, target: &Digest, trust: &Trust) -> Verdict {
    verify(
        &Subject {
            kind: EntryKind::Signature,
            media_type: &sig.media_type,
            payload: &sig.payload,
            recorded_digest: &Digest::of(&sig.payload),
            annotations: &sig.annotations,
            target,
        },
        trust,
    )
}

pub(crate) fn fixture(rel: &str) -> (DirSignature, Digest) {
    let dir = cosign_data(rel);
    let target = Digest::of(&std::fs::read(dir.join("manifest.json")).unwrap());
    let mut sigs = dir_signatures(&dir);
    assert_eq!(sigs.len(), 1, "{rel}");
    (sigs.remove(0), target)
}

pub(crate) fn reason(v: &Verdict, what: &str) -> String {
    match v {
        Verdict::Failed { reason } => reason.clone(),
        other => panic!("{what}: {other:?}, expected a failure"),
    }
}

/// The Rekor bundle annotation with its integrated time moved by `by` seconds.
pub(crate) fn move_log_time(annotations: &mut BTreeMap<String, String>, by: i64) {
    let text = annotations.get_mut(REKOR_BUNDLE_ANNOTATION).unwrap();
    let mut v: Value = serde_json::from_str(text).unwrap();
    let t = v["Payload"]["integratedTime"].as_i64().unwrap();
    v["Payload"]["integratedTime"] = (t + by).into();
    *text = v.to_string();
}

#[test]
fn a_real_keyless_signature_verifies_with_its_identity_and_issuer() {
    let (sig, target) = fixture(KEYLESS);
    let v = verify_dir(&sig, &target, &keyless_trust("mitr@redhat.com", GITHUB));
    assert_eq!(
        v,
        Verdict::Verified {
            by: Signer::Certificate {
                subject: "mitr@redhat.com".into(),
                issuer: GITHUB.into()
            },
            log_time: Some(KEYLESS_LOG_TIME)
        }
    );
    assert_eq!(
        v.to_file_text(),
        "ok: signed by mitr@redhat.com (issuer https://github.com/login/oauth), \
         logged at 2023-01-20T20:51:33Z\n"
    );
    assert_eq!(utc(KEYLESS_LOG_TIME), "2023-01-20T20:51:33Z");

    // The same with the production root given as a file, and with regular expressions
    // matched as cosign matches them (anywhere, unless anchored).
    let trust = Trust {
        identity: Some(Identity {
            subject: Matcher::regex(r"@redhat\.com$").unwrap(),
            issuer: Matcher::regex("github.com").unwrap(),
        }),
        root: Some(root("sigstore/trusted_root.prod.json")),
        ..Trust::default()
    };
    assert!(verify_dir(&sig, &target, &trust).is_verified());
}

#[test]
fn a_keyless_signature_fails_for_the_wrong_identity_issuer_or_root() {
    let (sig, target) = fixture(KEYLESS);
    let r = reason(
        &verify_dir(&sig, &target, &keyless_trust("someone@redhat.com", GITHUB)),
        "identity",
    );
    assert_eq!(
        r,
        "the certificate's identity mitr@redhat.com is not someone@redhat.com"
    );
    let anchored = Trust {
        identity: Some(Identity {
            subject: Matcher::regex("^redhat").unwrap(),
            issuer: Matcher::Exact(GITHUB.into()),
        }),
        ..Trust::default()
    };
    let r = reason(&verify_dir(&sig, &target, &anchored), "regexp");
    assert!(r.contains("is not matching /^redhat/"), "{r}");

    let r = reason(
        &verify_dir(
            &sig,
            &target,
            &keyless_trust("mitr@redhat.com", "https://accounts.google.com"),
        ),
        "issuer",
    );
    assert_eq!(
        r,
        "the certificate's OIDC issuer https://github.com/login/oauth is not \
         https://accounts.google.com"
    );

    let staging = Trust {
        root: Some(root("sigstore/trusted_root.staging.json")),
        ..keyless_trust("mitr@redhat.com", GITHUB)
    };
    let r = reason(&verify_dir(&sig, &target, &staging), "staging root");
    let name = cosign_data("sigstore/trusted_root.staging.json");
    assert!(
        r.starts_with(&format!("does not verify against {}: ", name.display())),
        "{r}"
    );
}

#[test]
fn a_keyless_signature_fails_when_its_payload_or_log_entry_is_changed() {
    let (sig, target) = fixture(KEYLESS);
    let trust = keyless_trust("mitr@redhat.com", GITHUB);

    // One byte of the payload (the digest recorded for it follows, as a rewritten
    // image would have it): the signature no longer verifies.
    let mut changed = DirSignature {
        media_type: sig.media_type.clone(),
        payload: sig.payload.clone(),
        annotations: sig.annotations.clone(),
    };
    let at = changed
        .payload
        .windows(7)
        .position(|w| w == b"cosign ")
        .unwrap();
    changed.payload[at] = b'C';
    let r = reason(&verify_dir(&changed, &target, &trust), "payload");
    assert!(r.contains("signature"), "{r}");

    // The integrated time moved by a second: the SET no longer verifies.
    let mut moved = DirSignature {
        media_type: sig.media_type.clone(),
        payload: sig.payload.clone(),
        annotations: sig.annotations.clone(),
    };
    move_log_time(&mut moved.annotations, 1);
    let r = reason(&verify_dir(&moved, &target, &trust), "log time");
    assert!(r.contains("inclusion promise") || r.contains("SET"), "{r}");

    // --insecure-ignore-tlog skips the log's inclusion checks, but the time the
    // certificate is checked at still comes from the SET, so it still verifies; no log
    // time is claimed.
    let no_log = Trust {
        ignore_tlog: true,
        ..keyless_trust("mitr@redhat.com", GITHUB)
    };
    let v = verify_dir(&sig, &target, &no_log);
    assert!(
        matches!(v, Verdict::Verified { log_time: None, .. }),
        "{v:?}"
    );
    // That time is trusted only because the SET verifies: moved, it still fails.
    let r = reason(
        &verify_dir(&moved, &target, &no_log),
        "moved, ignoring the log",
    );
    assert!(r.contains("SET") || r.contains("timestamp"), "{r}");

    // Another image's signature: the payload names its own target.
    let other = Digest::of(b"another image");
    let r = reason(&verify_dir(&sig, &other, &trust), "target");
    assert!(
        r.starts_with("docker-manifest-digest sha256:0489474d"),
        "{r}"
    );
    assert!(r.ends_with(&format!("is not the target {other}")), "{r}");
}

#[test]
fn a_keyless_signature_is_not_verified_by_a_key_and_a_keyed_one_not_by_an_identity() {
    let (sig, target) = fixture(KEYLESS);
    let keys = Trust::keys(vec![cosign_key("containers-image/cosign2.pub")]);
    let r = reason(&verify_dir(&sig, &target, &keys), "key");
    assert!(r.starts_with("signature does not verify with "), "{r}");
    assert!(r.contains("--certificate-identity"), "{r}");

    let (sig, target) = fixture(KEY_REKOR);
    let r = reason(
        &verify_dir(&sig, &target, &keyless_trust("mitr@redhat.com", GITHUB)),
        "identity",
    );
    assert!(r.starts_with("no public key to verify with"), "{r}");
    assert!(r.contains("signed with a key, not a certificate"), "{r}");
}

#[test]
fn a_key_signed_entry_with_a_rekor_bundle_has_its_set_checked() {
    let (sig, target) = fixture(KEY_REKOR);
    let key = || cosign_key("containers-image/cosign2.pub");
    let v = verify_dir(&sig, &target, &Trust::keys(vec![key()]));
    let name = cosign_data("containers-image/cosign2.pub")
        .display()
        .to_string();
    assert_eq!(
        v,
        Verdict::Verified {
            by: Signer::Key(name.clone()),
            log_time: Some(KEY_REKOR_LOG_TIME)
        }
    );
    assert_eq!(
        v.to_file_text(),
        format!(
            "ok: verified with {name}, logged at {}\n",
            utc(KEY_REKOR_LOG_TIME)
        )
    );

    let mut moved = DirSignature {
        media_type: sig.media_type.clone(),
        payload: sig.payload.clone(),
        annotations: sig.annotations.clone(),
    };
    move_log_time(&mut moved.annotations, -60);
    let r = reason(
        &verify_dir(&moved, &target, &Trust::keys(vec![key()])),
        "moved",
    );
    assert!(
        r.starts_with(
            "transparency-log entry does not verify against the Sigstore public-good root: "
        ),
        "{r}"
    );
    // --insecure-ignore-tlog: the key alone, as SingularityCE verifies.
    let ignore = Trust {
        ignore_tlog: true,
        ..Trust::keys(vec![key()])
    };
    assert_eq!(
        verify_dir(&moved, &target, &ignore),
        Verdict::Verified {
            by: Signer::Key(name),
            log_time: None
        }
    );
    // The staging root does not know the production Rekor key.
    let staging = Trust {
        root: Some(root("sigstore/trusted_root.staging.json")),
        ..Trust::keys(vec![key()])
    };
    let r = reason(&verify_dir(&sig, &target, &staging), "staging");
    assert!(
        r.starts_with("transparency-log entry does not verify against "),
        "{r}"
    );
}

pub(crate) fn bundle_verdict(bundle: &[u8], target: &Digest, trust: &Trust) -> Verdict {
    verify(
        &Subject {
            kind: EntryKind::Referrer,
            media_type: "application/vnd.dev.sigstore.bundle.v0.3+json",
            payload: bundle,
            recorded_digest: &Digest::of(bundle),
            annotations: &BTreeMap::new(),
            target,
        },
        trust,
    )
}

pub(crate) fn empty_image_digest() -> Digest {
    Digest::of(&std::fs::read(cosign_data("cosign-repo/empty-image/manifest.json")).unwrap())
}

#[test]
fn a_real_keyless_bundle_verifies_its_subject_with_its_identity() {
    let bundle = std::fs::read(cosign_data(BUNDLE)).unwrap();
    let target = empty_image_digest();
    let trust = keyless_trust("cody@soyland.com", GITHUB);
    let v = bundle_verdict(&bundle, &target, &trust);
    let Verdict::Verified {
        by: Signer::Certificate { subject, issuer },
        log_time: Some(t),
    } = &v
    else {
        panic!("{v:?}")
    };
    assert_eq!(
        (subject.as_str(), issuer.as_str()),
        ("cody@soyland.com", GITHUB)
    );
    // The bundle's own record of when Rekor logged it.
    let json: Value = serde_json::from_slice(&bundle).unwrap();
    let logged: i64 = json["verificationMaterial"]["tlogEntries"][0]["integratedTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(*t, logged);

    let r = reason(
        &bundle_verdict(&bundle, &target, &keyless_trust("mitr@redhat.com", GITHUB)),
        "identity",
    );
    assert_eq!(
        r,
        "the certificate's identity cody@soyland.com is not mitr@redhat.com"
    );
    let other = Digest::of(b"another image");
    let r = reason(&bundle_verdict(&bundle, &other, &trust), "subject");
    assert!(r.starts_with("in-toto subject sha256:"), "{r}");
    assert!(r.ends_with(&format!("is not the target {other}")), "{r}");
    let staging = Trust {
        root: Some(root("sigstore/trusted_root.staging.json")),
        ..keyless_trust("cody@soyland.com", GITHUB)
    };
    let r = reason(&bundle_verdict(&bundle, &target, &staging), "staging");
    assert!(r.starts_with("does not verify against "), "{r}");
}

#[test]
fn a_bundle_whose_statement_changed_by_one_byte_fails() {
    let bundle = std::fs::read(cosign_data(BUNDLE)).unwrap();
    let mut json: Value = serde_json::from_slice(&bundle).unwrap();
    let payload = json["dsseEnvelope"]["payload"].as_str().unwrap();
    let mut statement = B64.decode(payload).unwrap();
    // A character of the predicate type's URL: the statement still parses and still
    // names the same subject.
    let at = statement.windows(8).position(|w| w == b"https://").unwrap();
    statement[at] = b'H';
    json["dsseEnvelope"]["payload"] = B64.encode(&statement).into();
    let changed = serde_json::to_vec(&json).unwrap();
    let r = reason(
        &bundle_verdict(
            &changed,
            &empty_image_digest(),
            &keyless_trust("cody@soyland.com", GITHUB),
        ),
        "changed statement",
    );
    assert!(r.starts_with("does not verify against "), "{r}");
}

/// The tree a mount shows: the entry's `verified` file and the image's `signed` file.
#[test]
fn the_tree_shows_keyless_verdicts_per_entry_and_per_image() {
    let dir = tempfile::tempdir().unwrap();
    let sif = dir.path().join("keyless.oci.sif");
    let target = cosign_sif::containers_image_sif_with_target(&cosign_data(KEYLESS), &sif, |_| {});
    let open = |trust: Trust| {
        Tree::open_with(
            &sif,
            &TreeOptions {
                trust,
                ..Default::default()
            },
        )
        .unwrap()
        .0
    };
    let tree = open(keyless_trust("mitr@redhat.com", GITHUB));
    let image = format!("sha256-{}", &target.hex()[..12]);
    assert_eq!(tree_names(&tree, "images"), std::slice::from_ref(&image));
    let entries = tree_names(&tree, "cosign");
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    let read = |tree: &Tree, path: &str| {
        let attr = tree.resolve(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut buf = vec![0; attr.size as usize];
        let n = tree.read(attr.ino, 0, &mut buf).unwrap();
        assert_eq!(n, buf.len(), "{path}");
        String::from_utf8(buf).unwrap()
    };
    let verified = read(&tree, &format!("cosign/{entry}/verified"));
    assert_eq!(
        verified,
        "ok: signed by mitr@redhat.com (issuer https://github.com/login/oauth), \
         logged at 2023-01-20T20:51:33Z\n"
    );
    assert_eq!(
        read(&tree, &format!("images/{image}/signed")),
        format!("verified: by 1 of 1 entry ({entry})\n{entry}: {verified}")
    );

    let tree = open(keyless_trust("other@redhat.com", GITHUB));
    let signed = read(&tree, &format!("images/{image}/signed"));
    assert!(
        signed.starts_with(&format!(
            "failed: none of 1 entry verifies; first {entry}: failed: the certificate's identity"
        )),
        "{signed}"
    );
}

/// A log of the test's own, trusted in place of Rekor, re-signs the real keyless
/// signature's entry at a time of the test's choosing: the certificate, chain and SCT
/// stay real, so the only thing wrong with a time outside the certificate's ten minutes
/// is the time.
#[test]
fn a_keyless_signature_logged_outside_its_certificates_validity_fails() {
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::EncodePublicKey as _;
    let log_key = p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap();
    let spki = log_key
        .verifying_key()
        .to_public_key_der()
        .unwrap()
        .into_vec();
    let log_id = Digest::of(&spki);

    let dir = tempfile::tempdir().unwrap();
    let mut root: Value = serde_json::from_slice(
        &std::fs::read(cosign_data("sigstore/trusted_root.prod.json")).unwrap(),
    )
    .unwrap();
    root["tlogs"] = serde_json::json!([{
        "baseUrl": "https://log.example",
        "hashAlgorithm": "SHA2_256",
        "publicKey": {
            "rawBytes": B64.encode(&spki),
            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
            "validFor": { "start": "2020-01-01T00:00:00Z" },
        },
        "logId": { "keyId": B64.encode(log_id.as_bytes()) },
    }]);
    let root_path = dir.path().join("trusted_root.json");
    std::fs::write(&root_path, serde_json::to_vec(&root).unwrap()).unwrap();

    let (sig, target) = fixture(KEYLESS);
    let logged_at = |time: i64| {
        let mut changed = DirSignature {
            media_type: sig.media_type.clone(),
            payload: sig.payload.clone(),
            annotations: sig.annotations.clone(),
        };
        let text = changed
            .annotations
            .get_mut(REKOR_BUNDLE_ANNOTATION)
            .unwrap();
        let mut rekor: Value = serde_json::from_str(text).unwrap();
        let body = rekor["Payload"]["body"].as_str().unwrap().to_string();
        let index = rekor["Payload"]["logIndex"].as_i64().unwrap();
        // What a Rekor SET signs: the entry as RFC 8785 canonical JSON (keys sorted).
        let signed = format!(
            r#"{{"body":"{body}","integratedTime":{time},"logID":"{}","logIndex":{index}}}"#,
            log_id.hex()
        );
        let set: p256::ecdsa::DerSignature = log_key.sign(signed.as_bytes());
        rekor["SignedEntryTimestamp"] = B64.encode(set.as_bytes()).into();
        rekor["Payload"]["integratedTime"] = time.into();
        rekor["Payload"]["logID"] = log_id.hex().into();
        *text = rekor.to_string();
        changed
    };
    let trust = Trust {
        root: Some(TrustRoot::load(&root_path).unwrap()),
        ..keyless_trust("mitr@redhat.com", GITHUB)
    };
    // At the real time the re-signed entry verifies: the test's log is trusted.
    let v = verify_dir(&logged_at(KEYLESS_LOG_TIME), &target, &trust);
    assert!(
        matches!(
            v,
            Verdict::Verified {
                log_time: Some(KEYLESS_LOG_TIME),
                ..
            }
        ),
        "{v:?}"
    );
    // The certificate is valid from 20:51:31 to 21:01:31 on 2023-01-20.
    for (outside, why) in [
        (KEYLESS_LOG_TIME - 3600, "CertNotValidYet"),
        (KEYLESS_LOG_TIME + 3600, "CertExpired"),
    ] {
        let r = reason(&verify_dir(&logged_at(outside), &target, &trust), "outside");
        assert!(r.starts_with("does not verify against "), "{r}");
        assert!(
            r.contains("certificate chain") && r.contains(why),
            "{outside}: {r}"
        );
    }
}
