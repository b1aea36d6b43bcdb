//! The one place sifmount uses the sigstore crates (`sigstore-verify`, `-trust-root`,
//! `-types`, `-crypto`): certificate chains to Fulcio, SCTs, Rekor SETs, inclusion proofs
//! and checkpoints are checked by them, never by hand-written code. They change their API
//! in minor releases, so Cargo.toml pins them exactly and nothing outside this module
//! names one of their types: callers hand in bytes and get back strings and times.
//!
//! Cosign's older storage (docs/FORMAT.md, The payload and what verifies it) keeps a
//! signature's certificate, chain and Rekor entry in layer annotations; [`Signed::Legacy`]
//! puts them into a sigstore bundle v0.1 in memory, which is what that storage is a
//! spelling of, so that both storages are checked by the same code.

mod provider;

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Value};

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Trust material: Fulcio CAs, CT logs and Rekor logs, with their validity windows.
pub struct TrustRoot {
    name: String,
    verifier: sigstore_verify::Verifier,
}

impl fmt::Debug for TrustRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustRoot({})", self.name)
    }
}

impl TrustRoot {
    /// The Sigstore public-good root, as embedded in `sigstore-trust-root` (the TUF
    /// target `trusted_root.json` of the day that crate was released).
    pub fn public_good() -> Result<TrustRoot, String> {
        TrustRoot::from_json(
            sigstore_trust_root::SIGSTORE_PRODUCTION_TRUSTED_ROOT,
            "the Sigstore public-good root",
        )
    }

    /// The public-good root, parsed once per process when first asked for: a mount that
    /// verifies nothing keyless and checks no log never parses it.
    pub fn shared_public_good() -> Result<&'static TrustRoot, String> {
        static SHARED: std::sync::OnceLock<Result<TrustRoot, String>> = std::sync::OnceLock::new();
        SHARED
            .get_or_init(TrustRoot::public_good)
            .as_ref()
            .map_err(|e| format!("the embedded Sigstore public-good root: {e}"))
    }

    /// A `trusted_root.json` file (`cosign verify --trusted-root`).
    pub fn load(path: &Path) -> Result<TrustRoot, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
        TrustRoot::from_json(&text, &path.display().to_string())
    }

    fn from_json(json: &str, name: &str) -> Result<TrustRoot, String> {
        provider::install();
        let root = sigstore_trust_root::TrustedRoot::from_json(json)
            .map_err(|e| format!("not a Sigstore trusted root: {e}"))?;
        let verifier = sigstore_verify::Verifier::new(&root)
            .map_err(|e| format!("unusable trusted root: {e}"))?;
        Ok(TrustRoot {
            name: name.to_string(),
            verifier,
        })
    }

    /// What messages call it: a file path, or "the Sigstore public-good root".
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Verifies `signed` over `artifact` with a key (SPKI DER): the signature, and, with
    /// `tlog`, every transparency-log entry the bundle carries (SET, inclusion proof,
    /// checkpoint) and that the entry is about this signature.
    pub fn verify_with_key(
        &self,
        signed: &Signed<'_>,
        artifact: Artifact<'_>,
        key_spki: &[u8],
        tlog: bool,
    ) -> Result<Checked, String> {
        let bundle = signed.bundle()?;
        let key = sigstore_types::DerPublicKey::new(key_spki.to_vec());
        let mut policy = sigstore_verify::PublicKeyVerificationPolicy::new(key);
        if !tlog {
            policy = policy.skip_tlog_unsafe();
        }
        let result = self
            .verifier
            .verify(artifact.as_sigstore(), &bundle, &policy)
            .map_err(|e| e.to_string())?;
        Ok(Checked::of(&result))
    }

    /// Verifies a keyless `signed` over `artifact`: the certificate chains to a Fulcio CA
    /// of this root valid at the time, its SCT verifies against a CT log of this root,
    /// the log entry verifies with its log's key and lies within the certificate's
    /// validity, and the signature verifies with the certificate's key. Who signed is
    /// returned, not judged: the caller matches it against what it trusts.
    pub fn verify_keyless(
        &self,
        signed: &Signed<'_>,
        artifact: Artifact<'_>,
        tlog: bool,
    ) -> Result<Checked, String> {
        let bundle = signed.bundle()?;
        let mut policy = sigstore_verify::VerificationPolicy::any_identity();
        if !tlog {
            policy = policy.skip_tlog_unsafe();
        }
        let result = self
            .verifier
            .verify(artifact.as_sigstore(), &bundle, &policy)
            .map_err(|e| e.to_string())?;
        Ok(Checked::of(&result))
    }
}

/// What was verified about a signature beyond its key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// The certificate's SAN (an email address or URI), for a keyless signature.
    pub subject: Option<String>,
    /// The OIDC issuer the certificate names (extension 1.3.6.1.4.1.57264.1.8, else .1.1).
    pub issuer: Option<String>,
    /// When the transparency log says it saw the signature (Unix seconds), when checked.
    pub log_time: Option<i64>,
}

impl Checked {
    fn of(result: &sigstore_verify::VerificationResult) -> Checked {
        Checked {
            subject: result.identity().map(|s| s.as_str().to_string()),
            issuer: result.issuer().map(str::to_string),
            log_time: result.integrated_time().map(|t| t.as_second()),
        }
    }
}

/// What a signature is over.
#[derive(Clone, Copy, Debug)]
pub enum Artifact<'a> {
    /// The signed bytes themselves (a simple-signing payload).
    Bytes(&'a [u8]),
    /// The sha256 of what an in-toto statement's subject must name (an image digest).
    Sha256(&'a [u8; 32]),
}

impl<'a> Artifact<'a> {
    fn as_sigstore(self) -> sigstore_types::Artifact<'a> {
        match self {
            Artifact::Bytes(b) => b.into(),
            Artifact::Sha256(d) => sigstore_types::Sha256Hash::new(*d).into(),
        }
    }
}

/// A signature with what proves it, in one of cosign's storages.
#[derive(Clone, Copy, Debug)]
pub enum Signed<'a> {
    /// A sigstore bundle (JSON, any version from v0.1 to v0.3).
    Bundle(&'a [u8]),
    /// Cosign's annotations on a signature or attestation layer.
    Legacy(Legacy<'a>),
}

/// A layer of cosign's older storage: what it signs and its annotations.
#[derive(Clone, Copy, Debug)]
pub struct Legacy<'a> {
    pub content: Content<'a>,
    /// `dev.sigstore.cosign/certificate`: the signing certificate, PEM.
    pub certificate: Option<&'a str>,
    /// `dev.sigstore.cosign/chain`: its intermediates and root, PEM.
    pub chain: Option<&'a str>,
    /// `dev.sigstore.cosign/bundle`: the Rekor entry with its SET, JSON.
    pub rekor_bundle: Option<&'a str>,
}

#[derive(Clone, Copy, Debug)]
pub enum Content<'a> {
    /// A simple-signing payload and the signature over it.
    Message {
        payload: &'a [u8],
        signature: &'a [u8],
    },
    /// A DSSE envelope, JSON as stored.
    Dsse(&'a [u8]),
}

impl Signed<'_> {
    /// The bundle as JSON: a legacy layer's annotations as the v0.1 bundle they spell.
    pub fn to_json(self) -> Result<String, String> {
        match self {
            Signed::Bundle(bytes) => String::from_utf8(bytes.to_vec())
                .map_err(|_| "the bundle is not UTF-8 JSON".to_string()),
            Signed::Legacy(legacy) => Ok(legacy.as_bundle_v01()?.to_string()),
        }
    }

    fn bundle(&self) -> Result<sigstore_types::Bundle, String> {
        match self {
            Signed::Bundle(bytes) => {
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| "the bundle is not UTF-8 JSON".to_string())?;
                sigstore_types::Bundle::from_json(text)
                    .map_err(|e| format!("not a sigstore bundle sifmount can read: {e}"))
            }
            Signed::Legacy(legacy) => {
                let json = legacy.as_bundle_v01()?;
                sigstore_types::Bundle::from_json(&json.to_string())
                    .map_err(|e| format!("the cosign annotations do not make a bundle: {e}"))
            }
        }
    }
}

/// Whether a bundle's verification material is a certificate (keyless) rather than a
/// key hint, and whether it carries any transparency-log entry.
pub fn bundle_shape(bytes: &[u8]) -> Result<(bool, bool), String> {
    let bundle = Signed::Bundle(bytes).bundle()?;
    let keyless = bundle.signing_certificate().is_some();
    let logged = !bundle.verification_material.tlog_entries.is_empty();
    Ok((keyless, logged))
}

impl Legacy<'_> {
    /// The v0.1 bundle these annotations spell (docs/FORMAT.md, Keyless signatures).
    fn as_bundle_v01(&self) -> Result<Value, String> {
        let mut material = serde_json::Map::new();
        match self.certificate {
            Some(pem) => {
                let mut certificates =
                    vec![json!({ "rawBytes": pem_certificate(pem, "certificate")? })];
                if let Some(chain) = self.chain {
                    for der in pem_certificates(chain)? {
                        certificates.push(json!({ "rawBytes": der }));
                    }
                }
                material.insert(
                    "x509CertificateChain".into(),
                    json!({ "certificates": certificates }),
                );
            }
            None => {
                material.insert("publicKey".into(), json!({ "hint": "" }));
            }
        }
        let entries = match self.rekor_bundle {
            Some(text) => vec![rekor_entry(text)?],
            None => Vec::new(),
        };
        material.insert("tlogEntries".into(), Value::Array(entries));
        let mut bundle = json!({
            "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1",
            "verificationMaterial": Value::Object(material),
        });
        match self.content {
            Content::Message { payload, signature } => {
                use sha2::Digest as _;
                bundle["messageSignature"] = json!({
                    "messageDigest": {
                        "algorithm": "SHA2_256",
                        "digest": BASE64.encode(sha2::Sha256::digest(payload)),
                    },
                    "signature": BASE64.encode(signature),
                });
            }
            Content::Dsse(envelope) => {
                let envelope: Value = serde_json::from_slice(envelope)
                    .map_err(|e| format!("the DSSE envelope is not JSON: {e}"))?;
                bundle["dsseEnvelope"] = envelope;
            }
        }
        Ok(bundle)
    }
}

/// Cosign's `dev.sigstore.cosign/bundle` (`{"SignedEntryTimestamp", "Payload": {"body",
/// "integratedTime", "logIndex", "logID"}}`) as a bundle's tlog entry. The entry's kind
/// and version are those its body declares.
fn rekor_entry(text: &str) -> Result<Value, String> {
    let bad = |what: &str| format!("dev.sigstore.cosign/bundle: {what}");
    let rekor: Value = serde_json::from_str(text).map_err(|e| bad(&format!("not JSON: {e}")))?;
    let set = rekor["SignedEntryTimestamp"]
        .as_str()
        .ok_or_else(|| bad("no SignedEntryTimestamp"))?;
    let payload = &rekor["Payload"];
    let body = payload["body"]
        .as_str()
        .ok_or_else(|| bad("no Payload.body"))?;
    let time = payload["integratedTime"]
        .as_i64()
        .ok_or_else(|| bad("no Payload.integratedTime"))?;
    let index = payload["logIndex"]
        .as_i64()
        .ok_or_else(|| bad("no Payload.logIndex"))?;
    let log_id = payload["logID"]
        .as_str()
        .ok_or_else(|| bad("no Payload.logID"))?;
    let log_id = hex_bytes(log_id).ok_or_else(|| bad("Payload.logID is not hex"))?;
    let decoded = BASE64
        .decode(body)
        .map_err(|_| bad("Payload.body is not base64"))?;
    let entry: Value = serde_json::from_slice(&decoded)
        .map_err(|e| bad(&format!("Payload.body is not JSON: {e}")))?;
    let kind = entry["kind"]
        .as_str()
        .ok_or_else(|| bad("the entry has no kind"))?;
    let version = entry["apiVersion"]
        .as_str()
        .ok_or_else(|| bad("the entry has no apiVersion"))?;
    Ok(json!({
        "logIndex": index.to_string(),
        "logId": { "keyId": BASE64.encode(log_id) },
        "kindVersion": { "kind": kind, "version": version },
        "integratedTime": time.to_string(),
        "inclusionPromise": { "signedEntryTimestamp": set },
        "canonicalizedBody": body,
    }))
}

fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The one certificate of a PEM text, as base64 DER.
fn pem_certificate(pem: &str, what: &str) -> Result<String, String> {
    let mut all = pem_certificates(pem)?;
    match all.len() {
        1 => Ok(all.remove(0)),
        0 => Err(format!("the {what} annotation holds no PEM certificate")),
        n => Err(format!(
            "the {what} annotation holds {n} certificates, not one"
        )),
    }
}

/// Every `CERTIFICATE` block of a PEM text, as base64 DER (the PEM body re-encoded, so
/// that a body that is not base64 is found here).
fn pem_certificates(pem: &str) -> Result<Vec<String>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let body = &rest[start + BEGIN.len()..];
        let end = body
            .find(END)
            .ok_or_else(|| "a PEM certificate has no END line".to_string())?;
        let b64: String = body[..end].split_whitespace().collect();
        let der = BASE64
            .decode(b64.as_bytes())
            .map_err(|_| "a PEM certificate is not base64".to_string())?;
        out.push(BASE64.encode(der));
        rest = &body[end + END.len()..];
    }
    Ok(out)
}
