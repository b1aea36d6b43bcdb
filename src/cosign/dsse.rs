//! The signed documents of attestations and bundles (docs/FORMAT.md, Attestations, SBOMs and referrers, §6.1): DSSE
//! envelopes, in-toto statements, sigstore bundles, and the base64 they are written in.
//! Parsing only: checking signatures is `verify`'s job.
//!
//! Everything here reads bytes from the image, which anyone may have written, so every
//! malformed input is an error, never a panic.

use std::collections::BTreeMap;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{DecodeError, Engine as _};
use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::error::{CosignError, Result};

/// The only DSSE payload type cosign signs and accepts for attestations.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Go's decoder (which wrote and reads everything here) tolerates missing padding in
/// some places and never checks the unused bits of the last character; refusing either
/// would reject signatures cosign accepts.
const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Decodes base64 as cosign and DSSE writers produce it: ASCII whitespace anywhere is
/// ignored (`cosign attach --signature` keeps the file's trailing newline, PEM-style
/// bodies wrap lines), padding is optional, and the URL-safe alphabet is accepted too
/// (the DSSE spec allows it).
pub fn decode_base64(text: &str) -> Result<Vec<u8>> {
    decode_base64_bytes(text.as_bytes()).map_err(|problem| CosignError::invalid("base64", problem))
}

/// [`decode_base64`] with the problem alone, for callers that say what was being decoded.
pub(crate) fn decode_base64_bytes(text: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    // One alphabet per text: a mix of `+/` and `-_` is not base64 in either.
    let engine = if compact.iter().any(|&b| b == b'-' || b == b'_') {
        &URL_SAFE
    } else {
        &STANDARD
    };
    engine.decode(&compact).map_err(|e| match e {
        DecodeError::InvalidByte(offset, byte) | DecodeError::InvalidLastSymbol(offset, byte) => {
            format!(
                "invalid character {:?} at offset {offset} (not counting whitespace)",
                char::from(byte)
            )
        }
        DecodeError::InvalidLength(len) => {
            format!("{len} characters (not counting whitespace) cannot be base64")
        }
        DecodeError::InvalidPadding => "misplaced '=' padding".to_string(),
    })
}

/// A JSON object deserialized as `T`. Derived structs also accept a JSON array of their
/// fields in order, which Go (and so cosign) rejects; so does this.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(ObjectVisitor(std::marker::PhantomData))
            .map(Object)
    }
}

/// A DSSE envelope, with its payload decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub payload_type: String,
    /// The decoded payload: the bytes that were signed (inside the PAE).
    pub payload: Vec<u8>,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeSignature {
    /// As written: cosign v2 writes `""`, v3 leaves it out (`None`).
    pub keyid: Option<String>,
    /// The decoded signature.
    pub sig: Vec<u8>,
}

/// The JSON shape shared by plain envelopes (either field order: serde does not care)
/// and bundles' `dsseEnvelope` (protojson, which also accepts the proto field names).
#[derive(Deserialize)]
struct RawEnvelope {
    #[serde(rename = "payloadType", alias = "payload_type")]
    payload_type: String,
    payload: String,
    /// DSSE requires at least one signature; an envelope without any still parses, so
    /// that verification can say exactly that.
    #[serde(default)]
    signatures: Option<Vec<Object<RawSignature>>>,
}

#[derive(Deserialize)]
struct RawSignature {
    #[serde(default)]
    keyid: Option<String>,
    sig: String,
}

impl RawEnvelope {
    fn decode(self, what: &str) -> Result<Envelope> {
        let payload = decode_base64_bytes(self.payload.as_bytes())
            .map_err(|p| CosignError::invalid(what, format!("payload is not base64: {p}")))?;
        let signatures = self
            .signatures
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, Object(s))| {
                let sig = decode_base64_bytes(s.sig.as_bytes()).map_err(|p| {
                    CosignError::invalid(what, format!("signatures[{i}].sig is not base64: {p}"))
                })?;
                Ok(EnvelopeSignature {
                    keyid: s.keyid,
                    sig,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Envelope {
            payload_type: self.payload_type,
            payload,
            signatures,
        })
    }
}

impl Envelope {
    /// Parses a DSSE envelope as cosign v2 (`payloadType` first, `keyid` always present)
    /// and v3 (`payload` first, empty fields left out) write it.
    pub fn parse(bytes: &[u8]) -> Result<Envelope> {
        const WHAT: &str = "DSSE envelope";
        let Object(raw): Object<RawEnvelope> = serde_json::from_slice(bytes).map_err(|e| {
            CosignError::invalid(WHAT, format!("not a JSON envelope: {}", json_problem(&e)))
        })?;
        raw.decode(WHAT)
    }

    /// The in-toto statement the envelope carries, if its payload type says it is one.
    pub fn statement(&self) -> Result<Statement> {
        if self.payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(CosignError::invalid(
                "DSSE envelope",
                format!(
                    "payloadType is {}, not {IN_TOTO_PAYLOAD_TYPE}",
                    shown(&self.payload_type)
                ),
            ));
        }
        Statement::parse(&self.payload)
    }
}

/// DSSE's pre-authentication encoding: what a DSSE signature is computed over.
/// `"DSSEv1" SP len(type) SP type SP len(body) SP body`, lengths in ASCII decimal bytes.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let head = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        body.len()
    );
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    out
}

/// An in-toto statement (v0.1 as cosign v2 attests, v1 as v3 signs and attests): what
/// verification and the `predicate-type` file need of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// `_type`, e.g. `https://in-toto.io/Statement/v1`.
    pub statement_type: Option<String>,
    pub predicate_type: Option<String>,
    /// The `sha256` digests of the subjects, hex as written, in order; subjects without
    /// one are left out.
    pub subject_sha256: Vec<String>,
}

#[derive(Deserialize)]
struct RawStatement {
    #[serde(rename = "_type", default)]
    statement_type: Option<String>,
    #[serde(rename = "predicateType", default)]
    predicate_type: Option<String>,
    #[serde(default)]
    subject: Option<Vec<Object<RawSubject>>>,
}

#[derive(Deserialize)]
struct RawSubject {
    #[serde(default)]
    digest: Option<BTreeMap<String, String>>,
}

impl Statement {
    /// Parses a statement. Like cosign, it does not insist on a known `_type`: a
    /// statement without subjects simply cannot match any target.
    pub fn parse(bytes: &[u8]) -> Result<Statement> {
        let Object(raw): Object<RawStatement> = serde_json::from_slice(bytes).map_err(|e| {
            CosignError::invalid(
                "in-toto statement",
                format!("not a JSON statement: {}", json_problem(&e)),
            )
        })?;
        let subject_sha256 = raw
            .subject
            .unwrap_or_default()
            .into_iter()
            .filter_map(|Object(s)| s.digest.and_then(|mut d| d.remove("sha256")))
            .collect();
        Ok(Statement {
            statement_type: raw.statement_type,
            predicate_type: raw.predicate_type,
            subject_sha256,
        })
    }
}

/// A sigstore bundle (v0.3 as cosign v3 stores in OCI 1.1 referrers; v0.1/v0.2 have the
/// same shape).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    pub media_type: Option<String>,
    pub material: VerificationMaterial,
    pub content: BundleContent,
}

/// Who the bundle says signed it. Nothing here is trusted: verification uses the keys it
/// is given; this only lets a failure say that a bundle was keyless.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerificationMaterial {
    /// Signed with a key; `hint` is base64(sha256(PKIX DER)) of it when given.
    PublicKey { hint: Option<String> },
    /// Keyless: a (Fulcio) certificate, DER.
    Certificate { der: Vec<u8> },
    /// Keyless, older bundles: leaf first, DER.
    CertificateChain { ders: Vec<Vec<u8>> },
    /// None of the above.
    Missing,
}

impl VerificationMaterial {
    pub fn is_keyless(&self) -> bool {
        matches!(
            self,
            VerificationMaterial::Certificate { .. }
                | VerificationMaterial::CertificateChain { .. }
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleContent {
    /// A DSSE envelope: what cosign signs images and attestations with.
    Dsse(Envelope),
    /// A signature over a blob's digest (`cosign sign-blob`): says nothing about an image.
    MessageSignature {
        /// e.g. `SHA2_256`.
        digest_algorithm: Option<String>,
        digest: Vec<u8>,
        signature: Vec<u8>,
    },
}

// protojson writes lowerCamelCase names and accepts the proto names as well.
#[derive(Deserialize)]
struct RawBundle {
    #[serde(rename = "mediaType", alias = "media_type", default)]
    media_type: Option<String>,
    #[serde(
        rename = "verificationMaterial",
        alias = "verification_material",
        default
    )]
    verification_material: Option<Object<RawMaterial>>,
    #[serde(rename = "dsseEnvelope", alias = "dsse_envelope", default)]
    dsse_envelope: Option<Object<RawEnvelope>>,
    #[serde(rename = "messageSignature", alias = "message_signature", default)]
    message_signature: Option<Object<RawMessageSignature>>,
}

#[derive(Deserialize)]
struct RawMaterial {
    #[serde(rename = "publicKey", alias = "public_key", default)]
    public_key: Option<Object<RawPublicKeyId>>,
    #[serde(default)]
    certificate: Option<Object<RawCertificate>>,
    #[serde(
        rename = "x509CertificateChain",
        alias = "x509_certificate_chain",
        default
    )]
    x509_certificate_chain: Option<Object<RawChain>>,
}

#[derive(Deserialize)]
struct RawPublicKeyId {
    #[serde(default)]
    hint: Option<String>,
}

#[derive(Deserialize)]
struct RawCertificate {
    #[serde(rename = "rawBytes", alias = "raw_bytes", default)]
    raw_bytes: Option<String>,
}

#[derive(Deserialize)]
struct RawChain {
    #[serde(default)]
    certificates: Option<Vec<Object<RawCertificate>>>,
}

#[derive(Deserialize)]
struct RawMessageSignature {
    #[serde(rename = "messageDigest", alias = "message_digest", default)]
    message_digest: Option<Object<RawHashOutput>>,
    #[serde(default)]
    signature: Option<String>,
}

#[derive(Deserialize)]
struct RawHashOutput {
    #[serde(default)]
    algorithm: Option<String>,
    #[serde(default)]
    digest: Option<String>,
}

const BUNDLE: &str = "sigstore bundle";

fn bundle_base64(text: Option<&str>, field: &str) -> Result<Vec<u8>> {
    decode_base64_bytes(text.unwrap_or_default().as_bytes())
        .map_err(|p| CosignError::invalid(BUNDLE, format!("{field} is not base64: {p}")))
}

impl Bundle {
    pub fn parse(bytes: &[u8]) -> Result<Bundle> {
        let Object(raw): Object<RawBundle> = serde_json::from_slice(bytes).map_err(|e| {
            CosignError::invalid(BUNDLE, format!("not a JSON bundle: {}", json_problem(&e)))
        })?;
        let material = match raw.verification_material {
            Some(Object(RawMaterial {
                public_key: Some(Object(k)),
                ..
            })) => VerificationMaterial::PublicKey { hint: k.hint },
            Some(Object(RawMaterial {
                certificate: Some(Object(c)),
                ..
            })) => VerificationMaterial::Certificate {
                der: bundle_base64(
                    c.raw_bytes.as_deref(),
                    "verificationMaterial.certificate.rawBytes",
                )?,
            },
            Some(Object(RawMaterial {
                x509_certificate_chain: Some(Object(chain)),
                ..
            })) => VerificationMaterial::CertificateChain {
                ders: chain
                    .certificates
                    .unwrap_or_default()
                    .iter()
                    .map(|Object(c)| {
                        bundle_base64(
                            c.raw_bytes.as_deref(),
                            "verificationMaterial.x509CertificateChain.certificates[].rawBytes",
                        )
                    })
                    .collect::<Result<_>>()?,
            },
            _ => VerificationMaterial::Missing,
        };
        let content = match (raw.dsse_envelope, raw.message_signature) {
            (Some(Object(env)), None) => {
                BundleContent::Dsse(env.decode("sigstore bundle dsseEnvelope")?)
            }
            (None, Some(Object(m))) => {
                let (digest_algorithm, digest) = match m.message_digest {
                    Some(Object(d)) => (
                        d.algorithm,
                        bundle_base64(
                            d.digest.as_deref(),
                            "messageSignature.messageDigest.digest",
                        )?,
                    ),
                    None => (None, Vec::new()),
                };
                BundleContent::MessageSignature {
                    digest_algorithm,
                    digest,
                    signature: bundle_base64(m.signature.as_deref(), "messageSignature.signature")?,
                }
            }
            (Some(_), Some(_)) => {
                return Err(CosignError::invalid(
                    BUNDLE,
                    "has both dsseEnvelope and messageSignature; a bundle holds one",
                ))
            }
            (None, None) => {
                return Err(CosignError::invalid(
                    BUNDLE,
                    "has neither dsseEnvelope nor messageSignature",
                ))
            }
        };
        Ok(Bundle {
            media_type: raw.media_type,
            material,
            content,
        })
    }
}

/// The DSSE envelope of a sigstore bundle, or `None` when it holds a message signature.
pub fn bundle_envelope(bytes: &[u8]) -> Result<Option<Envelope>> {
    Ok(match Bundle::parse(bytes)?.content {
        BundleContent::Dsse(env) => Some(env),
        BundleContent::MessageSignature { .. } => None,
    })
}

/// A JSON error about a user's document, fit for a message and a log line: it says what
/// is wrong and where, but never repeats the document's values (a payload, a signature or
/// a certificate can be anywhere in it). Syntax errors name only a position; data errors
/// (a value of the wrong type, an unknown variant) quote the value, which is left out.
pub(crate) fn json_problem(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Data => without_values(&e.to_string()),
        _ => e.to_string(),
    }
}

/// serde's messages with the values they quote left out: `string "…"` (Debug-escaped)
/// becomes `a string`, and the backquoted value after `integer`, `floating point`,
/// `boolean`, `character` or `variant` goes. Field names (`missing field `x``) stay.
fn without_values(text: &str) -> String {
    const STRING: &str = "string \"";
    const BACKQUOTED: [&str; 5] = [
        "integer `",
        "floating point `",
        "boolean `",
        "character `",
        "variant `",
    ];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let string_at = rest.find(STRING).map(|i| (i, STRING));
        let quoted_at = BACKQUOTED
            .iter()
            .filter_map(|w| rest.find(w).map(|i| (i, *w)))
            .min();
        let Some((at, marker)) = [string_at, quoted_at].into_iter().flatten().min() else {
            out.push_str(rest);
            return out;
        };
        let after = &rest[at + marker.len()..];
        if marker == STRING {
            out.push_str(&rest[..at]);
            out.push_str("a string");
            let mut escaped = false;
            let end = after
                .char_indices()
                .find(|&(_, c)| {
                    let closing = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    closing
                })
                .map_or(after.len(), |(i, _)| i + 1);
            rest = &after[end..];
        } else {
            // Keep the word, drop " `value`".
            out.push_str(&rest[..at + marker.len() - 2]);
            rest = after.find('`').map_or("", |i| &after[i + 1..]);
        }
    }
}

/// A string from the image, fit to quote in a message: at most 100 characters, control
/// characters and quotes escaped, so hostile input cannot forge lines of a
/// `verified` file or a log.
pub(crate) fn shown(s: &str) -> String {
    const MAX: usize = 100;
    let mut out: String = s.chars().take(MAX).flat_map(char::escape_debug).collect();
    if s.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATEMENT: &str = r#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{"sha256":"abcd"}}],"predicateType":"https://example.com/p","predicate":{}}"#;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn base64_accepts_what_go_writers_and_dsse_produce() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(
            decode_base64("aGVsbG8").unwrap(),
            b"hello",
            "padding optional"
        );
        assert_eq!(decode_base64("aGVs\nbG8=\n").unwrap(), b"hello", "newlines");
        assert_eq!(decode_base64(" aG Vs\r\n\tbG8= ").unwrap(), b"hello");
        // 0xfb 0xff encodes to "+/8" in std and "-_8" in URL-safe base64.
        assert_eq!(decode_base64("+/8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode_base64("-_8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode_base64("-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode_base64("").unwrap(), b"");
        // Non-zero unused bits, as Go's non-strict decoder allows.
        assert_eq!(decode_base64("aGVsbG9=").unwrap(), b"hello");
    }

    #[test]
    fn base64_rejects_what_is_not() {
        for bad in ["a", "+-8=", "aGVsbG8=x", "!!!!", "aG=Vs", "é"] {
            let e = decode_base64(bad).expect_err(bad).to_string();
            assert!(e.starts_with("base64: "), "{bad}: {e}");
        }
        let e = decode_base64("aGV!").unwrap_err().to_string();
        assert!(e.contains("invalid character '!' at offset 3"), "{e}");
    }

    #[test]
    fn pae_is_dssev1_with_byte_lengths() {
        assert_eq!(
            pae("application/vnd.in-toto+json", b"{}"),
            b"DSSEv1 28 application/vnd.in-toto+json 2 {}"
        );
        // The DSSE spec's own example.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
        // Lengths count bytes, not characters.
        assert_eq!(pae("é", "ü".as_bytes()), "DSSEv1 2 é 2 ü".as_bytes());
    }

    #[test]
    fn envelope_in_both_field_orders_with_and_without_keyid() {
        let p = b64(STATEMENT.as_bytes());
        let v2 = format!(
            r#"{{"payloadType":"application/vnd.in-toto+json","payload":"{p}","signatures":[{{"keyid":"","sig":"AQID"}}]}}"#
        );
        let v3 = format!(
            r#"{{"payload":"{p}","payloadType":"application/vnd.in-toto+json","signatures":[{{"sig":"AQID"}}]}}"#
        );
        let a = Envelope::parse(v2.as_bytes()).unwrap();
        let b = Envelope::parse(v3.as_bytes()).unwrap();
        assert_eq!(a.payload_type, IN_TOTO_PAYLOAD_TYPE);
        assert_eq!(a.payload, STATEMENT.as_bytes());
        assert_eq!(a.signatures[0].keyid.as_deref(), Some(""));
        assert_eq!(b.signatures[0].keyid, None);
        assert_eq!(a.signatures[0].sig, [1, 2, 3]);
        assert_eq!(
            (a.payload, a.signatures[0].sig.clone()),
            (b.payload, b.signatures[0].sig.clone())
        );
        let null_keyid =
            r#"{"payloadType":"t","payload":"","signatures":[{"keyid":null,"sig":""}]}"#;
        assert_eq!(
            Envelope::parse(null_keyid.as_bytes()).unwrap().signatures[0].keyid,
            None
        );
    }

    #[test]
    fn envelope_base64_may_wrap_lines_or_be_url_safe() {
        let p = b64(STATEMENT.as_bytes());
        let wrapped: String = p
            .as_bytes()
            .chunks(60)
            .map(|c| format!("{}\\n", std::str::from_utf8(c).unwrap()))
            .collect();
        let env = format!(
            r#"{{"payloadType":"t","payload":"{wrapped}","signatures":[{{"sig":"+/8=\n"}}]}}"#
        );
        let e = Envelope::parse(env.as_bytes()).unwrap();
        assert_eq!(e.payload, STATEMENT.as_bytes());
        assert_eq!(e.signatures[0].sig, [0xfb, 0xff]);

        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfbu8, 0xff, 0xfe]);
        let env =
            format!(r#"{{"payloadType":"t","payload":"{url}","signatures":[{{"sig":"-_8"}}]}}"#);
        let e = Envelope::parse(env.as_bytes()).unwrap();
        assert_eq!(e.payload, [0xfb, 0xff, 0xfe]);
        assert_eq!(e.signatures[0].sig, [0xfb, 0xff]);
    }

    #[test]
    fn envelope_without_signatures_parses_empty() {
        let e = Envelope::parse(br#"{"payloadType":"t","payload":"e30="}"#).unwrap();
        assert!(e.signatures.is_empty());
        assert_eq!(e.payload, b"{}");
    }

    #[test]
    fn hostile_envelopes_are_errors() {
        let deep = "[".repeat(100_000);
        let cases: Vec<&[u8]> = vec![
            b"",
            b"not json",
            b"\xff\xfe\x00",
            b"[]",
            b"null",
            b"{}",
            br#"{"payloadType":5,"payload":"","signatures":[]}"#,
            br#"{"payloadType":"t","payload":{},"signatures":[]}"#,
            br#"{"payloadType":"t","payload":"","signatures":{}}"#,
            br#"{"payloadType":"t","payload":"","signatures":[{"keyid":""}]}"#,
            br#"{"payloadType":"t","payload":"","signatures":[{"sig":7}]}"#,
            br#"{"payloadType":"t","payload":"","signatures":[5]}"#,
            br#"["t","",[]]"#,
            br#"{"payloadType":"t","payload":"","signatures":[["k","AQID"]]}"#,
            br#"{"payloadType":"t","payload":"%%%","signatures":[]}"#,
            br#"{"payloadType":"t","payload":"","signatures":[{"sig":"%"}]}"#,
            br#"{"payloadType":"t","payloadType":"u","payload":"","signatures":[]}"#,
            br#"{"payloadType":"t","payload":"","signatures":[]"#,
            br#"{"payloadType":"t","payload":"","signatures":[]} trailing"#,
            br#"{"payloadType":"t","payload":"","signatures":[{"sig":"","keyid":99999999999999999999999}]}"#,
            deep.as_bytes(),
        ];
        for c in cases {
            let e = Envelope::parse(c).expect_err(&String::from_utf8_lossy(c));
            assert!(e.to_string().starts_with("DSSE envelope: "), "{e}");
        }
    }

    #[test]
    fn huge_inputs_parse_or_fail_without_trouble() {
        let big = "A".repeat(8 << 20);
        let env =
            format!(r#"{{"payloadType":"t","payload":"{big}","signatures":[{{"sig":"{big}"}}]}}"#);
        let e = Envelope::parse(env.as_bytes()).unwrap();
        assert_eq!(e.payload.len(), 6 << 20);
        let env = format!(r#"{{"payloadType":"t","payload":"{big}A","signatures":[]}}"#);
        assert!(Envelope::parse(env.as_bytes()).is_err());
        // A length that does not fit any integer type is a JSON error, not an overflow.
        let st = format!(
            r#"{{"subject":[{{"digest":{{"sha256":"a"}}}}],"n":{}}}"#,
            "9".repeat(10_000)
        );
        assert!(Statement::parse(st.as_bytes()).is_ok());
    }

    #[test]
    fn statements_v01_and_v1() {
        let s = Statement::parse(STATEMENT.as_bytes()).unwrap();
        assert_eq!(
            s.statement_type.as_deref(),
            Some("https://in-toto.io/Statement/v1")
        );
        assert_eq!(s.predicate_type.as_deref(), Some("https://example.com/p"));
        assert_eq!(s.subject_sha256, ["abcd"]);

        let v01 = r#"{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"p","subject":[{"name":"a","digest":{"sha512":"00"}},{"name":"b","digest":{"sha256":"11","sha512":"22"}},{"name":"c"}],"predicate":{"Data":"x"}}"#;
        let s = Statement::parse(v01.as_bytes()).unwrap();
        assert_eq!(s.subject_sha256, ["11"]);

        let s = Statement::parse(b"{}").unwrap();
        assert_eq!(s.statement_type, None);
        assert!(s.subject_sha256.is_empty());
        let s = Statement::parse(br#"{"subject":null}"#).unwrap();
        assert!(s.subject_sha256.is_empty());
    }

    #[test]
    fn hostile_statements_are_errors() {
        for c in [
            &b"[]"[..],
            b"not json",
            br#"{"subject":{}}"#,
            br#"{"subject":[5]}"#,
            br#"{"subject":[[{"sha256":"ab"}]]}"#,
            br#"{"subject":[{"digest":[]}]}"#,
            br#"{"subject":[{"digest":{"sha256":5}}]}"#,
            br#"{"predicateType":["x"]}"#,
            br#"{"_type":1}"#,
        ] {
            let e = Statement::parse(c).expect_err(&String::from_utf8_lossy(c));
            assert!(e.to_string().starts_with("in-toto statement: "), "{e}");
        }
    }

    #[test]
    fn bundles_with_each_kind_of_material_and_content() {
        let p = b64(STATEMENT.as_bytes());
        let key = format!(
            r#"{{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{{"publicKey":{{"hint":"h"}}}},"dsseEnvelope":{{"payload":"{p}","payloadType":"application/vnd.in-toto+json","signatures":[{{"sig":"AQID"}}]}}}}"#
        );
        let b = Bundle::parse(key.as_bytes()).unwrap();
        assert_eq!(
            b.material,
            VerificationMaterial::PublicKey {
                hint: Some("h".into())
            }
        );
        assert!(!b.material.is_keyless());
        let BundleContent::Dsse(env) = &b.content else {
            panic!("{b:?}")
        };
        assert_eq!(env.statement().unwrap().subject_sha256, ["abcd"]);
        assert_eq!(bundle_envelope(key.as_bytes()).unwrap().as_ref(), Some(env));

        // Proto field names, as protojson also accepts them.
        let snake = format!(
            r#"{{"media_type":"m","verification_material":{{"certificate":{{"raw_bytes":"AQI="}}}},"dsse_envelope":{{"payload":"{p}","payload_type":"t","signatures":[]}}}}"#
        );
        let b = Bundle::parse(snake.as_bytes()).unwrap();
        assert_eq!(
            b.material,
            VerificationMaterial::Certificate { der: vec![1, 2] }
        );
        assert!(b.material.is_keyless());

        let chain = r#"{"verificationMaterial":{"x509CertificateChain":{"certificates":[{"rawBytes":"AQ=="},{"rawBytes":"Ag=="}]}},"messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AAE="},"signature":"AgM="}}"#;
        let b = Bundle::parse(chain.as_bytes()).unwrap();
        assert_eq!(
            b.material,
            VerificationMaterial::CertificateChain {
                ders: vec![vec![1], vec![2]]
            }
        );
        assert_eq!(
            b.content,
            BundleContent::MessageSignature {
                digest_algorithm: Some("SHA2_256".into()),
                digest: vec![0, 1],
                signature: vec![2, 3]
            }
        );
        assert_eq!(bundle_envelope(chain.as_bytes()).unwrap(), None);
    }

    #[test]
    fn hostile_bundles_are_errors() {
        for c in [
            &b"{}"[..],
            b"[]",
            b"\"x\"",
            br#"{"dsseEnvelope":{"payload":"","payloadType":"t"},"messageSignature":{}}"#,
            br#"{"dsseEnvelope":5}"#,
            br#"{"dsseEnvelope":{"payload":"%","payloadType":"t"}}"#,
            br#"{"verificationMaterial":{"certificate":{"rawBytes":"%"}},"messageSignature":{}}"#,
            br#"{"verificationMaterial":"k","messageSignature":{}}"#,
            br#"{"dsseEnvelope":["t","",[]]}"#,
            br#"{"verificationMaterial":{"publicKey":["h"]},"messageSignature":{}}"#,
            br#"{"messageSignature":{"signature":"%"}}"#,
        ] {
            let e = Bundle::parse(c).expect_err(&String::from_utf8_lossy(c));
            assert!(e.to_string().starts_with("sigstore bundle"), "{e}");
        }
    }

    #[test]
    fn json_problems_never_repeat_values() {
        const MARKER: &str = "SECRET-MARKER";
        for doc in [
            format!(r#"{{"payloadType":"x","payload":"{MARKER}","signatures":"{MARKER}\"q"}}"#),
            format!(r#"{{"payloadType":["{MARKER}"],"payload":"x"}}"#),
            format!(r#""{MARKER}""#),
            r#"{"payloadType":12345678,"payload":"x"}"#.to_string(),
            r#"{"payloadType":true,"payload":"x"}"#.to_string(),
        ] {
            let e = Envelope::parse(doc.as_bytes()).unwrap_err().to_string();
            assert!(!e.contains(MARKER) && !e.contains("12345678"), "{doc}: {e}");
            assert!(e.contains("at line 1 column"), "{doc}: {e}");
        }
        let e = Envelope::parse(br#"{"payloadType":12,"payload":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("invalid type: integer, expected a string"),
            "{e}"
        );
        let e = Envelope::parse(br#"{"payload":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing field `payloadType`"), "{e}");
        let e =
            Statement::parse(format!(r#"{{"_type":{{"{MARKER}":1}},"x":"{MARKER}"}}"#).as_bytes())
                .unwrap_err()
                .to_string();
        assert!(!e.contains(MARKER), "{e}");
        assert_eq!(
            without_values(r#"invalid type: string "a\"b`c", expected u8 at line 1"#),
            "invalid type: a string, expected u8 at line 1"
        );
        assert_eq!(
            without_values("unknown variant `zz`, expected `a` or `b`"),
            "unknown variant, expected `a` or `b`"
        );
        assert_eq!(without_values("EOF while parsing"), "EOF while parsing");
    }

    #[test]
    fn shown_escapes_and_truncates() {
        assert_eq!(shown("sha256:ab"), "sha256:ab");
        assert_eq!(shown("a\nok: verified"), "a\\nok: verified");
        let long = shown(&"é".repeat(500));
        assert_eq!(long.chars().count(), 100 + 1);
    }
}
