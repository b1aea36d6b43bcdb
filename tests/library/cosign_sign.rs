//! Signing with a private key (src/cosign/sign.rs): SingularityCE's payload byte for byte,
//! the path `--sign` takes from payload and signature to the file (byte-identical to what
//! SingularityCE wrote, given its signature), and what we sign verifying with the key's
//! upstream `.pub`.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;
use sifmount::cosign::{
    attach, attest, discover, is_cosign_ref, sign_payload, signature_attachment,
    singularity_payload, AttachError, AttachOutcome, EntryKind, PublicKey, SigningKey, Trust,
    Verdict, DSSE_MEDIA_TYPE, PREDICATE_TYPE_ANNOTATION, SIGNATURE_ANNOTATION,
};
use sifmount::sif::Digest;

use crate::common::{
    assert_bytes_eq, cosign_data, last_signature_layer, read_upstream, upstream_last_signature,
    MemOci,
};

const UNSIGNED: &str = "generated/squashfs-image.oci.sif";

/// The one image of an OCI-SIF (the root-index entry that is not a `_cosign:` image).
fn the_image(oci: &sifmount::oci::OciSif) -> Digest {
    let root = oci.root_index().unwrap();
    let images: Vec<Digest> = root
        .entries()
        .iter()
        .filter(|e| !e.ref_name().is_some_and(is_cosign_ref))
        .map(|e| e.digest)
        .collect();
    assert_eq!(images.len(), 1, "one image");
    images[0]
}

fn singularity_key() -> (SigningKey, PublicKey) {
    let key = SigningKey::load(&cosign_data("keys/singularity-cosign.key"), Some(b"")).unwrap();
    let public = PublicKey::load(&cosign_data("keys/singularity-cosign.pub")).unwrap();
    (key, public)
}

#[test]
fn the_payload_is_singularitys() {
    let target = the_image(&MemOci::open(read_upstream(UNSIGNED)).oci);
    let (want, _) = upstream_last_signature("generated/squashfs-image.signed1.oci.sif");
    let got = singularity_payload(&target, "example/0.0", 1700000001, &BTreeMap::new());
    assert_eq!(want.len(), 260, "the fixture's payload");
    assert_bytes_eq(&got, &want, "singularity_payload vs signed1's payload");
    // The other SingularityCE-signed files: regenerated from their own creator and
    // timestamp, so the bytes come from the function, not the fixture.
    for rel in [
        "generated/squashfs-image.signed2.oci.sif",
        "generated/squashfs-image.v44.signed1.oci.sif",
        "generated/squashfs-image.v44.signed2.oci.sif",
    ] {
        let (want, _) = upstream_last_signature(rel);
        let v: Value = serde_json::from_slice(&want).unwrap();
        let target: Digest = v["critical"]["image"]["docker-manifest-digest"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let got = singularity_payload(
            &target,
            v["optional"]["creator"].as_str().unwrap(),
            v["optional"]["timestamp"].as_i64().unwrap(),
            &BTreeMap::new(),
        );
        assert_bytes_eq(&got, &want, rel);
    }
}

#[test]
fn annotations_join_optional_sorted_and_escaped_as_go_does() {
    let target: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
    let mut a = BTreeMap::new();
    a.insert("zeta".to_string(), "<&>".to_string());
    a.insert("Alpha".to_string(), "1".to_string());
    a.insert("timestamp".to_string(), "overridden".to_string());
    let got = String::from_utf8(singularity_payload(&target, "c/1", 5, &a)).unwrap();
    assert!(
        got.ends_with(
            r#""optional":{"Alpha":"1","creator":"c/1","timestamp":5,"zeta":"\u003c\u0026\u003e"}}"#
        ),
        "{got}"
    );
    let v: Value = serde_json::from_str(&got).unwrap();
    assert_eq!(
        v["critical"]["image"]["docker-manifest-digest"],
        target.to_string()
    );
}

#[test]
fn the_sign_path_writes_singularitys_file_given_its_signature() {
    let mut image = MemOci::open(read_upstream(UNSIGNED));
    for step in ["signed1", "signed2"] {
        let rel = format!("generated/squashfs-image.{step}.oci.sif");
        let (payload, annotations) = upstream_last_signature(&rel);
        let sig = base64::engine::general_purpose::STANDARD
            .decode(&annotations[SIGNATURE_ANNOTATION])
            .unwrap();
        let a = signature_attachment(&image.oci, &payload, &sig).unwrap();
        assert_eq!(a.layer.annotations.as_ref(), Some(&annotations));
        assert_eq!(attach(&mut image.oci, &a).unwrap(), AttachOutcome::Attached);
        assert_bytes_eq(&image.bytes(), &read_upstream(&rel), &rel);
    }
}

#[test]
fn signed_entries_verify_with_the_upstream_pub() {
    let (key, public) = singularity_key();
    let mut image = MemOci::open(read_upstream(UNSIGNED));
    let target = the_image(&image.oci);
    let payload = singularity_payload(&target, "sifmount/test", 1700000002, &BTreeMap::new());
    let a = sign_payload(&image.oci, &key, &payload).unwrap();
    assert_eq!(a.kind, EntryKind::Signature);
    assert_eq!(a.target, target);
    assert_eq!(a.payload, payload);
    let trust = Trust::keys(vec![public.clone()]);
    assert!(matches!(a.verdict(&trust), Verdict::Verified { .. }));
    assert_eq!(attach(&mut image.oci, &a).unwrap(), AttachOutcome::Attached);
    let (stored, annotations) = last_signature_layer(&image.oci);
    assert_eq!(stored, payload);
    let sig = base64::engine::general_purpose::STANDARD
        .decode(&annotations[SIGNATURE_ANNOTATION])
        .unwrap();
    assert!(public.verify(&payload, &sig), "the stored signature");

    // Another key's public half does not verify it.
    let other = PublicKey::load(&cosign_data("keys/synth-cosign.pub")).unwrap();
    assert!(!matches!(
        a.verdict(&Trust::keys(vec![other])),
        Verdict::Verified { .. }
    ));

    // A later signature (another timestamp) is a second layer.
    let payload2 = singularity_payload(&target, "sifmount/test", 1700000003, &BTreeMap::new());
    let b = sign_payload(&image.oci, &key, &payload2).unwrap();
    assert_eq!(attach(&mut image.oci, &b).unwrap(), AttachOutcome::Attached);
    let d = discover(&image.oci);
    let sigs: Vec<_> = d
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::Signature && e.target == target)
        .collect();
    assert_eq!(sigs.len(), 2, "{:?}", d.entries);
}

#[test]
fn signing_refuses_targets_outside_the_image_and_statements() {
    let (key, _) = singularity_key();
    let image = MemOci::open(read_upstream(UNSIGNED));
    let elsewhere: Digest = format!("sha256:{}", "cd".repeat(32)).parse().unwrap();
    let payload = singularity_payload(&elsewhere, "c", 1, &BTreeMap::new());
    let err = sign_payload(&image.oci, &key, &payload).unwrap_err();
    assert!(matches!(err, AttachError::Invalid { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("not a manifest or index in this image"),
        "{err}"
    );
    let err = sign_payload(&image.oci, &key, b"{\"payloadType\":1}").unwrap_err();
    assert!(matches!(err, AttachError::Invalid { .. }), "{err}");
    let err = attest(&image.oci, &key, b"not json").unwrap_err();
    assert!(
        err.to_string().starts_with("statement: not valid JSON"),
        "{err}"
    );
}

fn statement(target: &Digest, predicate_type: &str) -> Vec<u8> {
    format!(
        r#"{{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"{predicate_type}","subject":[{{"name":"x","digest":{{"sha256":"{}"}}}}],"predicate":{{"Data":"hi","Timestamp":"2024-10-09T13:27:12Z"}}}}"#,
        target.hex()
    )
    .into_bytes()
}

#[test]
fn attestations_are_cosign_attest_envelopes_that_verify() {
    let (key, public) = singularity_key();
    let mut image = MemOci::open(read_upstream(UNSIGNED));
    let target = the_image(&image.oci);
    let predicate = "https://cosign.sigstore.dev/attestation/v1";
    let st = statement(&target, predicate);
    let a = attest(&image.oci, &key, &st).unwrap();
    assert_eq!(a.kind, EntryKind::Attestation);
    assert_eq!(a.target, target);
    assert_eq!(a.layer.media_type, DSSE_MEDIA_TYPE);
    let mut want_annotations = BTreeMap::new();
    want_annotations.insert(SIGNATURE_ANNOTATION.to_string(), String::new());
    want_annotations.insert(PREDICATE_TYPE_ANNOTATION.to_string(), predicate.to_string());
    assert_eq!(a.layer.annotations, Some(want_annotations));
    // cosign 2's field order, as in the real `.att` fixture.
    let envelope: serde_json::Map<String, Value> = serde_json::from_slice(&a.payload).unwrap();
    assert_eq!(
        envelope.keys().collect::<Vec<_>>(),
        ["payloadType", "payload", "signatures"]
    );
    let std = base64::engine::general_purpose::STANDARD;
    assert_eq!(
        std.decode(envelope["payload"].as_str().unwrap()).unwrap(),
        st
    );
    let s = &envelope["signatures"][0];
    assert_eq!(s["keyid"], "");
    let sig = std.decode(s["sig"].as_str().unwrap()).unwrap();
    let pae = sifmount::cosign::pae("application/vnd.in-toto+json", &st);
    assert!(public.verify(&pae, &sig));
    assert!(matches!(
        a.verdict(&Trust::keys(vec![public])),
        Verdict::Verified { .. }
    ));
    assert_eq!(attach(&mut image.oci, &a).unwrap(), AttachOutcome::Attached);
    let root = image.oci.root_index().unwrap();
    assert!(root
        .entries()
        .iter()
        .any(|e| e.ref_name() == Some(&format!("_cosign:sha256-{}.att", target.hex()))));

    let elsewhere: Digest = format!("sha256:{}", "cd".repeat(32)).parse().unwrap();
    let err = attest(&image.oci, &key, &statement(&elsewhere, predicate)).unwrap_err();
    assert!(err.to_string().contains("no subject"), "{err}");
}
