//! Verification of real cosign signatures, attestations and bundles with public keys
//! (docs/FORMAT.md, The payload and what verifies it, §4, §6.3), and the keys and documents it reads.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{self, cosign_data, cosign_key as key};
use sifmount::cosign::{
    bundle_envelope, pae, verify, Bundle, BundleContent, EntryKind, Envelope, PublicKey, Signer,
    Statement, Subject, Trust, Verdict, VerificationMaterial, IN_TOTO_PAYLOAD_TYPE,
    SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE,
};
use sifmount::oci::{Index, LayoutDir, Manifest};
use sifmount::sif::Digest;

fn key_name(rel: &str) -> String {
    cosign_data(rel).display().to_string()
}

const SINGULARITY_KEY: &str = "keys/singularity-cosign.pub";
const SYNTH_KEY: &str = "keys/synth-cosign.pub";

/// One layer of a signature image, with what verifying it needs.
struct Layer {
    /// Where it came from, for messages.
    what: String,
    kind: EntryKind,
    media_type: String,
    digest: Digest,
    annotations: BTreeMap<String, String>,
    payload: Vec<u8>,
    target: Digest,
}

impl Layer {
    fn verify(&self, keys: &[PublicKey]) -> Verdict {
        self.verify_as(&self.payload, &self.target, keys)
    }

    fn verify_as(&self, payload: &[u8], target: &Digest, keys: &[PublicKey]) -> Verdict {
        verify(
            &Subject {
                kind: self.kind,
                media_type: &self.media_type,
                payload,
                recorded_digest: &self.digest,
                annotations: &self.annotations,
                target,
            },
            &Trust::keys(keys.to_vec()),
        )
    }
}

fn read_blob(layout: &Path, digest: &Digest) -> Vec<u8> {
    let path = layout.join("blobs/sha256").join(digest.hex());
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every layer of every `_cosign:sha256-<hex>.sig|.att` image of a layout, with the
/// target taken from the name.
fn tagged_layers(layout_name: &str) -> Vec<Layer> {
    let dir = cosign_data(layout_name);
    let layout = LayoutDir::new(&dir);
    let index = Index::parse(&layout.index_bytes().unwrap()).unwrap();
    let mut out = Vec::new();
    for entry in index.entries() {
        let Some(tag) = entry
            .ref_name()
            .and_then(|n| n.strip_prefix("_cosign:sha256-"))
        else {
            continue;
        };
        let (hex, kind) = if let Some(hex) = tag.strip_suffix(".sig") {
            (hex, EntryKind::Signature)
        } else if let Some(hex) = tag.strip_suffix(".att") {
            (hex, EntryKind::Attestation)
        } else {
            panic!("unexpected tag {tag}");
        };
        let target: Digest = format!("sha256:{hex}").parse().unwrap();
        let manifest = Manifest::parse(&read_blob(&dir, &entry.digest)).unwrap();
        for (i, l) in manifest.layers.iter().enumerate() {
            out.push(Layer {
                what: format!("{layout_name} {tag} layer {i}"),
                kind,
                media_type: l.media_type.clone(),
                digest: l.digest,
                annotations: l.annotations.clone().unwrap_or_default(),
                payload: read_blob(&dir, &l.digest),
                target,
            });
        }
    }
    out
}

/// Verified with `key`; a transparency-log entry, when the entry has one, was checked
/// and its time shown.
fn assert_verified(v: &Verdict, key: &str, what: &str) {
    let Verdict::Verified { by, log_time } = v else {
        panic!("{what}: {v:?}")
    };
    assert_eq!(*by, Signer::Key(key_name(key)), "{what}");
    let mut text = format!("ok: verified with {}", key_name(key));
    if let Some(t) = log_time {
        text.push_str(&format!(", logged at {}", sifmount::cosign::utc(*t)));
    }
    assert_eq!(v.to_file_text(), format!("{text}\n"), "{what}");
}

fn reason(v: &Verdict, what: &str) -> String {
    match v {
        Verdict::Failed { reason } => reason.clone(),
        Verdict::Verified { by, .. } => panic!("{what}: verified by {by:?}, expected a failure"),
    }
}

#[test]
fn real_manifest_signature_and_attestation_verify_with_the_singularity_key() {
    let layers = tagged_layers("ocitools-hello-world-cosign-manifest");
    let kinds: Vec<EntryKind> = layers.iter().map(|l| l.kind).collect();
    assert_eq!(kinds, [EntryKind::Attestation, EntryKind::Signature]);
    let good = [key(SINGULARITY_KEY)];
    for l in &layers {
        assert_verified(&l.verify(&good), SINGULARITY_KEY, &l.what);
    }
}

#[test]
fn real_manifest_list_signatures_all_verify() {
    let layers = tagged_layers("ocitools-hello-world-cosign-manifest-list");
    let sigs = layers
        .iter()
        .filter(|l| l.kind == EntryKind::Signature)
        .count();
    let atts = layers
        .iter()
        .filter(|l| l.kind == EntryKind::Attestation)
        .count();
    assert_eq!(
        (sigs, atts),
        (10, 1),
        "docs/FORMAT.md, Tags and where they live: 10 .sig, 1 .att"
    );
    let good = [key(SINGULARITY_KEY)];
    let targets: std::collections::BTreeSet<Digest> = layers.iter().map(|l| l.target).collect();
    assert_eq!(targets.len(), 10, "the list and its 9 platform manifests");
    for l in &layers {
        assert_verified(&l.verify(&good), SINGULARITY_KEY, &l.what);
    }
}

#[test]
fn a_wrong_key_fails_every_real_entry_and_says_which_key() {
    let wrong = [key(SYNTH_KEY)];
    for layout in [
        "ocitools-hello-world-cosign-manifest",
        "ocitools-hello-world-cosign-manifest-list",
    ] {
        for l in tagged_layers(layout) {
            let v = l.verify(&wrong);
            assert_eq!(
                reason(&v, &l.what),
                format!("signature does not verify with {}", key_name(SYNTH_KEY)),
                "{}",
                l.what
            );
            assert!(v
                .to_file_text()
                .starts_with("failed: signature does not verify with "));
        }
    }
}

#[test]
fn any_key_of_the_list_is_enough_and_is_named() {
    let keys = [key(SYNTH_KEY), key(SINGULARITY_KEY)];
    for l in tagged_layers("ocitools-hello-world-cosign-manifest") {
        assert_verified(&l.verify(&keys), SINGULARITY_KEY, &l.what);
    }
    // Both keys tried and named when neither verifies.
    let keys = [key(SYNTH_KEY), key("containers-image/cosign.pub")];
    let l = &tagged_layers("ocitools-hello-world-cosign-manifest")[1];
    assert_eq!(
        reason(&l.verify(&keys), &l.what),
        format!(
            "signature does not verify with {}, {}",
            key_name(SYNTH_KEY),
            key_name("containers-image/cosign.pub")
        )
    );
}

#[test]
fn a_tampered_payload_reports_the_digest_mismatch() {
    let good = [key(SINGULARITY_KEY)];
    for l in tagged_layers("ocitools-hello-world-cosign-manifest") {
        let mut tampered = l.payload.clone();
        let middle = tampered.len() / 2;
        tampered[middle] ^= 0x01;
        let v = l.verify_as(&tampered, &l.target, &good);
        assert_eq!(
            reason(&v, &l.what),
            format!(
                "payload digest mismatch: recorded {}, actual {}",
                l.digest,
                Digest::of(&tampered)
            )
        );
    }
}

#[test]
fn a_signature_for_another_image_fails_the_claim() {
    let good = [key(SINGULARITY_KEY)];
    let layers = tagged_layers("ocitools-hello-world-cosign-manifest-list");
    // Each platform manifest's signature, checked against the manifest list (and the
    // list's against a platform manifest): validly signed, but about another image.
    let list = layers
        .iter()
        .find(|l| l.kind == EntryKind::Attestation)
        .unwrap()
        .target;
    let platform = layers.iter().find(|l| l.target != list).unwrap().target;
    let mut checked = 0;
    for l in layers.iter().filter(|l| l.kind == EntryKind::Signature) {
        let other = if l.target == list { platform } else { list };
        let v = l.verify_as(&l.payload, &other, &good);
        assert_eq!(
            reason(&v, &l.what),
            format!(
                "docker-manifest-digest {} is not the target {other}",
                l.target
            )
        );
        checked += 1;
    }
    assert_eq!(checked, 10);
    let att = layers
        .iter()
        .find(|l| l.kind == EntryKind::Attestation)
        .unwrap();
    let v = att.verify_as(&att.payload, &platform, &good);
    assert_eq!(
        reason(&v, &att.what),
        format!(
            "in-toto subject sha256:{} is not the target {platform}",
            list.hex()
        )
    );
}

#[test]
fn appended_second_signature_verifies_with_its_own_key() {
    // ORIGINS.md: layer 0 is the original (Singularity key), layer 1 the appended synth
    // signature; "verifies with both public keys" means each layer with its own.
    let layers: Vec<Layer> = tagged_layers("synth-append-second-signature")
        .into_iter()
        .filter(|l| l.kind == EntryKind::Signature)
        .collect();
    assert_eq!(layers.len(), 2);
    let synth = [key(SYNTH_KEY)];
    let singularity = [key(SINGULARITY_KEY)];
    assert_verified(&layers[0].verify(&singularity), SINGULARITY_KEY, "layer 0");
    assert_verified(&layers[1].verify(&synth), SYNTH_KEY, "layer 1");
    assert!(reason(&layers[0].verify(&synth), "layer 0").contains("does not verify"));
    assert!(reason(&layers[1].verify(&singularity), "layer 1").contains("does not verify"));
    let both = [key(SINGULARITY_KEY), key(SYNTH_KEY)];
    assert_verified(&layers[0].verify(&both), SINGULARITY_KEY, "layer 0");
    assert_verified(&layers[1].verify(&both), SYNTH_KEY, "layer 1");
}

/// containers/image keeps its git symlinks as text files naming the link target.
fn read_dir_file(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match std::str::from_utf8(&bytes) {
        Ok(link) if link.starts_with("../") && !link.contains('\n') => {
            read_dir_file(&path.parent().unwrap().join(link))
        }
        _ => bytes,
    }
}

/// The signatures of a containers/image `dir:` image: each `signature-N` is
/// `\0sigstore-json\n` and `{"mimeType","payload"(base64),"annotations"}`; the target is
/// the digest of `manifest.json`.
fn dir_signatures(name: &str) -> Vec<Layer> {
    let dir = cosign_data("containers-image").join(name);
    let target = Digest::of(&read_dir_file(&dir.join("manifest.json")));
    let mut out = Vec::new();
    for n in 1.. {
        let path = dir.join(format!("signature-{n}"));
        if !path.exists() {
            break;
        }
        let bytes = read_dir_file(&path);
        let json = bytes
            .strip_prefix(b"\0sigstore-json\n")
            .unwrap_or_else(|| panic!("{}: no sigstore-json header", path.display()));
        let v: serde_json::Value = serde_json::from_slice(json).unwrap();
        let payload = sifmount::cosign::decode_base64(v["payload"].as_str().unwrap()).unwrap();
        let annotations: BTreeMap<String, String> =
            serde_json::from_value(v["annotations"].clone()).unwrap();
        out.push(Layer {
            what: format!("{name}/signature-{n}"),
            kind: EntryKind::Signature,
            media_type: v["mimeType"].as_str().unwrap().to_string(),
            digest: Digest::of(&payload),
            annotations,
            payload,
            target,
        });
    }
    assert!(!out.is_empty(), "{name}: no signatures");
    out
}

#[test]
fn containers_image_key_signatures_verify() {
    let cases = [
        ("dir-img-cosign-valid", "containers-image/cosign.pub", 1),
        ("dir-img-cosign-valid-2", "containers-image/cosign.pub", 2),
        (
            "dir-img-cosign-key-rekor-valid",
            "containers-image/cosign2.pub",
            1,
        ),
    ];
    for (name, good, count) in cases {
        let layers = dir_signatures(name);
        assert_eq!(layers.len(), count, "{name}");
        for l in &layers {
            assert_eq!(l.media_type, SIMPLE_SIGNING_MEDIA_TYPE);
            assert_verified(&l.verify(&[key(good)]), good, &l.what);
            // The other containers/image key and the Singularity one do not verify it.
            for wrong in [
                "containers-image/cosign.pub",
                "containers-image/cosign2.pub",
                SINGULARITY_KEY,
            ] {
                if wrong != good {
                    let v = l.verify(&[key(wrong)]);
                    assert_eq!(
                        reason(&v, &l.what),
                        format!("signature does not verify with {}", key_name(wrong))
                    );
                }
            }
        }
    }
}

#[test]
fn containers_image_keyless_signature_fails_with_any_key_and_says_it_is_keyless() {
    let layers = dir_signatures("dir-img-cosign-fulcio-rekor-valid");
    let l = &layers[0];
    assert!(l
        .annotations
        .contains_key("dev.sigstore.cosign/certificate"));
    assert!(l.annotations.contains_key("dev.sigstore.cosign/chain"));
    assert!(l.annotations.contains_key("dev.sigstore.cosign/bundle"));
    for k in [
        "containers-image/cosign.pub",
        "containers-image/cosign2.pub",
        SINGULARITY_KEY,
        SYNTH_KEY,
    ] {
        let r = reason(&l.verify(&[key(k)]), &l.what);
        assert!(
            r.starts_with(&format!("signature does not verify with {}", key_name(k))),
            "{r}"
        );
        assert!(r.contains("keyless"), "{r}");
    }
}

#[test]
fn real_keyless_bundle_parses_and_fails_with_a_key() {
    let path = cosign_data("cosign-repo/oci-attestation.sigstore.json");
    let bytes = std::fs::read(&path).unwrap();
    let bundle = Bundle::parse(&bytes).unwrap();
    assert_eq!(
        bundle.media_type.as_deref(),
        Some("application/vnd.dev.sigstore.bundle.v0.3+json")
    );
    let VerificationMaterial::Certificate { der } = &bundle.material else {
        panic!("{:?}", bundle.material)
    };
    assert_eq!(der[0], 0x30, "a DER certificate starts with a SEQUENCE");
    let envelope = bundle_envelope(&bytes).unwrap().expect("a DSSE bundle");
    assert_eq!(bundle.content, BundleContent::Dsse(envelope.clone()));
    assert_eq!(envelope.payload_type, IN_TOTO_PAYLOAD_TYPE);
    assert_eq!(envelope.signatures.len(), 1);
    assert_eq!(envelope.signatures[0].keyid, None, "ORIGINS.md: no keyid");
    let statement = Statement::parse(&envelope.payload).unwrap();
    assert_eq!(envelope.statement().unwrap(), statement);
    let predicate = statement.predicate_type.clone().unwrap();
    assert!(predicate.starts_with("https://"), "{predicate}");
    assert_eq!(statement.subject_sha256.len(), 1, "{statement:?}");
    let subject = &statement.subject_sha256[0];
    assert_eq!(subject.len(), 64);
    // Cross-check against the statement JSON itself.
    let json: serde_json::Value = serde_json::from_slice(&envelope.payload).unwrap();
    assert_eq!(json["predicateType"].as_str(), Some(predicate.as_str()));
    assert_eq!(
        json["subject"][0]["digest"]["sha256"].as_str(),
        Some(subject.as_str())
    );

    let target: Digest = format!("sha256:{subject}").parse().unwrap();
    let layer = Layer {
        what: "oci-attestation.sigstore.json".into(),
        kind: EntryKind::Referrer,
        media_type: "application/vnd.dev.sigstore.bundle.v0.3+json".into(),
        digest: Digest::of(&bytes),
        annotations: BTreeMap::new(),
        payload: bytes,
        target,
    };
    let r = reason(&layer.verify(&[key(SINGULARITY_KEY)]), &layer.what);
    assert!(r.starts_with("signature does not verify with "), "{r}");
    assert!(r.contains("keyless"), "{r}");
}

/// The referrer manifests of a layout: manifests among its blobs that have a subject
/// (`cosign save` lists none of them in index.json).
fn referrers(layout_name: &str) -> Vec<(Digest, Manifest)> {
    let dir = cosign_data(layout_name);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        if let Ok(m) = Manifest::parse(&bytes) {
            if m.subject.is_some() {
                out.push((Digest::of(&bytes), m));
            }
        }
    }
    out
}

#[test]
fn synth_referrer_bundle_parses_and_verifies_with_the_synth_key() {
    let layout = "synth-referrer-bundle";
    let found = referrers(layout);
    assert_eq!(found.len(), 1);
    let (digest, manifest) = &found[0];
    assert_eq!(
        digest.to_string(),
        "sha256:d9fda2f803efb63c37979097fa82fc9838628bc2f8c6c3a9b3504b5f64982d02"
    );
    let target = manifest.subject.as_ref().unwrap().digest;
    let l = &manifest.layers[0];
    let payload = read_blob(&cosign_data(layout), &l.digest);

    let bundle = Bundle::parse(&payload).unwrap();
    assert!(matches!(
        bundle.material,
        VerificationMaterial::PublicKey { hint: Some(_) }
    ));
    let envelope = bundle_envelope(&payload).unwrap().unwrap();
    let statement = envelope.statement().unwrap();
    assert_eq!(
        statement.predicate_type.as_deref(),
        Some("https://sigstore.dev/cosign/sign/v1")
    );
    assert_eq!(
        statement.statement_type.as_deref(),
        Some("https://in-toto.io/Statement/v1")
    );
    assert_eq!(statement.subject_sha256, [target.hex()]);

    let layer = Layer {
        what: "synth referrer bundle".into(),
        kind: EntryKind::Referrer,
        media_type: l.media_type.clone(),
        digest: l.digest,
        annotations: l.annotations.clone().unwrap_or_default(),
        payload,
        target,
    };
    assert_verified(&layer.verify(&[key(SYNTH_KEY)]), SYNTH_KEY, &layer.what);
    let r = reason(&layer.verify(&[key(SINGULARITY_KEY)]), &layer.what);
    assert_eq!(
        r,
        format!(
            "signature does not verify with {}",
            key_name(SINGULARITY_KEY)
        )
    );
    let other = Digest::of(b"another image");
    let r = reason(
        &layer.verify_as(&layer.payload, &other, &[key(SYNTH_KEY)]),
        "",
    );
    assert_eq!(
        r,
        format!(
            "in-toto subject sha256:{} is not the target {other}",
            target.hex()
        )
    );
}

#[test]
fn every_fixture_public_key_loads_as_p256() {
    for rel in [
        SINGULARITY_KEY,
        SYNTH_KEY,
        "containers-image/cosign.pub",
        "containers-image/cosign2.pub",
        "cosign-repo/cosign-test.pub",
    ] {
        let k = key(rel);
        assert_eq!(k.name(), key_name(rel));
        assert_eq!(k.algorithm(), "ECDSA P-256", "{rel}");
    }
}

#[test]
fn bad_key_files_give_errors_naming_the_file() {
    let private = cosign_data("keys/singularity-cosign.key");
    let e = PublicKey::load(&private).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}: ", private.display())), "{e}");
    assert!(
        e.contains("private key (ENCRYPTED COSIGN PRIVATE KEY)"),
        "{e}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 4] = [
        ("garbage.pub", b"\x00\x01 not a key at all", "not a PEM file"),
        (
            "truncated.pub",
            b"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEMjupKDoOehYn\n-----END PUBLIC KEY-----\n",
            "not a valid PKIX public key",
        ),
        (
            "cert.pem",
            b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
            "holds a certificate",
        ),
        ("huge.pub", &[b'A'; 100_000], "larger than 64 KiB"),
    ];
    for (name, content, want) in cases {
        let path = tmp.path().join(name);
        std::fs::write(&path, content).unwrap();
        let e = PublicKey::load(&path).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: ", path.display())), "{e}");
        assert!(e.contains(want), "{name}: {e}");
    }
    let missing = tmp.path().join("missing.pub");
    let e = PublicKey::load(&missing).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: cannot open", missing.display())),
        "{e}"
    );
    let e = PublicKey::load(tmp.path()).unwrap_err().to_string();
    assert!(e.starts_with(&tmp.path().display().to_string()), "{e}");
}

/// A simple-signing payload for `target`, as cosign writes it.
fn simple_signing_payload(target: &Digest) -> Vec<u8> {
    common::simple_signing_for("example.com/x", target, "null")
}

fn signed_layer(payload: Vec<u8>, signature: &[u8], target: Digest) -> Layer {
    let sig = base64_std(signature);
    Layer {
        what: "generated".into(),
        kind: EntryKind::Signature,
        media_type: SIMPLE_SIGNING_MEDIA_TYPE.into(),
        digest: Digest::of(&payload),
        annotations: [(SIGNATURE_ANNOTATION.to_string(), sig)].into(),
        payload,
        target,
    }
}

/// Std base64 with padding, written here so the test does not trust the decoder it tests.
fn base64_std(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An attestation layer: a DSSE envelope over an in-toto statement about `target`.
fn attestation_layer(target: Digest, sign: impl Fn(&[u8]) -> Vec<u8>) -> Layer {
    let statement = format!(
        r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"x","digest":{{"sha256":"{}"}}}}],"predicateType":"https://example.com/p","predicate":{{}}}}"#,
        target.hex()
    );
    let sig = sign(&pae(IN_TOTO_PAYLOAD_TYPE, statement.as_bytes()));
    let envelope = format!(
        r#"{{"payload":"{}","payloadType":"{IN_TOTO_PAYLOAD_TYPE}","signatures":[{{"sig":"{}"}}]}}"#,
        base64_std(statement.as_bytes()),
        base64_std(&sig)
    )
    .into_bytes();
    assert_eq!(
        Envelope::parse(&envelope).unwrap().payload,
        statement.as_bytes()
    );
    Layer {
        what: "generated attestation".into(),
        kind: EntryKind::Attestation,
        media_type: "application/vnd.dsse.envelope.v1+json".into(),
        digest: Digest::of(&envelope),
        annotations: [(SIGNATURE_ANNOTATION.to_string(), String::new())].into(),
        payload: envelope,
        target,
    }
}

#[test]
fn ed25519_keys_roundtrip() {
    use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePublicKey};
    use ed25519_dalek::Signer as _;
    let signing = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let pem = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let k = PublicKey::from_pem(pem.as_bytes(), "ed.pub").unwrap();
    assert_eq!(k.algorithm(), "Ed25519");
    let target = Digest::of(b"image");
    let payload = simple_signing_payload(&target);
    let sig = signing.sign(&payload).to_bytes();
    assert!(k.verify(&payload, &sig));
    assert!(!k.verify(b"other", &sig));
    let l = signed_layer(payload, &sig, target);
    assert_eq!(
        l.verify(std::slice::from_ref(&k)),
        Verdict::Verified {
            by: Signer::Key("ed.pub".into()),
            log_time: None
        }
    );
    let att = attestation_layer(target, |m| signing.sign(m).to_bytes().to_vec());
    assert!(att.verify(std::slice::from_ref(&k)).is_verified());
    let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
    let att = attestation_layer(target, |m| other.sign(m).to_bytes().to_vec());
    assert_eq!(
        att.verify(&[k]),
        Verdict::Failed {
            reason: "signature does not verify with ed.pub".into()
        }
    );
}

#[test]
fn rsa_keys_roundtrip_pkix_and_pkcs1() {
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    use rsa::signature::{SignatureEncoding, Signer};
    let private = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let public = private.to_public_key();
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(private);
    let target = Digest::of(b"image");
    let payload = simple_signing_payload(&target);
    let sig = signer.sign(&payload).to_vec();
    for pem in [
        public.to_public_key_pem(LineEnding::LF).unwrap(),
        public.to_pkcs1_pem(LineEnding::CRLF).unwrap(),
    ] {
        let k = PublicKey::from_pem(pem.as_bytes(), "rsa.pub").unwrap();
        assert_eq!(k.algorithm(), "RSA");
        assert!(k.verify(&payload, &sig));
        assert!(!k.verify(&payload[1..], &sig));
        assert!(!k.verify(&payload, &sig[1..]));
        let l = signed_layer(payload.clone(), &sig, target);
        assert!(l.verify(std::slice::from_ref(&k)).is_verified());
        let att = attestation_layer(target, |m| signer.sign(m).to_vec());
        assert!(att.verify(&[k]).is_verified());
    }
}

#[test]
fn ecdsa_keys_roundtrip_der_and_p1363() {
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    let signing = p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap();
    let pem = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let k = PublicKey::from_pem(pem.as_bytes(), "p256.pub").unwrap();
    let target = Digest::of(b"image");
    let payload = simple_signing_payload(&target);
    let sig: p256::ecdsa::Signature = signing.sign(&payload);
    for encoded in [sig.to_der().as_bytes().to_vec(), sig.to_bytes().to_vec()] {
        let l = signed_layer(payload.clone(), &encoded, target);
        assert!(l.verify(std::slice::from_ref(&k)).is_verified());
    }

    // P-384: cosign verify --key hashes with SHA-256; cosign v3 signs P-384 with SHA-384.
    use p384::ecdsa::signature::hazmat::PrehashSigner;
    let signing = p384::ecdsa::SigningKey::from_slice(&[9; 48]).unwrap();
    let pem = signing
        .verifying_key()
        .to_public_key_pem(p384::pkcs8::LineEnding::LF)
        .unwrap();
    let k = PublicKey::from_pem(pem.as_bytes(), "p384.pub").unwrap();
    assert_eq!(k.algorithm(), "ECDSA P-384");
    use sha2::Digest as _;
    let sha256: p384::ecdsa::Signature = signing
        .sign_prehash(&sha2::Sha256::digest(&payload))
        .unwrap();
    let sha384: p384::ecdsa::Signature = signing.sign(&payload);
    for sig in [sha256, sha384] {
        assert!(k.verify(&payload, sig.to_der().as_bytes()));
        assert!(k.verify(&payload, &sig.to_bytes()));
        assert!(!k.verify(b"other", &sig.to_bytes()));
    }
}
