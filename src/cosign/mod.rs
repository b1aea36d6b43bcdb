//! Cosign's storage conventions (docs/FORMAT.md, Cosign): finding the signatures, attestations,
//! SBOMs and referrers an OCI-SIF holds, and verifying them with public keys or certificate
//! identities.
#![forbid(unsafe_code)]

mod attach;
mod attachment;
mod discover;
mod dsse;
mod error;
mod private_key;
mod public_key;
mod referrer;
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
pub use referrer::{
    bundle_ref_name, detach_referrer, BUNDLE_CONTENT_ANNOTATION, BUNDLE_PREDICATE_ANNOTATION,
    BUNDLE_V03_MEDIA_TYPE,
};
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

/// Hex digits of the bundle's digest in the name of its referrer's root-index entry
/// (docs/FORMAT.md, Cosign: referrers): 128 bits tell bundles apart, and the whole name
/// stays within the 128 characters of a registry tag.
const BUNDLE_NAME_HEX: usize = 32;

/// Whether a root-index reference name is one of the `_cosign:` names: SingularityCE's
/// `_cosign:sha256-<64 hex>.sig|.att|.sbom`, or sifmount's `_cosign:sha256-<64 hex>.bundle-<32
/// hex>` for a sigstore bundle's referrer. Both are what SingularityCE skips when it looks
/// for the image (its matcher skips every name starting `_cosign`), so neither is an image.
pub fn is_cosign_ref(name: &str) -> bool {
    is_tag_ref(name) || is_bundle_ref(name)
}

/// `_cosign:sha256-<64 hex>.sig|.att|.sbom`: a signature image SingularityCE and oci-tools
/// look up by that name.
pub(crate) fn is_tag_ref(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("_cosign:sha256-") else {
        return false;
    };
    SUFFIXES
        .iter()
        .any(|s| rest.strip_suffix(s).is_some_and(|hex| is_hex(hex, 64)))
}

/// `_cosign:sha256-<64 hex>.bundle-<32 hex>`: the name sifmount gives a bundle's referrer.
pub fn is_bundle_ref(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("_cosign:sha256-") else {
        return false;
    };
    let Some((target, bundle)) = rest.split_once(".bundle-") else {
        return false;
    };
    is_hex(target, 64) && is_hex(bundle, BUNDLE_NAME_HEX)
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
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
        let bundle = &hex[..BUNDLE_NAME_HEX];
        assert!(is_cosign_ref(&format!(
            "_cosign:sha256-{hex}.bundle-{bundle}"
        )));
        assert!(is_bundle_ref(&format!(
            "_cosign:sha256-{hex}.bundle-{bundle}"
        )));
        assert!(!is_tag_ref(&format!(
            "_cosign:sha256-{hex}.bundle-{bundle}"
        )));
        assert!(!is_bundle_ref(&format!(
            "_cosign:sha256-{hex}.bundle-{hex}"
        )));
        assert!(!is_bundle_ref(&format!("_cosign:sha256-{hex}.sig")));
    }
}
