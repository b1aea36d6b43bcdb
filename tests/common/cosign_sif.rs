//! OCI-SIFs holding the cosign fixtures of `testdata/cosign`, written with the library:
//! the fixtures are OCI layouts or containers/image `dir:` signatures, not SIFs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use sifmount::oci::layered_image::{config_for_layers, manifest_for_layers, MediaTypes};
use sifmount::oci::{media_type, write_oci_sif_at_path, Descriptor, Index, LayoutDir, MemBlobs};
use sifmount::sif::{AddOptions, DataType, Digest, Extra, ObjectInput, OpenMode, SifImage};

/// Converts an OCI layout into an OCI-SIF at `out`. With `strays`, blobs of the layout that
/// its index does not reach are added too (as `cosign save` leaves referrer manifests).
pub fn layout_sif(layout: &Path, out: &Path, strays: bool) {
    let source = LayoutDir::new(layout);
    let index = source.index_bytes().unwrap();
    let written = write_oci_sif_at_path(out, &index, &source, 8)
        .unwrap_or_else(|e| panic!("{}: {e}", layout.display()));
    if !strays {
        return;
    }
    let mut present: Vec<Digest> = written.blobs().map(|(d, _)| d).collect();
    drop(written);
    let mut sif = SifImage::open(out, OpenMode::ReadWrite).unwrap();
    let dir = layout.join("blobs/sha256");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let digest: Digest = format!("sha256:{name}").parse().unwrap();
        if present.contains(&digest) {
            continue;
        }
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        let object =
            ObjectInput::new(DataType::OciBlob, &bytes[..]).extra(Extra::OciDigest(digest));
        sif.add_object(object, AddOptions::Zero).unwrap();
        present.push(digest);
    }
}

/// A fixture file; containers/image keeps some as symbolic links into a sibling fixture,
/// and the copy here holds the link's target as text (`../dir-img-cosign-valid/…`).
fn read_fixture(path: &Path) -> std::io::Result<Vec<u8>> {
    let bytes = std::fs::read(path)?;
    match std::str::from_utf8(&bytes) {
        Ok(target) if target.starts_with("../") && !target.contains('\n') => {
            let dir = path.parent().expect("fixture files are in a directory");
            std::fs::read(dir.join(target))
        }
        _ => Ok(bytes),
    }
}

/// One containers/image `dir:` signature: `\0sigstore-json\n` and a JSON object.
pub struct DirSignature {
    pub media_type: String,
    pub payload: Vec<u8>,
    pub annotations: BTreeMap<String, String>,
}

/// The signatures of a containers/image `dir:` fixture, in file order.
pub fn dir_signatures(dir: &Path) -> Vec<DirSignature> {
    let mut out = Vec::new();
    for n in 1.. {
        let Ok(bytes) = read_fixture(&dir.join(format!("signature-{n}"))) else {
            break;
        };
        let json = bytes.strip_prefix(b"\0sigstore-json\n").unwrap_or_else(|| {
            panic!(
                "{}: signature-{n} is not a sigstore signature",
                dir.display()
            )
        });
        let v: serde_json::Value = serde_json::from_slice(json).unwrap();
        use base64::Engine as _;
        let payload = base64::engine::general_purpose::STANDARD
            .decode(v["payload"].as_str().unwrap())
            .unwrap();
        let annotations = v["annotations"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        out.push(DirSignature {
            media_type: v["mimeType"].as_str().unwrap().to_string(),
            payload,
            annotations,
        });
    }
    assert!(!out.is_empty(), "{}: no signature-N files", dir.display());
    out
}

/// An OCI-SIF holding the signatures of a containers/image `dir:` fixture as a `.sig`
/// image named after the digest of its `manifest.json` (the signed target, whose own
/// blobs the fixture does not have, so only the signature image is in the root index).
/// Returns the target digest.
pub fn containers_image_sif(dir: &Path, out: &Path) -> Digest {
    let target = Digest::of(&read_fixture(&dir.join("manifest.json")).unwrap());
    let layers = dir_signatures(dir)
        .into_iter()
        .map(|sig| (sig.media_type, sig.payload, sig.annotations))
        .collect();
    let (manifest, blobs) = signature_image(layers);
    let mut index = Index::empty();
    let entry = Descriptor::of(media_type::OCI_MANIFEST, &manifest);
    index.append(entry, Some(&format!("_cosign:sha256-{}.sig", target.hex())));
    write_oci_sif_at_path(out, &index.to_go_json(), &blobs, 8).unwrap();
    target
}

/// A cosign signature image (empty image plus one layer per `(media type, payload,
/// annotations)`): its manifest bytes, and every blob it needs (payloads, config,
/// manifest).
pub fn signature_image(
    layers: Vec<(String, Vec<u8>, BTreeMap<String, String>)>,
) -> (Vec<u8>, MemBlobs) {
    let mut blobs = MemBlobs::new();
    let mut descriptors = Vec::new();
    for (media_type, payload, annotations) in layers {
        let mut layer = Descriptor::of(&media_type, &payload);
        layer.annotations = Some(annotations);
        blobs.insert(payload);
        descriptors.push(layer);
    }
    let diff_ids: Vec<Digest> = descriptors.iter().map(|l| l.digest).collect();
    let config = config_for_layers(&diff_ids);
    blobs.insert(config.clone());
    let manifest = manifest_for_layers(&config, descriptors, MediaTypes::Oci).to_go_json();
    blobs.insert(manifest.clone());
    (manifest, blobs)
}

/// Like [`containers_image_sif`], with the signed manifest itself in the root index too
/// (shown as `/images/sha256-<12 hex>`): an image whose signature can be verified end to
/// end, though its config and layers are missing (the fixture does not have them).
/// `layers` may be changed before they are stored (a tampered signature).
pub fn containers_image_sif_with_target(
    dir: &Path,
    out: &Path,
    change: impl FnOnce(&mut Vec<DirSignature>),
) -> Digest {
    let manifest_bytes = read_fixture(&dir.join("manifest.json")).unwrap();
    let target = Digest::of(&manifest_bytes);
    let mut signatures = dir_signatures(dir);
    change(&mut signatures);
    let layers = signatures
        .into_iter()
        .map(|sig| (sig.media_type, sig.payload, sig.annotations))
        .collect();
    let (manifest, blobs) = signature_image(layers);
    let mut index = Index::empty();
    let target_type = serde_json::from_slice::<serde_json::Value>(&manifest_bytes).unwrap()
        ["mediaType"]
        .as_str()
        .unwrap()
        .to_string();
    index.append(Descriptor::of(&target_type, &manifest_bytes), None);
    let entry = Descriptor::of(media_type::OCI_MANIFEST, &manifest);
    index.append(entry, Some(&format!("_cosign:sha256-{}.sig", target.hex())));
    // The library's writer refuses an image with missing blobs: objects one by one.
    use sifmount::oci::BlobSource as _;
    let doc: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let mut stored: Vec<Vec<u8>> = vec![manifest_bytes, manifest.clone()];
    let named = std::iter::once(&doc["config"]).chain(doc["layers"].as_array().unwrap());
    for d in named {
        let digest: Digest = d["digest"].as_str().unwrap().parse().unwrap();
        stored.push(blobs.read_blob(&digest).unwrap().unwrap());
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(out)
        .unwrap();
    let options = sifmount::sif::CreateOptions {
        capacity: stored.len() as i64 + 8,
        ..sifmount::sif::CreateOptions::deterministic()
    };
    let mut sif = SifImage::create(Box::new(file), &options, Vec::new()).unwrap();
    for bytes in &stored {
        let object = ObjectInput::new(DataType::OciBlob, &bytes[..])
            .extra(Extra::OciDigest(Digest::of(bytes)));
        sif.add_object(object, AddOptions::Zero).unwrap();
    }
    let root = index.to_go_json();
    sif.add_object(
        ObjectInput::new(DataType::OciRootIndex, &root[..]),
        AddOptions::Zero,
    )
    .unwrap();
    target
}

/// go-containerregistry's empty image (`cosign-repo/empty-image`) with `bundle` attached
/// as cosign 3 stores a sigstore bundle: an OCI 1.1 referrer manifest whose subject is
/// the image, listed in the root index. Every blob is present. Returns the image digest.
pub fn empty_image_with_bundle(bundle: &[u8], out: &Path) -> Digest {
    let dir = super::cosign_data("cosign-repo/empty-image");
    let manifest = std::fs::read(dir.join("manifest.json")).unwrap();
    let config = std::fs::read(dir.join("config.json")).unwrap();
    let target = Descriptor::of(media_type::DOCKER_MANIFEST, &manifest);
    let empty = b"{}".to_vec();
    let bundle_type = "application/vnd.dev.sigstore.bundle.v0.3+json";
    let referrer = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "artifactType": bundle_type,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": Digest::of(&empty).to_string(),
            "size": empty.len(),
        },
        "layers": [{
            "mediaType": bundle_type,
            "digest": Digest::of(bundle).to_string(),
            "size": bundle.len(),
        }],
        "subject": {
            "mediaType": media_type::DOCKER_MANIFEST,
            "digest": target.digest.to_string(),
            "size": manifest.len(),
        },
    });
    let referrer = serde_json::to_vec(&referrer).unwrap();
    let mut blobs = MemBlobs::new();
    for b in [&manifest, &config, &empty, &referrer] {
        blobs.insert(b.clone());
    }
    blobs.insert(bundle.to_vec());
    let mut index = Index::empty();
    index.append(target.clone(), None);
    index.append(Descriptor::of(media_type::OCI_MANIFEST, &referrer), None);
    write_oci_sif_at_path(out, &index.to_go_json(), &blobs, 8).unwrap();
    target.digest
}

/// go-containerregistry's empty image (`cosign-repo/empty-image`: its manifest and
/// config) as an OCI-SIF with nothing attached, the target of the real bundle
/// `cosign-repo/oci-attestation.sigstore.json`. Returns the image digest.
pub fn empty_image_sif(out: &Path) -> Digest {
    let dir = super::cosign_data("cosign-repo/empty-image");
    let manifest = std::fs::read(dir.join("manifest.json")).unwrap();
    let config = std::fs::read(dir.join("config.json")).unwrap();
    let target = Descriptor::of(media_type::DOCKER_MANIFEST, &manifest);
    let mut blobs = MemBlobs::new();
    blobs.insert(manifest);
    blobs.insert(config);
    let mut index = Index::empty();
    index.append(target.clone(), None);
    write_oci_sif_at_path(out, &index.to_go_json(), &blobs, 8).unwrap();
    target.digest
}

/// The referrer manifest cosign 3 writes for `bundle` about `subject`, spelled out from
/// COSIGN.md §6.1 (compact JSON, that field order), with creation time `created`.
/// `predicate_type` is the statement's, `None` for a message signature (whose referrer
/// has no such annotation).
pub fn cosign_referrer_manifest(
    bundle: &[u8],
    layer_media_type: &str,
    predicate_type: Option<&str>,
    subject: &Descriptor,
    created: &str,
) -> Vec<u8> {
    let v3 = "application/vnd.dev.sigstore.bundle.v0.3+json";
    let empty = Digest::of(b"{}");
    let (content, predicate) = match predicate_type {
        Some(p) => (
            "dsse-envelope",
            format!(r#","dev.sigstore.bundle.predicateType":"{p}""#),
        ),
        None => ("message-signature", String::new()),
    };
    format!(
        concat!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","#,
            r#""config":{{"mediaType":"application/vnd.oci.empty.v1+json","size":2,"digest":"{empty}","artifactType":"{v3}"}},"#,
            r#""layers":[{{"mediaType":"{lt}","size":{n},"digest":"{bundle}"}}],"#,
            r#""annotations":{{"dev.sigstore.bundle.content":"{content}"{predicate},"org.opencontainers.image.created":"{created}"}},"#,
            r#""subject":{{"mediaType":"{st}","size":{ss},"digest":"{sd}"}},"#,
            r#""artifactType":"{v3}"}}"#
        ),
        empty = empty,
        v3 = v3,
        lt = layer_media_type,
        n = bundle.len(),
        bundle = Digest::of(bundle),
        content = content,
        predicate = predicate,
        created = created,
        st = subject.media_type,
        ss = subject.size,
        sd = subject.digest,
    )
    .into_bytes()
}

/// A referrer manifest sifmount wrote, with its `org.opencontainers.image.created` replaced
/// by `created`, after checking that the time is RFC 3339 UTC to the second and within a
/// few minutes before now.
pub fn with_created(manifest: &[u8], created: &str) -> Vec<u8> {
    let text = std::str::from_utf8(manifest).unwrap();
    let key = "\"org.opencontainers.image.created\":\"";
    let start = text
        .find(key)
        .expect("an org.opencontainers.image.created annotation")
        + key.len();
    let end = start + text[start..].find('"').unwrap();
    let written = &text[start..end];
    let t: jiff::Timestamp = written
        .parse()
        .unwrap_or_else(|e| panic!("created {written}: {e}"));
    assert_eq!(t.to_string(), written, "RFC 3339 UTC, to the second");
    let age = jiff::Timestamp::now().as_second() - t.as_second();
    assert!(
        (0..300).contains(&age),
        "created {written} is {age} s before now"
    );
    format!("{}{created}{}", &text[..start], &text[end..]).into_bytes()
}
