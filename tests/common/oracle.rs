//! What a mount of an image must show, computed from the library (the oracle) and the
//! naming rules of the man page, THE TREE, and the checks that compare a mounted tree with it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use sifmount::oci::{media_type, Descriptor, ImageKind, OciSif};
use sifmount::sif::{DataType, Descriptor as SifDescriptor, Digest, OpenMode, SifImage};

use super::assert_bytes_eq;

/// The bytes of every `oci-layout` file.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion": "1.0.0"}"#;

/// Indexes nested deeper than this below the root are not followed by the tree.
const MAX_IMAGE_DEPTH: usize = 8;

/// Go's zero time in Unix seconds: what zero-time SIFs hold, shown as the file's time.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// The one upstream file whose root index has entries that do not parse (truncated
/// digests): it mounts, with an empty /images.
pub const UNPARSEABLE_ROOT_INDEX: &str = "one-object-oci-root-index.sif";

pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Names in a directory, sorted; fails naming the directory.
pub fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
            e.file_name()
                .into_string()
                .unwrap_or_else(|n| panic!("{}: non-UTF-8 name {n:?}", dir.display()))
        })
        .collect();
    names.sort();
    names
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub fn readlink(path: &Path) -> String {
    std::fs::read_link(path)
        .unwrap_or_else(|e| panic!("readlink {}: {e}", path.display()))
        .to_string_lossy()
        .into_owned()
}

fn sorted<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Vec<String> {
    let mut v: Vec<String> = items.into_iter().map(Into::into).collect();
    v.sort();
    v
}

/// A name made safe as one path component: characters other than `[A-Za-z0-9._+-]`
/// become `_`, at most 200 bytes; nothing usable left (empty, only dots) is `None`.
pub fn sanitize(text: &str) -> Option<String> {
    let mut s: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.truncate(200);
    (!s.is_empty() && !s.chars().all(|c| c == '.')).then_some(s)
}

pub fn short_digest(d: &Digest) -> String {
    format!("sha256-{}", &d.hex()[..12])
}

/// Unique names in one directory: the preferred name, else `<name>-<12 hex>`, else
/// that with `-2`, `-3`…
#[derive(Default)]
pub struct Names(HashSet<String>);

impl Names {
    pub fn claim(&mut self, preferred: String, d: &Digest) -> String {
        let mut name = preferred.clone();
        if self.0.contains(&name) {
            name = format!("{preferred}-{}", &d.hex()[..12]);
        }
        let base = name.clone();
        let mut n = 2;
        while self.0.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        self.0.insert(name.clone());
        name
    }
}

/// `/sif/objects/<id>-<stored name>`, or `<id>-<kind>` for an object without a usable
/// name.
pub fn object_name(d: &SifDescriptor) -> String {
    if let Some(name) = sanitize(&d.name()) {
        return format!("{}-{name}", d.id);
    }
    let kind = match d.data_type() {
        DataType::Deffile => "deffile".to_string(),
        DataType::EnvVar => "envvar".to_string(),
        DataType::Labels => "labels".to_string(),
        DataType::Partition => {
            let fs = d.partition().map(|(fs, _, _)| fs);
            match fs {
                Some(1) => "partition-squashfs",
                Some(2) => "partition-ext3",
                Some(3) => "partition-archive",
                Some(4) => "partition-raw",
                Some(5) => "partition-encrypted_squashfs",
                _ => "partition-unknown",
            }
            .to_string()
        }
        DataType::Signature => "signature".to_string(),
        DataType::GenericJson => "json".to_string(),
        DataType::Generic => "generic".to_string(),
        DataType::CryptoMessage => "crypto-message".to_string(),
        DataType::Sbom => "sbom".to_string(),
        DataType::OciRootIndex => "oci-root-index".to_string(),
        DataType::OciBlob => "oci-blob".to_string(),
        DataType::Unknown(raw) => format!("type-{raw:#x}"),
    };
    format!("{}-{kind}", d.id)
}

/// `os-arch[-variant][-os.version]` of an index entry, else its short digest.
pub fn platform_name(entry: &Descriptor) -> String {
    let Some(p) = &entry.platform else {
        return short_digest(&entry.digest);
    };
    let parts: Vec<&str> = [
        Some(p.os.as_str()),
        Some(p.architecture.as_str()),
        p.variant.as_deref(),
        p.os_version.as_deref(),
    ]
    .into_iter()
    .flatten()
    .filter(|s| !s.is_empty())
    .collect();
    sanitize(&parts.join("-")).unwrap_or_else(|| short_digest(&entry.digest))
}

/// Layer `i` of `n`, zero-padded to the width of `n - 1`.
pub fn layer_name(i: usize, n: usize) -> String {
    let width = n.saturating_sub(1).to_string().len();
    format!("{i:0width$}")
}

/// What a manifest or index references, parsed as leniently as the tree does.
#[derive(Debug, Default, Deserialize)]
pub struct Refs {
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
}

/// One image file as the library reads it.
pub struct Image {
    pub path: PathBuf,
    pub sif: SifImage,
    pub kind: ImageKind,
    /// For OCI-SIFs.
    pub oci: Option<OciSif>,
    /// Blob digest → descriptor (first slot holding it).
    pub blobs: HashMap<Digest, SifDescriptor>,
    /// Blobs whose bytes do not hash to their digest (the mount shows them as stored).
    pub corrupt: HashSet<Digest>,
}

impl Image {
    pub fn open(path: &Path) -> Image {
        let sif = SifImage::open(path, OpenMode::ReadOnly)
            .unwrap_or_else(|e| panic!("library cannot open {}: {e}", path.display()));
        let kind = ImageKind::of(&sif);
        let oci = match kind {
            ImageKind::OciSif { .. } => {
                let again = SifImage::open(path, OpenMode::ReadOnly).expect("opened just before");
                Some(OciSif::from_sif(again).unwrap_or_else(|e| {
                    panic!("library cannot open {} as an OCI-SIF: {e}", path.display())
                }))
            }
            _ => None,
        };
        let mut blobs = HashMap::new();
        let mut corrupt = HashSet::new();
        if let Some(oci) = &oci {
            for (digest, d) in oci.blobs() {
                blobs.insert(digest, d.clone());
            }
            for m in oci.verify_blobs().expect("library verifies blobs") {
                corrupt.insert(m.recorded);
            }
        }
        Image {
            path: path.to_path_buf(),
            sif,
            kind,
            oci,
            blobs,
            corrupt,
        }
    }

    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The `/cosign` entries the library discovers, with their targets.
    pub fn cosign_entries(&self) -> Vec<(String, Digest)> {
        self.oci
            .as_ref()
            .map(|oci| {
                sifmount::cosign::discover(oci)
                    .entries
                    .into_iter()
                    .map(|e| (e.name, e.target))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn is_oci(&self) -> bool {
        self.oci.is_some()
    }

    pub fn blob_bytes(&self, d: &Digest) -> Option<Vec<u8>> {
        let desc = self.blobs.get(d)?;
        Some(self.sif.read_object(desc).expect("library reads a blob"))
    }

    pub fn root_index_bytes(&self) -> Vec<u8> {
        self.oci
            .as_ref()
            .expect("an OCI-SIF")
            .root_index_bytes()
            .expect("library reads the root index")
    }

    /// The top-level `/images/<name>` directories and the root-index entry each shows;
    /// `None` when the root index does not parse.
    pub fn expected_images(&self) -> Option<BTreeMap<String, Descriptor>> {
        let index = self.oci.as_ref()?.root_index().ok()?;
        let mut names = Names::default();
        let mut out = BTreeMap::new();
        for entry in index.entries() {
            if entry
                .ref_name()
                .is_some_and(sifmount::cosign::is_cosign_ref)
            {
                continue;
            }
            let preferred = entry
                .ref_name()
                .and_then(sanitize)
                .unwrap_or_else(|| short_digest(&entry.digest));
            out.insert(names.claim(preferred, &entry.digest), entry.clone());
        }
        Some(out)
    }

    /// The mtime a path of the mount must have: the object's for blobs, objects and the
    /// root index, the header's for everything else; where the SIF has none (0 or Go's
    /// zero time), the image file's own.
    pub fn expected_mtime(&self, rel: &str, is_file: bool) -> i64 {
        let t = self.recorded_mtime(rel, is_file);
        if t == 0 || t == GO_ZERO_TIME {
            use std::os::unix::fs::MetadataExt;
            return std::fs::metadata(&self.path)
                .unwrap_or_else(|e| panic!("cannot stat {}: {e}", self.path.display()))
                .mtime();
        }
        t
    }

    /// The time the SIF records for a path of the mount.
    fn recorded_mtime(&self, rel: &str, is_file: bool) -> i64 {
        let header = self.sif.header().modified_at;
        if !is_file {
            return header;
        }
        if let Some(hex) = rel.strip_prefix("blobs/sha256/") {
            let d: Digest = format!("sha256:{hex}").parse().expect("blob names are hex");
            return self.blobs[&d].modified_at;
        }
        if let Some(name) = rel.strip_prefix("sif/objects/") {
            let id: u32 = name.split('-').next().unwrap().parse().unwrap();
            return self.sif.descriptor_by_id(id).unwrap().modified_at;
        }
        if rel == "index.json" {
            return self
                .oci
                .as_ref()
                .expect("index.json only in OCI-SIFs")
                .root_index_descriptor()
                .modified_at;
        }
        header
    }
}

/// Checks every file of `/sif/`, `/blobs/`, `/index.json`, `/oci-layout`, `/cosign/` and
/// `/images/` against the library's view of the image.
pub fn check_contents(img: &Image, mp: &Path) {
    let at = |rel: &str| mp.join(rel);
    let what = img.path.display().to_string();

    // /sif/
    assert_eq!(
        list(&at("sif")),
        ["descriptors.json", "header.json", "objects"],
        "{what}: /sif"
    );
    let header: serde_json::Value = serde_json::from_slice(&read(&at("sif/header.json")))
        .unwrap_or_else(|e| panic!("{what}: /sif/header.json is not JSON: {e}"));
    let h = img.sif.header();
    assert_eq!(header["descriptorsTotal"], h.descriptors_total, "{what}");
    assert_eq!(header["dataOffset"], h.data_offset, "{what}");
    assert_eq!(header["createdAt"], h.created_at, "{what}");
    let descs: serde_json::Value = serde_json::from_slice(&read(&at("sif/descriptors.json")))
        .unwrap_or_else(|e| panic!("{what}: /sif/descriptors.json is not JSON: {e}"));
    let ids: Vec<u64> = descs
        .as_array()
        .unwrap_or_else(|| panic!("{what}: /sif/descriptors.json is not an array"))
        .iter()
        .map(|d| d["id"].as_u64().expect("descriptor ids are numbers"))
        .collect();
    let want_ids: Vec<u64> = img
        .sif
        .descriptors()
        .map(|(_, d)| u64::from(d.id))
        .collect();
    assert_eq!(ids, want_ids, "{what}: ids in /sif/descriptors.json");

    let objects = list(&at("sif/objects"));
    let want: Vec<String> = sorted(img.sif.descriptors().map(|(_, d)| object_name(d)));
    assert_eq!(objects, want, "{what}: /sif/objects");
    assert_eq!(objects.len(), img.sif.used_count(), "{what}: object count");
    for (_, d) in img.sif.descriptors() {
        let name = object_name(d);
        let want = img.sif.read_object(d).expect("library reads an object");
        assert_bytes_eq(
            &read(&at(&format!("sif/objects/{name}"))),
            &want,
            &format!("{what}: /sif/objects/{name}"),
        );
    }

    let root = list(mp);
    let Some(oci) = &img.oci else {
        assert_eq!(root, ["sif"], "{what}: a native SIF shows only /sif");
        return;
    };
    assert_eq!(
        root,
        [
            "blobs",
            "cosign",
            "images",
            "index.json",
            "oci-layout",
            "sif"
        ],
        "{what}: root of an OCI-SIF"
    );
    assert_bytes_eq(
        &read(&at("oci-layout")),
        OCI_LAYOUT,
        &format!("{what}: /oci-layout"),
    );
    assert_bytes_eq(
        &read(&at("index.json")),
        &oci.root_index_bytes().unwrap(),
        &format!("{what}: /index.json"),
    );
    assert_eq!(list(&at("blobs")), ["sha256"], "{what}: /blobs");
    let names = list(&at("blobs/sha256"));
    let want: Vec<String> = sorted(img.blobs.keys().map(|d| d.hex()));
    assert_eq!(names, want, "{what}: /blobs/sha256 lists every blob");
    for (digest, d) in &img.blobs {
        let got = read(&at(&format!("blobs/sha256/{}", digest.hex())));
        let want = img.sif.read_object(d).expect("library reads a blob");
        assert_bytes_eq(
            &got,
            &want,
            &format!("{what}: /blobs/sha256/{}", digest.hex()),
        );
        if !img.corrupt.contains(digest) {
            assert_eq!(
                sha256_hex(&got),
                digest.hex(),
                "{what}: /blobs/sha256/{} does not hash to its name",
                digest.hex()
            );
        }
    }
    // /cosign: one directory per entry the library's discovery finds (its contents are
    // checked against the cosign fixtures by tests/library/cosign_tree.rs and
    // tests/mount/cosign_mount.rs).
    assert_eq!(
        super::without_summary("cosign", list(&at("cosign"))),
        sorted(img.cosign_entries().into_iter().map(|(n, _)| n)),
        "{what}: /cosign"
    );

    let images = list(&at("images"));
    let Some(expected) = img.expected_images() else {
        assert_eq!(
            img.file_name(),
            UNPARSEABLE_ROOT_INDEX,
            "{what}: the library cannot parse the root index; only {UNPARSEABLE_ROOT_INDEX} \
             is expected to be like that"
        );
        assert!(
            images.is_empty(),
            "{what}: unparseable root index, yet /images has {images:?}"
        );
        return;
    };
    assert_eq!(
        images,
        expected.keys().cloned().collect::<Vec<_>>(),
        "{what}: /images"
    );
    for (name, entry) in &expected {
        let dir = at(&format!("images/{name}"));
        check_image_dir(img, mp, &dir, entry);
    }
}

/// The tag every layout under `/images/<name>/` gives its image: the root-index entry's
/// reference name when it is a tag skopeo and umoci take after `DIR:` (alphanumeric runs
/// joined by one `-`, `.`, `_` or by `--`, at most 128 bytes), else `latest`.
pub fn layout_tag(root_entry: &Descriptor) -> String {
    let grammar = regex::Regex::new(r"^[A-Za-z0-9]+(?:(?:[-._]|--)[A-Za-z0-9]+)*$")
        .expect("the pattern is valid");
    match root_entry.ref_name() {
        Some(name) if name.len() <= 128 && grammar.is_match(name) => name.to_string(),
        _ => "latest".to_string(),
    }
}

/// `dir`, `depth` directories below the root: an OCI layout holding `entry` alone, as
/// the root index lists it but tagged `tag`, with `blobs/sha256` resolving to the root's.
fn check_layout_files(mp: &Path, dir: &Path, entry: &Descriptor, tag: &str, depth: usize) {
    let what = dir.display().to_string();
    assert_bytes_eq(
        &read(&dir.join("oci-layout")),
        OCI_LAYOUT,
        &format!("{what}/oci-layout"),
    );
    let index_bytes = read(&dir.join("index.json"));
    let index = sifmount::oci::Index::parse(&index_bytes)
        .unwrap_or_else(|e| panic!("{what}/index.json does not parse: {e}"));
    assert_eq!(index.schema_version, 2, "{what}/index.json schemaVersion");
    let mut want = entry.clone();
    want.set_annotation(sifmount::oci::REF_NAME, tag);
    assert_eq!(
        index.entries(),
        std::slice::from_ref(&want),
        "{what}/index.json holds exactly the entry, tagged {tag}"
    );
    assert_eq!(list(&dir.join("blobs")), ["sha256"], "{what}/blobs");
    assert_eq!(
        readlink(&dir.join("blobs/sha256")),
        format!("{}blobs/sha256", "../".repeat(depth + 1)),
        "{what}/blobs/sha256"
    );
    assert_eq!(
        dir.join("blobs/sha256").canonicalize().unwrap(),
        mp.join("blobs/sha256"),
        "{what}/blobs/sha256 resolves to /blobs/sha256"
    );
}

/// `/images/<name>/`: an OCI layout of its own holding `entry`, plus the image's files.
fn check_image_dir(img: &Image, mp: &Path, dir: &Path, entry: &Descriptor) {
    let what = format!("{}: {}", img.path.display(), dir.display());
    let tag = layout_tag(entry);
    check_layout_files(mp, dir, entry, &tag, 2);
    let mut want: Vec<String> = ["blobs", "index.json", "oci-layout", "signed"]
        .map(String::from)
        .into();
    want.extend(expected_names(img, entry, 2));
    assert_eq!(list(dir), sorted(want), "{what}");
    // Mounted without a key or identity: whether anything vouches for the image, unchecked.
    let signed = read(&dir.join("signed"));
    assert!(
        signed.starts_with(b"unsigned: ") || signed.starts_with(b"signed: "),
        "{what}/signed: {}",
        String::from_utf8_lossy(&signed)
    );
    check_content(img, mp, dir, entry, &tag, 2);
}

/// Whether the tree shows `entry` as an index (`image-index.json` and subdirectories).
fn is_index(entry: &Descriptor, refs: &Refs) -> bool {
    media_type::is_index(&entry.media_type) || (refs.manifests.is_some() && refs.config.is_none())
}

fn refs_of(img: &Image, d: &Digest) -> Option<Refs> {
    let bytes = img.blob_bytes(d)?;
    serde_json::from_slice(&bytes).ok()
}

/// The subdirectories of an index `depth` levels below the root, with their entries.
fn platform_dirs(refs: &Refs, depth: usize) -> Vec<(String, &Descriptor)> {
    if depth >= MAX_IMAGE_DEPTH {
        return vec![];
    }
    let mut names = Names::default();
    // The index directory's own files: a platform so named gets another name.
    for own in [
        "image-index.json",
        "signatures",
        "oci-layout",
        "index.json",
        "blobs",
    ] {
        names.0.insert(own.to_string());
    }
    refs.manifests
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .map(|m| (names.claim(platform_name(m), &m.digest), m))
        .collect()
}

/// The names in a directory showing `entry`, `depth` levels below the root, besides the
/// layout files of `/images/<name>/`: nothing when the blob is missing or not JSON.
fn expected_names(img: &Image, entry: &Descriptor, depth: usize) -> Vec<String> {
    let Some(refs) = refs_of(img, &entry.digest) else {
        return vec![];
    };
    if is_index(entry, &refs) {
        let mut v: Vec<String> = platform_dirs(&refs, depth)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        v.push("image-index.json".into());
        v.push("signatures".into());
        return v;
    }
    let mut v = vec![
        "manifest.json".to_string(),
        "layers".to_string(),
        "signatures".to_string(),
    ];
    if refs
        .config
        .as_ref()
        .is_some_and(|c| img.blobs.contains_key(&c.digest))
    {
        v.push("config.json".into());
    }
    v
}

/// Checks the files in a directory showing `entry` (`depth` levels below the root),
/// whose list of names the caller has checked.
fn check_content(img: &Image, mp: &Path, dir: &Path, entry: &Descriptor, tag: &str, depth: usize) {
    let what = format!("{}: {}", img.path.display(), dir.display());
    let Some(refs) = refs_of(img, &entry.digest) else {
        return;
    };
    let blob = img.blob_bytes(&entry.digest).unwrap();
    let signatures: Vec<String> = img
        .cosign_entries()
        .into_iter()
        .filter(|(_, target)| *target == entry.digest)
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        list(&dir.join("signatures")),
        sorted(signatures.iter().cloned()),
        "{what}/signatures"
    );
    for name in signatures {
        assert_eq!(
            readlink(&dir.join("signatures").join(&name)),
            format!("{}cosign/{name}", "../".repeat(depth + 1)),
            "{what}/signatures/{name}"
        );
    }
    if is_index(entry, &refs) {
        assert_bytes_eq(
            &read(&dir.join("image-index.json")),
            &blob,
            &format!("{what}/image-index.json"),
        );
        for (name, m) in platform_dirs(&refs, depth) {
            let sub = dir.join(&name);
            let mut want = expected_names(img, m, depth + 1);
            want.extend(["blobs", "index.json", "oci-layout"].map(String::from));
            assert_eq!(list(&sub), sorted(want), "{what}/{name}");
            check_layout_files(mp, &sub, m, tag, depth + 1);
            check_content(img, mp, &sub, m, tag, depth + 1);
        }
        return;
    }
    assert_bytes_eq(
        &read(&dir.join("manifest.json")),
        &blob,
        &format!("{what}/manifest.json"),
    );
    if let Some(config) = &refs.config {
        if let Some(bytes) = img.blob_bytes(&config.digest) {
            assert_bytes_eq(
                &read(&dir.join("config.json")),
                &bytes,
                &format!("{what}/config.json"),
            );
        }
    }
    let layers = refs.layers.as_deref().unwrap_or(&[]);
    let want: Vec<String> = (0..layers.len())
        .map(|i| layer_name(i, layers.len()))
        .collect();
    assert_eq!(list(&dir.join("layers")), want, "{what}/layers");
    for (i, layer) in layers.iter().enumerate() {
        let link = dir.join("layers").join(layer_name(i, layers.len()));
        assert_eq!(
            readlink(&link),
            format!(
                "{}blobs/sha256/{}",
                "../".repeat(depth + 1),
                layer.digest.hex()
            ),
            "{what}: link of layer {i}"
        );
        match img.blob_bytes(&layer.digest) {
            Some(bytes) => {
                assert_bytes_eq(&read(&link), &bytes, &format!("{what}: layer {i}"));
            }
            None => assert!(
                std::fs::metadata(&link).is_err(),
                "{what}: layer {i} is not in the image, yet its link resolves"
            ),
        }
    }
}
