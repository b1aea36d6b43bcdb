//! What the fuzz targets share: scratch files on a tmpfs, template images made with the
//! project's own writer, walkers that read every file of a tree, and the seeds each
//! target starts from (made at run time from `$SIFMOUNT_TESTDATA`, never copied into the
//! project; see fuzz/README.md).
//!
//! Targets panic on a broken invariant: libFuzzer counts a panic as a crash, which is
//! the point. Everything else that the library returns as an error is fine.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sifmount::cosign::PublicKey;
use sifmount::oci::{media_type, Descriptor, Index, Manifest, REF_NAME};
use sifmount::sif::{
    ChangeTime, CreateOptions, DataType, Digest, MemStorage, ObjectInput, SifImage,
};
use sifmount::tree::{Kind, Tree, TreeError, ROOT};
use sifmount::volume::Volume;

pub mod drop_ops;
pub mod seeds;

/// Separates the parts of a multi-document input (`cosign_discover`): two NULs never
/// occur in JSON, and the fuzzer learns the token from the dictionary.
pub const PART_SEPARATOR: &[u8] = b"\n\0--\0\n";

/// The shared test data, when it is there (`SIFMOUNT_TESTDATA`, else `../shared/testdata`
/// beside the project, as for the project's tests).
pub fn testdata() -> Option<PathBuf> {
    let dir = match std::env::var_os("SIFMOUNT_TESTDATA") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"),
    };
    dir.join("upstream").is_dir().then_some(dir)
}

/// Called first by every target: with `SIFMOUNT_FUZZ_WRITE_SEEDS=DIR` in the environment
/// the binary writes the target's seed corpus into DIR and exits (scripts/fuzz.sh runs it
/// so), so that seeds are always made by the code that decodes them.
pub fn init(target: &str) {
    if let Some(dir) = std::env::var_os("SIFMOUNT_FUZZ_WRITE_SEEDS") {
        let dir = PathBuf::from(dir);
        match seeds::write(target, &dir) {
            Ok(n) => {
                eprintln!("{target}: {n} seeds in {}", dir.display());
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("{target}: cannot write seeds into {}: {e}", dir.display());
                std::process::exit(1);
            }
        }
    }
    // Made before the first input, so that their cost is not charged to it.
    let _ = scratch_dir();
    let _ = demo();
    let _ = keys();
}

/// This process's scratch directory on a tmpfs (`/dev/shm`, else the temporary
/// directory), removed at exit. Directories left by processes that died (a crash aborts
/// without running exit handlers) are removed when the next one starts.
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        remove_stale_scratch_dirs(&base);
        let dir = base.join(format!("sifmount-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        extern "C" fn cleanup() {
            if let Some(dir) = DIR.get() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        // SAFETY: registers a plain function with no arguments to run at exit.
        unsafe { libc::atexit(cleanup) };
        dir
    })
}

fn remove_stale_scratch_dirs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("sifmount-fuzz-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Writes `bytes` as the scratch file `name` (with no update journal beside it) and
/// returns its path.
pub fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch_dir().join(name);
    if let Ok(journal) = sifmount::sif::journal_path(&path) {
        let _ = std::fs::remove_file(journal);
    }
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

/// The public keys in the test data, to verify cosign entries with (none without it).
pub fn keys() -> &'static [PublicKey] {
    static KEYS: OnceLock<Vec<PublicKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let Some(td) = testdata() else {
            eprintln!("note: no test data (SIFMOUNT_TESTDATA): cosign entries are not verified");
            return Vec::new();
        };
        let mut keys = Vec::new();
        for rel in [
            "upstream/generated/example-cosign.pub",
            "cosign/containers-image/cosign.pub",
            "cosign/keys/synth-cosign.pub",
            "cosign/keys/singularity-cosign.pub",
        ] {
            if let Ok(k) = PublicKey::load(&td.join(rel)) {
                keys.push(k);
            }
        }
        keys
    })
}

/// The documents of a small image like the project's demo image (one tar layer, its
/// config and manifest), for templates.
pub struct Demo {
    pub layer: Vec<u8>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    pub manifest_digest: Digest,
    /// A valid OCI-SIF holding the image, with 8 spare descriptors.
    pub image: Vec<u8>,
    /// Its root index.
    pub root_index: Vec<u8>,
}

impl Demo {
    /// The three blobs, in write order.
    pub fn blobs(&self) -> [&[u8]; 3] {
        [&self.layer, &self.config, &self.manifest]
    }
}

pub fn demo() -> &'static Demo {
    static DEMO: OnceLock<Demo> = OnceLock::new();
    DEMO.get_or_init(|| {
        let mut layer = b"hello.txt\0".to_vec();
        layer.resize(1536, 0);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [Digest::of(&layer).to_string()]},
        }))
        .expect("a JSON value serializes");
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.to_string()),
            config: Descriptor::of(media_type::OCI_CONFIG, &config),
            layers: vec![Descriptor::of(
                "application/vnd.oci.image.layer.v1.tar",
                &layer,
            )],
            annotations: None,
            subject: None,
            artifact_type: None,
        }
        .to_go_json();
        let mut index = Index::empty();
        index.append(Descriptor::of(media_type::OCI_MANIFEST, &manifest), None);
        let root_index = index.to_go_json();
        let image = oci_image(&[&layer, &config, &manifest], &root_index, 8);
        Demo {
            manifest_digest: Digest::of(&manifest),
            layer,
            config,
            manifest,
            image,
            root_index,
        }
    })
}

/// A deterministic OCI-SIF holding `blobs` (stored as given, in order, each recorded with
/// its own digest) and `root_index` verbatim, with `spare` free descriptors. Unlike the
/// project's writer it does not check that the root index makes sense: that is what the
/// targets feed the readers.
pub fn oci_image(blobs: &[&[u8]], root_index: &[u8], spare: i64) -> Vec<u8> {
    image_with(blobs, root_index, spare, &[])
}

/// [`oci_image`], with blob `i` recorded under digest `d` for each `(i, d)` of `relabel`
/// (a digest that is not its bytes' own: how a hostile file makes an index list itself).
pub fn image_with(
    blobs: &[&[u8]],
    root_index: &[u8],
    spare: i64,
    relabel: &[(usize, Digest)],
) -> Vec<u8> {
    let storage = std::sync::Arc::new(MemStorage::default());
    let mut objects: Vec<ObjectInput<'_>> = blobs
        .iter()
        .map(|b| ObjectInput::new(DataType::OciBlob, *b))
        .collect();
    objects.push(ObjectInput::new(DataType::OciRootIndex, root_index));
    let opts = CreateOptions {
        capacity: objects.len() as i64 + spare,
        ..CreateOptions::deterministic()
    };
    let mut sif = SifImage::create(Box::new(storage.clone()), &opts, objects)
        .expect("an image in memory with room for every object can be written");
    for &(i, digest) in relabel {
        // Object IDs are slot numbers plus one in a new image.
        sif.set_oci_blob_digest(i as u32 + 1, digest, ChangeTime::Zero)
            .expect("blob objects of a new image can be relabelled");
    }
    drop(sif);
    storage.to_vec()
}

/// A root-index entry for `digest`, with a reference name and annotations when given.
pub fn entry(media: &str, bytes: &[u8], ref_name: Option<&str>, kind: Option<&str>) -> Descriptor {
    let mut d = Descriptor::of(media, bytes);
    if let Some(name) = ref_name {
        d.set_annotation(REF_NAME, name);
    }
    if let Some(kind) = kind {
        d.set_annotation(sifmount::cosign::KIND_ANNOTATION, kind);
    }
    d
}

/// Splits a multi-document input at [`PART_SEPARATOR`].
pub fn split_parts(data: &[u8], max: usize) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while parts.len() + 1 < max {
        match rest
            .windows(PART_SEPARATOR.len())
            .position(|w| w == PART_SEPARATOR)
        {
            Some(i) => {
                parts.push(&rest[..i]);
                rest = &rest[i + PART_SEPARATOR.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    parts
}

/// The inverse of [`split_parts`], for seeds.
pub fn join_parts(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(PART_SEPARATOR)
}

/// Visits every node of `tree` from the root: stats it, reads every file to its end,
/// reads every link. Panics when a file reads fewer or more bytes than its size says, or
/// a listed name does not look up to the inode listed. Returns the number of nodes.
pub fn walk_tree(tree: &Tree) -> usize {
    let _ = tree.stats();
    let _ = tree.stable_name_dirs();
    for (dir, e) in tree.cosign_entries() {
        assert_eq!(tree.cosign_entry(*dir).map(|x| &x.name), Some(&e.name));
    }
    let mut seen = HashSet::new();
    let mut todo = vec![ROOT];
    let mut buf = vec![0u8; 64 << 10];
    while let Some(ino) = todo.pop() {
        if !seen.insert(ino) {
            continue;
        }
        let attr = tree
            .attr(ino)
            .unwrap_or_else(|e| panic!("a listed inode {ino} has no attributes: {e}"));
        match attr.kind {
            Kind::Dir => {
                let entries = tree.entries(ino).expect("a directory lists");
                let _ = tree.parent(ino).expect("a directory has a parent");
                for e in entries {
                    let found = tree.lookup(ino, e.name.as_bytes()).unwrap_or_else(|err| {
                        panic!("listed {:?} does not look up: {err}", e.name)
                    });
                    assert_eq!(found.ino, e.ino, "lookup of {:?}", e.name);
                    assert_eq!(found.kind, e.kind, "kind of {:?}", e.name);
                    todo.push(e.ino);
                }
            }
            Kind::File => {
                tree.check_file(ino).expect("a file opens");
                let mut off = 0u64;
                loop {
                    let n = match tree.read(ino, off, &mut buf) {
                        Ok(n) => n,
                        // Bytes without the digest they are named by are refused, whole.
                        Err(TreeError::NotItsBytes(_)) if off == 0 => {
                            off = attr.size;
                            break;
                        }
                        Err(e) => panic!("reading inode {ino} at {off}: {e}"),
                    };
                    if n == 0 {
                        break;
                    }
                    off += n as u64;
                }
                assert_eq!(
                    off, attr.size,
                    "inode {ino} reads as many bytes as its size"
                );
            }
            Kind::Symlink => {
                let target = tree.readlink(ino).expect("a link reads");
                assert_eq!(target.len() as u64, attr.size, "link size");
            }
        }
    }
    seen.len()
}

/// [`walk_tree`] through a [`Volume`] (tree and staged files alike). Returns the number of
/// nodes.
pub fn walk_volume(v: &Volume) -> usize {
    let _ = v.stats();
    let mut seen = HashSet::new();
    let mut todo = vec![ROOT];
    let mut buf = vec![0u8; 64 << 10];
    while let Some(ino) = todo.pop() {
        if !seen.insert(ino) {
            continue;
        }
        let Ok(attr) = v.attr(ino) else {
            panic!("a listed inode {ino} has no attributes");
        };
        match attr.kind {
            Kind::Dir => {
                v.check_dir(ino).expect("a listed directory opens");
                let entries = v.entries(ino).expect("a directory lists");
                let mut listed = 0usize;
                v.list_from(ino, 0, 0, |_, _, _, _| {
                    listed += 1;
                    false
                })
                .expect("a directory lists from 0");
                assert_eq!(
                    listed,
                    entries.len() + 2,
                    "readdir gives . .. and the entries"
                );
                for e in entries {
                    let found = v.lookup(ino, e.name.as_bytes()).unwrap_or_else(|err| {
                        panic!("listed {:?} does not look up: {err}", e.name)
                    });
                    assert_eq!(found.ino, e.ino, "lookup of {:?}", e.name);
                    todo.push(e.ino);
                }
            }
            Kind::File => {
                let Ok(opened) = v.open_file(ino, false, false) else {
                    panic!("a listed file {ino} does not open for reading");
                };
                let mut off = 0u64;
                loop {
                    let n = match v.read_at(ino, opened.fh, off, &mut buf) {
                        Ok(n) => n,
                        // Bytes without the digest they are named by are refused, whole.
                        Err(TreeError::NotItsBytes(_)) if off == 0 => {
                            off = attr.size;
                            break;
                        }
                        Err(e) => panic!("reading inode {ino} at {off}: {e}"),
                    };
                    if n == 0 {
                        break;
                    }
                    off += n as u64;
                }
                assert_eq!(
                    off, attr.size,
                    "inode {ino} reads as many bytes as its size"
                );
                v.release(ino, opened.fh);
            }
            Kind::Symlink => {
                let target = v.readlink(ino).expect("a link reads");
                assert_eq!(target.len() as u64, attr.size, "link size");
            }
        }
    }
    seen.len()
}
