//! Verifying an entry as `cosign verify` and `cosign verify-attestation` do (docs/FORMAT.md,
//! The payload and what verifies it, §4, §6.3; the man page, VERIFYING): the payload's
//! digest, the signature over it (or over the DSSE PAE) by a trusted key or by the key of
//! a Fulcio certificate issued to a trusted identity, the transparency-log entry when
//! there is one, and the claim that it is about the target. The certificate and log checks
//! are the sigstore crates', behind src/cosign/sigstore/.
//!
//! The inputs come from the image, so nothing here panics on them: every problem is a
//! [`Verdict::Failed`] saying what is wrong.

use std::collections::BTreeMap;
use std::fmt;

use super::dsse::{
    decode_base64_bytes, pae, shown, Bundle, BundleContent, Envelope, Statement,
    IN_TOTO_PAYLOAD_TYPE,
};
pub use super::public_key::PublicKey;
use super::sigstore::{self, Artifact, Content, Legacy, Signed, TrustRoot};
use super::EntryKind;
use crate::sif::Digest;

/// The layer annotation holding a simple-signing signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The layer annotation holding a keyless signature's certificate.
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// The layer annotation holding the certificate's intermediates and root.
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// The layer annotation holding the Rekor entry and its signed entry timestamp.
pub const REKOR_BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";

/// Layer media types (docs/FORMAT.md, The signature image, §4, §6.1).
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// Every sigstore bundle version's media type starts so (`….bundle+json;version=0.1`,
/// `….bundle.v0.3+json`).
pub const BUNDLE_MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";

/// Whom a mount or `sifmount --verify` trusts (the man page, VERIFYING): public keys, a
/// certificate identity, or both; an entry verifies when any of them vouches for it.
#[derive(Debug, Default)]
pub struct Trust {
    /// Keys for key-signed entries (`--key`).
    pub keys: Vec<PublicKey>,
    /// Who keyless entries must be signed by (`--certificate-identity[-regexp]` with
    /// `--certificate-oidc-issuer[-regexp]`).
    pub identity: Option<Identity>,
    /// Fulcio CAs, CT logs and Rekor keys (`--trusted-root`); `None` is the Sigstore
    /// public-good root, loaded when first needed.
    pub root: Option<TrustRoot>,
    /// `--insecure-ignore-tlog`: a transparency-log entry is not checked.
    pub ignore_tlog: bool,
}

impl Trust {
    /// Trust in these keys, checking transparency-log entries against the public-good root.
    pub fn keys(keys: Vec<PublicKey>) -> Trust {
        Trust {
            keys,
            ..Trust::default()
        }
    }

    /// Whether there is nothing to verify with (then no `verified` files are made).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.identity.is_none()
    }

    /// How the trust is described in messages: the key files, the identity and issuer.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.keys.iter().map(|k| k.name().to_string()).collect();
        if let Some(identity) = &self.identity {
            parts.push(identity.to_string());
        }
        parts.join(", ")
    }

    fn root(&self) -> Checked<&TrustRoot> {
        match &self.root {
            Some(root) => Ok(root),
            None => TrustRoot::shared_public_good(),
        }
    }
}

/// A certificate identity, as cosign's `--certificate-identity` and
/// `--certificate-oidc-issuer` options (or their `-regexp` forms) give it.
#[derive(Debug)]
pub struct Identity {
    /// The certificate's SAN: an email address or URI.
    pub subject: Matcher,
    /// The OIDC issuer the certificate names.
    pub issuer: Matcher,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "identity {} with issuer {}", self.subject, self.issuer)
    }
}

/// An exact value, or a regular expression matched anywhere in the value unless
/// anchored (as cosign's, Go's `regexp.MatchString`).
#[derive(Debug)]
pub enum Matcher {
    Exact(String),
    Regex(regex::Regex),
}

impl Matcher {
    /// A regular expression in RE2 syntax; the error says what is wrong with it.
    pub fn regex(pattern: &str) -> std::result::Result<Matcher, String> {
        regex::Regex::new(pattern)
            .map(Matcher::Regex)
            .map_err(|e| one_line(&e.to_string()))
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(want) => want == value,
            Matcher::Regex(re) => re.is_match(value),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Exact(want) => f.write_str(want),
            Matcher::Regex(re) => write!(f, "matching /{}/", re.as_str()),
        }
    }
}

/// Who vouches for a verified entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signer {
    /// The public key file (its name as given).
    Key(String),
    /// A keyless signature's certificate: its SAN and OIDC issuer.
    Certificate { subject: String, issuer: String },
}

/// The outcome of verifying one entry: what its `verified` file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The signature and claims check out; `log_time` is when the transparency log says
    /// it saw the signature (Unix seconds), when a log entry was checked.
    Verified {
        by: Signer,
        log_time: Option<i64>,
    },
    Failed {
        reason: String,
    },
}

impl Verdict {
    pub fn is_verified(&self) -> bool {
        matches!(self, Verdict::Verified { .. })
    }

    /// `ok: …\n` saying by what, or `failed: <reason>\n`.
    pub fn to_file_text(&self) -> String {
        match self {
            Verdict::Verified { by, log_time } => {
                let mut text = match by {
                    Signer::Key(key) => format!("ok: verified with {key}"),
                    Signer::Certificate { subject, issuer } => {
                        format!("ok: signed by {subject} (issuer {issuer})")
                    }
                };
                if let Some(t) = log_time {
                    text.push_str(&format!(", logged at {}", utc(*t)));
                }
                text.push('\n');
                text
            }
            Verdict::Failed { reason } => format!("failed: {reason}\n"),
        }
    }
}

/// A Unix time as RFC 3339 UTC (`2023-01-20T20:51:33Z`).
pub fn utc(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{seconds} (Unix seconds)"))
}

/// What verifying one entry needs: the tree fills it from a discovered entry.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// What discovery found; with `media_type` it says how the payload is signed.
    pub kind: EntryKind,
    /// The layer's media type.
    pub media_type: &'a str,
    /// The layer blob as stored.
    pub payload: &'a [u8],
    /// The layer descriptor's digest.
    pub recorded_digest: &'a Digest,
    /// The layer's annotations.
    pub annotations: &'a BTreeMap<String, String>,
    /// The manifest or index the entry is attached to.
    pub target: &'a Digest,
}

/// How a payload is signed, from the layer media type and, for layers of `.sig`/`.att`/
/// `.sbom` images written with unusual media types, the image it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignedForm {
    /// Simple-signing JSON, signed in the `dev.cosignproject.cosign/signature` annotation.
    SimpleSigning,
    /// A DSSE envelope holding an in-toto statement.
    Dsse,
    /// A sigstore bundle.
    Bundle,
    /// Unsigned: an SBOM attachment, or a referrer of another artifact type.
    Unsigned,
}

impl SignedForm {
    pub fn of(kind: EntryKind, media_type: &str) -> SignedForm {
        if media_type == SIMPLE_SIGNING_MEDIA_TYPE {
            SignedForm::SimpleSigning
        } else if media_type == DSSE_MEDIA_TYPE {
            SignedForm::Dsse
        } else if media_type.starts_with(BUNDLE_MEDIA_TYPE_PREFIX) {
            SignedForm::Bundle
        } else {
            match kind {
                EntryKind::Signature => SignedForm::SimpleSigning,
                EntryKind::Attestation => SignedForm::Dsse,
                _ => SignedForm::Unsigned,
            }
        }
    }
}

/// Verifies one entry with `trust` (one key or the identity vouching is enough).
pub fn verify(subject: &Subject<'_>, trust: &Trust) -> Verdict {
    match check(subject, trust) {
        Ok((by, log_time)) => Verdict::Verified { by, log_time },
        Err(reason) => Verdict::Failed {
            reason: one_line(&reason),
        },
    }
}

/// A reason fit for one line of the `verified` file. Parser errors can quote the hostile
/// input they choke on (serde escapes it, but does not shorten it).
fn one_line(reason: &str) -> String {
    const MAX: usize = 1000;
    let mut out: String = reason
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if reason.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

type Checked<T> = std::result::Result<T, String>;
type Proof = (Signer, Option<i64>);

fn check(subject: &Subject<'_>, trust: &Trust) -> Checked<Proof> {
    let actual = Digest::of(subject.payload);
    if actual != *subject.recorded_digest {
        return Err(format!(
            "payload digest mismatch: recorded {}, actual {actual}",
            subject.recorded_digest
        ));
    }
    let form = SignedForm::of(subject.kind, subject.media_type);
    let annotations = subject.annotations;
    let target = subject.target;
    let legacy = |content| {
        Signed::Legacy(Legacy {
            content,
            certificate: annotations.get(CERTIFICATE_ANNOTATION).map(String::as_str),
            chain: annotations.get(CHAIN_ANNOTATION).map(String::as_str),
            rekor_bundle: annotations.get(REKOR_BUNDLE_ANNOTATION).map(String::as_str),
        })
    };
    let keyless = annotations.contains_key(CERTIFICATE_ANNOTATION);
    let logged = annotations.contains_key(REKOR_BUNDLE_ANNOTATION);
    match form {
        SignedForm::Unsigned if subject.kind == EntryKind::Sbom => {
            Err("SBOM attachments carry no signature".to_string())
        }
        SignedForm::Unsigned => Err(format!(
            "a layer of type {} carries no signature sifmount can check",
            shown(subject.media_type)
        )),
        _ if trust.is_empty() => Err("no public key or certificate identity to verify with".into()),
        SignedForm::SimpleSigning => {
            let payload = subject.payload;
            let signature = signature_annotation(annotations)?;
            let signed = legacy(Content::Message {
                payload,
                signature: &signature,
            });
            let signer = Signing {
                signed,
                artifact: Artifact::Bytes(payload),
                keyless,
                logged,
            };
            let proof = signer.check(trust, |k| k.verify(payload, &signature))?;
            let claimed = docker_manifest_digest(payload)?;
            if claimed != target.to_string() {
                return Err(format!(
                    "docker-manifest-digest {} is not the target {target}",
                    shown(&claimed)
                ));
            }
            Ok(proof)
        }
        SignedForm::Dsse => {
            let envelope = Envelope::parse(subject.payload).map_err(|e| e.to_string())?;
            let signing = Signing {
                signed: legacy(Content::Dsse(subject.payload)),
                artifact: Artifact::Sha256(target.as_bytes()),
                keyless,
                logged,
            };
            check_dsse(&envelope, target, trust, signing)
        }
        SignedForm::Bundle => {
            let bundle = Bundle::parse(subject.payload).map_err(|e| e.to_string())?;
            let (_, logged) = sigstore::bundle_shape(subject.payload)?;
            let signing = Signing {
                signed: Signed::Bundle(subject.payload),
                artifact: Artifact::Sha256(target.as_bytes()),
                keyless: bundle.material.is_keyless(),
                logged,
            };
            match &bundle.content {
                BundleContent::Dsse(envelope) => check_dsse(envelope, target, trust, signing),
                BundleContent::MessageSignature {
                    digest_algorithm,
                    digest,
                    signature,
                } => check_message_digest(
                    digest_algorithm.as_deref(),
                    digest,
                    signature,
                    target,
                    trust,
                    signing,
                ),
            }
        }
    }
}

/// The sigstore bundle v0.1 that a signature or attestation layer's cosign annotations
/// (certificate, chain, Rekor entry) spell, as JSON: what sifmount hands the sigstore
/// crates, so that another verifier can be asked about the same thing.
pub fn layer_as_bundle(subject: &Subject<'_>) -> Checked<String> {
    let annotations = subject.annotations;
    let legacy = |content| Legacy {
        content,
        certificate: annotations.get(CERTIFICATE_ANNOTATION).map(String::as_str),
        chain: annotations.get(CHAIN_ANNOTATION).map(String::as_str),
        rekor_bundle: annotations.get(REKOR_BUNDLE_ANNOTATION).map(String::as_str),
    };
    match SignedForm::of(subject.kind, subject.media_type) {
        SignedForm::SimpleSigning => {
            let signature = signature_annotation(annotations)?;
            Signed::Legacy(legacy(Content::Message {
                payload: subject.payload,
                signature: &signature,
            }))
            .to_json()
        }
        SignedForm::Dsse => Signed::Legacy(legacy(Content::Dsse(subject.payload))).to_json(),
        SignedForm::Bundle => Signed::Bundle(subject.payload).to_json(),
        SignedForm::Unsigned => Err("the layer carries no signature".to_string()),
    }
}

fn signature_annotation(annotations: &BTreeMap<String, String>) -> Checked<Vec<u8>> {
    let text = annotations
        .get(SIGNATURE_ANNOTATION)
        .ok_or_else(|| format!("no {SIGNATURE_ANNOTATION} annotation: the layer is not signed"))?;
    if text.trim().is_empty() {
        return Err(format!("the {SIGNATURE_ANNOTATION} annotation is empty"));
    }
    decode_base64_bytes(text.as_bytes())
        .map_err(|p| format!("the {SIGNATURE_ANNOTATION} annotation is not base64: {p}"))
}

/// One signature and what proves it, about to be checked against a [`Trust`].
struct Signing<'a> {
    signed: Signed<'a>,
    artifact: Artifact<'a>,
    /// Signed with a certificate's key (Fulcio) rather than a key of the signer's own.
    keyless: bool,
    /// Carries a transparency-log entry.
    logged: bool,
}

impl Signing<'_> {
    /// Who vouches for the signature. `by_key` is sifmount's own check of the signature
    /// with one key; the sigstore crates check everything a log entry or a certificate
    /// adds (src/cosign/sigstore/).
    fn check(&self, trust: &Trust, by_key: impl Fn(&PublicKey) -> bool) -> Checked<Proof> {
        if self.keyless {
            if let Some(identity) = &trust.identity {
                return self.check_certificate(trust, identity);
            }
        }
        let hint = match (self.keyless, trust.identity.is_some()) {
            (true, _) => {
                " (the entry is keyless: it was signed with the key of its certificate; \
                 give --certificate-identity and --certificate-oidc-issuer to verify it)"
            }
            (false, true) => {
                " (the entry is signed with a key, not a certificate: a certificate \
                 identity cannot verify it)"
            }
            (false, false) => "",
        };
        if trust.keys.is_empty() {
            return Err(format!("no public key to verify with{hint}"));
        }
        let key = trust
            .keys
            .iter()
            .find(|k| by_key(k))
            .ok_or_else(|| does_not_verify(&trust.keys, hint))?;
        if !self.logged || trust.ignore_tlog {
            return Ok((Signer::Key(key.name().to_string()), None));
        }
        let root = trust.root()?;
        let checked = root
            .verify_with_key(&self.signed, self.artifact, key.spki_der(), true)
            .map_err(|e| {
                format!(
                    "transparency-log entry does not verify against {}: {e}",
                    root.name()
                )
            })?;
        Ok((Signer::Key(key.name().to_string()), checked.log_time))
    }

    fn check_certificate(&self, trust: &Trust, identity: &Identity) -> Checked<Proof> {
        let root = trust.root()?;
        let checked = root
            .verify_keyless(&self.signed, self.artifact, !trust.ignore_tlog)
            .map_err(|e| format!("does not verify against {}: {e}", root.name()))?;
        let subject = checked
            .subject
            .ok_or("the certificate names no identity (no email or URI SAN)")?;
        let issuer = checked
            .issuer
            .ok_or("the certificate names no OIDC issuer")?;
        if !identity.subject.matches(&subject) {
            return Err(format!(
                "the certificate's identity {} is not {}",
                shown(&subject),
                identity.subject
            ));
        }
        if !identity.issuer.matches(&issuer) {
            return Err(format!(
                "the certificate's OIDC issuer {} is not {}",
                shown(&issuer),
                identity.issuer
            ));
        }
        Ok((Signer::Certificate { subject, issuer }, checked.log_time))
    }
}

fn does_not_verify(keys: &[PublicKey], hint: &str) -> String {
    let names: Vec<&str> = keys.iter().map(PublicKey::name).collect();
    format!("signature does not verify with {}{hint}", names.join(", "))
}

fn docker_manifest_digest(payload: &[u8]) -> Checked<String> {
    let json: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| format!("the payload is not simple-signing JSON: {e}"))?;
    json.pointer("/critical/image/docker-manifest-digest")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| "the payload has no critical.image.docker-manifest-digest string".into())
}

/// `cosign verify-attestation`: an in-toto payload type, a subject whose sha256 is the
/// target's, and a signature over the PAE (by a key, or keyless with what [`Signing`]
/// checks). The subject is compared first only so that a statement about another image
/// says so, rather than how the sigstore crates word it.
fn check_dsse(
    envelope: &Envelope,
    target: &Digest,
    trust: &Trust,
    signing: Signing<'_>,
) -> Checked<Proof> {
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(format!(
            "DSSE payloadType is {}, not {IN_TOTO_PAYLOAD_TYPE}",
            shown(&envelope.payload_type)
        ));
    }
    if envelope.signatures.is_empty() {
        return Err("the DSSE envelope has no signatures".to_string());
    }
    let statement = Statement::parse(&envelope.payload).map_err(|e| e.to_string())?;
    let hex = target.hex();
    if !statement.subject_sha256.contains(&hex) {
        return Err(match statement.subject_sha256.as_slice() {
            [] => format!("the in-toto statement has no sha256 subject; the target is {target}"),
            subjects => {
                const LISTED: usize = 3;
                let mut listed: Vec<String> = subjects
                    .iter()
                    .take(LISTED)
                    .map(|d| format!("sha256:{}", shown(d)))
                    .collect();
                if subjects.len() > LISTED {
                    listed.push(format!("and {} more", subjects.len() - LISTED));
                }
                format!(
                    "in-toto subject {} is not the target {target}",
                    listed.join(", ")
                )
            }
        });
    }
    let message = pae(&envelope.payload_type, &envelope.payload);
    let by_key = |k: &PublicKey| {
        envelope
            .signatures
            .iter()
            .any(|s| k.verify(&message, &s.sig))
    };
    let proof = signing.check(trust, by_key).map_err(|reason| {
        let n = envelope.signatures.len();
        if n > 1 && reason.starts_with("signature does not verify") {
            format!("{reason} (none of the envelope's {n} signatures)")
        } else {
            reason
        }
    })?;
    Ok(proof)
}

/// A bundle's message signature about an image: the signed blob is the target's
/// manifest or index (docs/FORMAT.md, Cosign: referrers), so its digest must be the
/// target's, and the signature is checked over that digest.
fn check_message_digest(
    algorithm: Option<&str>,
    digest: &[u8],
    signature: &[u8],
    target: &Digest,
    trust: &Trust,
    signing: Signing<'_>,
) -> Checked<Proof> {
    if algorithm != Some("SHA2_256") {
        return Err(format!(
            "the message signature's digest is {}, not SHA2_256: it cannot name the target",
            algorithm.map_or("of no algorithm".to_string(), shown)
        ));
    }
    if digest != target.as_bytes() {
        return Err(format!(
            "the message signature is over a blob other than the target {target}"
        ));
    }
    signing
        .check(trust, |k| {
            k.verify_sha256_digest(target.as_bytes(), signature)
        })
        .map_err(|reason| {
            if trust.keys.iter().any(|k| !k.signs_digests()) {
                format!("{reason} (an Ed25519 key signs whole messages, not their digests)")
            } else {
                reason
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const P256_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEMjupKDoOehYn+n7EaybRTmByd+Yd
ZRsKlkufnyLkcbXM5w3XgqiHcG6dTcn14VLNq9W/12sTJfNF8ud4s511fQ==
-----END PUBLIC KEY-----
";
    /// The real payload and signature of docs/FORMAT.md, The signature image and §3.1.
    const PAYLOAD: &str = r#"{"critical":{"identity":{"docker-reference":"127.0.0.1:39703/hello-world-docker-v2-manifest"},"image":{"docker-manifest-digest":"sha256:432f982638b3aefab73cc58ab28f5c16e96fdb504e8c134fc58dff4bae8bf338"},"type":"cosign container image signature"},"optional":null}"#;
    const SIG: &str = "MEYCIQCvk/Hm0uRosi3yQQ4T5TnBkI0MFdydeKtVpDhA5IatGgIhAJ0DgXgf9qKP/sQqdCaSIff3tmm3rS5PjANp3WCG/bJ4";
    const TARGET: &str = "sha256:432f982638b3aefab73cc58ab28f5c16e96fdb504e8c134fc58dff4bae8bf338";

    fn key() -> PublicKey {
        PublicKey::from_pem(P256_PUB.as_bytes(), "cosign.pub").unwrap()
    }

    struct Layer {
        media_type: String,
        digest: Digest,
        annotations: BTreeMap<String, String>,
    }

    fn layer(media_type: &str, payload: &[u8], annotations: &[(&str, &str)]) -> Layer {
        Layer {
            media_type: media_type.to_string(),
            digest: Digest::of(payload),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn run_with(
        kind: EntryKind,
        l: &Layer,
        payload: &[u8],
        target: &str,
        keys: &[PublicKey],
    ) -> Verdict {
        let target: Digest = target.parse().unwrap();
        verify(
            &Subject {
                kind,
                media_type: &l.media_type,
                payload,
                recorded_digest: &l.digest,
                annotations: &l.annotations,
                target: &target,
            },
            &Trust::keys(keys.to_vec()),
        )
    }

    fn run(kind: EntryKind, l: &Layer, payload: &[u8], target: &str) -> Verdict {
        run_with(kind, l, payload, target, &[key()])
    }

    #[test]
    fn real_simple_signing_signature_verifies() {
        let l = layer(
            SIMPLE_SIGNING_MEDIA_TYPE,
            PAYLOAD.as_bytes(),
            &[(SIGNATURE_ANNOTATION, SIG)],
        );
        let v = run(EntryKind::Signature, &l, PAYLOAD.as_bytes(), TARGET);
        assert_eq!(
            v,
            Verdict::Verified {
                by: Signer::Key("cosign.pub".into()),
                log_time: None
            }
        );
        assert_eq!(v.to_file_text(), "ok: verified with cosign.pub\n");
        // As `cosign attach signature` stores a file's trailing newline.
        let l = layer(
            SIMPLE_SIGNING_MEDIA_TYPE,
            PAYLOAD.as_bytes(),
            &[(SIGNATURE_ANNOTATION, &format!("{SIG}\n"))],
        );
        assert!(run(EntryKind::Signature, &l, PAYLOAD.as_bytes(), TARGET).is_verified());
    }

    #[test]
    fn signature_annotation_problems_are_named() {
        let cases: [(&[(&str, &str)], &str); 4] = [
            (&[], "no dev.cosignproject.cosign/signature annotation"),
            (&[(SIGNATURE_ANNOTATION, "")], "annotation is empty"),
            (
                &[(SIGNATURE_ANNOTATION, "%%%")],
                "annotation is not base64: invalid character '%'",
            ),
            (
                &[(SIGNATURE_ANNOTATION, "AAAA")],
                "signature does not verify with cosign.pub",
            ),
        ];
        for (annotations, want) in cases {
            let l = layer(SIMPLE_SIGNING_MEDIA_TYPE, PAYLOAD.as_bytes(), annotations);
            let v = run(EntryKind::Signature, &l, PAYLOAD.as_bytes(), TARGET);
            let Verdict::Failed { reason } = &v else {
                panic!("{v:?}")
            };
            assert!(reason.contains(want), "{reason}");
            assert!(v.to_file_text().starts_with("failed: "));
        }
    }

    #[test]
    fn digest_is_checked_first() {
        let l = layer(
            SIMPLE_SIGNING_MEDIA_TYPE,
            PAYLOAD.as_bytes(),
            &[(SIGNATURE_ANNOTATION, SIG)],
        );
        let mut tampered = PAYLOAD.as_bytes().to_vec();
        tampered[10] ^= 1;
        let v = run(EntryKind::Signature, &l, &tampered, TARGET);
        assert_eq!(
            v,
            Verdict::Failed {
                reason: format!(
                    "payload digest mismatch: recorded sha256:bbfb5811b9c372086df099d763e00380ea89957b527694c98327fc1a96bf9464, actual {}",
                    Digest::of(&tampered)
                )
            }
        );
        // Even an SBOM, which has no signature, is first a blob that must be intact.
        let l = layer("text/spdx", b"x", &[]);
        let v = run(EntryKind::Sbom, &l, b"y", TARGET);
        assert!(
            v.to_file_text()
                .starts_with("failed: payload digest mismatch"),
            "{v:?}"
        );
    }

    #[test]
    fn claim_must_name_the_target() {
        let other = "sha256:0000000000000000000000000000000000000000000000000000000000000001";
        let l = layer(
            SIMPLE_SIGNING_MEDIA_TYPE,
            PAYLOAD.as_bytes(),
            &[(SIGNATURE_ANNOTATION, SIG)],
        );
        let v = run(EntryKind::Signature, &l, PAYLOAD.as_bytes(), other);
        assert_eq!(
            v,
            Verdict::Failed {
                reason: format!("docker-manifest-digest {TARGET} is not the target {other}")
            }
        );
    }

    #[test]
    fn unsigned_forms_and_no_keys() {
        let l = layer("text/spdx+json", b"{}", &[]);
        let v = run(EntryKind::Sbom, &l, b"{}", TARGET);
        assert_eq!(
            v,
            Verdict::Failed {
                reason: "SBOM attachments carry no signature".into()
            }
        );
        let l = layer("application/x-thing", b"{}", &[]);
        let v = run(EntryKind::Referrer, &l, b"{}", TARGET);
        assert!(
            v.to_file_text()
                .contains("type application/x-thing carries no signature"),
            "{v:?}"
        );

        let l = layer(
            SIMPLE_SIGNING_MEDIA_TYPE,
            PAYLOAD.as_bytes(),
            &[(SIGNATURE_ANNOTATION, SIG)],
        );
        let v = run_with(EntryKind::Signature, &l, PAYLOAD.as_bytes(), TARGET, &[]);
        assert_eq!(
            v,
            Verdict::Failed {
                reason: "no public key or certificate identity to verify with".into()
            }
        );
    }

    #[test]
    fn form_follows_media_type_then_image_kind() {
        use EntryKind::*;
        assert_eq!(
            SignedForm::of(Referrer, SIMPLE_SIGNING_MEDIA_TYPE),
            SignedForm::SimpleSigning
        );
        assert_eq!(SignedForm::of(Referrer, DSSE_MEDIA_TYPE), SignedForm::Dsse);
        assert_eq!(
            SignedForm::of(Referrer, "application/vnd.dev.sigstore.bundle.v0.3+json"),
            SignedForm::Bundle
        );
        assert_eq!(
            SignedForm::of(
                Referrer,
                "application/vnd.dev.sigstore.bundle+json;version=0.2"
            ),
            SignedForm::Bundle
        );
        assert_eq!(
            SignedForm::of(Signature, "application/octet-stream"),
            SignedForm::SimpleSigning
        );
        assert_eq!(SignedForm::of(Attestation, ""), SignedForm::Dsse);
        assert_eq!(SignedForm::of(Sbom, "text/spdx"), SignedForm::Unsigned);
        assert_eq!(SignedForm::of(Referrer, "text/spdx"), SignedForm::Unsigned);
    }

    #[test]
    fn hostile_payloads_fail_with_reasons() {
        let deep = "[".repeat(50_000);
        let payloads: Vec<&[u8]> = vec![
            b"",
            b"\xff",
            b"null",
            b"[]",
            b"{}",
            deep.as_bytes(),
            br#"{"critical":5}"#,
        ];
        for kind in [
            EntryKind::Signature,
            EntryKind::Attestation,
            EntryKind::Referrer,
        ] {
            for media_type in [
                SIMPLE_SIGNING_MEDIA_TYPE,
                DSSE_MEDIA_TYPE,
                "application/vnd.dev.sigstore.bundle.v0.3+json",
            ] {
                for p in &payloads {
                    let l = layer(media_type, p, &[(SIGNATURE_ANNOTATION, SIG)]);
                    let v = run(kind, &l, p, TARGET);
                    assert!(!v.is_verified(), "{v:?}");
                    assert!(v.to_file_text().len() < 400, "{v:?}");
                }
            }
        }
    }

    #[test]
    fn reasons_quoting_hostile_input_stay_one_short_line() {
        let big = "A\\nok: verified with x\\n".repeat(100_000);
        let envelope = format!(r#"{{"payloadType":"t","payload":"","signatures":"{big}"}}"#);
        let l = layer(DSSE_MEDIA_TYPE, envelope.as_bytes(), &[]);
        let text = run(EntryKind::Attestation, &l, envelope.as_bytes(), TARGET).to_file_text();
        assert!(
            text.starts_with("failed: DSSE envelope: not a JSON envelope: invalid type"),
            "{text}"
        );
        assert!(text.chars().count() < 1100, "{} characters", text.len());
        assert_eq!(text.matches('\n').count(), 1, "{text}");

        let payload = format!(
            r#"{{"critical":{{"image":{{"docker-manifest-digest":"{}"}}}}}}"#,
            "x\n".repeat(1000)
        );
        let text = one_line(&format!(
            "docker-manifest-digest {} is not",
            shown(&payload)
        ));
        assert!(!text.contains('\n'));
    }

    #[test]
    fn pem_errors_say_what_is_wrong() {
        let cases: [(&[u8], &str); 9] = [
            (b"", "not a PEM file"),
            (b"\xff\x00garbage", "not a PEM file"),
            (b"-----BEGIN PUBLIC KEY-----\nAAAA\n", "has no -----END PUBLIC KEY----- line"),
            (b"-----BEGIN PUBLIC KEY-----\n%%%%\n-----END PUBLIC KEY-----\n", "is not base64"),
            (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a valid PKIX public key"),
            (b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n", "holds a private key (ENCRYPTED SIGSTORE PRIVATE KEY)"),
            (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "holds a certificate"),
            (b"-----BEGIN X-----\nAAAA\n-----END X-----\n", "holds a PEM X, not a PUBLIC KEY"),
            (b"-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n", "not a valid PKCS#1 RSA public key"),
        ];
        for (pem, want) in cases {
            let e = PublicKey::from_pem(pem, "k.pub").unwrap_err().to_string();
            assert!(e.starts_with("k.pub: "), "{e}");
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn pem_with_surrounding_text_and_crlf() {
        let crlf = P256_PUB.replace('\n', "\r\n");
        let text = format!("a comment\r\n{crlf}trailing\n");
        let k = PublicKey::from_pem(text.as_bytes(), "k").unwrap();
        assert_eq!(k.algorithm(), "ECDSA P-256");
        assert_eq!(format!("{k:?}"), "PublicKey(k, ECDSA P-256)");
    }

    #[test]
    fn unsupported_curve_is_named() {
        // secp256k1 (1.3.132.0.10), a curve cosign does not use.
        let spki = "MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEgjyQ9K3DhYgmXaGJLIJvuyTOSeGRxQgA5Dr4Bo7Q1kBPjBXFY09QfLDvRkr9bPgRgT8fVk8flyhFgG3hcLytQA==";
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{spki}\n-----END PUBLIC KEY-----\n");
        let e = PublicKey::from_pem(pem.as_bytes(), "k1.pub")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unsupported elliptic curve 1.3.132.0.10"), "{e}");
    }

    #[test]
    fn p256_accepts_der_and_p1363_signatures() {
        let k = key();
        let der = decode_base64_bytes(SIG.as_bytes()).unwrap();
        assert!(k.verify(PAYLOAD.as_bytes(), &der));
        let sig = p256::ecdsa::Signature::from_der(&der).unwrap();
        assert!(k.verify(PAYLOAD.as_bytes(), &sig.to_bytes()));
        assert!(!k.verify(b"other", &der));
        assert!(!k.verify(PAYLOAD.as_bytes(), &[]));
        assert!(!k.verify(PAYLOAD.as_bytes(), &[0; 64]));
        assert!(!k.verify(PAYLOAD.as_bytes(), &[0xff; 4096]));
    }
}
