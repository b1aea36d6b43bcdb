//! Attaching, amending and detaching cosign signatures and attestations with the library
//! (the man page, ATTACHING "Attaching", docs/FORMAT.md, Cosign): the files a user would drop, checked
//! against upstream's bytes (SingularityCE-signed files, real cosign layouts), and every
//! refusal leaving the image byte-identical.
//!
//! Why this file is long: a quarter of it is one table, every drop attach must refuse with
//! the file and the reason it names, and the rest compares each form of attach, amend and
//! detach with upstream's bytes through the same in-memory image; what other files share
//! with it lives in `tests/common/`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::common::{
    assert_bytes_eq, cosign_data, read_upstream, upstream_last_signature, MemOci as Mem,
};
use sifmount::cosign::{
    amend, attach, attach_with_style, cosign_ref_name, detach, discover, drop_annotations, prepare,
    AttachError, AttachOutcome, DropFiles, EntryKind, SIGNATURE_ANNOTATION,
};
use sifmount::oci::{write_oci_sif, BlobSource, EntryStyle, Index, LayoutDir, Manifest};
use sifmount::sif::{Digest, MemStorage};

const SIG_KEY: &str = SIGNATURE_ANNOTATION;
const CERT_KEY: &str = "dev.sigstore.cosign/certificate";
const HELLO: &str = "sha256:432f982638b3aefab73cc58ab28f5c16e96fdb504e8c134fc58dff4bae8bf338";

/// An image held in memory, so that every test can compare the whole file.
impl Mem {
    fn upstream(rel: &str) -> Mem {
        Mem::open(read_upstream(rel))
    }

    /// The OCI-SIF of a cosign fixture layout, with spare descriptors: upstream writes
    /// none, and a full table cannot take the objects of an attach.
    fn layout(name: &str) -> Mem {
        let source = LayoutDir::new(cosign_data(name));
        let storage = Arc::new(MemStorage::default());
        let oci = write_oci_sif(
            Box::new(storage.clone()),
            &source.index_bytes().unwrap(),
            &source,
            8,
        )
        .unwrap();
        Mem { storage, oci }
    }

    fn root(&self) -> Index {
        self.oci.root_index().unwrap()
    }

    fn manifest(&self, ref_name: &str) -> Option<(Digest, Manifest)> {
        let root = self.root();
        let entry = root
            .entries()
            .iter()
            .find(|e| e.ref_name() == Some(ref_name))?;
        let m = Manifest::parse(&self.oci.read_blob(&entry.digest).unwrap()).unwrap();
        Some((entry.digest, m))
    }

    fn assert_clean(&self) {
        assert_eq!(self.oci.verify_blobs().unwrap(), vec![]);
    }

    /// Attaches a drop that must be complete; returns what attach said.
    fn attach_drop(&mut self, drop: &DropFiles, style: EntryStyle) -> AttachOutcome {
        let a = prepare(&self.oci, drop)
            .unwrap_or_else(|e| panic!("prepare: {e}"))
            .expect("a complete drop");
        attach_with_style(&mut self.oci, &a, style).unwrap_or_else(|e| panic!("attach: {e}"))
    }
}

fn layout_blob(layout: &str, digest: &Digest) -> Vec<u8> {
    LayoutDir::new(cosign_data(layout))
        .read_blob(digest)
        .unwrap()
        .unwrap_or_else(|| panic!("{layout} has no blob {digest}"))
}

fn digest(s: &str) -> Digest {
    s.parse().unwrap()
}

fn sig_ref(target: &str) -> String {
    cosign_ref_name(EntryKind::Signature, &digest(target)).unwrap()
}

fn att_ref(target: &str) -> String {
    cosign_ref_name(EntryKind::Attestation, &digest(target)).unwrap()
}

/// What `base64` prints: lines of 76 characters, each ending in a newline.
fn wrap76(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in text.as_bytes().chunks(76) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}

fn payload_and_signature(payload: Vec<u8>, signature: Vec<u8>) -> DropFiles {
    DropFiles {
        payload: Some(payload),
        signature: Some(signature),
        ..DropFiles::default()
    }
}

fn annotations_json(a: &BTreeMap<String, String>) -> Vec<u8> {
    serde_json::to_vec(a).unwrap()
}

#[test]
fn signature_files_as_users_write_them_reproduce_singularity_signing() {
    let mut compared = 0;
    for (prefix, style) in [
        ("squashfs-image", EntryStyle::Singularity45),
        ("squashfs-image.v44", EntryStyle::Singularity44),
    ] {
        for form in ["newline", "wrapped"] {
            let mut image = Mem::upstream(&format!("generated/{prefix}.oci.sif"));
            for step in ["signed1", "signed2"] {
                let rel = format!("generated/{prefix}.{step}.oci.sif");
                let (payload, annotations) = upstream_last_signature(&rel);
                assert_eq!(annotations.len(), 1, "{rel}: only the signature annotation");
                let sig = &annotations[SIG_KEY];
                let text = match form {
                    "newline" => format!("{sig}\n").into_bytes(),
                    _ => wrap76(sig),
                };
                assert!(form == "newline" || text.iter().filter(|&&b| b == b'\n').count() == 2);
                let drop = payload_and_signature(payload, text);
                assert_eq!(drop_annotations(&drop).unwrap(), annotations);
                assert_eq!(image.attach_drop(&drop, style), AttachOutcome::Attached);
                assert_bytes_eq(
                    &image.bytes(),
                    &read_upstream(&rel),
                    &format!("{rel} ({form})"),
                );
                image.assert_clean();
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 8);
}

#[test]
fn attach_writes_the_singularity_45_form() {
    let mut image = Mem::upstream("generated/squashfs-image.oci.sif");
    let (payload, annotations) =
        upstream_last_signature("generated/squashfs-image.signed1.oci.sif");
    let drop = DropFiles {
        payload: Some(payload),
        annotations: Some(annotations_json(&annotations)),
        ..DropFiles::default()
    };
    let a = prepare(&image.oci, &drop).unwrap().unwrap();
    assert_eq!(attach(&mut image.oci, &a).unwrap(), AttachOutcome::Attached);
    assert_bytes_eq(
        &image.bytes(),
        &read_upstream("generated/squashfs-image.signed1.oci.sif"),
        "signed1",
    );
}

#[test]
fn attaching_the_same_layer_again_changes_nothing() {
    let rel = "generated/squashfs-image.signed1.oci.sif";
    let mut image = Mem::upstream(rel);
    let (payload, annotations) = upstream_last_signature(rel);
    let sig = annotations[SIG_KEY].clone();
    for drop in [
        DropFiles {
            payload: Some(payload.clone()),
            annotations: Some(annotations_json(&annotations)),
            ..DropFiles::default()
        },
        payload_and_signature(payload.clone(), format!("{sig}\n").into_bytes()),
        payload_and_signature(payload.clone(), wrap76(&sig)),
    ] {
        assert_eq!(
            image.attach_drop(&drop, EntryStyle::Singularity45),
            AttachOutcome::Unchanged
        );
        assert_bytes_eq(
            &image.bytes(),
            &read_upstream(rel),
            "after a repeated attach",
        );
    }
    // Same payload, different annotations: a new layer, as cosign attach would add.
    let mut with_cert = annotations.clone();
    with_cert.insert(CERT_KEY.into(), "cert".into());
    let drop = DropFiles {
        payload: Some(payload),
        annotations: Some(annotations_json(&with_cert)),
        ..DropFiles::default()
    };
    assert_eq!(
        image.attach_drop(&drop, EntryStyle::Singularity45),
        AttachOutcome::Attached
    );
    let target = image.root().entries()[0].digest.to_string();
    let (_, m) = image.manifest(&sig_ref(&target)).unwrap();
    assert_eq!(m.layers.len(), 2);
    assert_eq!(m.layers[0].digest, m.layers[1].digest);
    image.assert_clean();
}

#[test]
fn second_signature_on_the_real_fixture_matches_the_synthetic_append() {
    let synth = "synth-append-second-signature";
    let mut image = Mem::layout("ocitools-hello-world-cosign-manifest");
    let sig_name = sig_ref(HELLO);
    let (old_manifest, old) = image.manifest(&sig_name).unwrap();

    let synth_index =
        Index::parse(&LayoutDir::new(cosign_data(synth)).index_bytes().unwrap()).unwrap();
    let synth_entry = synth_index
        .entries()
        .iter()
        .find(|e| e.ref_name() == Some(sig_name.as_str()))
        .unwrap();
    let synth_manifest_bytes = layout_blob(synth, &synth_entry.digest);
    let synth_manifest = Manifest::parse(&synth_manifest_bytes).unwrap();
    let second = &synth_manifest.layers[1];
    let drop = DropFiles {
        payload: Some(layout_blob(synth, &second.digest)),
        annotations: Some(annotations_json(second.annotations.as_ref().unwrap())),
        ..DropFiles::default()
    };
    let a = prepare(&image.oci, &drop).unwrap().unwrap();
    assert_eq!((a.kind, a.target), (EntryKind::Signature, digest(HELLO)));
    assert_eq!(&a.layer, second);
    assert_eq!(attach(&mut image.oci, &a).unwrap(), AttachOutcome::Attached);

    let root = image.root();
    let last = root.entries().last().unwrap();
    assert_eq!(last.ref_name(), Some(sig_name.as_str()));
    assert_eq!(last.digest, synth_entry.digest);
    assert_eq!(
        last.artifact_type.as_deref(),
        Some("application/vnd.oci.image.config.v1+json"),
        "a 4.5-style entry"
    );
    assert_bytes_eq(
        &image.oci.read_blob(&last.digest).unwrap(),
        &synth_manifest_bytes,
        "two-layer .sig manifest",
    );
    assert_bytes_eq(
        &image.oci.read_blob(&synth_manifest.config.digest).unwrap(),
        &layout_blob(synth, &synth_manifest.config.digest),
        "two-layer .sig config",
    );
    // The old manifest and config are gone; the first payload stays.
    assert!(image.oci.blob(&old_manifest).is_none());
    assert!(image.oci.blob(&old.config.digest).is_none());
    assert!(image.oci.blob(&old.layers[0].digest).is_some());
    image.assert_clean();
    let found = discover(&image.oci);
    let sigs = found
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::Signature)
        .count();
    assert_eq!((sigs, found.entries.len()), (2, 3), "{:?}", found.warnings);
}

#[test]
fn dsse_envelope_alone_attaches_as_the_real_attestation() {
    let fixture = "ocitools-hello-world-cosign-manifest";
    let mut image = Mem::layout(fixture);
    let att_name = att_ref(HELLO);
    let (att_manifest, att) = image.manifest(&att_name).unwrap();
    assert_eq!(
        att_manifest,
        digest("sha256:e2138afe1d1bb80dd0348ed1c5a0bb784568249aa9c64b57c75055c548e58281")
    );
    let envelope_digest = att.layers[0].digest;
    detach(&mut image.oci, &att_name, 0, &envelope_digest).unwrap();
    assert!(image.manifest(&att_name).is_none());
    assert!(image.oci.blob(&envelope_digest).is_none());
    image.assert_clean();

    let drop = DropFiles {
        payload: Some(layout_blob(fixture, &envelope_digest)),
        ..DropFiles::default()
    };
    let a = prepare(&image.oci, &drop)
        .unwrap()
        .expect("an envelope is complete");
    assert_eq!((a.kind, a.target), (EntryKind::Attestation, digest(HELLO)));
    assert_eq!(a.layer.media_type, "application/vnd.dsse.envelope.v1+json");
    let want: BTreeMap<String, String> = [
        (SIG_KEY, ""),
        (
            "predicateType",
            "https://cosign.sigstore.dev/attestation/v1",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(a.layer.annotations.as_ref(), Some(&want));
    assert_eq!(attach(&mut image.oci, &a).unwrap(), AttachOutcome::Attached);

    let root = image.root();
    let last = root.entries().last().unwrap();
    assert_eq!(last.ref_name(), Some(att_name.as_str()));
    assert_eq!(last.digest, att_manifest);
    assert_bytes_eq(
        &image.oci.read_blob(&att_manifest).unwrap(),
        &layout_blob(fixture, &att_manifest),
        ".att manifest",
    );
    image.assert_clean();

    // The same envelope with the annotations cosign attest gives, or an empty signature
    // file as `cp -r` of an .att entry carries: the same layer, so nothing to do.
    for drop in [
        DropFiles {
            payload: drop.payload.clone(),
            annotations: Some(annotations_json(&want)),
            ..DropFiles::default()
        },
        DropFiles {
            payload: drop.payload.clone(),
            signature: Some(Vec::new()),
            ..DropFiles::default()
        },
    ] {
        let before = image.bytes();
        assert_eq!(
            image.attach_drop(&drop, EntryStyle::Singularity45),
            AttachOutcome::Unchanged
        );
        assert_eq!(image.bytes(), before);
    }
}

#[test]
fn platform_manifest_signature_is_its_own_top_level_entry() {
    let fixture = "ocitools-hello-world-cosign-manifest-list";
    let platform = "sha256:3209b9aec056b296ea55b2af7757d078bf92e55a3ea29c5fdef5c785bcef09c4";
    let mut image = Mem::layout(fixture);
    let name = sig_ref(platform);
    let (manifest_digest, m) = image.manifest(&name).unwrap();
    let layer = m.layers[0].clone();
    let entries_before = image.root().entries().len();
    detach(&mut image.oci, &name, 0, &layer.digest).unwrap();
    assert!(image.manifest(&name).is_none());
    assert_eq!(image.root().entries().len(), entries_before - 1);
    image.assert_clean();

    let list = image.root().entries()[0].clone();
    assert!(list.ref_name().is_none());
    let children = Index::parse(&image.oci.read_blob(&list.digest).unwrap()).unwrap();
    assert!(children
        .entries()
        .iter()
        .any(|c| c.digest == digest(platform)));
    assert!(image
        .root()
        .entries()
        .iter()
        .all(|e| e.digest != digest(platform)));

    let sig = layer.annotation(SIG_KEY).unwrap();
    let drop = payload_and_signature(layout_blob(fixture, &layer.digest), wrap76(sig));
    let a = prepare(&image.oci, &drop).unwrap().unwrap();
    assert_eq!(a.target, digest(platform));
    assert_eq!(attach(&mut image.oci, &a).unwrap(), AttachOutcome::Attached);
    let root = image.root();
    assert_eq!(root.entries().len(), entries_before);
    assert_eq!(
        root.entries()[0],
        list,
        "the manifest list entry is untouched"
    );
    let last = root.entries().last().unwrap();
    assert_eq!(
        last.ref_name(),
        Some(format!("_cosign:sha256-{}.sig", &platform[7..]).as_str())
    );
    assert_eq!(
        last.digest, manifest_digest,
        "the same .sig image as cosign's"
    );
    assert_bytes_eq(
        &image.oci.read_blob(&manifest_digest).unwrap(),
        &layout_blob(fixture, &manifest_digest),
        "platform .sig manifest",
    );
    image.assert_clean();
}

#[test]
fn detaching_the_only_signature_gives_back_the_unsigned_file() {
    let mut image = Mem::upstream("generated/squashfs-image.signed1.oci.sif");
    let target = image.root().entries()[0].digest.to_string();
    let name = sig_ref(&target);
    let (manifest_digest, m) = image.manifest(&name).unwrap();
    let before = image.bytes().len();
    detach(&mut image.oci, &name, 0, &m.layers[0].digest).unwrap();
    assert!(image.manifest(&name).is_none());
    for gone in [manifest_digest, m.config.digest, m.layers[0].digest] {
        assert!(image.oci.blob(&gone).is_none(), "{gone} still stored");
    }
    assert!(image.bytes().len() < before);
    image.assert_clean();
    assert!(discover(&image.oci).entries.is_empty());
    // The update algorithm puts the new root index in the slot and at the offset the old
    // signature image freed, so this is exactly the file before signing.
    assert_bytes_eq(
        &image.bytes(),
        &read_upstream("generated/squashfs-image.oci.sif"),
        "signed1 with its signature detached",
    );
}

#[test]
fn detaching_the_newest_of_two_signatures_gives_back_signed1() {
    for prefix in ["squashfs-image", "squashfs-image.v44"] {
        let mut image = Mem::upstream(&format!("generated/{prefix}.signed2.oci.sif"));
        let target = image.root().entries()[0].digest.to_string();
        let name = sig_ref(&target);
        let (_, m) = image.manifest(&name).unwrap();
        assert_eq!(m.layers.len(), 2);
        detach(&mut image.oci, &name, 1, &m.layers[1].digest).unwrap();
        image.assert_clean();
        let signed1 = format!("generated/{prefix}.signed1.oci.sif");
        if prefix == "squashfs-image" {
            // Freed slots and the space at the end are reused in the same order as the
            // first signing wrote them: byte for byte the once-signed file.
            assert_bytes_eq(&image.bytes(), &read_upstream(&signed1), &signed1);
        } else {
            // sifmount writes the replaced entry in the 4.5 form (with artifactType), so
            // only the root index differs from the 4.4-signed file.
            let want = Mem::upstream(&signed1);
            assert_eq!(image.manifest(&name), want.manifest(&name));
            let mut got_root = image.root();
            got_root.manifests.as_mut().unwrap()[1].artifact_type = None;
            assert_eq!(got_root, want.root());
        }
    }
}

#[test]
fn detaching_the_older_of_two_signatures_keeps_the_newer_layer() {
    let mut image = Mem::upstream("generated/squashfs-image.signed2.oci.sif");
    let target = image.root().entries()[0].digest.to_string();
    let name = sig_ref(&target);
    let (_, m) = image.manifest(&name).unwrap();
    detach(&mut image.oci, &name, 0, &m.layers[0].digest).unwrap();
    let (_, after) = image.manifest(&name).unwrap();
    assert_eq!(after.layers, vec![m.layers[1].clone()]);
    assert!(image.oci.blob(&m.layers[0].digest).is_none());
    image.assert_clean();
    let found = discover(&image.oci);
    assert_eq!(found.entries.len(), 1);
    assert_eq!(found.entries[0].layer, m.layers[1]);
}

#[test]
fn detach_and_amend_refuse_layers_that_are_not_there() {
    let mut image = Mem::upstream("generated/squashfs-image.signed1.oci.sif");
    let original = image.bytes();
    let target = image.root().entries()[0].digest;
    let name = sig_ref(&target.to_string());
    let (_, m) = image.manifest(&name).unwrap();
    let payload = m.layers[0].digest;
    let extra: BTreeMap<String, String> = [(CERT_KEY.to_string(), "c".to_string())].into();
    let cases: Vec<(String, usize, Digest, &str)> = vec![
        (
            name.clone(),
            1,
            payload,
            "has no layer 1: it has 1, counted from 0",
        ),
        (name.clone(), 0, target, "is sha256:"),
        (att_ref(&target.to_string()), 0, payload, "no entry named"),
        ("latest".to_string(), 0, payload, "not a _cosign:"),
    ];
    for (ref_name, i, d, want) in cases {
        for e in [
            detach(&mut image.oci, &ref_name, i, &d).unwrap_err(),
            amend(&mut image.oci, &ref_name, i, &d, &extra).unwrap_err(),
        ] {
            assert!(matches!(e, AttachError::NotFound { .. }), "{e:?}");
            assert!(e.to_string().contains(want), "{e}");
        }
        assert_eq!(image.bytes(), original);
    }
}

#[test]
fn amend_adds_keys_and_refuses_changes() {
    let rel = "generated/squashfs-image.signed1.oci.sif";
    let mut image = Mem::upstream(rel);
    let original = image.bytes();
    let target = image.root().entries()[0].digest.to_string();
    let name = sig_ref(&target);
    let (_, m) = image.manifest(&name).unwrap();
    let payload = m.layers[0].digest;
    let sig = m.layers[0].annotation(SIG_KEY).unwrap().to_string();

    // Repeating the committed signature (even with the newline a .sig file has) is no
    // change.
    let same: BTreeMap<String, String> = [(SIG_KEY.to_string(), format!("{sig}\n"))].into();
    assert_eq!(
        amend(&mut image.oci, &name, 0, &payload, &same).unwrap(),
        AttachOutcome::Unchanged
    );
    assert_eq!(image.bytes(), original);

    // Changing it is refused, and nothing is written, even with a new key beside it.
    let changed: BTreeMap<String, String> = [
        (SIG_KEY.to_string(), "AAAA".to_string()),
        (CERT_KEY.to_string(), "c".to_string()),
    ]
    .into();
    let e = amend(&mut image.oci, &name, 0, &payload, &changed).unwrap_err();
    let AttachError::Conflict {
        key,
        committed,
        new,
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        (key.as_str(), committed, new.as_str()),
        (SIG_KEY, &sig, "AAAA")
    );
    assert!(e.to_string().contains(SIG_KEY), "{e}");
    assert_eq!(e.to_string().lines().count(), 1);
    assert_eq!(image.bytes(), original);

    // A certificate is added to the layer; the rest of the descriptor stays.
    let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let add: BTreeMap<String, String> = [
        (SIG_KEY.to_string(), sig.clone()),
        (CERT_KEY.to_string(), cert.to_string()),
    ]
    .into();
    assert_eq!(
        amend(&mut image.oci, &name, 0, &payload, &add).unwrap(),
        AttachOutcome::Attached
    );
    let (_, after) = image.manifest(&name).unwrap();
    assert_eq!(after.layers.len(), 1);
    assert_eq!(after.layers[0].annotations.as_ref(), Some(&add));
    assert_eq!(after.layers[0].digest, payload);
    assert_eq!(
        image.root().entries().last().unwrap().ref_name(),
        Some(name.as_str())
    );
    assert!(
        image.oci.blob(&m.config.digest).is_some(),
        "same layers, same config"
    );
    image.assert_clean();
    let amended = image.bytes();
    assert_eq!(
        amend(&mut image.oci, &name, 0, &payload, &add).unwrap(),
        AttachOutcome::Unchanged
    );
    let other: BTreeMap<String, String> = [(CERT_KEY.to_string(), "other".to_string())].into();
    let e = amend(&mut image.oci, &name, 0, &payload, &other).unwrap_err();
    assert!(matches!(e, AttachError::Conflict { .. }), "{e:?}");
    assert_eq!(image.bytes(), amended);
    let found = discover(&image.oci);
    assert_eq!(found.entries[0].annotations(), add);
}

#[test]
fn incomplete_drops_wait_for_more() {
    let image = Mem::upstream("generated/squashfs-image.oci.sif");
    let (payload, annotations) =
        upstream_last_signature("generated/squashfs-image.signed1.oci.sif");
    let sig = annotations[SIG_KEY].clone();
    let cert = Some(b"cert".to_vec());
    for drop in [
        DropFiles::default(),
        DropFiles {
            signature: Some(sig.clone().into_bytes()),
            certificate: cert.clone(),
            ..DropFiles::default()
        },
        DropFiles {
            payload: Some(payload.clone()),
            ..DropFiles::default()
        },
        DropFiles {
            payload: Some(payload.clone()),
            signature: Some(b"\n".to_vec()),
            ..DropFiles::default()
        },
        DropFiles {
            payload: Some(payload.clone()),
            annotations: Some(br#"{"dev.sigstore.cosign/chain":""}"#.to_vec()),
            certificate: cert.clone(),
            ..DropFiles::default()
        },
    ] {
        assert_eq!(prepare(&image.oci, &drop).unwrap(), None, "{drop:?}");
    }
    let complete = DropFiles {
        payload: Some(payload),
        signature: Some(sig.clone().into_bytes()),
        certificate: cert,
        chain: Some(Vec::new()),
        bundle: Some(b"{\"SignedEntryTimestamp\":\"x\"}".to_vec()),
        rfc3161timestamp: Some(b"{}".to_vec()),
        annotations: Some(br#"{"custom":"v"}"#.to_vec()),
    };
    let a = prepare(&image.oci, &complete).unwrap().unwrap();
    let want: BTreeMap<String, String> = [
        (SIG_KEY, sig.as_str()),
        (CERT_KEY, "cert"),
        ("dev.sigstore.cosign/chain", ""),
        (
            "dev.sigstore.cosign/bundle",
            "{\"SignedEntryTimestamp\":\"x\"}",
        ),
        ("dev.sigstore.cosign/rfc3161timestamp", "{}"),
        ("custom", "v"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(a.layer.annotations, Some(want));
}

/// An in-toto statement about `subject` in a DSSE envelope with a (fake) signature.
fn envelope(subject_hex: &str, payload_type: &str, signatures: &str) -> Vec<u8> {
    use base64::Engine as _;
    let statement = format!(
        r#"{{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://example.com/p","subject":[{{"name":"x","digest":{{"sha256":"{subject_hex}"}}}}],"predicate":{{}}}}"#
    );
    let p = base64::engine::general_purpose::STANDARD.encode(statement);
    format!(r#"{{"payloadType":"{payload_type}","payload":"{p}","signatures":{signatures}}}"#)
        .into_bytes()
}

#[test]
fn invalid_drops_are_refused_with_the_file_and_the_reason() {
    let mut image = Mem::upstream("generated/squashfs-image.signed1.oci.sif");
    let original = image.bytes();
    let target = image.root().entries()[0].digest;
    let (payload, annotations) =
        upstream_last_signature("generated/squashfs-image.signed1.oci.sif");
    let sig = annotations[SIG_KEY].clone();
    let simple =
        |critical: &str| format!(r#"{{"critical":{critical},"optional":null}}"#).into_bytes();
    let with_sig = |p: Vec<u8>| payload_and_signature(p, sig.clone().into_bytes());
    let in_toto = "application/vnd.in-toto+json";
    let signed = r#"[{"keyid":"","sig":"AQID"}]"#;
    let hex = target.hex();

    let cases: Vec<(&str, DropFiles, &str, &str)> = vec![
        (
            "not JSON",
            with_sig(b"hello".to_vec()),
            "payload",
            "not valid JSON",
        ),
        (
            "JSON array",
            with_sig(b"[1,2]".to_vec()),
            "payload",
            "unknown payload format: an array",
        ),
        (
            "JSON object of another kind",
            with_sig(br#"{"a":1}"#.to_vec()),
            "payload",
            "expected a cosign simple-signing payload",
        ),
        (
            "simple-signing without critical.image",
            with_sig(simple(r#"{"type":"cosign container image signature"}"#)),
            "payload",
            "critical.image.docker-manifest-digest is missing",
        ),
        (
            "digest not hex",
            with_sig(simple(&format!(
                r#"{{"image":{{"docker-manifest-digest":"sha256:{}"}},"type":"cosign container image signature"}}"#,
                "z".repeat(64)
            ))),
            "payload",
            "is not sha256:<64 lowercase hex digits>",
        ),
        (
            "upper-case digest",
            with_sig(simple(&format!(
                r#"{{"image":{{"docker-manifest-digest":"sha256:{}"}},"type":"cosign container image signature"}}"#,
                hex.to_uppercase()
            ))),
            "payload",
            "is not sha256:<64 lowercase hex digits>",
        ),
        (
            "wrong critical.type",
            with_sig(simple(&format!(
                r#"{{"image":{{"docker-manifest-digest":"{target}"}},"type":"something else"}}"#
            ))),
            "payload",
            "critical.type is not \"cosign container image signature\"",
        ),
        (
            "target not in the image",
            with_sig(simple(&format!(
                r#"{{"image":{{"docker-manifest-digest":"sha256:{}"}},"type":"cosign container image signature"}}"#,
                "a".repeat(64)
            ))),
            "payload",
            "is not a manifest or index in this image",
        ),
        (
            "target is the signature image itself",
            with_sig(simple(&format!(
                r#"{{"image":{{"docker-manifest-digest":"{}"}},"type":"cosign container image signature"}}"#,
                image.root().entries()[1].digest
            ))),
            "payload",
            "is not a manifest or index in this image",
        ),
        (
            "signature not base64",
            payload_and_signature(payload.clone(), b"not base64!\n".to_vec()),
            "signature",
            "not standard base64: invalid character '!' at offset 9 (not counting whitespace)",
        ),
        (
            "signature without its padding",
            payload_and_signature(
                payload.clone(),
                format!("{}\n", sig.trim_end_matches('=')).into_bytes(),
            ),
            "signature",
            "not standard base64",
        ),
        (
            "annotations not JSON",
            DropFiles {
                payload: Some(payload.clone()),
                annotations: Some(b"{\"a\":".to_vec()),
                ..DropFiles::default()
            },
            "annotations",
            "EOF while parsing",
        ),
        (
            "annotations with a non-string value",
            DropFiles {
                payload: Some(payload.clone()),
                annotations: Some(br#"{"a":"b","n":5}"#.to_vec()),
                ..DropFiles::default()
            },
            "annotations",
            "the value of \"n\" is a number, not a string",
        ),
        (
            "annotations a JSON array",
            DropFiles {
                payload: Some(payload.clone()),
                annotations: Some(br#"["a"]"#.to_vec()),
                ..DropFiles::default()
            },
            "annotations",
            "expected a JSON object whose values are strings",
        ),
        (
            "annotations with a key twice",
            DropFiles {
                annotations: Some(br#"{"a":"b","a":"c"}"#.to_vec()),
                ..DropFiles::default()
            },
            "annotations",
            "the key \"a\" appears twice",
        ),
        (
            "annotations with a signature that is not base64",
            DropFiles {
                annotations: Some(format!(r#"{{"{SIG_KEY}":"%%%%"}}"#).into_bytes()),
                ..DropFiles::default()
            },
            "annotations",
            "not standard base64",
        ),
        (
            "DSSE with bad base64 payload",
            DropFiles {
                payload: Some(
                    format!(
                        r#"{{"payloadType":"{in_toto}","payload":"%%%","signatures":{signed}}}"#
                    )
                    .into_bytes(),
                ),
                ..DropFiles::default()
            },
            "payload",
            "payload is not base64",
        ),
        (
            "DSSE whose statement subject is not in the image",
            DropFiles {
                payload: Some(envelope(&"b".repeat(64), in_toto, signed)),
                ..DropFiles::default()
            },
            "payload",
            "no subject of the in-toto statement (sha256:bbbb",
        ),
        (
            "DSSE without signatures",
            DropFiles {
                payload: Some(envelope(&hex, in_toto, "[]")),
                ..DropFiles::default()
            },
            "payload",
            "DSSE envelope has no signature",
        ),
        (
            "DSSE of another payload type",
            DropFiles {
                payload: Some(envelope(&hex, "text/plain", signed)),
                ..DropFiles::default()
            },
            "payload",
            "payloadType is not application/vnd.in-toto+json",
        ),
        (
            "DSSE with a signature file",
            DropFiles {
                payload: Some(envelope(&hex, in_toto, signed)),
                signature: Some(sig.clone().into_bytes()),
                ..DropFiles::default()
            },
            "signature",
            "must be empty for an attestation",
        ),
        (
            "DSSE with another predicate type",
            DropFiles {
                payload: Some(envelope(&hex, in_toto, signed)),
                annotations: Some(br#"{"predicateType":"https://other"}"#.to_vec()),
                ..DropFiles::default()
            },
            "annotations",
            "predicateType differs from what the in-toto statement says",
        ),
        (
            "certificate not UTF-8",
            DropFiles {
                certificate: Some(b"-----BEGIN \xff\xfe".to_vec()),
                ..with_sig(payload.clone())
            },
            "certificate",
            "not UTF-8 text (invalid byte at offset 11)",
        ),
        (
            "conflicting signature between .sig file and annotations",
            DropFiles {
                annotations: Some(format!(r#"{{"{SIG_KEY}":"AAAA"}}"#).into_bytes()),
                ..with_sig(payload.clone())
            },
            "signature",
            "differs from the dev.cosignproject.cosign/signature value in the annotations file",
        ),
        (
            "conflicting certificate between its file and annotations",
            DropFiles {
                annotations: Some(format!(r#"{{"{CERT_KEY}":"a"}}"#).into_bytes()),
                certificate: Some(b"b".to_vec()),
                ..DropFiles::default()
            },
            "certificate",
            "differs",
        ),
    ];
    let count = cases.len();
    for (what, drop, file, want) in cases {
        let e = prepare(&image.oci, &drop).expect_err(what);
        let AttachError::Invalid { file: got, problem } = &e else {
            panic!("{what}: {e:?}")
        };
        assert_eq!(got, file, "{what}: {e}");
        assert!(problem.contains(want), "{what}: {e}");
        let shown = e.to_string();
        assert!(shown.starts_with(&format!("{file}: ")), "{what}: {shown}");
        assert_eq!(shown.lines().count(), 1, "{what}: {shown}");
        assert_eq!(image.bytes(), original, "{what}");
    }
    assert_eq!(count, 25);

    // A good drop still attaches afterwards: the refusals changed nothing.
    let (payload2, annotations2) =
        upstream_last_signature("generated/squashfs-image.signed2.oci.sif");
    let drop = payload_and_signature(payload2, annotations2[SIG_KEY].clone().into_bytes());
    assert_eq!(
        image.attach_drop(&drop, EntryStyle::Singularity45),
        AttachOutcome::Attached
    );
    assert_bytes_eq(
        &image.bytes(),
        &read_upstream("generated/squashfs-image.signed2.oci.sif"),
        "signed2",
    );
}

#[test]
fn attach_rechecks_the_attachment() {
    let mut image = Mem::upstream("generated/squashfs-image.oci.sif");
    let original = image.bytes();
    let (payload, annotations) =
        upstream_last_signature("generated/squashfs-image.signed1.oci.sif");
    let drop = payload_and_signature(payload, annotations[SIG_KEY].clone().into_bytes());
    let good = prepare(&image.oci, &drop).unwrap().unwrap();

    let mut tampered = good.clone();
    tampered.payload.push(b' ');
    let mut elsewhere = good.clone();
    elsewhere.target = digest(&format!("sha256:{}", "c".repeat(64)));
    let mut sbom = good.clone();
    sbom.kind = EntryKind::Sbom;
    let mut wrong_type = good.clone();
    wrong_type.kind = EntryKind::Attestation;
    for (a, want) in [
        (tampered, "but the payload is"),
        (elsewhere, "is not a manifest or index in this image"),
        (sbom, "not sbom"),
        (wrong_type, "a att layer has media type"),
    ] {
        let e = attach(&mut image.oci, &a).unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
        assert_eq!(image.bytes(), original);
    }
    assert_eq!(
        attach(&mut image.oci, &good).unwrap(),
        AttachOutcome::Attached
    );
}

#[test]
fn hostile_payloads_never_panic() {
    let image = Mem::layout("ocitools-hello-world-cosign-manifest");
    let fixture = "ocitools-hello-world-cosign-manifest";
    let (_, sig) = image.manifest(&sig_ref(HELLO)).unwrap();
    let (_, att) = image.manifest(&att_ref(HELLO)).unwrap();
    let sig_text = sig.layers[0].annotation(SIG_KEY).unwrap().to_string();
    for layer in [&sig.layers[0], &att.layers[0]] {
        let full = layout_blob(fixture, &layer.digest);
        for cut in 0..full.len() {
            for drop in [
                payload_and_signature(full[..cut].to_vec(), sig_text.clone().into_bytes()),
                DropFiles {
                    payload: Some(full.clone()),
                    signature: Some(sig_text.as_bytes()[..cut.min(sig_text.len())].to_vec()),
                    annotations: Some(full[..cut].to_vec()),
                    ..DropFiles::default()
                },
            ] {
                let _ = prepare(&image.oci, &drop);
            }
        }
        let drop = DropFiles {
            payload: Some(full),
            signature: Some(if layer.media_type.contains("dsse") {
                Vec::new()
            } else {
                sig_text.clone().into_bytes()
            }),
            ..DropFiles::default()
        };
        let a = prepare(&image.oci, &drop).unwrap().unwrap();
        assert_eq!(&a.layer, layer, "the fixture's own layer back");
    }
}

#[test]
fn appending_keeps_docker_media_types() {
    use sifmount::oci::layered_image::{config_for_layers, manifest_for_layers, MediaTypes};
    use sifmount::oci::{media_type, Descriptor, MemBlobs};

    // A one-layer .sig image as cosign writes it with COSIGN_DOCKER_MEDIA_TYPES=1.
    let mut image = Mem::upstream("generated/squashfs-image.oci.sif");
    let target = image.root().entries()[0].digest;
    let name = sig_ref(&target.to_string());
    let (payload, annotations) =
        upstream_last_signature("generated/squashfs-image.signed1.oci.sif");
    let mut first = Descriptor::of("application/vnd.dev.cosign.simplesigning.v1+json", &payload);
    first.annotations = Some(annotations);
    let mut blobs = MemBlobs::new();
    blobs.insert(payload);
    let config = config_for_layers(&[first.digest]);
    blobs.insert(config.clone());
    let manifest = manifest_for_layers(&config, vec![first.clone()], MediaTypes::Docker);
    let bytes = manifest.to_go_json();
    blobs.insert(bytes.clone());
    let mut root = image.root();
    root.replace_named(&name, &bytes, &manifest, EntryStyle::Singularity45);
    image
        .oci
        .update_root_index(&root.to_go_json(), &blobs)
        .unwrap();

    let (payload2, annotations2) =
        upstream_last_signature("generated/squashfs-image.signed2.oci.sif");
    let drop = payload_and_signature(payload2, annotations2[SIG_KEY].clone().into_bytes());
    assert_eq!(
        image.attach_drop(&drop, EntryStyle::Singularity45),
        AttachOutcome::Attached
    );
    let (digest, after) = image.manifest(&name).unwrap();
    assert_eq!(
        after.media_type.as_deref(),
        Some(media_type::DOCKER_MANIFEST)
    );
    assert_eq!(after.config.media_type, media_type::DOCKER_CONFIG);
    assert_eq!(after.layers.len(), 2);
    assert_eq!(after.layers[0], first);
    let entry = image.root().entries().last().unwrap().clone();
    assert_eq!(entry.digest, digest);
    assert_eq!(entry.media_type, media_type::DOCKER_MANIFEST);
    assert_eq!(
        entry.artifact_type.as_deref(),
        Some(media_type::DOCKER_CONFIG)
    );
    image.assert_clean();
}
