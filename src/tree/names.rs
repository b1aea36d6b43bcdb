//! Names of generated directory entries: safe as one path component, short, stable for
//! the same image, unique within their directory.

use std::collections::{HashMap, HashSet};

use crate::oci::Descriptor;
use crate::sif::{DataType, Descriptor as SifDescriptor, Digest};

/// Longest name a generated entry gets (NAME_MAX is 255; room is left for suffixes).
const MAX_NAME: usize = 200;

/// Digest prefix length used where a digest tells entries apart, as `docker images` does.
const SHORT_DIGEST: usize = 12;

/// A name usable as one path component for arbitrary text: characters other than
/// letters, digits, `.`, `_`, `-` and `+` become `_` (`/` must, and `:` would break
/// `skopeo`'s `oci:PATH:REF` syntax). `None` when nothing usable is left.
pub fn sanitize(text: &str) -> Option<String> {
    let mut name: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect();
    name.truncate(MAX_NAME);
    if name.is_empty() || name.chars().all(|c| c == '.') {
        return None;
    }
    Some(name)
}

/// `sha256-<first 12 hex digits>`.
pub fn short_digest(digest: &Digest) -> String {
    format!("sha256-{}", &digest.hex()[..SHORT_DIGEST])
}

/// The preferred name of a top-level image: its reference name, else its short digest.
pub fn image_name(entry: &Descriptor) -> String {
    entry
        .ref_name()
        .and_then(sanitize)
        .unwrap_or_else(|| short_digest(&entry.digest))
}

/// The subdirectory of one entry of an index: its platform (`linux-amd64`,
/// `linux-arm-v7`, `windows-amd64-10.0.17763.1`), else its short digest.
pub fn platform_dir_name(entry: &Descriptor) -> String {
    let Some(p) = &entry.platform else {
        return short_digest(&entry.digest);
    };
    let mut parts = vec![p.os.as_str(), p.architecture.as_str()];
    if let Some(v) = p.variant.as_deref().filter(|v| !v.is_empty()) {
        parts.push(v);
    }
    if let Some(v) = p.os_version.as_deref().filter(|v| !v.is_empty()) {
        parts.push(v);
    }
    let joined = parts
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("-");
    sanitize(&joined).unwrap_or_else(|| short_digest(&entry.digest))
}

/// Layer `i` of `count`, zero-padded so that `ls` sorts layers in order.
pub fn layer_name(i: usize, count: usize) -> String {
    let width = count.saturating_sub(1).to_string().len();
    format!("{i:0width$}")
}

/// `/sif/objects/<id>-<name>`: the object's stored name (its descriptor's Name field,
/// [`sanitize`]d), else `<id>-<kind>` when it has none usable (OCI blobs, and
/// SingularityCE's `.` for a definition file). The ID, unique in a valid table, makes
/// the name unique and stable; the rest says what the object is (man/sifmount.1, THE TREE).
pub fn object_file_name(d: &SifDescriptor) -> String {
    if let Some(name) = sanitize(&d.name()) {
        return format!("{}-{name}", d.id);
    }
    let kind = match d.data_type() {
        DataType::Deffile => "deffile".to_string(),
        DataType::EnvVar => "envvar".to_string(),
        DataType::Labels => "labels".to_string(),
        DataType::Partition => match d.partition() {
            Some((fs, _, _)) => format!("partition-{}", crate::sif::fs_type::name(fs)),
            None => "partition".to_string(),
        }
        .to_lowercase(),
        DataType::Signature => "signature".to_string(),
        DataType::GenericJson => "json".to_string(),
        DataType::Generic => "generic".to_string(),
        DataType::CryptoMessage => "crypto-message".to_string(),
        DataType::Sbom => "sbom".to_string(),
        DataType::OciRootIndex => "oci-root-index".to_string(),
        DataType::OciBlob => "oci-blob".to_string(),
        DataType::Unknown(raw) => format!("type-{raw:#x}"),
    };
    sanitize(&format!("{}-{kind}", d.id)).unwrap_or_else(|| d.id.to_string())
}

/// The tag every OCI layout under `/images/<name>/` gives its one image
/// (`org.opencontainers.image.ref.name` of its `index.json`; docs/FORMAT.md, Layouts
/// under /images): the root-index entry's own reference name when it is a tag
/// [`is_tag`] accepts, else `latest`, the tag umoci and oci-image-tool assume.
pub fn image_tag(entry: &Descriptor) -> String {
    match entry.ref_name() {
        Some(name) if is_tag(name) => name.to_string(),
        _ => DEFAULT_TAG.to_string(),
    }
}

/// The tag of a layout whose root-index entry has none usable.
pub const DEFAULT_TAG: &str = "latest";

/// Whether `name` can be given as the `TAG` of `oci:DIR:TAG` (skopeo) and
/// `--image DIR:TAG` (umoci) and is kept as such: a tag of the distribution
/// specification (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`) that is also one component of
/// the image specification's reference-name grammar, which umoci and skopeo check
/// (alphanumeric runs joined by one `-`, `.` or `_`, or by `--`). A name with `:` or
/// `/` (`docker.io/library/busybox:latest`) is not one: both tools split the argument
/// at its first `:`.
pub fn is_tag(name: &str) -> bool {
    if name.is_empty() || name.len() > 128 {
        return false;
    }
    let mut separator = String::new();
    let mut after_alnum = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if !separator.is_empty() {
                if !after_alnum || !matches!(separator.as_str(), "-" | "." | "_" | "--") {
                    return false;
                }
                separator.clear();
            }
            after_alnum = true;
        } else if matches!(c, '-' | '.' | '_') {
            if !after_alnum {
                return false;
            }
            separator.push(c);
        } else {
            return false;
        }
    }
    separator.is_empty()
}

/// Hands out names unique within one directory.
#[derive(Default)]
pub struct UniqueNames {
    taken: HashSet<String>,
    /// The next counter to try for each base name: an index may list one manifest
    /// 100,000 times, and counting up from 2 on every claim would take 5 billion tries.
    next: HashMap<String, u64>,
}

impl UniqueNames {
    /// Takes `name` for a file the directory already holds, so that no claim gets it.
    pub fn reserve(&mut self, name: &str) {
        self.taken.insert(name.to_string());
    }

    /// `preferred` if free; else `preferred-<short digest>`; else that with a counter.
    /// The result depends only on the order of claims, so it is stable for an image.
    pub fn claim(&mut self, preferred: String, digest: &Digest) -> String {
        let mut name = preferred.clone();
        if self.taken.contains(&name) {
            name = format!("{preferred}-{}", &digest.hex()[..SHORT_DIGEST]);
        }
        if self.taken.contains(&name) {
            let base = name;
            let n = self.next.entry(base.clone()).or_insert(2);
            name = format!("{base}-{n}");
            // A counted name can be taken by an earlier preferred one ("a-2" listed).
            while self.taken.contains(&name) {
                *n += 1;
                name = format!("{base}-{n}");
            }
            *n += 1;
        }
        self.taken.insert(name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_keeps_names_one_component_and_skopeo_safe() {
        assert_eq!(
            sanitize("docker.io/library/busybox:latest").as_deref(),
            Some("docker.io_library_busybox_latest")
        );
        assert_eq!(sanitize("..").as_deref(), None);
        assert_eq!(sanitize("").as_deref(), None);
        assert_eq!(sanitize("a\0b/../c").as_deref(), Some("a_b_.._c"));
        assert_eq!(sanitize(&"x".repeat(500)).map(|s| s.len()), Some(MAX_NAME));
    }

    #[test]
    fn tags_are_what_skopeo_and_umoci_take_as_one() {
        for good in ["latest", "1.0", "v1.2.3-rc1", "a_b", "a--b", "x"] {
            assert!(is_tag(good), "{good}");
        }
        for bad in [
            "",
            "docker.io/library/busybox:latest",
            "a:b",
            "_a",
            "-a",
            "a-",
            "a..b",
            "a---b",
            "a.-b",
            "_cosign",
            "sha256-abc+def",
        ] {
            assert!(!is_tag(bad), "{bad}");
        }
        assert!(is_tag(&"x".repeat(128)));
        assert!(!is_tag(&"x".repeat(129)));
    }

    #[test]
    fn layer_names_sort_in_order() {
        assert_eq!(layer_name(0, 1), "0");
        assert_eq!(layer_name(3, 12), "03");
        assert_eq!(layer_name(11, 12), "11");
    }

    #[test]
    fn counters_skip_names_taken_otherwise_and_stay_cheap() {
        let d = Digest::of(b"x");
        let base = format!("a-{}", &d.hex()[..12]);
        let mut u = UniqueNames::default();
        assert_eq!(u.claim("a".into(), &d), "a");
        assert_eq!(u.claim(base.clone(), &d), base);
        assert_eq!(u.claim(format!("{base}-2"), &d), format!("{base}-2"));
        // "a" is taken, then "a-<digest>", then "-2": the counter goes on from 3.
        assert_eq!(u.claim("a".into(), &d), format!("{base}-3"));
        assert_eq!(u.claim("a".into(), &d), format!("{base}-4"));
        // An index listing one manifest 100,000 times: one try per claim, not n.
        let mut u = UniqueNames::default();
        for i in 0..100_000 {
            let name = u.claim("linux-amd64".into(), &d);
            if i >= 2 {
                assert_eq!(name, format!("linux-amd64-{}-{i}", &d.hex()[..12]));
            }
        }
    }

    #[test]
    fn unique_names_fall_back_to_digest_then_counter() {
        let d = Digest::of(b"x");
        let mut u = UniqueNames::default();
        assert_eq!(u.claim("a".into(), &d), "a");
        let second = u.claim("a".into(), &d);
        assert_eq!(second, format!("a-{}", &d.hex()[..12]));
        assert_eq!(u.claim("a".into(), &d), format!("{second}-2"));
    }
}
