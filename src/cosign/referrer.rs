//! Sigstore bundles attached the way cosign 3 stores them in a registry (docs/FORMAT.md,
//! Cosign: referrers): one OCI 1.1 referrer manifest per bundle, whose one layer is the
//! bundle's bytes as dropped and whose `subject` is the image it is about; kept in the root
//! index under a `_cosign:` name so that SingularityCE still finds exactly one image and no
//! later update of the file deletes it as unreachable.
//!
//! The bundle is parsed by `dsse.rs` (`Bundle`) and verified by `verify.rs` like any
//! referrer the image already holds; this module only decides what it is about and writes it.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::attach::{
    image_targets, no_subject_in_image, not_in_image, quoted, AttachError, AttachOutcome,
    Attachment,
};
use super::discover::EntryKind;
use super::dsse::{Bundle, BundleContent, IN_TOTO_PAYLOAD_TYPE};
use super::is_bundle_ref;
use super::verify::{utc, BUNDLE_MEDIA_TYPE_PREFIX};
use crate::oci::{media_type, Descriptor, EntryStyle, Manifest, MemBlobs, NoBlobs, OciSif};
use crate::sif::Digest;

/// The bundle version cosign 3 writes, and what its referrers are listed by
/// (`artifactType` of the manifest and, a cosign quirk, of the config descriptor).
pub const BUNDLE_V03_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The older bundle versions (the same JSON shape): sigstore's readers take all three.
const BUNDLE_V01_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle+json;version=0.1";
const BUNDLE_V02_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle+json;version=0.2";
const KNOWN_VERSIONS: [&str; 3] = [
    BUNDLE_V01_MEDIA_TYPE,
    BUNDLE_V02_MEDIA_TYPE,
    BUNDLE_V03_MEDIA_TYPE,
];

/// The manifest annotation that says what the bundle holds: `dsse-envelope` or
/// `message-signature`.
pub const BUNDLE_CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";
/// The manifest annotation with the in-toto statement's predicate type (DSSE bundles only:
/// a message signature has no statement, so its referrer has no such annotation).
pub const BUNDLE_PREDICATE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";
/// When the referrer was written, RFC 3339 UTC to the second, as cosign sets it.
const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";
/// The empty config every referrer of cosign's points at.
const EMPTY_CONFIG: &[u8] = b"{}";
/// Referrer manifests larger than this are not read when looking for an earlier copy of a
/// bundle: cosign's are under a kilobyte.
const MAX_REFERRER_MANIFEST: i64 = 1 << 20;

/// Whether a JSON object is (meant to be) a sigstore bundle: it names a bundle media type,
/// or has a field only a bundle has. Such a payload is judged here, so that a bundle with
/// a version sifmount does not know is refused as that, not as an unknown format.
pub(super) fn looks_like_bundle(object: &Map<String, Value>) -> bool {
    let named = object
        .get("mediaType")
        .and_then(Value::as_str)
        .is_some_and(|m| m.starts_with(BUNDLE_MEDIA_TYPE_PREFIX));
    named
        || ["verificationMaterial", "dsseEnvelope", "messageSignature"]
            .iter()
            .any(|k| object.contains_key(*k))
}

/// What a bundle says, as far as attaching it goes.
struct Summary {
    media_type: String,
    /// The digests it is about: the statement's sha256 subjects, or the message digest.
    subjects: Vec<Digest>,
    /// `dsse-envelope` or `message-signature`.
    content: &'static str,
    predicate_type: Option<String>,
}

fn invalid(problem: impl Into<String>) -> AttachError {
    AttachError::invalid("payload", format!("sigstore bundle: {}", problem.into()))
}

fn summarize(payload: &[u8]) -> Result<Summary, AttachError> {
    let bundle =
        Bundle::parse(payload).map_err(|e| AttachError::invalid("payload", e.to_string()))?;
    let media_type = match bundle.media_type.as_deref() {
        Some(m) if KNOWN_VERSIONS.contains(&m) => m.to_string(),
        Some(m) => {
            return Err(invalid(format!(
                "mediaType {} is not a bundle version sifmount knows ({})",
                quoted(m),
                KNOWN_VERSIONS.join(", ")
            )))
        }
        None => {
            return Err(invalid(format!(
                "has no mediaType; a bundle names its version ({})",
                KNOWN_VERSIONS.join(", ")
            )))
        }
    };
    if matches!(bundle.material, super::VerificationMaterial::Missing) {
        return Err(invalid(
            "has no verificationMaterial (publicKey, certificate or x509CertificateChain), so \
             nothing says who signed it",
        ));
    }
    match bundle.content {
        BundleContent::Dsse(envelope) => {
            if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
                return Err(invalid(format!(
                    "dsseEnvelope.payloadType is not {IN_TOTO_PAYLOAD_TYPE}, the only one \
                     cosign signs images with"
                )));
            }
            if envelope.signatures.iter().all(|s| s.sig.is_empty()) {
                return Err(invalid("dsseEnvelope has no signature"));
            }
            let statement = envelope
                .statement()
                .map_err(|e| AttachError::invalid("payload", e.to_string()))?;
            let subjects = statement
                .subject_sha256
                .iter()
                .filter_map(|hex| format!("sha256:{hex}").parse().ok())
                .collect();
            Ok(Summary {
                media_type,
                subjects,
                content: "dsse-envelope",
                predicate_type: statement.predicate_type.filter(|p| !p.is_empty()),
            })
        }
        BundleContent::MessageSignature {
            digest_algorithm,
            digest,
            signature,
        } => {
            if digest_algorithm.as_deref() != Some("SHA2_256") {
                return Err(invalid(format!(
                    "messageSignature.messageDigest.algorithm is {}, not SHA2_256: only a \
                     sha256 digest can name a manifest or index",
                    digest_algorithm.as_deref().map_or("missing".into(), quoted)
                )));
            }
            let digest: [u8; 32] = digest.as_slice().try_into().map_err(|_| {
                invalid(format!(
                    "messageSignature.messageDigest.digest is {} bytes, not the 32 of a sha256",
                    digest.len()
                ))
            })?;
            if signature.is_empty() {
                return Err(invalid("messageSignature.signature is empty"));
            }
            Ok(Summary {
                media_type,
                subjects: vec![Digest::from_bytes(digest)],
                content: "message-signature",
                predicate_type: None,
            })
        }
    }
}

/// The attachment a dropped bundle makes: a referrer of the first manifest or index of the
/// image it is about. `targets` are the image's, as `image_targets` lists them;
/// `companion` is an annotation another dropped file gives (its key and that file), if any.
pub(super) fn prepare_bundle(
    payload: &[u8],
    targets: &HashMap<Digest, Descriptor>,
    companion: Option<(&str, &str)>,
) -> Result<Attachment, AttachError> {
    // A bundle is whole: its signature and verification material are inside it, and its
    // referrer has no layer annotations to put other files in.
    if let Some((key, file)) = companion {
        return Err(AttachError::invalid(
            file,
            format!(
                "gives {key}, but a sigstore bundle carries its own signature and verification \
                 material and its referrer layer takes no annotations"
            ),
        ));
    }
    let summary = summarize(payload)?;
    let Some(target) = summary
        .subjects
        .iter()
        .find(|s| targets.contains_key(*s))
        .copied()
    else {
        return Err(match summary.content {
            "message-signature" => {
                let d = summary.subjects[0];
                AttachError::invalid(
                    "payload",
                    format!(
                        "sigstore bundle: the message digest {d} is not a manifest or index in \
                         this image"
                    ),
                )
            }
            _ => no_subject_in_image(&summary.subjects),
        });
    };
    Ok(Attachment {
        kind: EntryKind::Referrer,
        target,
        layer: Descriptor::of(&summary.media_type, payload),
        payload: payload.to_vec(),
    })
}

/// `_cosign:sha256-<target hex>.bundle-<32 hex of the bundle's digest>`: the root-index
/// name of a bundle's referrer (docs/FORMAT.md, Cosign: referrers). It starts `_cosign` so
/// that SingularityCE does not take the referrer for the image, and names the bundle so
/// that dropping the same bundle again finds it.
pub fn bundle_ref_name(target: &Digest, bundle: &Digest) -> String {
    let name = format!(
        "_cosign:sha256-{}.bundle-{}",
        target.hex(),
        &bundle.hex()[..super::BUNDLE_NAME_HEX]
    );
    debug_assert!(is_bundle_ref(&name));
    name
}

/// Writes `a` (a [`EntryKind::Referrer`] attachment) as cosign 3's `WriteReferrer` does, and
/// lists it in the root index under [`bundle_ref_name`], all with one run of the update
/// algorithm. A root-index entry that is already a referrer of this bundle about this
/// target makes it [`AttachOutcome::Unchanged`]: a repeated copy must not add a second.
pub(super) fn attach_referrer(
    oci: &mut OciSif,
    a: &Attachment,
    style: EntryStyle,
) -> Result<AttachOutcome, AttachError> {
    let summary = check_referrer(a)?;
    let targets = image_targets(oci)?;
    let Some(target) = targets.get(&a.target) else {
        return Err(not_in_image(&a.target, "bundle's subject"));
    };
    let mut index = oci.root_index()?;
    if already_listed(oci, &index, a) {
        return Ok(AttachOutcome::Unchanged);
    }
    let manifest = referrer_manifest(a, target, &summary, &now());
    let manifest_bytes = manifest.to_go_json();
    let mut blobs = MemBlobs::new();
    blobs.insert(EMPTY_CONFIG.to_vec());
    blobs.insert(a.payload.clone());
    blobs.insert(manifest_bytes.clone());
    let name = bundle_ref_name(&a.target, &a.layer.digest);
    index.replace_named(&name, &manifest_bytes, &manifest, style);
    oci.update_root_index(&index.to_go_json(), &blobs)?;
    Ok(AttachOutcome::Attached)
}

/// An [`Attachment`] has public fields: what the commit relies on is checked again.
fn check_referrer(a: &Attachment) -> Result<Summary, AttachError> {
    a.check_layer_bytes("bundle")?;
    let summary = summarize(&a.payload)?;
    if a.layer.media_type != summary.media_type {
        return Err(invalid(format!(
            "the layer has media type {}, but the bundle says it is {}",
            quoted(&a.layer.media_type),
            summary.media_type
        )));
    }
    if !summary.subjects.contains(&a.target) {
        return Err(invalid(format!("is not about {}", a.target)));
    }
    Ok(summary)
}

/// Whether a manifest the root index lists is already a referrer of `a.target` with the
/// bundle as a layer. Manifests that cannot be read are not that.
fn already_listed(oci: &OciSif, index: &crate::oci::Index, a: &Attachment) -> bool {
    index.entries().iter().any(|e| {
        media_type::is_manifest(&e.media_type)
            && oci
                .blob(&e.digest)
                .is_some_and(|d| d.size <= MAX_REFERRER_MANIFEST)
            && oci
                .read_blob(&e.digest)
                .ok()
                .and_then(|b| Manifest::parse(&b).ok())
                .is_some_and(|m| {
                    m.subject.is_some_and(|s| s.digest == a.target)
                        && m.layers.iter().any(|l| l.digest == a.layer.digest)
                })
    })
}

/// Now, as cosign writes `org.opencontainers.image.created`.
fn now() -> String {
    utc(jiff::Timestamp::now().as_second())
}

/// The referrer manifest, field for field as cosign 3 writes it (docs/FORMAT.md, Cosign:
/// referrers): the empty config with `artifactType` inside its descriptor, the bundle as
/// the one layer, the annotations, the subject (media type, size and digest only, as a
/// registry's HEAD gives them) and the artifact type.
fn referrer_manifest(
    a: &Attachment,
    target: &Descriptor,
    summary: &Summary,
    created: &str,
) -> Manifest {
    let mut config = Descriptor::of(media_type::OCI_EMPTY, EMPTY_CONFIG);
    config.artifact_type = Some(BUNDLE_V03_MEDIA_TYPE.to_string());
    let mut annotations = BTreeMap::new();
    annotations.insert(
        BUNDLE_CONTENT_ANNOTATION.to_string(),
        summary.content.to_string(),
    );
    if let Some(p) = &summary.predicate_type {
        annotations.insert(BUNDLE_PREDICATE_ANNOTATION.to_string(), p.clone());
    }
    annotations.insert(CREATED_ANNOTATION.to_string(), created.to_string());
    let mut layer = a.layer.clone();
    layer.annotations = None;
    Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.to_string()),
        config,
        layers: vec![layer],
        annotations: Some(annotations),
        subject: Some(Descriptor::of_digest(
            &target.media_type,
            target.digest,
            target.size.max(0) as u64,
        )),
        artifact_type: Some(BUNDLE_V03_MEDIA_TYPE.to_string()),
    }
}

/// Removes the referrer `manifest` (`rm -r /cosign/<entry>`), whose one layer must be
/// `layer`: every root-index entry listing it goes, and the update algorithm deletes the
/// blobs nothing references any more (the `{}` config survives while another manifest
/// uses it). A referrer the root index does not list is refused: removing its blobs is
/// not an update of the root index, and the next update deletes them anyway.
pub fn detach_referrer(
    oci: &mut OciSif,
    manifest: &Digest,
    layer: &Digest,
) -> Result<(), AttachError> {
    let mut index = oci.root_index()?;
    if !index.entries().iter().any(|e| e.digest == *manifest) {
        return Err(AttachError::NotFound {
            what: format!("the root index does not list the referrer {manifest}"),
        });
    }
    let parsed = Manifest::parse(&oci.read_blob(manifest)?)?;
    match parsed.layers.as_slice() {
        [only] if only.digest == *layer => {}
        [only] => {
            return Err(AttachError::NotFound {
                what: format!("the referrer {manifest} holds {}, not {layer}", only.digest),
            })
        }
        layers => {
            return Err(AttachError::invalid(
                "referrer",
                format!(
                    "{manifest} holds {} layers; sifmount removes a referrer only whole, so \
                     only one of a single layer, to leave the others' entries alone",
                    layers.len()
                ),
            ))
        }
    }
    index.remove(|e| e.digest == *manifest);
    oci.update_root_index(&index.to_go_json(), &NoBlobs)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(media_type: &str, content: &str) -> Vec<u8> {
        format!(
            r#"{{"mediaType":"{media_type}","verificationMaterial":{{"publicKey":{{"hint":"x"}}}},{content}}}"#
        )
        .into_bytes()
    }

    fn message(algorithm: &str, digest: &[u8]) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        format!(
            r#""messageSignature":{{"messageDigest":{{"algorithm":"{algorithm}","digest":"{}"}},"signature":"{}"}}"#,
            b64.encode(digest),
            b64.encode(b"sig")
        )
    }

    #[test]
    fn a_message_signature_is_about_its_digest() {
        let target = Digest::of(b"manifest");
        let s = summarize(&bundle(
            BUNDLE_V02_MEDIA_TYPE,
            &message("SHA2_256", target.as_bytes()),
        ))
        .unwrap();
        assert_eq!(s.subjects, vec![target]);
        assert_eq!(s.content, "message-signature");
        assert_eq!(s.predicate_type, None);
        assert_eq!(s.media_type, BUNDLE_V02_MEDIA_TYPE);
    }

    #[test]
    fn unknown_versions_and_digests_are_refused() {
        let target = Digest::of(b"manifest");
        let content = message("SHA2_256", target.as_bytes());
        let e = summarize(&bundle(
            "application/vnd.dev.sigstore.bundle.v0.9+json",
            &content,
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("not a bundle version sifmount knows"), "{e}");
        let e = summarize(&bundle(
            BUNDLE_V03_MEDIA_TYPE,
            &message("SHA2_384", &[0; 48]),
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("not SHA2_256"), "{e}");
        let e = summarize(&bundle(
            BUNDLE_V03_MEDIA_TYPE,
            &message("SHA2_256", &[0; 20]),
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("20 bytes"), "{e}");
    }

    #[test]
    fn bundle_names_are_cosign_names() {
        let name = bundle_ref_name(&Digest::of(b"t"), &Digest::of(b"b"));
        assert!(super::super::is_cosign_ref(&name));
        assert!(
            name.len() - "_cosign:".len() <= 128,
            "a registry tag: {name}"
        );
    }
}
