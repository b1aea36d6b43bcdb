//! What a file dropped into `/cosign` is for (the man page, ATTACHING): its role in
//! the entry it belongs to, decided from its name alone.
//!
//! * Directly in `/cosign`: `X` is a payload, `X.sig` its signature, `X.cert` or `X.pem`
//!   its certificate, `X.chain`, `X.bundle`, `X.annotations` the rest; all of them belong
//!   to the group `X`.
//! * In a directory (made with `mkdir` or `cp -r`): the file names of an entry directory
//!   (`payload`, `annotations`, `signature`, …). The files an entry directory shows but
//!   that are derived from the others (`target`, `media-type`, `verified`, …) are
//!   accepted and ignored, so that `cp -r` of an entry from another mount works.

use crate::cosign::DropFiles;

/// What a staged file contributes to its entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Payload,
    Signature,
    Certificate,
    Chain,
    Bundle,
    Timestamp,
    Annotations,
    /// Shown by an entry directory but computed from the rest: accepted, not used.
    Derived,
}

impl Role {
    /// The file an entry directory shows for this role (what an alias links to).
    pub fn entry_file(self) -> Option<&'static str> {
        Some(match self {
            Role::Payload => "payload",
            Role::Signature => "signature",
            Role::Certificate => "certificate",
            Role::Chain => "chain",
            Role::Bundle => "bundle",
            Role::Timestamp => "rfc3161timestamp",
            Role::Annotations => "annotations",
            Role::Derived => return None,
        })
    }

    /// Puts `bytes` where this role goes in a drop.
    pub fn fill(self, drop: &mut DropFiles, bytes: Vec<u8>) {
        match self {
            Role::Payload => drop.payload = Some(bytes),
            Role::Signature => drop.signature = Some(bytes),
            Role::Certificate => drop.certificate = Some(bytes),
            Role::Chain => drop.chain = Some(bytes),
            Role::Bundle => drop.bundle = Some(bytes),
            Role::Timestamp => drop.rfc3161timestamp = Some(bytes),
            Role::Annotations => drop.annotations = Some(bytes),
            Role::Derived => {}
        }
    }
}

/// The name of the file that says why a staged entry was refused: `error` in a
/// directory, `<group>.error` in `/cosign`.
pub const ERROR_FILE: &str = "error";

/// Suffixes of companion files directly in `/cosign`.
const COMPANIONS: [(&str, Role); 6] = [
    (".sig", Role::Signature),
    (".cert", Role::Certificate),
    (".pem", Role::Certificate),
    (".chain", Role::Chain),
    (".bundle", Role::Bundle),
    (".annotations", Role::Annotations),
];

/// Files an entry directory shows that are derived from its payload and annotations.
const DERIVED: [&str; 6] = [
    "target",
    "media-type",
    "statement.json",
    "predicate-type",
    "verified",
    ERROR_FILE,
];

/// The group and role of a file named `name` directly in `/cosign`, or why the name is
/// refused.
pub fn top_level_role(name: &str) -> Result<(String, Role), String> {
    check_name(name)?;
    if name.ends_with(&format!(".{ERROR_FILE}")) {
        return Err(format!(
            "names ending in .{ERROR_FILE} are where sifmount reports refused drops"
        ));
    }
    for (suffix, role) in COMPANIONS {
        if let Some(base) = name.strip_suffix(suffix).filter(|b| !b.is_empty()) {
            return Ok((base.to_string(), role));
        }
    }
    Ok((name.to_string(), Role::Payload))
}

/// The role of a file named `name` in an entry directory, or why it is refused.
pub fn entry_role(name: &str) -> Result<Role, String> {
    check_name(name)?;
    if DERIVED.contains(&name) {
        return Ok(Role::Derived);
    }
    [
        Role::Payload,
        Role::Signature,
        Role::Certificate,
        Role::Chain,
        Role::Bundle,
        Role::Timestamp,
        Role::Annotations,
    ]
    .into_iter()
    .find(|r| r.entry_file() == Some(name))
    .ok_or_else(|| {
        format!(
            "an entry directory holds only payload, annotations, signature, certificate, \
             chain, bundle and rfc3161timestamp (and the derived {})",
            DERIVED.join(", ")
        )
    })
}

/// A name for a new entry directory in `/cosign`, or why it is refused.
pub fn check_dir_name(name: &str) -> Result<(), String> {
    check_name(name)
}

/// Names end up in logs, error messages and link targets: printable UTF-8 only, and no
/// hidden files (editors' swap files are not signatures).
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err("not a file name".to_string());
    }
    if name.starts_with('.') {
        return Err("names starting with '.' are not accepted".to_string());
    }
    if name.chars().any(char::is_control) {
        return Err("control characters are not accepted in names".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_names_group_by_base() {
        assert_eq!(
            top_level_role("p.json").unwrap(),
            ("p.json".into(), Role::Payload)
        );
        assert_eq!(
            top_level_role("p.json.sig").unwrap(),
            ("p.json".into(), Role::Signature)
        );
        assert_eq!(
            top_level_role("p.json.pem").unwrap(),
            ("p.json".into(), Role::Certificate)
        );
        assert_eq!(
            top_level_role("p.json.annotations").unwrap(),
            ("p.json".into(), Role::Annotations)
        );
        // A bare suffix is a payload of that name, not a companion of nothing.
        assert_eq!(
            top_level_role(".sig").unwrap_err(),
            "names starting with '.' are not accepted"
        );
        assert_eq!(
            top_level_role("sig").unwrap(),
            ("sig".into(), Role::Payload)
        );
        assert!(top_level_role("p.json.error").is_err());
        assert!(top_level_role("a\nb").is_err());
    }

    #[test]
    fn entry_directories_take_entry_file_names() {
        assert_eq!(entry_role("payload").unwrap(), Role::Payload);
        assert_eq!(entry_role("rfc3161timestamp").unwrap(), Role::Timestamp);
        assert_eq!(entry_role("verified").unwrap(), Role::Derived);
        assert!(entry_role("notes.txt")
            .unwrap_err()
            .contains("only payload"));
        assert!(entry_role("..").is_err());
    }
}
