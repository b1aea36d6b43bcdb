//! Hostile images: valid SIF files with adversarial content (and the SIF-level attacks
//! `tests/library/broken_images.rs` lacks). Each case must either be refused with a message that names
//! the file and the problem, or mount safely:
//!
//! * the tree builds, read-only and (for OCI-SIFs, as `sifmount` would mount them)
//!   read-write;
//! * every name in every directory is one path component (no `/`, not `.` or `..`, no
//!   NUL, not empty, at most 255 bytes), and looking it up gives the listed inode;
//! * every file can be stat'ed and read to its end, giving exactly its size;
//! * every symlink target is relative, stays inside the tree, and resolves (links into
//!   `/blobs/sha256/` may dangle: they say which blob is missing);
//! * the image is byte-identical afterwards, and nothing was created beside it.
//!
//! Memory and time are bounded: a counting global allocator measures each case's peak
//! heap above what the test held before it (bound: [`MEMORY_BASE`] plus
//! [`MEMORY_PER_IMAGE_BYTE`] times the image size; a hard ceiling [`HARD_LIMIT`] makes a
//! runaway case abort the binary instead of exhausting a shared machine), and a watchdog
//! fails a case that takes longer than [`WATCHDOG`], naming it, instead of hanging CI.
//! Timing is not a performance assertion, only "does not hang".
//!
//! One line per case is printed (`cargo test --test hostile -- --nocapture`).
//! `real_mount_of_the_nastiest_cases` mounts a few of them with the `sifmount` binary.
//!
//! Why this file is long: most of it is the table of cases (`cases`), each a hostile image
//! and what it must give; the allocator, the image builders and the walk exist for that
//! table, and the allocator keeps the file in a test binary of its own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{self, lookup, mounted};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use sifmount::oci::{media_type, ImageKind, OciSif, REF_NAME};
use sifmount::sif::{
    DataType, Descriptor, Digest, Extra, Header, OpenMode, SifImage, DESCRIPTOR_SIZE, GROUP_MASK,
    MAGIC,
};
use sifmount::tree::{
    BuildReport, Ino, Kind, TreeError, MAX_SUMMARY_ENTRIES, MAX_SUMMARY_TARGETS, ROOT,
};
use sifmount::volume::{Volume, VolumeOptions};

// ---------------------------------------------------------------------------------------
// Memory accounting

/// Heap every case may use on top of what the test held before it.
const MEMORY_BASE: usize = 64 << 20;
/// And this much per byte of the image: a mount holds what the image holds in decoded
/// form. A 585-byte descriptor decodes to about 600 bytes (a read-write mount keeps the
/// writer's copy besides the tree's while it builds); parsed JSON takes up to five times
/// its text (an annotation `"k123456":"v"` is 14 bytes of JSON and about 60 parsed); each
/// name of the tree costs a few hundred bytes. What this bound catches is amplification:
/// a small image that makes a mount take far more than its size.
const MEMORY_PER_IMAGE_BYTE: usize = 8;
/// Allocations beyond this fail (the process aborts with "memory allocation failed"):
/// a case that would take the machine's memory stops here, and the last "case ..." line
/// printed names it.
const HARD_LIMIT: usize = 3 << 30;
/// A case that takes longer than this has hung.
const WATCHDOG: Duration = Duration::from_secs(60);

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    fn grow(size: usize) -> bool {
        let now = CURRENT.fetch_add(size, Ordering::Relaxed) + size;
        if now > HARD_LIMIT {
            CURRENT.fetch_sub(size, Ordering::Relaxed);
            return false;
        }
        PEAK.fetch_max(now, Ordering::Relaxed);
        true
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters are
// only arithmetic on atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Counting::grow(layout.size()) {
            return std::ptr::null_mut();
        }
        let p = System.alloc(layout);
        if p.is_null() {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Counting::grow(layout.size()) {
            return std::ptr::null_mut();
        }
        let p = System.alloc_zeroed(layout);
        if p.is_null() {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() && !Counting::grow(new_size - layout.size()) {
            return std::ptr::null_mut();
        }
        let p = System.realloc(ptr, layout, new_size);
        if p.is_null() {
            if new_size > layout.size() {
                CURRENT.fetch_sub(new_size - layout.size(), Ordering::Relaxed);
            }
        } else if new_size < layout.size() {
            CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The two tests of this file measure memory, which only means something when one case
/// runs at a time.
static SERIAL: Mutex<()> = Mutex::new(());

// ---------------------------------------------------------------------------------------
// Building images

/// One object of a hand-laid SIF.
struct Obj {
    data_type: DataType,
    data: Vec<u8>,
    /// The digest an OCI object's descriptor records; `None`: the bytes' own.
    recorded: Option<Digest>,
    name: Vec<u8>,
}

fn blob(data: impl Into<Vec<u8>>) -> Obj {
    Obj {
        data_type: DataType::OciBlob,
        data: data.into(),
        recorded: None,
        name: Vec::new(),
    }
}

fn generic(data: impl Into<Vec<u8>>) -> Obj {
    Obj {
        data_type: DataType::Generic,
        ..blob(data)
    }
}

/// A blob stored under a digest its bytes do not have.
fn blob_as(digest: Digest, data: impl Into<Vec<u8>>) -> Obj {
    Obj {
        recorded: Some(digest),
        ..blob(data)
    }
}

fn root_index(data: impl Into<Vec<u8>>) -> Obj {
    Obj {
        data_type: DataType::OciRootIndex,
        ..blob(data)
    }
}

const TABLE_AT: usize = 4096;

/// A SIF laid out as the reference library lays it (table at 4096, objects packed after
/// it in order), then changed by `patch` (which may break any rule: nothing is moved).
/// Built directly rather than with `SifImage::create`, whose slot search makes adding
/// 100,000 objects quadratic.
fn sif_patched(
    objs: Vec<Obj>,
    spare: usize,
    patch: impl FnOnce(&mut Header, &mut [Descriptor]),
) -> Vec<u8> {
    let total = objs.len() + spare;
    let table_size = total * DESCRIPTOR_SIZE;
    let data_at = TABLE_AT + table_size;
    let mut slots = vec![Descriptor::unused(); total];
    let mut at = data_at;
    for (i, o) in objs.iter().enumerate() {
        let d = &mut slots[i];
        d.used = true;
        d.id = i as u32 + 1;
        d.data_type_raw = o.data_type.raw();
        d.group_id_raw = 1 | GROUP_MASK;
        d.offset = at as i64;
        d.size = o.data.len() as i64;
        d.size_with_padding = d.size;
        d.created_at = 1_700_000_000;
        d.modified_at = 1_700_000_000;
        d.name[..o.name.len()].copy_from_slice(&o.name);
        if o.data_type.is_oci() {
            let digest = o.recorded.unwrap_or_else(|| Digest::of(&o.data));
            d.extra = Extra::OciDigest(digest).encode();
        }
        at += o.data.len();
    }
    let mut header = Header {
        launch_script: [0; 32],
        magic: *MAGIC,
        version: *b"01\0",
        arch: *b"02\0",
        id: [7; 16],
        created_at: 1_700_000_000,
        modified_at: 1_700_000_000,
        descriptors_free: spare as i64,
        descriptors_total: total as i64,
        descriptors_offset: TABLE_AT as i64,
        descriptors_size: table_size as i64,
        data_offset: data_at as i64,
        data_size: (at - data_at) as i64,
    };
    patch(&mut header, &mut slots);
    let mut out = Vec::with_capacity(at);
    out.extend_from_slice(&header.encode());
    out.resize(TABLE_AT, 0);
    for d in &slots {
        out.extend_from_slice(&d.encode());
    }
    for o in &objs {
        out.extend_from_slice(&o.data);
    }
    out
}

fn sif(objs: Vec<Obj>) -> Vec<u8> {
    sif_patched(objs, 2, |_, _| {})
}

/// An OCI-SIF: `blobs`, then the root index last, as oci-tools writes them.
fn oci(root: impl Into<Vec<u8>>, mut blobs: Vec<Obj>) -> Vec<u8> {
    blobs.push(root_index(root));
    sif(blobs)
}

fn desc(mt: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": mt, "size": bytes.len(), "digest": Digest::of(bytes).to_string()})
}

fn desc_of(mt: &str, digest: &Digest, size: i64) -> Value {
    json!({"mediaType": mt, "size": size, "digest": digest.to_string()})
}

fn named(mut d: Value, name: &str) -> Value {
    d["annotations"] = json!({ REF_NAME: name });
    d
}

fn index(entries: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": entries,
    }))
    .expect("serialize an index")
}

const LAYER_MT: &str = "application/vnd.oci.image.layer.v1.tar";
const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const DSSE: &str = "application/vnd.dsse.envelope.v1+json";

fn manifest(config: &[u8], layers: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": desc(media_type::OCI_CONFIG, config),
        "layers": layers,
    }))
    .expect("serialize a manifest")
}

/// A small valid image: its manifest and the blobs it needs.
struct Basic {
    manifest: Vec<u8>,
    config: Vec<u8>,
    layer: Vec<u8>,
}

impl Basic {
    fn new() -> Basic {
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
                .to_vec();
        let layer = vec![0u8; 1024];
        let manifest = manifest(&config, vec![desc(LAYER_MT, &layer)]);
        Basic {
            manifest,
            config,
            layer,
        }
    }

    fn digest(&self) -> Digest {
        Digest::of(&self.manifest)
    }

    fn entry(&self) -> Value {
        desc(media_type::OCI_MANIFEST, &self.manifest)
    }

    fn blobs(&self) -> Vec<Obj> {
        vec![
            blob(self.layer.clone()),
            blob(self.config.clone()),
            blob(self.manifest.clone()),
        ]
    }

    /// An image whose root index lists `entries` (which may point at this image).
    fn with_root(&self, entries: Vec<Value>, mut extra: Vec<Obj>) -> Vec<u8> {
        let mut blobs = self.blobs();
        blobs.append(&mut extra);
        oci(index(entries), blobs)
    }
}

/// A simple-signing payload about `target` and its `.sig` manifest with one layer per
/// payload given.
fn sig_manifest(payloads: &[Vec<u8>], annotations: Value) -> Vec<u8> {
    let layers = payloads
        .iter()
        .map(|p| {
            let mut d = desc(SIMPLE_SIGNING, p);
            d["annotations"] = annotations.clone();
            d
        })
        .collect();
    manifest(b"{}", layers)
}

fn simple_signing(target: &Digest) -> Vec<u8> {
    common::simple_signing(target, "null")
}

fn sig_tag(target: &Digest) -> String {
    format!("_cosign:sha256-{}.sig", target.hex())
}

fn fake(n: impl std::fmt::Display) -> Digest {
    Digest::of(format!("not the bytes of anything: {n}").as_bytes())
}

/// Nested indexes `levels` deep above the basic image, each listing the next `width`
/// times, under the root-index name `dag`.
fn dag(width: usize, levels: usize) -> Vec<u8> {
    let b = Basic::new();
    let mut objs = b.blobs();
    let mut below = b.entry();
    for _ in 0..levels {
        let level = index(vec![below.clone(); width]);
        below = desc(media_type::OCI_INDEX, &level);
        objs.push(blob(level));
    }
    oci(index(vec![named(below, "dag")]), objs)
}

/// A root index whose JSON text is exactly `text` (any garbage), with the basic image.
fn raw_root(text: impl Into<Vec<u8>>) -> Vec<u8> {
    let b = Basic::new();
    oci(text, b.blobs())
}

// ---------------------------------------------------------------------------------------
// Checking a mount

/// What a walk of the whole tree saw (counts only: the walk must not itself hold a
/// tree's worth of memory, which the measurement would charge to sifmount).
#[derive(Default, Debug)]
struct Walked {
    dirs: usize,
    files: usize,
    symlinks: usize,
    dangling: usize,
    bytes: u64,
    /// Files refused because their bytes do not have the digest they are named by, with
    /// the refusal (checked against the image by [`confirm_not_its_bytes`]).
    not_its_bytes: Vec<(String, String)>,
}

/// The inode at `path`, if there is one: hostile trees may lack any path.
fn resolve(v: &Volume, path: &str) -> Option<Ino> {
    lookup::resolve(v, path).ok()
}

fn count(v: &Volume, path: &str) -> usize {
    names(v, path).len()
}

/// The names in directory `path`; none when it is missing or no directory. `/cosign`'s
/// summary files are left out ([`common::without_summary`]).
fn names(v: &Volume, path: &str) -> Vec<String> {
    let all = resolve(v, path)
        .and_then(|d| v.entries(d).ok())
        .map(|e| e.into_iter().map(|e| e.name).collect())
        .unwrap_or_default();
    common::without_summary(path, all)
}

fn read_all(v: &Volume, path: &str) -> Vec<u8> {
    try_read_all(v, path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn try_read_all(v: &Volume, path: &str) -> Result<Vec<u8>, TreeError> {
    let ino = resolve(v, path).unwrap_or_else(|| panic!("no {path}"));
    let size = v.attr(ino).unwrap().size as usize;
    let mut buf = vec![0; size];
    let n = v.read_at(ino, 0, 0, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// A read of `path` is refused because its bytes are not the object it names.
fn assert_not_its_bytes(v: &Volume, path: &str) {
    match try_read_all(v, path) {
        Err(TreeError::NotItsBytes(_)) => {}
        other => panic!("{path}: {other:?}, expected a refusal of bytes without its digest"),
    }
}

/// Checks a refusal's claim against the image file itself: the bytes at the offset it
/// names have the digest it says, and not the one it says they are named by.
fn confirm_not_its_bytes(image: &Path, refusal: &str) -> Result<(), String> {
    let after = |key: &str| -> Option<&str> {
        let at = refusal.find(key)? + key.len();
        refusal[at..].split([' ', ',']).next()
    };
    let parsed = (|| {
        let size: usize = after("the ")?.parse().ok()?;
        let offset: u64 = after("bytes at offset ")?.parse().ok()?;
        Some((size, offset, after("have digest ")?, after(", not the ")?))
    })();
    let Some((size, offset, got, want)) = parsed else {
        return Err(format!("cannot parse the refusal {refusal:?}"));
    };
    let file = std::fs::File::open(image).map_err(|e| e.to_string())?;
    let mut bytes = vec![0u8; size];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut bytes, offset)
        .map_err(|e| e.to_string())?;
    let hex: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let actual = format!("sha256:{hex}");
    if actual != got || actual == want {
        return Err(format!(
            "refused {size} bytes at {offset} as {got}, not {want}; they hash to {actual}"
        ));
    }
    Ok(())
}

fn warned(report: &BuildReport, text: &str) -> bool {
    report.warnings.iter().any(|w| w.contains(text))
}

/// Resolves `target`, a link in directory `dir` (components from the root), to
/// components from the root; `None` if it leaves the tree.
fn join_inside(dir: &[String], target: &str) -> Option<Vec<String>> {
    if target.starts_with('/') {
        return None;
    }
    let mut at = dir.to_vec();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                at.pop()?;
            }
            p => at.push(p.to_string()),
        }
    }
    Some(at)
}

/// Follows `path` from the root, symlinks included (at most 40, as the kernel does).
fn follow(v: &Volume, path: Vec<String>, hops: usize) -> Result<Ino, String> {
    let mut ino = ROOT;
    let mut at: Vec<String> = Vec::new();
    for part in &path {
        let attr = v
            .lookup(ino, part.as_bytes())
            .map_err(|e| format!("/{}: {e}", path.join("/")))?;
        if attr.kind == Kind::Symlink {
            if hops == 0 {
                return Err(format!("/{}: too many levels of links", path.join("/")));
            }
            let target = v.readlink(attr.ino).map_err(|e| e.to_string())?;
            let Some(next) = join_inside(&at, &target) else {
                return Err(format!(
                    "/{}: link {target:?} leaves the tree",
                    at.join("/")
                ));
            };
            let rest_start = at.len() + 1;
            let mut full = next;
            full.extend(path[rest_start..].iter().cloned());
            return follow(v, full, hops - 1);
        }
        at.push(part.clone());
        ino = attr.ino;
    }
    Ok(ino)
}

/// Walks the whole tree with the checks listed at the top of the file.
fn walk(v: &Volume) -> Result<Walked, String> {
    let mut w = Walked::default();
    let mut seen_dirs = HashSet::new();
    let mut read_files = HashSet::new();
    let mut todo: Vec<(Ino, Vec<String>)> = vec![(ROOT, Vec::new())];
    let mut buf = vec![0u8; 256 << 10];
    while let Some((dir, at)) = todo.pop() {
        if !seen_dirs.insert(dir) {
            return Err(format!(
                "directory inode {dir} is reached twice (at /{})",
                at.join("/")
            ));
        }
        w.dirs += 1;
        let shown = |name: &str| {
            format!(
                "/{}{}{name}",
                at.join("/"),
                if at.is_empty() { "" } else { "/" }
            )
        };
        let entries = v.entries(dir).map_err(|e| format!("{}: {e}", shown("")))?;
        for e in entries {
            let name = e.name.as_str();
            if name.is_empty()
                || name == "."
                || name == ".."
                || name.contains('/')
                || name.contains('\0')
                || name.len() > 255
            {
                return Err(format!(
                    "{}: {name:?} is not a single path component",
                    shown("")
                ));
            }
            let attr = v
                .lookup(dir, name.as_bytes())
                .map_err(|err| format!("{}: listed but not found: {err}", shown(name)))?;
            if attr.ino != e.ino || attr.kind != e.kind {
                return Err(format!("{}: lookup gives another inode", shown(name)));
            }
            match e.kind {
                Kind::Dir => {
                    let mut sub = at.clone();
                    sub.push(name.to_string());
                    todo.push((e.ino, sub));
                }
                Kind::File => {
                    w.files += 1;
                    if !read_files.insert(e.ino) {
                        continue;
                    }
                    let opened = v
                        .open_file(e.ino, false, false)
                        .map_err(|err| format!("{}: open: {err}", shown(name)))?;
                    let mut off = 0u64;
                    loop {
                        let n = match v.read_at(e.ino, opened.fh, off, &mut buf) {
                            Ok(n) => n,
                            Err(TreeError::NotItsBytes(why)) => {
                                w.not_its_bytes.push((shown(name), why.to_string()));
                                off = attr.size;
                                break;
                            }
                            Err(err) => {
                                return Err(format!("{}: read at {off}: {err}", shown(name)))
                            }
                        };
                        if n == 0 {
                            break;
                        }
                        off += n as u64;
                    }
                    v.release(e.ino, opened.fh);
                    if off != attr.size {
                        return Err(format!(
                            "{}: read {off} bytes of {}",
                            shown(name),
                            attr.size
                        ));
                    }
                    w.bytes += off;
                }
                Kind::Symlink => {
                    w.symlinks += 1;
                    let target = v
                        .readlink(e.ino)
                        .map_err(|err| format!("{}: readlink: {err}", shown(name)))?;
                    let Some(to) = join_inside(&at, &target) else {
                        return Err(format!("{}: link {target:?} leaves the tree", shown(name)));
                    };
                    if let Err(err) = follow(v, to.clone(), 40) {
                        let into_blobs = to.len() == 3 && to[0] == "blobs" && to[1] == "sha256";
                        if !into_blobs {
                            return Err(format!(
                                "{}: link {target:?} does not resolve: {err}",
                                shown(name)
                            ));
                        }
                        w.dangling += 1;
                    }
                }
            }
        }
    }
    Ok(w)
}

// ---------------------------------------------------------------------------------------
// The table

type Check = fn(&Volume, &BuildReport, &Walked);

enum Expect {
    /// Refused; the message names the file and holds every one of these.
    Refused(&'static [&'static str]),
    /// Mounts safely; then this holds.
    Mounts(Check),
}

struct Case {
    name: &'static str,
    build: fn() -> Vec<u8>,
    expect: Expect,
}

fn cases() -> Vec<Case> {
    use Expect::*;
    let case = |name, build, expect| Case {
        name,
        build,
        expect,
    };
    vec![
        // --- SIF level: what tests/library/broken_images.rs does not cover -----------
        case(
            "sif/empty-object-inside-the-table",
            || {
                sif_patched(vec![generic(&b"x"[..]), generic(Vec::new())], 2, |_, s| {
                    s[1].offset = TABLE_AT as i64 + 100;
                })
            },
            Mounts(|v, _, _| {
                assert_eq!(read_all(v, "sif/objects/2-generic"), b"");
                assert_eq!(read_all(v, "sif/objects/1-generic"), b"x");
            }),
        ),
        case(
            "sif/object-is-the-table",
            || {
                sif_patched(vec![generic(&b"payload"[..])], 2, |h, s| {
                    s[0].offset = h.descriptors_offset;
                    s[0].size = h.descriptors_size;
                })
            },
            Refused(&["slot 0 (id 1)", "overlaps the descriptor table"]),
        ),
        case(
            "sif/object-ends-in-the-table",
            || {
                sif_patched(vec![generic(vec![1u8; 300])], 2, |h, s| {
                    s[0].offset = h.descriptors_offset + h.descriptors_size - 1;
                })
            },
            Refused(&["slot 0 (id 1)", "overlaps the descriptor table"]),
        ),
        case(
            "sif/object-spans-the-whole-file",
            || {
                sif_patched(vec![generic(vec![1u8; 300])], 2, |_, s| {
                    s[0].offset = 0;
                    s[0].size = (TABLE_AT + 3 * DESCRIPTOR_SIZE + 300) as i64;
                })
            },
            Refused(&["slot 0 (id 1)", "overlaps the header"]),
        ),
        case(
            "sif/object-inside-another",
            || {
                sif_patched(
                    vec![generic(vec![1u8; 1000]), generic(vec![2u8; 10])],
                    2,
                    |_, s| {
                        s[1].offset = s[0].offset + 500;
                    },
                )
            },
            Refused(&["slot 1 (id 2)", "overlaps object 1 in slot 0"]),
        ),
        case(
            "sif/identical-extents",
            || {
                sif_patched(
                    vec![generic(vec![1u8; 100]), generic(vec![2u8; 100])],
                    2,
                    |_, s| {
                        s[1].offset = s[0].offset;
                    },
                )
            },
            Refused(&["overlaps object"]),
        ),
        case(
            "sif/root-index-overlaps-a-blob",
            || {
                let b = Basic::new();
                let mut bytes = b.with_root(vec![b.entry()], vec![]);
                // The root index (slot 3) moved onto the manifest (slot 2).
                let root = 4096 + 3 * DESCRIPTOR_SIZE + 17;
                let manifest = 4096 + 2 * DESCRIPTOR_SIZE + 17;
                let at: [u8; 8] = bytes[manifest..manifest + 8].try_into().unwrap();
                bytes[root..root + 8].copy_from_slice(&at);
                bytes
            },
            Refused(&["overlaps object"]),
        ),
        case(
            "sif/size-2^62",
            || sif_patched(vec![generic(vec![1u8; 10])], 2, |_, s| s[0].size = 1 << 62),
            Refused(&["slot 0 (id 1)", "past the end of the file"]),
        ),
        case(
            "sif/padding-and-data-size-lie",
            || {
                sif_patched(vec![generic(&b"abc"[..])], 2, |h, s| {
                    s[0].size_with_padding = i64::MAX;
                    h.data_size = i64::MAX;
                    h.data_offset = 1 << 40;
                    h.descriptors_free = 0;
                })
            },
            Mounts(|v, _, _| assert_eq!(read_all(v, "sif/objects/1-generic"), b"abc")),
        ),
        case(
            "sif/links-and-groups-to-nowhere",
            || {
                sif_patched(vec![generic(&b"a"[..]), generic(&b"b"[..])], 2, |_, s| {
                    s[0].linked_id_raw = 1; // itself
                    s[1].linked_id_raw = GROUP_MASK | 0x0FFF_FFFF;
                    s[1].group_id_raw = u32::MAX;
                })
            },
            Mounts(|v, _, _| assert_eq!(count(v, "sif/objects"), 2)),
        ),
        case(
            "sif/hostile-object-names",
            || {
                let mut a = generic(&b"a"[..]);
                a.name = b"../../etc/passwd".to_vec();
                let mut b = generic(&b"b"[..]);
                b.name = vec![0xff, 0xfe, b'/', 0x80, b'\n'];
                let mut c = generic(&b"c"[..]);
                c.name = vec![b'x'; 128];
                let mut d = generic(&b"d"[..]);
                d.name = b"..".to_vec();
                sif(vec![a, b, c, d])
            },
            Mounts(|v, _, _| {
                // Stored names, each made one safe component behind its ID; one that
                // leaves nothing usable (`..`) is named by its kind.
                assert_eq!(
                    names(v, "sif/objects"),
                    [
                        "1-.._.._etc_passwd".to_string(),
                        "2-_____".to_string(),
                        format!("3-{}", "x".repeat(128)),
                        "4-generic".to_string(),
                    ]
                );
                assert_eq!(read_all(v, "sif/objects/1-.._.._etc_passwd"), b"a");
                let doc = String::from_utf8(read_all(v, "sif/descriptors.json"))
                    .expect("descriptors.json is UTF-8 whatever the names hold");
                assert!(
                    doc.contains("../../etc/passwd"),
                    "the name is shown as data"
                );
            }),
        ),
        case(
            "sif/unknown-data-types",
            || {
                sif_patched(vec![generic(&b"a"[..]), generic(&b"b"[..])], 2, |_, s| {
                    s[0].data_type_raw = i32::MAX;
                    s[1].data_type_raw = -1;
                })
            },
            Mounts(|v, _, _| assert_eq!(count(v, "sif/objects"), 2)),
        ),
        case(
            "sif/100000-descriptors",
            || {
                sif_patched(
                    (0..100_000)
                        .map(|i: u32| generic(i.to_le_bytes().to_vec()))
                        .collect(),
                    0,
                    |_, _| {},
                )
            },
            Mounts(|v, _, w| {
                assert_eq!(count(v, "sif/objects"), 100_000);
                assert_eq!(
                    read_all(v, "sif/objects/77777-generic"),
                    77776u32.to_le_bytes()
                );
                assert!(w.files >= 100_000);
            }),
        ),
        case(
            "sif/two-root-indexes",
            || {
                let b = Basic::new();
                let mut objs = b.blobs();
                objs.push(root_index(index(vec![b.entry()])));
                objs.push(root_index(index(vec![])));
                sif(objs)
            },
            Mounts(|v, r, _| {
                assert!(warned(r, "2 OCI root indexes"), "{r:?}");
                assert!(resolve(v, "images").is_none(), "not shown as an OCI-SIF");
            }),
        ),
        case(
            "sif/oci-digest-not-a-digest",
            || {
                let b = Basic::new();
                let mut objs = b.blobs();
                objs.push(root_index(index(vec![b.entry()])));
                sif_patched(objs, 2, |_, s| {
                    s[1].extra = Extra::Other(b"sha256:../../etc".to_vec()).encode();
                })
            },
            Refused(&["slot 1 (id 2)", "invalid digest", "sha256:../../etc"]),
        ),
        case(
            "sif/oci-digest-sha512",
            || {
                let b = Basic::new();
                let mut objs = b.blobs();
                objs.push(root_index(index(vec![b.entry()])));
                sif_patched(objs, 2, |_, s| {
                    let d = format!("sha512:{}", "ab".repeat(64));
                    s[0].extra = Extra::Other(d.into_bytes()).encode();
                })
            },
            Refused(&["slot 0 (id 1)", "invalid digest", "sha512:"]),
        ),
        case(
            "sif/30000-oci-blobs",
            || {
                let objs: Vec<Obj> = (0..30_000u32)
                    .map(|i| blob(i.to_le_bytes().to_vec()))
                    .collect();
                oci(index(vec![]), objs)
            },
            Mounts(|v, _, _| {
                assert_eq!(count(v, "blobs/sha256"), 30_000);
                let d = Digest::of(&23210u32.to_le_bytes());
                assert_eq!(
                    read_all(v, &format!("blobs/sha256/{}", d.hex())),
                    23210u32.to_le_bytes()
                );
            }),
        ),
        // --- digests ------------------------------------------------------------------
        case(
            "digest/bytes-do-not-match",
            || {
                let b = Basic::new();
                let mut objs = b.blobs();
                objs[0] = blob_as(Digest::of(&b.layer), vec![0xEEu8; 1024]);
                oci(index(vec![b.entry()]), objs)
            },
            Mounts(|v, _, w| {
                let b = Basic::new();
                // Named by a digest its bytes do not have: refused there, and shown as
                // stored under /sif/objects; `--verify` (OciSif::verify_blobs) tells too.
                assert_not_its_bytes(v, &format!("blobs/sha256/{}", Digest::of(&b.layer).hex()));
                assert_eq!(read_all(v, "sif/objects/1-oci-blob"), vec![0xEEu8; 1024]);
                assert!(!w.not_its_bytes.is_empty());
            }),
        ),
        case(
            "digest/same-digest-different-bytes",
            || {
                let b = Basic::new();
                let mut objs = b.blobs();
                objs.push(blob_as(Digest::of(&b.layer), b"an impostor".to_vec()));
                oci(index(vec![b.entry()]), objs)
            },
            Mounts(|v, _, _| {
                let b = Basic::new();
                let layer = read_all(v, &format!("blobs/sha256/{}", Digest::of(&b.layer).hex()));
                assert_eq!(layer, b.layer, "the first object with a digest is the blob");
                assert_eq!(count(v, "blobs/sha256"), 3);
            }),
        ),
        case(
            "digest/two-digests-same-bytes",
            || {
                let b = Basic::new();
                let mut objs = b.blobs();
                objs.push(blob_as(fake("twin"), b.layer.clone()));
                oci(index(vec![b.entry()]), objs)
            },
            Mounts(|v, _, _| {
                let b = Basic::new();
                assert_not_its_bytes(v, &format!("blobs/sha256/{}", fake("twin").hex()));
                assert_eq!(
                    read_all(v, &format!("blobs/sha256/{}", Digest::of(&b.layer).hex())),
                    b.layer
                );
            }),
        ),
        // --- index structure ------------------------------------------------------------
        case(
            "index/references-itself",
            || {
                let d = fake("self");
                let me = index(vec![desc_of(media_type::OCI_INDEX, &d, 100)]);
                oci(
                    index(vec![named(desc_of(media_type::OCI_INDEX, &d, 100), "loop")]),
                    vec![blob_as(d, me)],
                )
            },
            Mounts(|v, r, _| {
                assert!(resolve(v, "images/loop/image-index.json").is_some());
                assert!(warned(r, "cycle") || warned(r, "nested deeper"), "{r:?}");
            }),
        ),
        case(
            "index/references-itself-64-times",
            || {
                let d = fake("fan");
                let me = index(vec![desc_of(media_type::OCI_INDEX, &d, 100); 64]);
                oci(
                    index(vec![named(desc_of(media_type::OCI_INDEX, &d, 100), "fan")]),
                    vec![blob_as(d, me)],
                )
            },
            Mounts(|v, r, _| {
                assert!(resolve(v, "images/fan/image-index.json").is_some());
                assert!(warned(r, "cycle"), "{r:?}");
            }),
        ),
        case(
            "index/two-indexes-in-a-cycle",
            || {
                let (a, b) = (fake("a"), fake("b"));
                let ia = index(vec![
                    desc_of(media_type::OCI_INDEX, &b, 1),
                    desc_of(media_type::OCI_INDEX, &b, 1),
                ]);
                let ib = index(vec![
                    desc_of(media_type::OCI_INDEX, &a, 1),
                    desc_of(media_type::OCI_INDEX, &a, 1),
                ]);
                oci(
                    index(vec![named(desc_of(media_type::OCI_INDEX, &a, 1), "ab")]),
                    vec![blob_as(a, ia), blob_as(b, ib)],
                )
            },
            Mounts(|_, r, _| assert!(warned(r, "cycle"), "{r:?}")),
        ),
        case(
            "index/dag-40-wide-10-deep",
            // Honest digests, no cycle: each level lists the next 40 times, which a tree
            // that unfolds the graph would show 40^8 times before its depth limit.
            || dag(40, 10),
            Mounts(|v, r, w| {
                assert!(resolve(v, "images/dag/image-index.json").is_some());
                assert!(
                    warned(r, "not shown") || warned(r, "nested deeper"),
                    "{r:?}"
                );
                assert!(w.dirs < 1_000_000, "{w:?}");
            }),
        ),
        case(
            "index/chain-10000-deep",
            || {
                let b = Basic::new();
                let mut objs = b.blobs();
                let mut below = b.entry();
                for _ in 0..10_000 {
                    let level = index(vec![below]);
                    below = desc(media_type::OCI_INDEX, &level);
                    objs.push(blob(level));
                }
                oci(index(vec![named(below, "deep")]), objs)
            },
            Mounts(|v, r, _| {
                assert!(resolve(v, "images/deep").is_some());
                assert!(warned(r, "nested deeper than"), "{r:?}");
            }),
        ),
        case(
            "index/100000-entries-same-manifest",
            || {
                let b = Basic::new();
                let e = b.entry().to_string();
                let mut text = String::from(r#"{"schemaVersion":2,"manifests":["#);
                for i in 0..100_000 {
                    if i > 0 {
                        text.push(',');
                    }
                    text.push_str(&e);
                }
                text.push_str("]}");
                oci(text, b.blobs())
            },
            Mounts(|v, r, _| {
                // Each image costs nine names: the budget of /images runs out first.
                let shown = count(v, "images");
                assert!(shown > 20_000 && shown < 100_000, "{shown} images");
                assert!(warned(r, "the rest of /images is not shown"), "{r:?}");
            }),
        ),
        case(
            "index/nested-100000-platforms",
            || {
                let b = Basic::new();
                let mut e = b.entry();
                e["platform"] = json!({"os": "linux", "architecture": "amd64"});
                let e = e.to_string();
                let mut text = String::from(
                    r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":["#,
                );
                for i in 0..100_000 {
                    if i > 0 {
                        text.push(',');
                    }
                    text.push_str(&e);
                }
                text.push_str("]}");
                let nested = text.into_bytes();
                let root = index(vec![named(desc(media_type::OCI_INDEX, &nested), "wide")]);
                let mut objs = b.blobs();
                objs.push(blob(nested));
                oci(root, objs)
            },
            Mounts(|v, r, _| {
                assert!(resolve(v, "images/wide/linux-amd64/manifest.json").is_some());
                let shown = count(v, "images/wide");
                assert!(shown > 1000, "{shown} entries");
                assert!(
                    shown == 100_000 + 4 || warned(r, "not shown"),
                    "{shown} entries, {r:?}"
                );
            }),
        ),
        case(
            "index/manifest-with-100000-layers",
            || {
                let b = Basic::new();
                let l = desc(LAYER_MT, &b.layer).to_string();
                let mut layers = String::new();
                for i in 0..100_000 {
                    if i > 0 {
                        layers.push(',');
                    }
                    layers.push_str(&l);
                }
                let m = format!(
                    r#"{{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[{layers}]}}"#,
                    media_type::OCI_MANIFEST,
                    desc(media_type::OCI_CONFIG, &b.config)
                )
                .into_bytes();
                let root = index(vec![named(desc(media_type::OCI_MANIFEST, &m), "many")]);
                oci(
                    root,
                    vec![blob(b.layer.clone()), blob(b.config.clone()), blob(m)],
                )
            },
            Mounts(|v, _, _| {
                assert_eq!(count(v, "images/many/layers"), 100_000);
                assert!(resolve(v, "images/many/layers/99999").is_some());
            }),
        ),
        case(
            "index/sizes-2^62-and-negative",
            || {
                let b = Basic::new();
                let mut layer = desc(LAYER_MT, &b.layer);
                layer["size"] = json!(1i64 << 62);
                let mut config = desc(media_type::OCI_CONFIG, &b.config);
                config["size"] = json!(-1);
                let m = serde_json::to_vec(
                    &json!({"schemaVersion": 2, "config": config, "layers": [layer]}),
                )
                .unwrap();
                let mut e = desc(media_type::OCI_MANIFEST, &m);
                e["size"] = json!(i64::MAX);
                oci(
                    index(vec![named(e, "huge")]),
                    vec![blob(b.layer.clone()), blob(b.config.clone()), blob(m)],
                )
            },
            Mounts(|v, _, _| {
                let ino = resolve(v, "images/huge/config.json").unwrap();
                assert_eq!(
                    v.attr(ino).unwrap().size,
                    Basic::new().config.len() as u64,
                    "sizes are the stored ones"
                );
            }),
        ),
        case(
            "index/media-types-lie",
            || {
                let b = Basic::new();
                let tar = vec![b'x'; 4096];
                // An "index" that is a manifest, a "manifest" that is a tar, a config
                // that is the manifest itself, a layer that is the root's own digest.
                let m2 = serde_json::to_vec(&json!({
                    "schemaVersion": 2,
                    "config": desc(media_type::OCI_CONFIG, &b.manifest),
                    "layers": [desc(media_type::OCI_INDEX, &tar)],
                }))
                .unwrap();
                let entries = vec![
                    named(
                        desc(media_type::OCI_INDEX, &b.manifest),
                        "index-is-manifest",
                    ),
                    named(desc(media_type::OCI_MANIFEST, &tar), "manifest-is-tar"),
                    named(desc(media_type::OCI_MANIFEST, &m2), "config-is-manifest"),
                    named(desc("text/plain", &b.config), "config-as-image"),
                ];
                let mut objs = b.blobs();
                objs.push(blob(tar));
                objs.push(blob(m2));
                b.with_root(entries, objs.split_off(3))
            },
            Mounts(|v, r, _| {
                assert!(count(v, "images") == 4, "{:?}", names(v, "images"));
                assert!(warned(r, "manifest-is-tar"), "{r:?}");
            }),
        ),
        case(
            "index/missing-blobs",
            || {
                let ghost = fake("ghost");
                let m = manifest(b"{}", vec![desc_of(LAYER_MT, &ghost, 10)]);
                let entries = vec![
                    named(
                        desc_of(media_type::OCI_MANIFEST, &fake("nothing"), 10),
                        "gone",
                    ),
                    named(desc(media_type::OCI_MANIFEST, &m), "holes"),
                ];
                oci(index(entries), vec![blob(m)])
            },
            Mounts(|v, r, w| {
                assert!(warned(r, "is not in the image"), "{r:?}");
                assert_eq!(
                    w.dangling, 1,
                    "the missing layer's link dangles into /blobs"
                );
                assert!(resolve(v, "images/holes/layers/0").is_some());
            }),
        ),
        case(
            "index/manifest-is-binary-garbage",
            || {
                let garbage: Vec<u8> = (0..65536u32).map(|i| (i * 7 % 251) as u8).collect();
                let root = index(vec![named(
                    desc(media_type::OCI_MANIFEST, &garbage),
                    "junk",
                )]);
                oci(root, vec![blob(garbage)])
            },
            Mounts(|v, r, _| {
                assert!(warned(r, "images/junk"), "{r:?}");
                assert!(resolve(v, "images/junk").is_some());
            }),
        ),
        case(
            "index/one-garbage-blob-listed-20000-times",
            || {
                // A megabyte that looks like JSON until its last byte, listed again and
                // again: reading and parsing it once per listing is 20 GB of work.
                let mut garbage = b"{\"layers\":[".to_vec();
                garbage.resize(1 << 20, b' ');
                garbage.push(b'x');
                let e = desc(media_type::OCI_MANIFEST, &garbage).to_string();
                let mut text = String::from(r#"{"schemaVersion":2,"manifests":["#);
                for i in 0..20_000 {
                    if i > 0 {
                        text.push(',');
                    }
                    text.push_str(&e);
                }
                text.push_str("]}");
                oci(text, vec![blob(garbage)])
            },
            Mounts(|v, r, _| {
                assert_eq!(count(v, "images"), 20_000);
                assert!(warned(r, "not valid JSON"), "{r:?}");
                let json: Value =
                    serde_json::from_slice(&read_all(v, "cosign/summary.json")).unwrap();
                let listed = json["images"].as_array().unwrap().len();
                assert_eq!(listed, MAX_SUMMARY_TARGETS);
                assert_eq!(json["omitted_targets"], 20_000 - MAX_SUMMARY_TARGETS);
            }),
        ),
        // --- names --------------------------------------------------------------------
        case(
            "names/ref-with-slashes",
            || {
                let b = Basic::new();
                b.with_root(
                    vec![
                        named(b.entry(), "docker.io/library/busybox:latest"),
                        named(b.entry(), "/etc/passwd"),
                    ],
                    vec![],
                )
            },
            Mounts(|v, _, _| {
                assert_eq!(
                    names(v, "images"),
                    ["_etc_passwd", "docker.io_library_busybox_latest"]
                );
            }),
        ),
        case(
            "names/ref-dot-dot",
            || {
                let b = Basic::new();
                b.with_root(
                    vec![
                        named(b.entry(), ".."),
                        named(b.entry(), "../../../tmp/x"),
                        named(b.entry(), "..."),
                    ],
                    vec![],
                )
            },
            Mounts(|v, _, _| {
                let n = names(v, "images");
                assert_eq!(n.len(), 3, "{n:?}");
                assert!(n.contains(&".._.._.._tmp_x".to_string()), "{n:?}");
            }),
        ),
        case(
            "names/ref-dot-and-empty",
            || {
                let b = Basic::new();
                b.with_root(
                    vec![
                        named(b.entry(), "."),
                        named(b.entry(), ""),
                        named(b.entry(), "   "),
                    ],
                    vec![],
                )
            },
            Mounts(|v, _, _| assert_eq!(count(v, "images"), 3)),
        ),
        case(
            "names/ref-nul-newline-control",
            || {
                let b = Basic::new();
                b.with_root(
                    vec![
                        named(b.entry(), "a\0b"),
                        named(b.entry(), "line\nbreak"),
                        named(b.entry(), "\u{202e}gpj.exe\t\r\u{7f}"),
                    ],
                    vec![],
                )
            },
            Mounts(|v, _, _| {
                let n = names(v, "images");
                assert!(n.contains(&"a_b".to_string()), "{n:?}");
                assert!(
                    n.iter().all(|s| s.chars().all(|c| c.is_ascii_graphic())),
                    "{n:?}"
                );
            }),
        ),
        case(
            "names/ref-10kb-long",
            || {
                let b = Basic::new();
                let long = "x".repeat(10_000);
                let longer = format!("{long}y");
                b.with_root(
                    vec![named(b.entry(), &long), named(b.entry(), &longer)],
                    vec![],
                )
            },
            Mounts(|v, _, _| {
                let n = names(v, "images");
                assert_eq!(
                    n.len(),
                    2,
                    "two names even though they agree in their first 200 bytes"
                );
                assert!(n.iter().all(|s| s.len() <= 255));
            }),
        ),
        case(
            "names/ref-non-utf8-bytes",
            || {
                let b = Basic::new();
                let text = format!(
                    r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","size":{},"digest":"{}","annotations":{{"{REF_NAME}":"bad-@-name"}}}}]}}"#,
                    media_type::OCI_MANIFEST,
                    b.manifest.len(),
                    b.digest()
                );
                let mut bytes = text.into_bytes();
                let at = bytes.windows(1).position(|w| w == b"@").unwrap();
                bytes[at] = 0xff;
                oci(bytes, b.blobs())
            },
            Mounts(|v, r, _| {
                assert!(warned(r, "root index"), "{r:?}");
                assert_eq!(count(v, "images"), 0);
            }),
        ),
        case(
            "names/ref-lone-surrogate",
            || {
                let b = Basic::new();
                raw_root(format!(
                    r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","size":1,"digest":"{}","annotations":{{"{REF_NAME}":"x\ud800y"}}}}]}}"#,
                    media_type::OCI_MANIFEST,
                    b.digest()
                ))
            },
            Mounts(|_, r, _| assert!(warned(r, "root index"), "{r:?}")),
        ),
        case(
            "names/refs-that-sanitize-alike",
            || {
                let b = Basic::new();
                b.with_root(
                    (0..2000)
                        .map(|i| named(b.entry(), if i % 2 == 0 { "a/b" } else { "a:b" }))
                        .collect(),
                    vec![],
                )
            },
            Mounts(|v, _, _| assert_eq!(count(v, "images"), 2000)),
        ),
        case(
            "names/hostile-platforms",
            || {
                let b = Basic::new();
                let plat = |os: &str, arch: &str, variant: &str| {
                    let mut e = b.entry();
                    e["platform"] = json!({"os": os, "architecture": arch, "variant": variant, "os.version": "../.."});
                    e
                };
                let nested = index(vec![
                    plat("..", "..", ""),
                    plat("/", "", "\0"),
                    plat("", "", ""),
                    plat("linux", "amd64/../../x", "v\n1"),
                ]);
                let root = index(vec![named(desc(media_type::OCI_INDEX, &nested), "plat")]);
                let mut objs = b.blobs();
                objs.push(blob(nested));
                oci(root, objs)
            },
            Mounts(|v, _, _| {
                let n = names(v, "images/plat");
                // oci-layout, index.json, blobs, image-index.json, signatures, signed,
                // 4 platforms.
                assert_eq!(n.len(), 6 + 4, "{n:?}");
                assert!(n.iter().any(|x| x == "signed"), "{n:?}");
            }),
        ),
        // --- cosign ------------------------------------------------------------------
        case(
            "cosign/tag-with-traversal",
            || {
                let b = Basic::new();
                let payload = simple_signing(&b.digest());
                let sig = sig_manifest(
                    std::slice::from_ref(&payload),
                    json!({"dev.cosignproject.cosign/signature": "c2ln"}),
                );
                let entries = vec![
                    named(b.entry(), "img"),
                    named(
                        desc(media_type::OCI_MANIFEST, &sig),
                        "_cosign:sha256-../../x.sig",
                    ),
                    named(
                        desc(media_type::OCI_MANIFEST, &sig),
                        &format!("_cosign:sha256-{}.sig/../../..", b.digest().hex()),
                    ),
                ];
                b.with_root(entries, vec![blob(payload), blob(sig)])
            },
            Mounts(|v, _, _| {
                // Not cosign tags: shown as images, under sanitized names.
                assert_eq!(count(v, "cosign"), 0, "{:?}", names(v, "cosign"));
                assert_eq!(count(v, "images"), 3, "{:?}", names(v, "images"));
            }),
        ),
        case(
            "cosign/sig-image-with-5000-layers",
            || {
                let b = Basic::new();
                let payload = simple_signing(&b.digest());
                let sig = sig_manifest(
                    &vec![payload.clone(); 5000],
                    json!({"dev.cosignproject.cosign/signature": "c2ln"}),
                );
                let entries = vec![
                    named(b.entry(), "img"),
                    named(desc(media_type::OCI_MANIFEST, &sig), &sig_tag(&b.digest())),
                ];
                b.with_root(entries, vec![blob(payload), blob(sig)])
            },
            Mounts(|v, r, _| {
                assert_eq!(count(v, "cosign"), 1000);
                assert_eq!(count(v, "images/img/signatures"), 1000);
                assert!(warned(r, "more than the 1000"), "{r:?}");
            }),
        ),
        case(
            "cosign/10000-sig-images-one-tag",
            || {
                // The same tag on 10,000 distinct signature images of one layer each.
                let b = Basic::new();
                let payload = simple_signing(&b.digest());
                let mut entries = vec![named(b.entry(), "img")];
                let mut objs = vec![blob(payload.clone())];
                for i in 0..10_000 {
                    let sig = sig_manifest(
                        std::slice::from_ref(&payload),
                        json!({"dev.cosignproject.cosign/signature": format!("{i}")}),
                    );
                    entries.push(named(
                        desc(media_type::OCI_MANIFEST, &sig),
                        &sig_tag(&b.digest()),
                    ));
                    objs.push(blob(sig));
                }
                b.with_root(entries, objs)
            },
            Mounts(|v, _, _| {
                assert_eq!(count(v, "cosign"), 10_000);
                assert_eq!(count(v, "images/img/signatures"), 10_000);
            }),
        ),
        case(
            "cosign/garbage-sig-image-tagged-20000-times",
            || {
                let b = Basic::new();
                let mut garbage = b"{\"layers\":[".to_vec();
                garbage.resize(1 << 20, b' ');
                garbage.push(b'x');
                let e = named(
                    desc(media_type::OCI_MANIFEST, &garbage),
                    &sig_tag(&b.digest()),
                )
                .to_string();
                let mut text = format!(
                    r#"{{"schemaVersion":2,"manifests":[{}"#,
                    named(b.entry(), "img")
                );
                for _ in 0..20_000 {
                    text.push(',');
                    text.push_str(&e);
                }
                text.push_str("]}");
                let mut objs = b.blobs();
                objs.push(blob(garbage));
                oci(text, objs)
            },
            Mounts(|v, r, _| {
                assert_eq!(count(v, "cosign"), 0);
                assert!(warned(r, "sig image"), "{r:?}");
                assert!(
                    r.warnings.len() < 2000,
                    "{} warnings: one per problem, not per listing",
                    r.warnings.len()
                );
            }),
        ),
        case(
            "cosign/dsse-bad-base64",
            || {
                let b = Basic::new();
                let env = br#"{"payloadType":"application/vnd.in-toto+json","payload":"!!!not base64!!!","signatures":[{"sig":"%%%"}]}"#.to_vec();
                let mut layer = desc(DSSE, &env);
                layer["annotations"] = json!({"predicateType": "x"});
                let att = manifest(b"{}", vec![layer]);
                let tag = format!("_cosign:sha256-{}.att", b.digest().hex());
                b.with_root(
                    vec![
                        named(b.entry(), "img"),
                        named(desc(media_type::OCI_MANIFEST, &att), &tag),
                    ],
                    vec![blob(env), blob(att)],
                )
            },
            Mounts(|v, _, _| {
                let entry = names(v, "cosign");
                assert_eq!(entry.len(), 1, "{entry:?}");
                let files = names(v, &format!("cosign/{}", entry[0]));
                assert!(
                    files.contains(&"payload".to_string())
                        && !files.contains(&"statement.json".to_string()),
                    "{files:?}"
                );
            }),
        ),
        case(
            "cosign/payload-bigger-than-it-claims",
            || {
                // The layer claims 10 bytes; the stored envelope is 24 MiB of whitespace.
                let b = Basic::new();
                let mut env = b"{\"payload\":\"".to_vec();
                env.resize(24 << 20, b'A');
                env.extend_from_slice(b"\",\"payloadType\":\"x\",\"signatures\":[]}");
                let mut layer = desc(DSSE, &env);
                layer["size"] = json!(10);
                let att = manifest(b"{}", vec![layer]);
                let tag = format!("_cosign:sha256-{}.att", b.digest().hex());
                b.with_root(
                    vec![
                        named(b.entry(), "img"),
                        named(desc(media_type::OCI_MANIFEST, &att), &tag),
                    ],
                    vec![blob(env), blob(att)],
                )
            },
            Mounts(|v, _, _| {
                let entry = names(v, "cosign");
                let files = names(v, &format!("cosign/{}", entry[0]));
                assert!(
                    !files.contains(&"statement.json".to_string()),
                    "a 24 MiB payload is not parsed: {files:?}"
                );
            }),
        ),
        case(
            "cosign/one-4mib-attestation-in-20000-entries",
            || {
                // 20 attestation images of 1000 layers each, every layer the same 4 MiB
                // envelope: parsed per entry, that is 80 GB decoded and held.
                use base64::Engine as _;
                let b = Basic::new();
                let mut statement = format!(
                    r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"x","digest":{{"sha256":"{}"}}}}],"predicateType":"https://example.com/p","predicate":{{"pad":""#,
                    b.digest().hex()
                )
                .into_bytes();
                statement.resize(3 << 20, b'p');
                statement.extend_from_slice(br#""}}"#);
                let env = serde_json::to_vec(&json!({
                    "payloadType": "application/vnd.in-toto+json",
                    "payload": base64::engine::general_purpose::STANDARD.encode(&statement),
                    "signatures": [{"sig": "c2ln"}],
                }))
                .unwrap();
                let layer = desc(DSSE, &env).to_string();
                let tag = format!("_cosign:sha256-{}.att", b.digest().hex());
                let mut entries = vec![named(b.entry(), "img")];
                let mut objs = vec![blob(env)];
                for i in 0..20 {
                    let layers = vec![layer.as_str(); 1000].join(",");
                    let m = format!(
                        r#"{{"schemaVersion":2,"config":{},"layers":[{layers}],"annotations":{{"n":"{i}"}}}}"#,
                        desc(media_type::OCI_CONFIG, b"{}")
                    )
                    .into_bytes();
                    entries.push(named(desc(media_type::OCI_MANIFEST, &m), &tag));
                    objs.push(blob(m));
                }
                b.with_root(entries, objs)
            },
            Mounts(|v, _, _| {
                let entries = names(v, "cosign");
                assert_eq!(entries.len(), 20_000);
                let first = resolve(v, &format!("cosign/{}/statement.json", entries[0])).unwrap();
                let last =
                    resolve(v, &format!("cosign/{}/statement.json", entries[19_999])).unwrap();
                assert_eq!(first, last, "one statement file for one payload");
                assert_eq!(v.attr(first).unwrap().size, (3 << 20) + 3);
                // The summary lists the first MAX_SUMMARY_ENTRIES and counts the rest.
                let json: Value =
                    serde_json::from_slice(&read_all(v, "cosign/summary.json")).unwrap();
                assert_eq!(json["entries"], 20_000);
                assert_eq!(json["omitted_entries"], 20_000 - MAX_SUMMARY_ENTRIES);
                let listed = json["images"][0]["attestations"].as_array().unwrap().len();
                assert_eq!(listed, MAX_SUMMARY_ENTRIES);
                let text = String::from_utf8(read_all(v, "cosign/SUMMARY")).unwrap();
                assert!(text.len() < 4 << 20, "{} bytes", text.len());
                let last = text.lines().last().unwrap();
                assert!(
                    last.starts_with(&format!("... and {} entries", 20_000 - MAX_SUMMARY_ENTRIES)),
                    "{last}"
                );
            }),
        ),
        case(
            "cosign/annotations-100000-entries",
            || {
                let b = Basic::new();
                let payload = simple_signing(&b.digest());
                let mut ann = serde_json::Map::new();
                for i in 0..100_000 {
                    ann.insert(format!("k{i}"), Value::String(format!("v{i}")));
                }
                ann.insert("dev.cosignproject.cosign/signature".into(), "c2ln".into());
                let sig = sig_manifest(std::slice::from_ref(&payload), Value::Object(ann));
                let entries = vec![
                    named(b.entry(), "img"),
                    named(desc(media_type::OCI_MANIFEST, &sig), &sig_tag(&b.digest())),
                ];
                b.with_root(entries, vec![blob(payload), blob(sig)])
            },
            Mounts(|v, _, _| {
                let entry = names(v, "cosign");
                let ann = read_all(v, &format!("cosign/{}/annotations", entry[0]));
                let parsed: serde_json::Map<String, Value> = serde_json::from_slice(&ann).unwrap();
                assert_eq!(parsed.len(), 100_001);
            }),
        ),
        case(
            "cosign/referrer-is-its-own-subject",
            || {
                let b = Basic::new();
                let d = fake("referrer");
                let m = serde_json::to_vec(&json!({
                    "schemaVersion": 2,
                    "config": desc(media_type::OCI_EMPTY, b"{}"),
                    "layers": [desc_of(SIMPLE_SIGNING, &d, 1)],
                    "subject": desc_of(media_type::OCI_MANIFEST, &d, 1),
                }))
                .unwrap();
                b.with_root(
                    vec![
                        named(b.entry(), "img"),
                        desc_of(media_type::OCI_MANIFEST, &d, 1),
                    ],
                    vec![blob_as(d, m), blob(b"{}".to_vec())],
                )
            },
            Mounts(|v, _, _| assert_eq!(count(v, "cosign"), 1)),
        ),
        case(
            "cosign/save-kinds-without-a-single-image",
            || {
                let b = Basic::new();
                let payload = simple_signing(&b.digest());
                let sig = sig_manifest(std::slice::from_ref(&payload), json!({}));
                let mut kind = desc(media_type::OCI_MANIFEST, &sig);
                kind["annotations"] = json!({"kind": "dev.cosignproject.cosign/sigs"});
                let mut img = b.entry();
                img["annotations"] = json!({"kind": "dev.cosignproject.cosign/image"});
                b.with_root(vec![img.clone(), img, kind], vec![blob(payload), blob(sig)])
            },
            Mounts(|v, r, _| {
                assert!(warned(r, "exactly one image"), "{r:?}");
                assert_eq!(count(v, "cosign"), 0);
            }),
        ),
        // --- JSON bombs ----------------------------------------------------------------
        case(
            "json/root-index-nested-100000-deep",
            || raw_root(format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))),
            // Well-formed JSON (checked without recursion), but not an index.
            Mounts(|v, r, _| {
                assert!(warned(r, "root index"), "{r:?}");
                assert_eq!(count(v, "images"), 0);
            }),
        ),
        case(
            "json/root-entry-annotations-nested-100000-deep",
            || {
                let b = Basic::new();
                raw_root(format!(
                    r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","size":1,"digest":"{}","platform":{{"os":{}0{}}}}}]}}"#,
                    media_type::OCI_MANIFEST,
                    b.digest(),
                    "[".repeat(100_000),
                    "]".repeat(100_000)
                ))
            },
            Mounts(|_, r, _| assert!(warned(r, "root index"), "{r:?}")),
        ),
        case(
            "json/manifest-nested-100000-deep",
            || {
                let deep = format!(
                    r#"{{"schemaVersion":2,"x":{}0{}}}"#,
                    "{\"a\":".repeat(100_000),
                    "}".repeat(100_000)
                );
                let deep = deep.into_bytes();
                oci(
                    index(vec![named(desc(media_type::OCI_MANIFEST, &deep), "deep")]),
                    vec![blob(deep)],
                )
            },
            // An unknown field is skipped without recursion: the manifest (with no config)
            // is shown.
            Mounts(|v, _, _| assert!(resolve(v, "images/deep/manifest.json").is_some())),
        ),
        case(
            "json/1000000-keys",
            || {
                let b = Basic::new();
                let mut text = format!(
                    r#"{{"schemaVersion":2,"manifests":[{}],"junk":{{"#,
                    named(b.entry(), "img")
                );
                for i in 0..1_000_000 {
                    if i > 0 {
                        text.push(',');
                    }
                    let _ = write!(text, r#""{i}":0"#);
                }
                text.push_str("}}");
                oci(text, b.blobs())
            },
            Mounts(|v, _, _| assert!(resolve(v, "images/img/manifest.json").is_some())),
        ),
        case(
            "json/root-entry-with-1000000-annotations",
            || {
                let b = Basic::new();
                let mut text = format!(
                    r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","size":{},"digest":"{}","annotations":{{"{REF_NAME}":"img""#,
                    media_type::OCI_MANIFEST,
                    b.manifest.len(),
                    b.digest()
                );
                for i in 0..1_000_000 {
                    let _ = write!(text, r#","k{i}":"v""#);
                }
                text.push_str("}}]}");
                oci(text, b.blobs())
            },
            Mounts(|v, _, _| {
                // The image's own index.json repeats the entry, annotations and all.
                let ino = resolve(v, "images/img/index.json").unwrap();
                assert!(v.attr(ino).unwrap().size > 10_000_000);
            }),
        ),
        case(
            "json/duplicate-keys",
            || {
                let b = Basic::new();
                let e = b.entry();
                raw_root(format!(
                    r#"{{"schemaVersion":2,"manifests":[{e}],"manifests":[{e},{e}]}}"#
                ))
            },
            Mounts(|v, r, _| {
                assert!(
                    warned(r, "duplicate field") || count(v, "images") > 0,
                    "{r:?}"
                )
            }),
        ),
        case(
            "json/duplicate-annotation-keys",
            || {
                let b = Basic::new();
                raw_root(format!(
                    r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","size":{},"digest":"{}","annotations":{{"{REF_NAME}":"first","{REF_NAME}":"second"}}}}]}}"#,
                    media_type::OCI_MANIFEST,
                    b.manifest.len(),
                    b.digest()
                ))
            },
            Mounts(|v, _, _| assert_eq!(count(v, "images"), 1)),
        ),
        case(
            "json/number-1e999",
            || {
                let b = Basic::new();
                raw_root(format!(
                    r#"{{"schemaVersion":1e999,"manifests":[{{"mediaType":"x","size":1e999,"digest":"{}"}}]}}"#,
                    b.digest()
                ))
            },
            Mounts(|v, r, _| {
                assert!(warned(r, "root index"), "{r:?}");
                assert_eq!(count(v, "images"), 0);
            }),
        ),
        case(
            "json/byte-order-mark",
            || raw_root(b"\xef\xbb\xbf{\"schemaVersion\":2,\"manifests\":[]}".to_vec()),
            Refused(&["root index", "not valid JSON"]),
        ),
        case(
            "json/trailing-garbage",
            || raw_root(br#"{"schemaVersion":2,"manifests":[]} {"and":"more"}"#.to_vec()),
            Refused(&["root index", "not valid JSON", "trailing characters"]),
        ),
        case(
            "json/invalid-utf8-in-a-manifest",
            || {
                let b = Basic::new();
                let mut man = b.manifest.clone();
                // Inside the config's media type: valid JSON structure, invalid UTF-8.
                let at = man
                    .windows(6)
                    .position(|w| w == b"config")
                    .expect("a config")
                    + 30;
                man[at] = 0xff;
                let root = index(vec![named(desc(media_type::OCI_MANIFEST, &man), "utf8")]);
                oci(
                    root,
                    vec![blob(b.config.clone()), blob(man), blob(b.layer.clone())],
                )
            },
            Mounts(|v, r, _| {
                let shown = resolve(v, "images/utf8/manifest.json").is_some();
                assert!(shown || warned(r, "images/utf8"), "{r:?}");
                assert!(resolve(v, "images/utf8").is_some());
            }),
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// Running a case

fn file_digest(path: &Path) -> [u8; 32] {
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).expect("read the image");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().into()
}

fn dir_listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("list the case directory")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

/// What a case came to.
struct Outcome {
    line: String,
    peak: usize,
    /// The peak once the volume is open, before the walk.
    open_peak: usize,
    bound: usize,
}

fn run_case(case: &Case, dir: &Path) -> Result<Outcome, String> {
    let image = dir.join("image.sif");
    let bytes = (case.build)();
    std::fs::write(&image, &bytes).map_err(|e| format!("cannot write {}: {e}", image.display()))?;
    let len = bytes.len();
    drop(bytes);
    let before = file_digest(&image);
    let is_oci = matches!(
        SifImage::open(&image, OpenMode::ReadOnly).map(|s| ImageKind::of(&s)),
        Ok(ImageKind::OciSif { .. })
    );

    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let shown = image.display().to_string();
    let mut line = String::new();
    let mut open_peak = 0;
    let modes: &[bool] = if is_oci { &[false, true] } else { &[false] };
    for &writable in modes {
        let mode = if writable { "rw" } else { "ro" };
        let opened = Volume::open(
            &image,
            VolumeOptions {
                writable,
                ..Default::default()
            },
        );
        match (&case.expect, opened) {
            (Expect::Refused(want), Err(e)) => {
                let msg = e.to_string();
                if !msg.contains(&shown) {
                    return Err(format!("{mode}: the message does not name the file: {msg}"));
                }
                if let Some(missing) = want.iter().find(|w| !msg.contains(*w)) {
                    return Err(format!("{mode}: message lacks {missing:?}: {msg}"));
                }
                if line.is_empty() {
                    line = format!("refused: {}", msg.replace(&shown, "IMAGE"));
                }
            }
            (Expect::Refused(_), Ok(_)) => {
                return Err(format!("{mode}: mounted; expected a refusal"))
            }
            (Expect::Mounts(_), Err(e)) => return Err(format!("{mode}: refused: {e}")),
            (Expect::Mounts(check), Ok((v, report))) => {
                open_peak = open_peak.max(PEAK.load(Ordering::Relaxed).saturating_sub(base));
                let w = walk(&v).map_err(|e| format!("{mode}: {e}"))?;
                for (path, why) in &w.not_its_bytes {
                    confirm_not_its_bytes(&image, why)
                        .map_err(|e| format!("{mode}: {path}: {e}"))?;
                }
                check(&v, &report, &w);
                if line.is_empty() {
                    line = format!(
                        "mounted: {} dirs, {} files ({} bytes read), {} links ({} dangling), {} warnings{}",
                        w.dirs,
                        w.files,
                        w.bytes,
                        w.symlinks,
                        w.dangling,
                        report.warnings.len(),
                        report
                            .warnings
                            .first()
                            .map(|s| format!(", first: {}", shorten(&s.replace(&shown, "IMAGE"))))
                            .unwrap_or_default()
                    );
                }
            }
        }
    }
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    let bound = MEMORY_BASE + MEMORY_PER_IMAGE_BYTE * len;

    if file_digest(&image) != before {
        return Err("the image changed".into());
    }
    let left = dir_listing(dir);
    if left != ["image.sif"] {
        return Err(format!("files appeared beside the image: {left:?}"));
    }
    Ok(Outcome {
        line,
        peak,
        open_peak,
        bound,
    })
}

fn shorten(s: &str) -> String {
    let s = s.replace('\n', "\\n");
    if s.chars().count() > 160 {
        format!("{}…", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}

#[test]
fn hostile_images_are_refused_or_mount_safely() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let all = cases();
    assert!(all.len() >= 40, "the table has {} cases", all.len());
    let names: HashSet<&str> = all.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), all.len(), "case names are unique");
    // SIFMOUNT_HOSTILE_CASE=TEXT runs only the cases whose name holds TEXT.
    let only = std::env::var("SIFMOUNT_HOSTILE_CASE").ok();
    let start = Instant::now();
    let mut failures = Vec::new();
    for case in all {
        if only.as_deref().is_some_and(|o| !case.name.contains(o)) {
            continue;
        }
        println!("case {} ...", case.name);
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let path = dir.path().to_path_buf();
        let name = case.name;
        let (tx, rx) = mpsc::channel();
        let t0 = Instant::now();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_case(&case, &path)
                }));
                let _ = tx.send(r.unwrap_or_else(|p| {
                    Err(p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panicked".into()))
                }));
            })
            .expect("spawn a case thread");
        let result = match rx.recv_timeout(WATCHDOG) {
            Ok(r) => r,
            Err(_) => {
                panic!("case {name}: no outcome within {WATCHDOG:?}: it hangs (or is far too slow)")
            }
        };
        let took = t0.elapsed();
        match result {
            Ok(o) => {
                println!(
                    "  {name}: {} [peak heap {:.1} MiB ({:.1} MiB open) of {:.0} MiB allowed, {:.2} s]",
                    o.line,
                    o.peak as f64 / (1 << 20) as f64,
                    o.open_peak as f64 / (1 << 20) as f64,
                    o.bound as f64 / (1 << 20) as f64,
                    took.as_secs_f64()
                );
                if o.peak > o.bound {
                    failures.push(format!(
                        "{name}: peak heap {} bytes, over the bound of {}",
                        o.peak, o.bound
                    ));
                }
            }
            Err(e) => {
                println!("  {name}: FAILED: {e}");
                failures.push(format!("{name}: {e}"));
            }
        }
        drop(dir);
    }
    println!("all cases in {:.1} s", start.elapsed().as_secs_f64());
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Updating a hostile image

/// An update (what an attach does) walks every document the new root index reaches: a
/// graph that unfolds into billions of paths must be walked once per document, and a
/// cycle refused, within the watchdog.
#[test]
fn updates_walk_each_document_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let table = cases();
    let by_name = |n: &str| {
        table
            .iter()
            .find(|c| c.name == n)
            .unwrap_or_else(|| panic!("no case {n}"))
    };
    let updates: [(&str, Option<&str>); 4] = [
        ("index/dag-40-wide-6-deep", None),
        ("index/dag-40-wide-10-deep", Some("nested more than 8 deep")),
        ("index/references-itself-64-times", Some("a cycle")),
        ("index/two-indexes-in-a-cycle", Some("a cycle")),
    ];
    for (name, refusal) in updates {
        let bytes = match name {
            "index/dag-40-wide-6-deep" => dag(40, 6),
            _ => (by_name(name).build)(),
        };
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let image = dir.path().join("image.sif");
        std::fs::write(&image, bytes).expect("write the image");
        let (tx, rx) = mpsc::channel();
        let path = image.clone();
        std::thread::spawn(move || {
            let r = std::panic::catch_unwind(|| {
                let mut oci = OciSif::open(&path, OpenMode::ReadWrite).expect("open read-write");
                let mut index = oci.root_index().expect("the root index parses");
                index.annotations = Some([("x".to_string(), "y".to_string())].into());
                oci.update_root_index(&index.to_go_json(), &sifmount::oci::NoBlobs)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
            let _ = tx.send(r.map_err(|_| "panicked".to_string()));
        });
        let outcome = rx
            .recv_timeout(WATCHDOG)
            .unwrap_or_else(|_| panic!("updating {name}: no outcome within {WATCHDOG:?}"))
            .unwrap_or_else(|p| panic!("updating {name}: {p}"));
        match (refusal, outcome) {
            (None, Ok(())) => println!("update of {name}: done"),
            (Some(want), Err(e)) => {
                assert!(e.contains(want), "updating {name}: {e}");
                println!("update of {name}: refused: {e}");
            }
            (want, got) => panic!("updating {name}: expected {want:?}, got {got:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Real mounts

/// A few of the nastiest cases through the `sifmount` binary (read-write, as a writable
/// OCI-SIF is mounted): `find`, `find -L` (which fails on a directory loop), `ls -lR` and
/// `cat` of every file succeed within a timeout (`cat` but of files whose bytes do not have
/// their digest), every path is made of single
/// components, and afterwards the image is unchanged and nothing is left beside it.
#[test]
fn real_mount_of_the_nastiest_cases() {
    use mounted::{run, Mount};
    use std::process::Command;
    const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    mounted::require_fuse();
    let table = cases();
    let nasty = [
        "index/references-itself-64-times",
        "index/two-indexes-in-a-cycle",
        "index/missing-blobs",
        "names/ref-with-slashes",
        "names/ref-dot-dot",
        "names/ref-nul-newline-control",
        "names/hostile-platforms",
        "cosign/tag-with-traversal",
        "cosign/dsse-bad-base64",
        "digest/same-digest-different-bytes",
    ];
    for name in nasty {
        let case = table
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no case {name}"));
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let image = dir.path().join("image.sif");
        std::fs::write(&image, (case.build)()).expect("write the image");
        let before = file_digest(&image);
        let m = Mount::daemon(&image);
        let mp = m.mountpoint.clone();
        let mount_dir = mp
            .parent()
            .expect("the mountpoint is in a temp dir")
            .to_path_buf();
        let mount_dir_before = dir_listing(&mount_dir);

        let found = run(Command::new("find").arg(&mp).arg("-print0"), TOOL_TIMEOUT);
        assert!(found.success(), "{name}: find: {}", found.stderr);
        let mut paths = 0;
        for p in found.stdout.split('\0').filter(|p| !p.is_empty()) {
            let rel = p
                .strip_prefix(mp.to_str().expect("a UTF-8 temp path"))
                .unwrap_or_else(|| panic!("{name}: find printed {p:?}, outside {}", mp.display()));
            for part in rel.split('/').skip(1) {
                assert!(
                    !part.is_empty() && part != "." && part != ".." && !part.contains('\n'),
                    "{name}: path {p:?} has the component {part:?}"
                );
            }
            paths += 1;
        }
        for (tool, args) in [
            ("ls", &["-lR"][..]),
            (
                "find",
                &["-L", ".", "-type", "f", "-exec", "cat", "{}", "+"][..],
            ),
            ("find", &[".", "-type", "f", "-exec", "cat", "{}", "+"][..]),
        ] {
            let out = run(Command::new(tool).args(args).current_dir(&mp), TOOL_TIMEOUT);
            // A file whose bytes do not have the digest it is named by is refused with
            // EIO (which bytes `walk` checks); only an image holding such blobs may
            // fail a `cat`, and only so.
            let refused_as_not_its_bytes = || {
                let mismatched = OciSif::open(&image, OpenMode::ReadOnly)
                    .and_then(|o| o.verify_blobs())
                    .is_ok_and(|bad| !bad.is_empty());
                mismatched
                    && out
                        .stderr
                        .lines()
                        .all(|l| l.starts_with("cat: ") && l.ends_with(": Input/output error"))
            };
            assert!(
                out.success() || (args.contains(&"cat") && refused_as_not_its_bytes()),
                "{name}: {tool} {args:?} failed: {}",
                out.stderr
            );
        }
        m.unmount();
        assert_eq!(file_digest(&image), before, "{name}: the image changed");
        assert_eq!(
            dir_listing(dir.path()),
            ["image.sif"],
            "{name}: files beside the image"
        );
        let after: Vec<String> = if mount_dir.exists() {
            dir_listing(&mount_dir)
        } else {
            mount_dir_before.clone()
        };
        assert!(
            after.iter().all(|f| mount_dir_before.contains(f)),
            "{name}: new files beside the mountpoint: {after:?}"
        );
        println!("real mount of {name}: {paths} paths, find/ls -lR/cat fine, image unchanged");
    }

    // `--verify` tells what the mount shows as stored: a blob that is not its digest.
    let case = table
        .iter()
        .find(|c| c.name == "digest/bytes-do-not-match")
        .expect("the case exists");
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let image = dir.path().join("image.sif");
    std::fs::write(&image, (case.build)()).expect("write the image");
    let out = run(
        Command::new(mounted::sifmount_bin())
            .arg("--verify")
            .arg(&image),
        TOOL_TIMEOUT,
    );
    assert!(
        !out.success(),
        "--verify accepted a blob that does not match its digest"
    );
    assert!(
        out.stderr.contains(&image.display().to_string())
            && out.stderr.contains("does not match its digest"),
        "{}",
        out.stderr
    );
    println!(
        "--verify of digest/bytes-do-not-match: {}",
        out.stderr.lines().next().unwrap_or("")
    );
}
