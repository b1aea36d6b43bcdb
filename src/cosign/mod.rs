//! Cosign's storage conventions (spec/COSIGN.md). For now: recognising the root-index
//! names of signature images, so that they are not shown as images of their own.

/// The tags cosign gives the images it stores beside a target (spec/COSIGN.md §1.3).
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
