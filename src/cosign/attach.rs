//! Attaching signatures and attestations the way SingularityCE stores them (docs/FORMAT.md,
//! Cosign): checking what a user dropped into `/cosign` against the
//! image, then appending, amending or removing one layer of a `_cosign:` image and
//! rewriting the root index with the upstream update algorithm (docs/FORMAT.md, Updating one in place).
//!
//! Staging and deciding when to commit belong to the tree; this module only judges bytes
//! and writes them. Every input here was written by a user, so nothing is unwrapped and
//! every check runs before the image is touched: an error leaves the file as it was.

use std::collections::{BTreeMap, HashMap};

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{DecodeError, Engine as _};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

pub use super::attachment::Attachment;
use super::discover::{EntryKind, MAX_LAYERS};
use super::dsse::{json_problem, shown, Envelope, IN_TOTO_PAYLOAD_TYPE};
use super::referrer;
use super::verify::{
    CERTIFICATE_ANNOTATION, DSSE_MEDIA_TYPE, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE,
};
use super::{is_cosign_ref, is_tag_ref, KIND_ANNOTATION, PREDICATE_TYPE_ANNOTATION};
use crate::oci::layered_image::{config_for_layers, manifest_for_layers, MediaTypes};
use crate::oci::{
    media_type, Descriptor, EntryStyle, Index, Manifest, MemBlobs, NoBlobs, OciError, OciSif,
    References, MAX_INDEX_DEPTH,
};
use crate::sif::Digest;

/// What every simple-signing payload says it is (docs/FORMAT.md, The payload and what verifies it); checking it keeps an
/// unrelated JSON document with a `critical` key from being signed into the image.
const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";

/// What an unknown payload should have been, for the error that rejects it.
const EXPECTED_FORMATS: &str = "expected a cosign simple-signing payload (critical.image.\
    docker-manifest-digest and critical.type \"cosign container image signature\") or a DSSE \
    envelope (payloadType \"application/vnd.in-toto+json\", payload, signatures) or a sigstore \
    bundle (mediaType application/vnd.dev.sigstore.bundle…)";

/// cosign reads signatures with Go's `base64.StdEncoding`: padding is required, but the
/// unused bits of the last character are not checked. Accepting less would store a
/// signature cosign cannot read; refusing more would reject ones it can.
const GO_STD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// Why an attach, amend or detach was refused. The tree maps each variant to one errno.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// A dropped file is not acceptable (EINVAL): `file` is its role (`payload`,
    /// `signature`, `annotations`, `certificate`, …), so the user knows which one to fix.
    #[error("{file}: {problem}")]
    Invalid { file: String, problem: String },
    /// A committed value would change (EPERM): committed signatures are append-only, so a
    /// copy that repeats a value is fine and one that alters it is refused.
    // The values stay out of the message (and so out of logs): lengths tell them apart.
    #[error(
        "annotation {}: the committed layer has another value ({} bytes, here {} bytes), \
         and a committed value cannot be changed",
        quoted(.key),
        .committed.len(),
        .new.len()
    )]
    Conflict {
        key: String,
        committed: String,
        new: String,
    },
    /// The layer the caller names is not (or no longer) in the image (ENOENT): its view
    /// of the image is out of date.
    #[error("{what}")]
    NotFound { what: String },
    /// The `_cosign:` image already has as many layers as cosign reads (ENOSPC): another
    /// one would be invisible to every verifier.
    #[error("{ref_name} already has {layers} layers, the most cosign reads ({MAX_LAYERS})")]
    Full { ref_name: String, layers: usize },
    /// The entry would not verify under the mount's keys or identities, and the mount
    /// takes only entries that do (`verify_drops`, EPERM).
    #[error(
        "does not verify, and this mount takes only signatures that do (verify_drops): {reason}"
    )]
    Unverified { reason: String },
    /// Reading or writing the image failed (EIO).
    #[error(transparent)]
    Oci(#[from] OciError),
}

impl AttachError {
    pub(super) fn invalid(file: &str, problem: impl Into<String>) -> AttachError {
        AttachError::Invalid {
            file: file.to_string(),
            problem: problem.into(),
        }
    }
}

/// The files a user dropped for one entry, by role, with bytes exactly as written: the
/// tree gathers them from `X`, `X.sig`, `X.cert`, … or from a directory's `payload`,
/// `signature`, …, and the judgement of what they mean is made here, in one place.
///
/// Not named `Drop`, which would shadow the prelude's trait in every module importing it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropFiles {
    pub payload: Option<Vec<u8>>,
    /// Base64 text; may end in a newline or be wrapped, as `cosign sign
    /// --output-signature` and `base64` write it.
    pub signature: Option<Vec<u8>>,
    /// Becomes `dev.sigstore.cosign/certificate`, verbatim (UTF-8).
    pub certificate: Option<Vec<u8>>,
    /// Becomes `dev.sigstore.cosign/chain`, verbatim (UTF-8).
    pub chain: Option<Vec<u8>>,
    /// Becomes `dev.sigstore.cosign/bundle`, verbatim (UTF-8).
    pub bundle: Option<Vec<u8>>,
    /// Becomes `dev.sigstore.cosign/rfc3161timestamp`, verbatim (UTF-8).
    pub rfc3161timestamp: Option<Vec<u8>>,
    /// A JSON object of string values: the layer annotations, as an entry's `annotations`
    /// file shows them (so `cp -r` of an entry reproduces its layer).
    pub annotations: Option<Vec<u8>>,
}

impl DropFiles {
    /// The files that each give one annotation verbatim: the layer keys `cosign attach
    /// signature` sets from `--certificate`, `--certificate-chain`, `--rekor-response` and
    /// `--tsr` (docs/FORMAT.md, The signature image), with the role that names the file in errors.
    fn per_key_files(&self) -> [(&'static str, &'static str, Option<&[u8]>); 4] {
        [
            (
                CERTIFICATE_ANNOTATION,
                "certificate",
                self.certificate.as_deref(),
            ),
            ("dev.sigstore.cosign/chain", "chain", self.chain.as_deref()),
            (
                "dev.sigstore.cosign/bundle",
                "bundle",
                self.bundle.as_deref(),
            ),
            (
                "dev.sigstore.cosign/rfc3161timestamp",
                "rfc3161timestamp",
                self.rfc3161timestamp.as_deref(),
            ),
        ]
    }
}

/// An annotation value and the file that gave it, so that errors found after merging can
/// still name the file to fix.
struct Given {
    value: String,
    file: &'static str,
}

/// The layer annotations the drop's files contribute: the annotations file merged with
/// the per-key files. The signature file counts with all ASCII whitespace removed (as Go's
/// decoder skips line breaks, a wrapped or newline-terminated file means the same
/// signature) and must be standard padded base64. A per-key file that disagrees with the
/// annotations file is an error, since either choice would silently drop what the user
/// wrote.
pub fn drop_annotations(drop: &DropFiles) -> Result<BTreeMap<String, String>, AttachError> {
    Ok(given_annotations(drop)?
        .into_iter()
        .map(|(k, g)| (k, g.value))
        .collect())
}

fn given_annotations(drop: &DropFiles) -> Result<BTreeMap<String, Given>, AttachError> {
    let mut out = BTreeMap::new();
    if let Some(bytes) = &drop.annotations {
        for (key, value) in parse_annotations(bytes)? {
            if key == SIGNATURE_ANNOTATION {
                check_signature(&value).map_err(|p| {
                    AttachError::invalid("annotations", format!("{SIGNATURE_ANNOTATION}: {p}"))
                })?;
            }
            let file = "annotations";
            out.insert(key, Given { value, file });
        }
    }
    if let Some(bytes) = &drop.signature {
        let value = signature_text(bytes)?;
        merge(&mut out, SIGNATURE_ANNOTATION, value, "signature")?;
    }
    for (key, file, bytes) in drop.per_key_files() {
        let Some(bytes) = bytes else { continue };
        let value = String::from_utf8(bytes.to_vec()).map_err(|e| {
            AttachError::invalid(
                file,
                format!(
                    "not UTF-8 text (invalid byte at offset {}); an annotation value is a JSON \
                     string",
                    e.utf8_error().valid_up_to()
                ),
            )
        })?;
        merge(&mut out, key, value, file)?;
    }
    Ok(out)
}

/// Adds a per-key file's value. Where the annotations file gives the same value, its
/// spelling is kept: it is the layer as committed elsewhere (a signature stored with the
/// trailing newline `cosign attach signature` keeps), and a copy should reproduce it.
fn merge(
    out: &mut BTreeMap<String, Given>,
    key: &str,
    value: String,
    file: &'static str,
) -> Result<(), AttachError> {
    match out.get(key) {
        Some(old) if same_value(key, &old.value, &value) => Ok(()),
        Some(old) => Err(AttachError::invalid(
            file,
            format!("differs from the {key} value in the {} file", old.file),
        )),
        None => {
            out.insert(key.to_string(), Given { value, file });
            Ok(())
        }
    }
}

/// Whether annotations `extra` can be added to a committed layer's `current` ones without
/// changing a value (what [`amend`] takes): each key is new or repeats its value.
pub fn annotations_fit(
    current: &BTreeMap<String, String>,
    extra: &BTreeMap<String, String>,
) -> bool {
    extra
        .iter()
        .all(|(k, v)| current.get(k).is_none_or(|c| same_value(k, c, v)))
}

/// Whether two values of `key` mean the same: signatures compare without whitespace,
/// which their decoders ignore; everything else byte for byte.
fn same_value(key: &str, a: &str, b: &str) -> bool {
    if key == SIGNATURE_ANNOTATION {
        strip_whitespace(a.as_bytes()) == strip_whitespace(b.as_bytes())
    } else {
        a == b
    }
}

fn strip_whitespace(text: &[u8]) -> Vec<u8> {
    text.iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect()
}

/// The signature file as the annotation value cosign would store and read back.
fn signature_text(bytes: &[u8]) -> Result<String, AttachError> {
    let compact = strip_whitespace(bytes);
    decode_go_base64(&compact, "whitespace").map_err(|p| AttachError::invalid("signature", p))?;
    // Decoding succeeded, so every byte is in the base64 alphabet.
    String::from_utf8(compact).map_err(|_| AttachError::invalid("signature", "not ASCII text"))
}

/// Checks a signature annotation value as cosign reads it: Go's decoder skips `\r` and
/// `\n` (the only whitespace it tolerates), then wants standard padded base64.
fn check_signature(value: &str) -> Result<(), String> {
    let compact: Vec<u8> = value
        .bytes()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    decode_go_base64(&compact, "line breaks").map(|_| ())
}

/// Decodes text from which `skipped` was removed; offsets in messages count without it.
fn decode_go_base64(compact: &[u8], skipped: &str) -> Result<Vec<u8>, String> {
    GO_STD_BASE64.decode(compact).map_err(|e| {
        let what = match e {
            DecodeError::InvalidByte(offset, byte)
            | DecodeError::InvalidLastSymbol(offset, byte) => format!(
                "invalid character {:?} at offset {offset} (not counting {skipped})",
                char::from(byte)
            ),
            DecodeError::InvalidLength(len) => {
                format!("{len} characters (not counting {skipped}) cannot be padded base64")
            }
            DecodeError::InvalidPadding => "missing or misplaced '=' padding".to_string(),
        };
        format!("not standard base64: {what}")
    })
}

/// An annotations file: a JSON object whose values are all strings, as Go unmarshals a
/// `map[string]string`, except that a key given twice is refused rather than resolved
/// silently by keeping the last.
fn parse_annotations(bytes: &[u8]) -> Result<BTreeMap<String, String>, AttachError> {
    serde_json::from_slice::<StringMap>(bytes)
        .map(|m| m.0)
        .map_err(|e| {
            AttachError::invalid("annotations", format!("not valid: {}", json_problem(&e)))
        })
}

struct StringMap(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for StringMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> Visitor<'de> for MapVisitor {
            type Value = BTreeMap<String, String>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object whose values are strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value: Value = map.next_value()?;
                    let Value::String(value) = value else {
                        return Err(de::Error::custom(format!(
                            "the value of {} is {}, not a string",
                            quoted(&key),
                            json_kind(&value)
                        )));
                    };
                    if out.contains_key(&key) {
                        return Err(de::Error::custom(format!(
                            "the key {} appears twice",
                            quoted(&key)
                        )));
                    }
                    out.insert(key, value);
                }
                Ok(out)
            }
        }
        d.deserialize_map(MapVisitor).map(StringMap)
    }
}

/// A user's string in a message: quoted, escaped and cut short, so that every error stays
/// one readable line whatever the input.
pub(super) fn quoted(s: &str) -> String {
    format!("\"{}\"", shown(s))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What the payload bytes are, decided by content: users name files freely.
enum Format {
    SimpleSigning {
        target: Digest,
    },
    Dsse {
        subjects: Vec<Digest>,
        /// As written in the statement, for the default `predicateType` annotation.
        predicate_type: Option<String>,
    },
    /// A sigstore bundle: judged, and attached as a referrer, by `referrer.rs`.
    Bundle,
}

/// Checks a drop against the image. `Ok(None)` means consistent so far but not complete
/// (no payload yet, or a simple-signing payload with no signature from any file), so the
/// tree can keep staging; `Ok(Some(_))` means it can be committed now. Everything that can
/// be judged is judged as soon as it is present, so a bad file fails at its own close.
pub fn prepare(oci: &OciSif, drop: &DropFiles) -> Result<Option<Attachment>, AttachError> {
    let given = given_annotations(drop)?;
    let Some(payload) = drop.payload.as_deref() else {
        return Ok(None);
    };
    let targets = image_targets(oci)?;
    match classify(payload)? {
        Format::Bundle => {
            let companion = given.iter().next().map(|(k, g)| (k.as_str(), g.file));
            referrer::prepare_bundle(payload, &targets, companion).map(Some)
        }
        Format::SimpleSigning { target } => {
            if !targets.contains_key(&target) {
                return Err(not_in_image(
                    &target,
                    "critical.image.docker-manifest-digest",
                ));
            }
            let annotations: BTreeMap<String, String> =
                given.into_iter().map(|(k, g)| (k, g.value)).collect();
            let signed = annotations
                .get(SIGNATURE_ANNOTATION)
                .is_some_and(|s| !strip_whitespace(s.as_bytes()).is_empty());
            if !signed {
                return Ok(None);
            }
            Ok(Some(attachment(
                EntryKind::Signature,
                target,
                SIMPLE_SIGNING_MEDIA_TYPE,
                payload,
                annotations,
            )))
        }
        Format::Dsse {
            subjects,
            predicate_type,
        } => {
            let target = match subjects.iter().find(|s| targets.contains_key(*s)) {
                Some(t) => *t,
                None => return Err(no_subject_in_image(&subjects)),
            };
            let annotations = attestation_annotations(given, predicate_type)?;
            Ok(Some(attachment(
                EntryKind::Attestation,
                target,
                DSSE_MEDIA_TYPE,
                payload,
                annotations,
            )))
        }
    }
}

fn attachment(
    kind: EntryKind,
    target: Digest,
    media_type: &str,
    payload: &[u8],
    annotations: BTreeMap<String, String>,
) -> Attachment {
    let mut layer = Descriptor::of(media_type, payload);
    layer.annotations = Some(annotations).filter(|a| !a.is_empty());
    Attachment {
        kind,
        target,
        layer,
        payload: payload.to_vec(),
    }
}

/// The target a file names is not in the image: the message says which digest, and what
/// in the file (`named_by`) gives it, so that a mistyped or foreign digest is found at once.
pub(super) fn not_in_image(target: &Digest, named_by: &str) -> AttachError {
    AttachError::invalid(
        "payload",
        format!("target {target} (its {named_by}) is not a manifest or index in this image"),
    )
}

pub(super) fn no_subject_in_image(subjects: &[Digest]) -> AttachError {
    const LISTED: usize = 3;
    let mut list: Vec<String> = subjects
        .iter()
        .take(LISTED)
        .map(|d| d.to_string())
        .collect();
    if subjects.len() > LISTED {
        list.push(format!("and {} more", subjects.len() - LISTED));
    }
    let problem = if subjects.is_empty() {
        "the in-toto statement has no sha256 subject, so it names no target in this image"
            .to_string()
    } else {
        format!(
            "no subject of the in-toto statement ({}) is a manifest or index in this image",
            list.join(", ")
        )
    };
    AttachError::invalid("payload", problem)
}

/// What `cosign attest` writes on the layer (the signature key present but empty, and the
/// statement's predicate type), plus what the drop adds. An attestation's signature lives
/// inside the envelope, so a non-empty signature annotation is a mistake, and a predicate
/// type other than the statement's would mislabel the layer.
fn attestation_annotations(
    given: BTreeMap<String, Given>,
    predicate_type: Option<String>,
) -> Result<BTreeMap<String, String>, AttachError> {
    let mut out = BTreeMap::new();
    out.insert(SIGNATURE_ANNOTATION.to_string(), String::new());
    if let Some(p) = &predicate_type {
        out.insert(PREDICATE_TYPE_ANNOTATION.to_string(), p.clone());
    }
    for (key, g) in given {
        if key == SIGNATURE_ANNOTATION {
            if !strip_whitespace(g.value.as_bytes()).is_empty() {
                return Err(AttachError::invalid(
                    g.file,
                    format!(
                        "{SIGNATURE_ANNOTATION} must be empty for an attestation: a DSSE \
                         envelope carries its signatures inside"
                    ),
                ));
            }
            continue;
        }
        if let Some(default) = out.get(&key) {
            if *default != g.value {
                return Err(AttachError::invalid(
                    g.file,
                    format!("{key} differs from what the in-toto statement says"),
                ));
            }
        }
        out.insert(key, g.value);
    }
    Ok(out)
}

fn classify(payload: &[u8]) -> Result<Format, AttachError> {
    let value: Value = serde_json::from_slice(payload).map_err(|e| {
        AttachError::invalid("payload", format!("not valid JSON: {}", json_problem(&e)))
    })?;
    let Value::Object(object) = &value else {
        return Err(AttachError::invalid(
            "payload",
            format!(
                "unknown payload format: {} is not a JSON object; {EXPECTED_FORMATS}",
                json_kind(&value)
            ),
        ));
    };
    if referrer::looks_like_bundle(object) {
        return Ok(Format::Bundle);
    }
    if object.contains_key("payloadType")
        || (object.contains_key("payload") && object.contains_key("signatures"))
    {
        return classify_dsse(payload);
    }
    if let Some(critical) = object.get("critical") {
        return simple_signing_target(critical).map(|target| Format::SimpleSigning { target });
    }
    Err(AttachError::invalid(
        "payload",
        format!(
            "unknown payload format: a JSON object with neither critical nor payloadType; \
             {EXPECTED_FORMATS}"
        ),
    ))
}

fn simple_signing_target(critical: &Value) -> Result<Digest, AttachError> {
    let bad = |problem: String| {
        AttachError::invalid("payload", format!("simple-signing payload: {problem}"))
    };
    let digest = match critical
        .get("image")
        .and_then(|i| i.get("docker-manifest-digest"))
    {
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(bad(format!(
                "critical.image.docker-manifest-digest is {}, not a string",
                json_kind(other)
            )))
        }
        None => {
            return Err(bad(
                "critical.image.docker-manifest-digest is missing".into()
            ))
        }
    };
    let target: Digest = digest.parse().map_err(|_| {
        bad(format!(
            "critical.image.docker-manifest-digest ({} characters) is not sha256:<64 \
             lowercase hex digits>",
            digest.chars().count()
        ))
    })?;
    match critical.get("type") {
        Some(Value::String(t)) if t == SIMPLE_SIGNING_TYPE => Ok(target),
        Some(Value::String(_)) => Err(bad(format!("critical.type is not {SIMPLE_SIGNING_TYPE:?}"))),
        Some(other) => Err(bad(format!(
            "critical.type is {}, not a string",
            json_kind(other)
        ))),
        None => Err(bad(format!(
            "critical.type is missing (it is {SIMPLE_SIGNING_TYPE:?})"
        ))),
    }
}

fn classify_dsse(payload: &[u8]) -> Result<Format, AttachError> {
    let invalid = |e: super::CosignError| AttachError::invalid("payload", e.to_string());
    let envelope = Envelope::parse(payload).map_err(invalid)?;
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(AttachError::invalid(
            "payload",
            format!(
                "DSSE envelope: payloadType is not {IN_TOTO_PAYLOAD_TYPE}, the only one \
                 cosign attests"
            ),
        ));
    }
    if envelope.signatures.iter().all(|s| s.sig.is_empty()) {
        return Err(AttachError::invalid(
            "payload",
            "DSSE envelope has no signature; an attestation must be signed before it is attached",
        ));
    }
    let statement = envelope.statement().map_err(invalid)?;
    let subjects = statement
        .subject_sha256
        .iter()
        .filter_map(|hex| format!("sha256:{hex}").parse().ok())
        .collect();
    Ok(Format::Dsse {
        subjects,
        predicate_type: statement.predicate_type,
    })
}

/// Whether a root-index entry is itself a cosign image (`_cosign:` tag or `cosign save`
/// kind): those are not images a user signs.
fn is_cosign_image(entry: &Descriptor) -> bool {
    entry.ref_name().is_some_and(is_cosign_ref)
        || matches!(
            entry.annotation(KIND_ANNOTATION),
            Some("dev.cosignproject.cosign/sigs" | "dev.cosignproject.cosign/atts")
        )
}

/// Every manifest and index present in the image and reachable from an entry that is not
/// a cosign image, platform manifests of nested indexes included (cosign signs each with a
/// top-level `.sig` of its own, docs/FORMAT.md, Cosign). A nested index that cannot be read
/// only hides its own children, so one broken image does not block signing the others.
/// Each comes with the descriptor that first lists it (a referrer's `subject` is that).
pub(super) fn image_targets(oci: &OciSif) -> Result<HashMap<Digest, Descriptor>, AttachError> {
    let index = oci.root_index()?;
    let mut found = HashMap::new();
    let mut todo: Vec<(Descriptor, usize)> = index
        .entries()
        .iter()
        .filter(|e| !is_cosign_image(e))
        .map(|e| (e.clone(), 0))
        .collect();
    todo.reverse();
    while let Some((entry, depth)) = todo.pop() {
        let (digest, mt) = (entry.digest, entry.media_type.as_str());
        let is_index = media_type::is_index(mt);
        if !(is_index || media_type::is_manifest(mt)) || oci.blob(&digest).is_none() {
            continue;
        }
        if found.contains_key(&digest) {
            continue;
        }
        found.insert(digest, entry);
        if !is_index || depth >= MAX_INDEX_DEPTH {
            continue;
        }
        match oci
            .read_blob(&digest)
            .and_then(|b| References::parse(&b, &digest))
        {
            Ok(refs) => todo.extend(
                refs.manifests
                    .into_iter()
                    .flatten()
                    .rev()
                    .map(|m| (m, depth + 1)),
            ),
            Err(e) => log::debug!("not looking for targets below index {digest}: {e}"),
        }
    }
    Ok(found)
}

/// What an attach or amend did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttachOutcome {
    /// The image already held exactly this: nothing was written, so repeating a copy is
    /// harmless.
    Unchanged,
    /// The image was changed.
    Attached,
}

/// `_cosign:sha256-<hex>.sig|.att|.sbom`, the root-index name SingularityCE and oci-tools
/// look signatures up by (docs/FORMAT.md, Cosign). Referrers have no tag, hence `None`.
pub fn cosign_ref_name(kind: EntryKind, target: &Digest) -> Option<String> {
    let suffix = match kind {
        EntryKind::Signature => "sig",
        EntryKind::Attestation => "att",
        EntryKind::Sbom => "sbom",
        EntryKind::Referrer => return None,
    };
    Some(format!("_cosign:sha256-{}.{suffix}", target.hex()))
}

/// SingularityCE's `sign --cosign` (docs/FORMAT.md, Cosign) with the root-index entry written as
/// SingularityCE 4.5 writes it, the form sifmount produces.
pub fn attach(oci: &mut OciSif, a: &Attachment) -> Result<AttachOutcome, AttachError> {
    attach_with_style(oci, a, EntryStyle::Singularity45)
}

/// [`attach`] with the root-index entry in a chosen SingularityCE version's form, so that
/// files signed by SingularityCE ≤ 4.4 can be reproduced byte for byte too.
///
/// The layer goes last in the `_cosign:sha256-<target>.sig|.att` image (started if absent);
/// the other layers keep their descriptors verbatim, the config is regenerated from all
/// layer digests, Docker media types are kept if the image uses them, the entry moves to
/// the end of the root index, and the update algorithm writes it. An existing layer with
/// the same digest, media type and annotations makes this a no-op, like containers/image's
/// dedupe: a repeated copy must not grow the image.
pub fn attach_with_style(
    oci: &mut OciSif,
    a: &Attachment,
    style: EntryStyle,
) -> Result<AttachOutcome, AttachError> {
    if a.kind == EntryKind::Referrer {
        return referrer::attach_referrer(oci, a, style);
    }
    let ref_name = check_attachment(oci, a)?;
    let index = oci.root_index()?;
    let (mut layers, types) = match named_image(oci, &index, &ref_name)? {
        Some((_, manifest)) => {
            let types = media_types_of(&manifest);
            (manifest.layers, types)
        }
        None => (Vec::new(), MediaTypes::Oci),
    };
    if layers.iter().any(|l| same_layer(l, &a.layer)) {
        return Ok(AttachOutcome::Unchanged);
    }
    if layers.len() >= MAX_LAYERS {
        return Err(AttachError::Full {
            ref_name,
            layers: layers.len(),
        });
    }
    layers.push(a.layer.clone());
    let mut blobs = MemBlobs::new();
    blobs.insert(a.payload.clone());
    write_image(oci, index, &ref_name, layers, types, style, blobs)?;
    Ok(AttachOutcome::Attached)
}

/// An [`Attachment`] has public fields, so the commit re-checks what it relies on rather
/// than trust that it came from [`prepare`] against this very image.
fn check_attachment(oci: &OciSif, a: &Attachment) -> Result<String, AttachError> {
    let expected = match a.kind {
        EntryKind::Signature => SIMPLE_SIGNING_MEDIA_TYPE,
        EntryKind::Attestation => DSSE_MEDIA_TYPE,
        other => {
            return Err(AttachError::invalid(
                "payload",
                format!(
                    "only signatures and attestations can be attached, not {}",
                    other.short_name()
                ),
            ))
        }
    };
    if a.layer.media_type != expected {
        return Err(AttachError::invalid(
            "payload",
            format!(
                "a {} layer has media type {expected}, not {}",
                a.kind.short_name(),
                quoted(&a.layer.media_type)
            ),
        ));
    }
    a.check_layer_bytes("payload")?;
    if !image_targets(oci)?.contains_key(&a.target) {
        let named_by = match a.kind {
            EntryKind::Signature => "critical.image.docker-manifest-digest",
            _ => "in-toto subject",
        };
        return Err(not_in_image(&a.target, named_by));
    }
    cosign_ref_name(a.kind, &a.target)
        .ok_or_else(|| AttachError::invalid("payload", "a referrer has no _cosign: tag"))
}

/// Equal as containers/image's dedupe compares (digest, size, media type, annotations
/// exactly); an absent map and an empty one serialize alike, so they are equal too.
fn same_layer(a: &Descriptor, b: &Descriptor) -> bool {
    let empty = BTreeMap::new();
    a.digest == b.digest
        && a.size == b.size
        && a.media_type == b.media_type
        && a.annotations.as_ref().unwrap_or(&empty) == b.annotations.as_ref().unwrap_or(&empty)
}

/// cosign with `COSIGN_DOCKER_MEDIA_TYPES=1` writes Docker schema 2; appending keeps the
/// base image's types, as ggcr's `mutate.Append` does.
fn media_types_of(manifest: &Manifest) -> MediaTypes {
    if manifest.media_type.as_deref() == Some(media_type::DOCKER_MANIFEST) {
        MediaTypes::Docker
    } else {
        MediaTypes::Oci
    }
}

/// The root-index entry named `ref_name` and its manifest, if there is one.
fn named_image(
    oci: &OciSif,
    index: &Index,
    ref_name: &str,
) -> Result<Option<(Descriptor, Manifest)>, AttachError> {
    let Some(entry) = index
        .entries()
        .iter()
        .find(|e| e.ref_name() == Some(ref_name))
    else {
        return Ok(None);
    };
    let manifest = Manifest::parse(&oci.read_blob(&entry.digest)?)?;
    Ok(Some((entry.clone(), manifest)))
}

/// Writes the `_cosign:` image with these layers: a config and manifest as ggcr makes them
/// from `empty.Image`, the entry replaced as `ReplaceImage` does, and the update algorithm.
fn write_image(
    oci: &mut OciSif,
    mut index: Index,
    ref_name: &str,
    layers: Vec<Descriptor>,
    types: MediaTypes,
    style: EntryStyle,
    mut blobs: MemBlobs,
) -> Result<(), AttachError> {
    let diff_ids: Vec<Digest> = layers.iter().map(|l| l.digest).collect();
    let config = config_for_layers(&diff_ids);
    let manifest = manifest_for_layers(&config, layers, types);
    let manifest_bytes = manifest.to_go_json();
    blobs.insert(config);
    blobs.insert(manifest_bytes.clone());
    index.replace_named(ref_name, &manifest_bytes, &manifest, style);
    oci.update_root_index(&index.to_go_json(), &blobs)?;
    Ok(())
}

/// The image named `ref_name` if its layer `layer_index` is `payload_digest`: what an
/// entry directory of the tree stands for, checked again at the moment of writing.
fn committed_layer(
    oci: &OciSif,
    ref_name: &str,
    layer_index: usize,
    payload_digest: &Digest,
) -> Result<(Index, Manifest), AttachError> {
    let not_found = |what: String| AttachError::NotFound { what };
    if !is_tag_ref(ref_name) {
        return Err(not_found(format!(
            "{} is not a _cosign:sha256-<hex>.sig|.att|.sbom name; only cosign images are \
             changed",
            quoted(ref_name)
        )));
    }
    let index = oci.root_index()?;
    let Some((_, manifest)) = named_image(oci, &index, ref_name)? else {
        return Err(not_found(format!(
            "the root index has no entry named {ref_name}"
        )));
    };
    let Some(layer) = manifest.layers.get(layer_index) else {
        return Err(not_found(format!(
            "{ref_name} has no layer {layer_index}: it has {}, counted from 0",
            manifest.layers.len()
        )));
    };
    if layer.digest != *payload_digest {
        return Err(not_found(format!(
            "layer {layer_index} of {ref_name} is {}, not {payload_digest}",
            layer.digest
        )));
    }
    Ok((index, manifest))
}

/// Adds annotations to a committed layer (`layer_index` of the image `ref_name`, whose
/// payload must be `payload_digest`), as files written into a committed entry directory
/// do. A key already present must keep its value (else [`AttachError::Conflict`] and
/// nothing written: committed signatures are append-only); adding nothing new is
/// [`AttachOutcome::Unchanged`], so copying an entry onto itself is harmless. Otherwise
/// the layer descriptor changes, so config, manifest and root-index entry are rewritten as
/// in [`attach`].
pub fn amend(
    oci: &mut OciSif,
    ref_name: &str,
    layer_index: usize,
    payload_digest: &Digest,
    extra: &BTreeMap<String, String>,
) -> Result<AttachOutcome, AttachError> {
    let (index, mut manifest) = committed_layer(oci, ref_name, layer_index, payload_digest)?;
    let types = media_types_of(&manifest);
    let layer = &mut manifest.layers[layer_index];
    let mut annotations = layer.annotations.clone().unwrap_or_default();
    let mut added = Vec::new();
    for (key, new) in extra {
        match annotations.get(key) {
            Some(committed) if same_value(key, committed, new) => {}
            Some(committed) => {
                return Err(AttachError::Conflict {
                    key: key.clone(),
                    committed: committed.clone(),
                    new: new.clone(),
                })
            }
            None => {
                if key == SIGNATURE_ANNOTATION {
                    check_signature(new).map_err(|p| {
                        AttachError::invalid("signature", format!("{SIGNATURE_ANNOTATION}: {p}"))
                    })?;
                }
                added.push((key.clone(), new.clone()));
            }
        }
    }
    if added.is_empty() {
        return Ok(AttachOutcome::Unchanged);
    }
    annotations.extend(added);
    layer.annotations = Some(annotations);
    write_image(
        oci,
        index,
        ref_name,
        manifest.layers,
        types,
        EntryStyle::Singularity45,
        MemBlobs::new(),
    )?;
    Ok(AttachOutcome::Attached)
}

/// Removes one layer of a `_cosign:` image (`rm -r /cosign/<entry>`): the others keep
/// their descriptors and the image is rewritten as in [`attach`]; removing the last layer
/// removes the whole root-index entry, since cosign has no empty signature images. The
/// update algorithm then deletes the blobs nothing references any more.
pub fn detach(
    oci: &mut OciSif,
    ref_name: &str,
    layer_index: usize,
    payload_digest: &Digest,
) -> Result<(), AttachError> {
    let (mut index, manifest) = committed_layer(oci, ref_name, layer_index, payload_digest)?;
    let types = media_types_of(&manifest);
    let mut layers = manifest.layers;
    layers.remove(layer_index);
    if layers.is_empty() {
        index.remove(|e| e.ref_name() == Some(ref_name));
        oci.update_root_index(&index.to_go_json(), &NoBlobs)?;
        return Ok(());
    }
    write_image(
        oci,
        index,
        ref_name,
        layers,
        types,
        EntryStyle::Singularity45,
        MemBlobs::new(),
    )
}
