//! Sigstore bundles dropped into `/cosign`, attached with the library as cosign 3 stores
//! them (docs/FORMAT.md, Cosign: referrers): an OCI 1.1 referrer manifest listed in the
//! root index under a `_cosign:` name. Checked against the real keyless bundle of cosign's
//! repository and the key-signed referrer layout of the test data (whose manifest is the
//! form cosign writes, so ours must equal it byte for byte but for the time).

use std::collections::BTreeSet;

use crate::common::cosign_sif::{
    cosign_referrer_manifest, empty_image_sif, layout_sif, with_created,
};
use crate::common::{cosign_data, cosign_key, MemOci};
use crate::cosign_keyless::{keyless_trust, BUNDLE, GITHUB};
use sifmount::cosign::{
    attach, bundle_ref_name, detach_referrer, discover, prepare, AttachError, AttachOutcome,
    Attachment, DropFiles, EntryKind, Origin, Trust, Verdict, BUNDLE_V03_MEDIA_TYPE,
};
use sifmount::oci::{BlobSource, Descriptor, LayoutDir, Manifest, REF_NAME};
use sifmount::sif::Digest;

/// The referrer layout of the test data and what its result file says is in it.
const SYNTH: &str = "synth-referrer-bundle";
const SYNTH_MANIFEST: &str =
    "sha256:d9fda2f803efb63c37979097fa82fc9838628bc2f8c6c3a9b3504b5f64982d02";
const SYNTH_BUNDLE: &str =
    "sha256:8e6954b1fa340c6e20730710edc847a8718088833cf619213c1a3a7f7b07e407";
/// The time the synthetic referrer was written with.
const SYNTH_CREATED: &str = "2025-01-01T00:00:00Z";
const HELLO_LAYOUT: &str = "ocitools-hello-world-cosign-manifest";
const EMPTY_CONFIG: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

fn digest(s: &str) -> Digest {
    s.parse().unwrap()
}

fn synth_blob(d: &str) -> Vec<u8> {
    LayoutDir::new(cosign_data(SYNTH))
        .read_blob(&digest(d))
        .unwrap()
        .unwrap_or_else(|| panic!("{SYNTH} has no blob {d}"))
}

/// The key-signed v0.3 bundle of the referrer layout.
pub(crate) fn synth_bundle() -> Vec<u8> {
    synth_blob(SYNTH_BUNDLE)
}

/// The same bundle labelled as another version: DSSE signs the envelope's payload, not the
/// bundle's mediaType, so it still verifies with the synth key (a v0.1 or v0.2 bundle of
/// a key-signed DSSE envelope has the same fields).
pub(crate) fn relabelled(bundle: &[u8], media_type: &str) -> Vec<u8> {
    let text = std::str::from_utf8(bundle).unwrap();
    let relabelled = text.replacen(BUNDLE_V03_MEDIA_TYPE, media_type, 1);
    assert_ne!(relabelled, text, "the bundle names {BUNDLE_V03_MEDIA_TYPE}");
    relabelled.into_bytes()
}

impl MemOci {
    fn of_file(path: &std::path::Path) -> MemOci {
        MemOci::open(std::fs::read(path).unwrap())
    }

    fn empty_image() -> (MemOci, Digest) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.oci.sif");
        let target = empty_image_sif(&path);
        (MemOci::of_file(&path), target)
    }

    fn hello() -> MemOci {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hello.oci.sif");
        layout_sif(&cosign_data(HELLO_LAYOUT), &path, false);
        MemOci::of_file(&path)
    }

    fn prepare_bundle(&self, bundle: &[u8]) -> Result<Attachment, AttachError> {
        let drop = DropFiles {
            payload: Some(bundle.to_vec()),
            ..DropFiles::default()
        };
        prepare(&self.oci, &drop).map(|a| a.expect("a bundle is complete on its own"))
    }

    fn drop_bundle(&mut self, bundle: &[u8]) -> AttachOutcome {
        let a = self
            .prepare_bundle(bundle)
            .unwrap_or_else(|e| panic!("prepare: {e}"));
        assert_eq!(a.kind, EntryKind::Referrer);
        attach(&mut self.oci, &a).unwrap_or_else(|e| panic!("attach: {e}"))
    }

    fn root_entries(&self) -> Vec<Descriptor> {
        self.oci.root_index().unwrap().entries().to_vec()
    }

    /// The root-index entry named `name` and its manifest's bytes.
    fn named(&self, name: &str) -> (Descriptor, Vec<u8>) {
        let entry = self
            .root_entries()
            .into_iter()
            .find(|e| e.ref_name() == Some(name))
            .unwrap_or_else(|| panic!("no root-index entry named {name}"));
        let bytes = self.oci.read_blob(&entry.digest).unwrap();
        (entry, bytes)
    }

    fn blob_digests(&self) -> BTreeSet<String> {
        self.oci.blobs().map(|(d, _)| d.to_string()).collect()
    }
}

fn verdict(a: &Attachment, trust: &Trust) -> Verdict {
    a.verdict(trust)
}

#[test]
fn the_synth_bundle_attaches_as_the_referrer_cosign_writes() {
    let mut m = MemOci::hello();
    let before_entries = m.root_entries();
    let before_blobs = m.blob_digests();
    let bundle = synth_bundle();
    assert_eq!(m.drop_bundle(&bundle), AttachOutcome::Attached);

    let target = digest("sha256:432f982638b3aefab73cc58ab28f5c16e96fdb504e8c134fc58dff4bae8bf338");
    let name = bundle_ref_name(&target, &Digest::of(&bundle));
    let (entry, manifest) = m.named(&name);
    // Byte for byte the layout's referrer (the form of COSIGN.md §6.1), once the time is its.
    crate::common::assert_bytes_eq(
        &with_created(&manifest, SYNTH_CREATED),
        &synth_blob(SYNTH_MANIFEST),
        "referrer manifest",
    );
    // Listed as SingularityCE 4.5 lists what it adds, with the name and the artifact type.
    assert_eq!(
        entry.media_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(entry.artifact_type.as_deref(), Some(BUNDLE_V03_MEDIA_TYPE));
    assert_eq!(entry.digest, Digest::of(&manifest));
    let after = m.root_entries();
    assert_eq!(after[..before_entries.len()], before_entries[..]);
    assert_eq!(after.len(), before_entries.len() + 1);
    assert_eq!(
        after
            .iter()
            .filter(|e| e.annotation(REF_NAME).is_none())
            .count(),
        1,
        "exactly one image without a reference name, for oci-tools' Get()"
    );
    assert_eq!(m.oci.verify_blobs().unwrap(), vec![]);

    // Discovery shows it once, as a listed referrer whose payload is the bundle.
    let d = discover(&m.oci);
    let refs: Vec<_> = d
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::Referrer)
        .collect();
    assert_eq!(refs.len(), 1, "{:?}", d.entries);
    assert_eq!(refs[0].origin, Origin::Referrer { listed: true });
    assert_eq!(refs[0].target, target);
    assert_eq!(m.oci.read_blob(&refs[0].layer.digest).unwrap(), bundle);
    assert!(
        refs[0].name.starts_with("ref-432f982638b3a-"),
        "{}",
        refs[0].name
    );

    // The same bundle again: nothing written.
    let bytes = m.bytes();
    assert_eq!(m.drop_bundle(&bundle), AttachOutcome::Unchanged);
    assert!(m.bytes() == bytes, "a repeated drop changed the file");

    // rm -r: the root index is what it was and no blob of the referrer is left.
    let entry = refs[0].clone();
    detach_referrer(&mut m.oci, &entry.manifest, &entry.layer.digest).unwrap();
    assert_eq!(m.root_entries(), before_entries);
    assert_eq!(m.blob_digests(), before_blobs);
    assert!(discover(&m.oci)
        .entries
        .iter()
        .all(|e| e.kind != EntryKind::Referrer));
    assert_eq!(m.oci.verify_blobs().unwrap(), vec![]);
}

#[test]
fn the_synth_bundle_verifies_with_its_key_only() {
    let m = MemOci::hello();
    let a = m.prepare_bundle(&synth_bundle()).unwrap();
    let good = Trust::keys(vec![cosign_key("keys/synth-cosign.pub")]);
    assert!(
        matches!(verdict(&a, &good), Verdict::Verified { .. }),
        "{:?}",
        verdict(&a, &good)
    );
    let wrong = Trust::keys(vec![cosign_key("keys/singularity-cosign.pub")]);
    assert!(matches!(verdict(&a, &wrong), Verdict::Failed { .. }));
}

#[test]
fn the_real_keyless_bundle_attaches_to_the_empty_image_and_verifies() {
    let (mut m, target) = MemOci::empty_image();
    let before = m.root_entries();
    let bundle = std::fs::read(cosign_data(BUNDLE)).unwrap();
    let a = m.prepare_bundle(&bundle).unwrap();
    assert_eq!(a.target, target);
    assert_eq!(a.layer.media_type, BUNDLE_V03_MEDIA_TYPE);
    let trust = keyless_trust("cody@soyland.com", GITHUB);
    match verdict(&a, &trust) {
        Verdict::Verified { .. } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(m.drop_bundle(&bundle), AttachOutcome::Attached);

    // The manifest as COSIGN.md §6.1 spells it, with this bundle's values.
    let name = bundle_ref_name(&target, &Digest::of(&bundle));
    let (_, manifest) = m.named(&name);
    let statement = statement_of(&bundle);
    let target_bytes = std::fs::read(cosign_data("cosign-repo/empty-image/manifest.json")).unwrap();
    let expected = cosign_referrer_manifest(
        &bundle,
        BUNDLE_V03_MEDIA_TYPE,
        statement["predicateType"].as_str(),
        &Descriptor::of(
            "application/vnd.docker.distribution.manifest.v2+json",
            &target_bytes,
        ),
        SYNTH_CREATED,
    );
    crate::common::assert_bytes_eq(
        &with_created(&manifest, SYNTH_CREATED),
        &expected,
        "referrer manifest",
    );
    let d = discover(&m.oci);
    let refs: Vec<_> = d
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::Referrer)
        .collect();
    assert_eq!(refs.len(), 1);
    assert_eq!(m.oci.read_blob(&refs[0].layer.digest).unwrap(), bundle);
    let entry = refs[0].clone();
    detach_referrer(&mut m.oci, &entry.manifest, &entry.layer.digest).unwrap();
    assert_eq!(m.root_entries(), before);
}

fn statement_of(bundle: &[u8]) -> serde_json::Value {
    let env = sifmount::cosign::bundle_envelope(bundle).unwrap().unwrap();
    serde_json::from_slice(&env.payload).unwrap()
}

#[test]
fn older_bundle_versions_keep_their_bytes_and_label() {
    for version in ["0.1", "0.2"] {
        let mut m = MemOci::hello();
        let media_type = format!("application/vnd.dev.sigstore.bundle+json;version={version}");
        let bundle = relabelled(&synth_bundle(), &media_type);
        let a = m.prepare_bundle(&bundle).unwrap();
        assert_eq!(a.layer.media_type, media_type);
        let good = Trust::keys(vec![cosign_key("keys/synth-cosign.pub")]);
        assert!(matches!(verdict(&a, &good), Verdict::Verified { .. }));
        assert_eq!(m.drop_bundle(&bundle), AttachOutcome::Attached);
        let target = a.target;
        let (_, bytes) = m.named(&bundle_ref_name(&target, &Digest::of(&bundle)));
        let manifest = Manifest::parse(&bytes).unwrap();
        // Listed as cosign lists bundles, the layer saying what version its bytes are.
        assert_eq!(
            manifest.artifact_type.as_deref(),
            Some(BUNDLE_V03_MEDIA_TYPE)
        );
        assert_eq!(manifest.layers[0].media_type, media_type);
        assert_eq!(m.oci.read_blob(&manifest.layers[0].digest).unwrap(), bundle);
    }
}

#[test]
fn the_empty_config_stays_while_another_referrer_uses_it() {
    let mut m = MemOci::hello();
    let v3 = synth_bundle();
    let v2 = relabelled(&v3, "application/vnd.dev.sigstore.bundle+json;version=0.2");
    assert_eq!(m.drop_bundle(&v3), AttachOutcome::Attached);
    assert_eq!(m.drop_bundle(&v2), AttachOutcome::Attached);
    let refs: Vec<_> = discover(&m.oci)
        .entries
        .into_iter()
        .filter(|e| e.kind == EntryKind::Referrer)
        .collect();
    assert_eq!(refs.len(), 2);
    let first = refs
        .iter()
        .find(|e| e.layer.digest == Digest::of(&v3))
        .unwrap();
    detach_referrer(&mut m.oci, &first.manifest, &first.layer.digest).unwrap();
    let blobs = m.blob_digests();
    assert!(
        blobs.contains(EMPTY_CONFIG),
        "the other referrer's config went"
    );
    assert!(!blobs.contains(&first.manifest.to_string()));
    assert!(!blobs.contains(&Digest::of(&v3).to_string()));
    let left: Vec<_> = discover(&m.oci)
        .entries
        .into_iter()
        .filter(|e| e.kind == EntryKind::Referrer)
        .collect();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].layer.digest, Digest::of(&v2));
    assert_eq!(m.oci.verify_blobs().unwrap(), vec![]);
}

/// A message-signature bundle made here: `key` signs `message` (ECDSA P-256, SHA-256) as
/// `cosign sign-blob --bundle` of it would, the message digest being its sha256.
fn signed_message_bundle(
    key: &p256::ecdsa::SigningKey,
    message: &[u8],
    algorithm: &str,
) -> (Vec<u8>, Vec<u8>) {
    use base64::Engine as _;
    use p256::ecdsa::signature::Signer as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let sig: p256::ecdsa::Signature = key.sign(message);
    let der = sig.to_der().as_bytes().to_vec();
    let bundle = serde_json::to_vec(&serde_json::json!({
        "mediaType": BUNDLE_V03_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": "test"}},
        "messageSignature": {
            "messageDigest": {"algorithm": algorithm, "digest": b64.encode(Digest::of(message).as_bytes())},
            "signature": b64.encode(&der),
        }
    }))
    .unwrap();
    (bundle, der)
}

fn message_signature_bundle(message: &[u8], algorithm: &str) -> Vec<u8> {
    let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    signed_message_bundle(&key, message, algorithm).0
}

fn public_pem(key: &p256::ecdsa::SigningKey) -> String {
    use p256::pkcs8::EncodePublicKey as _;
    key.verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap()
}

/// What `openssl dgst -sha256 -verify` says of `signature` over `message`: a verdict on
/// the same bytes by a verifier nobody here wrote.
fn openssl_verifies(pem: &str, message: &[u8], signature: &[u8]) -> bool {
    crate::common::mounted::require_tool("openssl", "openssl");
    let dir = tempfile::tempdir().unwrap();
    let (k, m, s) = (
        dir.path().join("key.pem"),
        dir.path().join("message"),
        dir.path().join("sig.der"),
    );
    std::fs::write(&k, pem).unwrap();
    std::fs::write(&m, message).unwrap();
    std::fs::write(&s, signature).unwrap();
    std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&k)
        .arg("-signature")
        .arg(&s)
        .arg(&m)
        .output()
        .unwrap()
        .status
        .success()
}

/// A message signature over the target manifest verifies with its key, as openssl
/// says too; with another key, or over other bytes, neither verifies it.
#[test]
fn a_message_signature_bundle_verifies_over_the_target_digest() {
    let m = MemOci::hello();
    let target = digest("sha256:432f982638b3aefab73cc58ab28f5c16e96fdb504e8c134fc58dff4bae8bf338");
    let manifest = m.oci.read_blob(&target).unwrap();
    let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let pem = public_pem(&key);
    let trust = Trust::keys(vec![sifmount::cosign::PublicKey::from_pem(
        pem.as_bytes(),
        "test.pub",
    )
    .unwrap()]);
    let (bundle, der) = signed_message_bundle(&key, &manifest, "SHA2_256");
    let a = m.prepare_bundle(&bundle).unwrap();
    assert_eq!(a.target, target);
    assert!(openssl_verifies(&pem, &manifest, &der));
    match verdict(&a, &trust) {
        Verdict::Verified { .. } => {}
        other => panic!("{other:?}"),
    }
    let other = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let wrong = Trust::keys(vec![sifmount::cosign::PublicKey::from_pem(
        public_pem(&other).as_bytes(),
        "other.pub",
    )
    .unwrap()]);
    assert!(matches!(verdict(&a, &wrong), Verdict::Failed { .. }));
    assert!(!openssl_verifies(&public_pem(&other), &manifest, &der));
    // A signature of other bytes, put into a bundle that claims the target's digest.
    let (_, stray) = signed_message_bundle(&key, b"other bytes", "SHA2_256");
    let forged = String::from_utf8(bundle.clone())
        .unwrap()
        .replace(&base64_of(&der), &base64_of(&stray));
    let a = m.prepare_bundle(forged.as_bytes()).unwrap();
    assert!(!openssl_verifies(&pem, &manifest, &stray));
    match verdict(&a, &trust) {
        Verdict::Failed { reason } => assert!(reason.contains("does not verify"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn a_message_signature_bundle_attaches_to_the_manifest_it_digests() {
    let mut m = MemOci::hello();
    let target = digest("sha256:432f982638b3aefab73cc58ab28f5c16e96fdb504e8c134fc58dff4bae8bf338");
    let manifest_bytes = m.oci.read_blob(&target).unwrap();
    let bundle = message_signature_bundle(&manifest_bytes, "SHA2_256");
    assert_eq!(m.drop_bundle(&bundle), AttachOutcome::Attached);
    let (_, bytes) = m.named(&bundle_ref_name(&target, &Digest::of(&bundle)));
    crate::common::assert_bytes_eq(
        &with_created(&bytes, SYNTH_CREATED),
        &cosign_referrer_manifest(
            &bundle,
            BUNDLE_V03_MEDIA_TYPE,
            None,
            &Descriptor::of(
                "application/vnd.docker.distribution.manifest.v2+json",
                &manifest_bytes,
            ),
            SYNTH_CREATED,
        ),
        "message-signature referrer",
    );
    let manifest = Manifest::parse(&bytes).unwrap();
    let annotations = manifest.annotations.unwrap();
    assert_eq!(
        annotations["dev.sigstore.bundle.content"],
        "message-signature"
    );
    assert!(!annotations.contains_key("dev.sigstore.bundle.predicateType"));
    assert_eq!(manifest.subject.unwrap().digest, target);
}

/// Every refusal names what is wrong, and leaves the file as it was.
#[test]
fn bad_bundles_are_refused_and_change_nothing() {
    let m = MemOci::hello();
    let bundle = synth_bundle();
    let other_image = std::fs::read(cosign_data(BUNDLE)).unwrap();
    let text = String::from_utf8(bundle.clone()).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "subject not in the image",
            other_image,
            "is a manifest or index in this image",
        ),
        (
            "truncated",
            bundle[..bundle.len() / 2].to_vec(),
            "not valid JSON",
        ),
        (
            "unknown mediaType",
            relabelled(&bundle, "application/vnd.dev.sigstore.bundle.v0.4+json"),
            "is not a bundle version sifmount knows",
        ),
        (
            "no mediaType",
            text.replacen(
                &format!("\"mediaType\":\"{BUNDLE_V03_MEDIA_TYPE}\","),
                "",
                1,
            )
            .into_bytes(),
            "has no mediaType",
        ),
        (
            "no verification material",
            text.replacen("\"verificationMaterial\"", "\"x\"", 1)
                .into_bytes(),
            "has no verificationMaterial",
        ),
        (
            "message digest of something else",
            message_signature_bundle(b"not a manifest here", "SHA2_256"),
            "is not a manifest or index in this image",
        ),
        (
            "message digest not sha256",
            message_signature_bundle(b"x", "SHA2_384"),
            "not SHA2_256",
        ),
    ];
    let before = m.bytes();
    for (what, payload, expected) in cases {
        let e = m
            .prepare_bundle(&payload)
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        let message = e.to_string();
        assert!(message.starts_with("payload: "), "{what}: {message}");
        assert!(message.contains(expected), "{what}: {message}");
        assert!(!message.contains('\n'), "{what}: {message}");
        assert!(matches!(e, AttachError::Invalid { .. }), "{what}: {e:?}");
    }
    // Companion files have no place beside a bundle.
    let drop = DropFiles {
        payload: Some(bundle.clone()),
        signature: Some(b"MEUCIQ==".to_vec()),
        ..DropFiles::default()
    };
    let e = prepare(&m.oci, &drop).err().unwrap().to_string();
    assert!(e.starts_with("signature: "), "{e}");
    assert!(m.bytes() == before, "a refusal changed the file");
}

/// The attachment is checked again at the commit: one whose layer says another version
/// than the bundle, or whose target the bundle is not about, is refused.
#[test]
fn attach_rechecks_a_referrer_attachment() {
    let mut m = MemOci::hello();
    let a = m.prepare_bundle(&synth_bundle()).unwrap();
    let before = m.bytes();
    let mut relabelled = a.clone();
    relabelled.layer.media_type = "application/vnd.dev.sigstore.bundle+json;version=0.2".into();
    let e = attach(&mut m.oci, &relabelled).unwrap_err().to_string();
    assert!(e.contains("but the bundle says"), "{e}");
    let mut elsewhere = a.clone();
    elsewhere.target =
        digest("sha256:f764ee0fbe0e49555602e3c34e82be58a63da388204d93f948710c74a9730682");
    let e = attach(&mut m.oci, &elsewhere).unwrap_err().to_string();
    assert!(e.contains("is not about"), "{e}");
    assert!(m.bytes() == before);
}

/// `rm -r` of a referrer the root index lists, under no name (as another tool may list
/// one): removed with its blobs. One of two layers: refused, nothing changed.
#[test]
fn listed_referrers_are_removed_whole_and_only_with_one_layer() {
    use sifmount::oci::{media_type, write_oci_sif_at_path, Index, MemBlobs};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("listed.oci.sif");
    let bundle = std::fs::read(cosign_data(BUNDLE)).unwrap();
    let target = crate::common::cosign_sif::empty_image_with_bundle(&bundle, &path);
    let mut m = MemOci::of_file(&path);
    let entry = discover(&m.oci)
        .entries
        .into_iter()
        .find(|e| e.kind == EntryKind::Referrer)
        .expect("the listed referrer");
    detach_referrer(&mut m.oci, &entry.manifest, &entry.layer.digest).unwrap();
    let left: Vec<Digest> = m.root_entries().iter().map(|e| e.digest).collect();
    assert_eq!(left, vec![target]);
    let blobs = m.blob_digests();
    assert!(!blobs.contains(&Digest::of(&bundle).to_string()));
    assert!(!blobs.contains(EMPTY_CONFIG));
    assert!(!blobs.contains(&entry.manifest.to_string()));

    // Two bundles in one referrer.
    let manifest = std::fs::read(cosign_data("cosign-repo/empty-image/manifest.json")).unwrap();
    let config = std::fs::read(cosign_data("cosign-repo/empty-image/config.json")).unwrap();
    let second = relabelled(
        &synth_bundle(),
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
    );
    let layer = |b: &[u8]| serde_json::json!({"mediaType": BUNDLE_V03_MEDIA_TYPE, "size": b.len(), "digest": Digest::of(b).to_string()});
    let referrer = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": {"mediaType": media_type::OCI_EMPTY, "size": 2, "digest": EMPTY_CONFIG},
        "layers": [layer(&bundle), layer(&second)],
        "subject": {"mediaType": media_type::DOCKER_MANIFEST, "size": manifest.len(), "digest": target.to_string()},
    }))
    .unwrap();
    let mut blobs = MemBlobs::new();
    for b in [&manifest, &config, &bundle, &second, &referrer] {
        blobs.insert(b.clone());
    }
    blobs.insert(b"{}".to_vec());
    let mut index = Index::empty();
    index.append(Descriptor::of(media_type::DOCKER_MANIFEST, &manifest), None);
    index.append(
        Descriptor::of(media_type::OCI_MANIFEST, &referrer),
        Some("two-bundles"),
    );
    let path = dir.path().join("two.oci.sif");
    write_oci_sif_at_path(&path, &index.to_go_json(), &blobs, 8).unwrap();
    let mut m = MemOci::of_file(&path);
    let before = m.bytes();
    let entries: Vec<_> = discover(&m.oci)
        .entries
        .into_iter()
        .filter(|e| e.kind == EntryKind::Referrer)
        .collect();
    assert_eq!(entries.len(), 2);
    let e = detach_referrer(&mut m.oci, &entries[0].manifest, &entries[0].layer.digest)
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds 2 layers"), "{e}");
    assert!(m.bytes() == before, "a refused removal changed the file");
}
