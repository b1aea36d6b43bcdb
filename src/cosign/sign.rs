//! Making signatures and attestations with a private key, as `singularity sign --cosign
//! --key` and `cosign attest --key` make them (the man page, SIGNING): the payload bytes,
//! the signature over them, and an [`Attachment`] checked exactly as a file dropped into
//! `/cosign` is (src/cosign/attach.rs, `prepare`), so that signing and dropping the same
//! payload and signature write the same bytes.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::attach::{prepare, AttachError, Attachment, DropFiles};
use super::discover::EntryKind;
use super::dsse::{pae, IN_TOTO_PAYLOAD_TYPE};
use super::private_key::SigningKey;
use crate::oci::gojson::{write_str, write_value, GoObject};
use crate::oci::OciSif;
use crate::sif::Digest;

/// What every simple-signing payload's `critical.type` says.
const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";

/// The `optional` keys SingularityCE always writes, which [`singularity_payload`] fills
/// from its own arguments.
pub const CREATOR_KEY: &str = "creator";
pub const TIMESTAMP_KEY: &str = "timestamp";

/// SingularityCE's payload (docs/FORMAT.md, The payload and what verifies it): Go compact
/// JSON,
/// `{"critical":{"identity":{"docker-reference":""},"image":{"docker-manifest-digest":"sha256:<hex>"},"type":"cosign container image signature"},"optional":{…}}`
/// with `optional` holding `annotations` (string values, as cosign's `-a`) and `creator`
/// and `timestamp` (a JSON integer), keys sorted as Go sorts a map's. `creator` and
/// `timestamp` are always these arguments: an annotation of either name is replaced
/// (callers that take user annotations refuse those names first, as conflicting).
pub fn singularity_payload(
    target: &Digest,
    creator: &str,
    timestamp: i64,
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    let mut optional: Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    optional.insert(CREATOR_KEY.to_string(), Value::String(creator.to_string()));
    optional.insert(TIMESTAMP_KEY.to_string(), Value::from(timestamp));

    let mut out = String::new();
    let mut top = GoObject::begin(&mut out);
    {
        let critical = top.key("critical");
        let mut c = GoObject::begin(critical);
        {
            let mut identity = GoObject::begin(c.key("identity"));
            identity.str("docker-reference", "");
            identity.end();
        }
        {
            let mut image = GoObject::begin(c.key("image"));
            image.str("docker-manifest-digest", &target.to_string());
            image.end();
        }
        c.str("type", SIMPLE_SIGNING_TYPE);
        c.end();
    }
    write_value(top.key("optional"), &Value::Object(optional));
    top.end();
    out.into_bytes()
}

/// A signature entry for `payload` (a simple-signing payload, used as given) signed with
/// `key`: validated as a drop would be (its target must be a manifest or index of the
/// image), ready for `cosign::attach`. The layer has the one annotation SingularityCE
/// writes, `dev.cosignproject.cosign/signature`.
pub fn sign_payload(
    oci: &OciSif,
    key: &SigningKey,
    payload: &[u8],
) -> Result<Attachment, AttachError> {
    signature_attachment(oci, payload, &key.sign(payload))
}

/// The entry [`sign_payload`] makes, from a signature already made (raw bytes): the one
/// path from payload and signature to layer, so a test can give it SingularityCE's own
/// signature and compare the file with SingularityCE's.
pub fn signature_attachment(
    oci: &OciSif,
    payload: &[u8],
    signature: &[u8],
) -> Result<Attachment, AttachError> {
    let signature = base64::engine::general_purpose::STANDARD.encode(signature);
    let drop = DropFiles {
        payload: Some(payload.to_vec()),
        signature: Some(signature.into_bytes()),
        ..DropFiles::default()
    };
    match prepare(oci, &drop)? {
        Some(a) if a.kind == EntryKind::Signature => Ok(a),
        _ => Err(AttachError::Invalid {
            file: "payload".to_string(),
            problem: "not a simple-signing payload (critical.image.docker-manifest-digest, \
                      critical.type); an in-toto statement is attested, not signed"
                .to_string(),
        }),
    }
}

/// An attestation: `statement` (an in-toto statement, JSON) wrapped in a DSSE envelope
/// `{"payloadType":"application/vnd.in-toto+json","payload":b64,"signatures":[{"keyid":"","sig":b64}]}`
/// as `cosign attest --key` (cosign 2) stores it, the signature over DSSE's
/// pre-authentication encoding; the target is the statement's subject found in the image,
/// and the layer annotations are `cosign attest`'s (an empty signature annotation and the
/// statement's `predicateType`), as a dropped envelope gets them.
pub fn attest(oci: &OciSif, key: &SigningKey, statement: &[u8]) -> Result<Attachment, AttachError> {
    if let Err(e) = serde_json::from_slice::<Value>(statement) {
        return Err(AttachError::Invalid {
            file: "statement".to_string(),
            problem: format!("not valid JSON: {e}"),
        });
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let sig = key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, statement));
    let mut out = String::new();
    let mut envelope = GoObject::begin(&mut out);
    envelope.str("payloadType", IN_TOTO_PAYLOAD_TYPE);
    envelope.str("payload", &b64.encode(statement));
    {
        let list = envelope.key("signatures");
        list.push('[');
        let mut s = GoObject::begin(list);
        s.str("keyid", "");
        write_str(s.key("sig"), &b64.encode(sig));
        s.end();
        list.push(']');
    }
    envelope.end();
    let drop = DropFiles {
        payload: Some(out.into_bytes()),
        ..DropFiles::default()
    };
    match prepare(oci, &drop)? {
        Some(a) if a.kind == EntryKind::Attestation => Ok(a),
        _ => Err(AttachError::Invalid {
            file: "statement".to_string(),
            problem: "the envelope made of it is not an attestation".to_string(),
        }),
    }
}
