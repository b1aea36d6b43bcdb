//! Cosign's storage conventions (docs/FORMAT.md, Cosign): finding the signatures, attestations,
//! SBOMs and referrers an OCI-SIF holds, and verifying them with public keys or certificate
//! identities.
#![forbid(unsafe_code)]

mod attach;
mod discover;
mod dsse;
mod error;
mod private_key;
mod public_key;
mod sign;
mod sigstore;
mod verify;

pub use attach::{
    amend, annotations_fit, attach, attach_with_style, cosign_ref_name, detach, drop_annotations,
    prepare, AttachError, AttachOutcome, Attachment, DropFiles,
};
pub use discover::{discover, Discovery, Entry, EntryKind, Origin, MAX_LAYERS};
pub use dsse::{
    bundle_envelope, decode_base64, pae, Bundle, BundleContent, Envelope, EnvelopeSignature,
    Statement, VerificationMaterial, IN_TOTO_PAYLOAD_TYPE,
};
pub use error::{CosignError, Result};
pub use private_key::{read_key_file, KeyError, SigningKey};
pub use sign::{
    attest, sign_payload, signature_attachment, singularity_payload, CREATOR_KEY, TIMESTAMP_KEY,
};
pub use sigstore::TrustRoot;
pub use verify::{
    layer_as_bundle, utc, verify, Identity, Matcher, PublicKey, SignedForm, Signer, Subject, Trust,
    Verdict, BUNDLE_MEDIA_TYPE_PREFIX, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, DSSE_MEDIA_TYPE,
    REKOR_BUNDLE_ANNOTATION, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE,
};

/// The `cosign save` annotation that says what a layout entry is (docs/FORMAT.md, Tags and where they live).
pub const KIND_ANNOTATION: &str = "kind";

/// Layer annotations that become files of their own in an entry directory
/// (the man page, ATTACHING), with the file names.
pub const ANNOTATION_FILES: [(&str, &str); 5] = [
    ("dev.cosignproject.cosign/signature", "signature"),
    ("dev.sigstore.cosign/certificate", "certificate"),
    ("dev.sigstore.cosign/chain", "chain"),
    ("dev.sigstore.cosign/bundle", "bundle"),
    ("dev.sigstore.cosign/rfc3161timestamp", "rfc3161timestamp"),
];

/// The layer annotation `cosign attest` writes with the predicate type (informational:
/// the signed statement is what counts).
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";

/// The tags cosign gives the images it stores beside a target (docs/FORMAT.md, Tags and where they live).
const SUFFIXES: [&str; 3] = [".sig", ".att", ".sbom"];

/// Whether a root-index reference name is `_cosign:sha256-<64 hex>.sig|.att|.sbom`.
pub fn is_cosign_ref(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("_cosign:sha256-") else {
        return false;
    };
    SUFFIXES.iter().any(|s| {
        rest.strip_suffix(s).is_some_and(|hex| {
            hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_well_formed_cosign_names() {
        let hex = "964d888783399e486b5dd8990defa45efee1fe7274f164b89d1f2bc86c81181b";
        assert!(is_cosign_ref(&format!("_cosign:sha256-{hex}.sig")));
        assert!(is_cosign_ref(&format!("_cosign:sha256-{hex}.att")));
        assert!(is_cosign_ref(&format!("_cosign:sha256-{hex}.sbom")));
        assert!(!is_cosign_ref(&format!("_cosign:sha256-{hex}.txt")));
        assert!(!is_cosign_ref(&format!("_cosign:sha256-{}.sig", &hex[1..])));
        assert!(!is_cosign_ref(&format!("cosign:sha256-{hex}.sig")));
        assert!(!is_cosign_ref("latest"));
    }
}
