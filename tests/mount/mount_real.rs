//! Real mounts (docs/ARCHITECTURE.md): the `sifmount` binary mounts every upstream
//! SIF and images written by the library; the files it shows are compared with the
//! library's view of the image (`tests/common/oracle.rs`), walked with `stat`, written to
//! (and refused), read by `skopeo`, unmounted in every supported way.
//!
//! Needs /dev/fuse, `fusermount3` and `skopeo` (`.ci/run` installs them); fails, saying
//! so, when one is missing. Every mount is undone by a guard, even when a test fails.
//!
//! Why this file is long: each test mounts images and checks them against the library's
//! view with the same walk (readdir against lookup, stat of every path, expected modes and
//! times), which the read, stat, skopeo, refusal and unmount tests all use.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::CString;
use std::fs::{self, Metadata, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::mounted::{Mode, Mount};
use crate::common::oracle::{list, read, readlink, sha256_hex, Image};
use crate::common::{assert_bytes_eq, images, mounted, oracle, upstream, upstream_sifs};
use sha2::{Digest as _, Sha256};
use sifmount::sif::Digest;

const SKOPEO_TIMEOUT: Duration = Duration::from_secs(120);

fn generated(name: &str) -> PathBuf {
    upstream(&format!("generated/{name}"))
}

// --- 1. every upstream SIF: bytes ----------------------------------------------------------

/// Every SIF under testdata/upstream mounts (daemonized); every blob, object, index and
/// image file equals what the library reads, blobs hash to their names, native SIFs show
/// only /sif.
#[test]
fn every_upstream_sif_mounts_and_shows_its_bytes() {
    let sifs = upstream_sifs();
    assert!(
        sifs.len() >= 100,
        "expected the ~150 upstream SIF files, found {}",
        sifs.len()
    );
    let start = Instant::now();
    let (mut oci, mut native, mut mount_time) = (0, 0, Duration::ZERO);
    for path in &sifs {
        let img = Image::open(path);
        let m = Mount::daemon(path);
        mount_time += m.mount_time;
        oracle::check_contents(&img, &m.mountpoint);
        if img.is_oci() {
            oci += 1;
        } else {
            native += 1;
        }
        m.unmount();
    }
    assert!(oci >= 40 && native >= 40, "{oci} OCI-SIFs, {native} others");
    eprintln!(
        "{} images ({oci} OCI-SIF, {native} native) mounted, compared and unmounted in {:.2?} \
         (mean daemonized mount time {:.1?})",
        sifs.len(),
        start.elapsed(),
        mount_time / sifs.len() as u32
    );
}

// --- 3. every upstream SIF: stat ------------------------------------------------------------

/// What a walk of a mount found.
struct Walk {
    /// Every path relative to the mountpoint (`""` is the root) and its `lstat`.
    paths: BTreeMap<String, Metadata>,
}

impl Walk {
    fn distinct_inodes(&self) -> usize {
        self.paths
            .values()
            .map(|m| m.ino())
            .collect::<HashSet<_>>()
            .len()
    }
}

/// Walks the mount with `read_dir` and `symlink_metadata`, checking that what `readdir`
/// says of each entry (inode, type) is what `lookup` finds, and that listings are stable.
fn walk(mp: &Path) -> Walk {
    let mut paths = BTreeMap::new();
    let root = fs::symlink_metadata(mp).unwrap();
    assert_eq!(root.ino(), 1, "{}: the root is inode 1", mp.display());
    paths.insert(String::new(), root);
    let mut dirs = vec![String::new()];
    while let Some(rel) = dirs.pop() {
        let dir = mp.join(&rel);
        let mut listed = Vec::new();
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let entry = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            let name = entry.file_name().into_string().unwrap();
            let path = entry.path();
            let meta = fs::symlink_metadata(&path)
                .unwrap_or_else(|e| panic!("readdir lists {}, lookup fails: {e}", path.display()));
            assert_eq!(
                entry.ino(),
                meta.ino(),
                "{}: inode from readdir vs lookup",
                path.display()
            );
            assert_eq!(
                entry.file_type().unwrap(),
                meta.file_type(),
                "{}: type from readdir vs lookup",
                path.display()
            );
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if meta.is_dir() {
                dirs.push(child.clone());
            }
            listed.push(name);
            assert!(paths.insert(child, meta).is_none());
        }
        let again: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(listed, again, "{}: listing is stable", dir.display());
        let missing = dir.join("no-such-name");
        assert_eq!(
            fs::symlink_metadata(&missing).map_err(|e| e.kind()).err(),
            Some(ErrorKind::NotFound),
            "{}",
            missing.display()
        );
    }
    Walk { paths }
}

/// Resolves a relative link target lexically from the link's directory; `None` when it
/// leaves the mount.
fn resolve_inside(link_rel: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = link_rel.split('/').collect();
    parts.pop();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// Checks modes, owners, sizes, blocks, times, link counts, hard links, symlinks and
/// inode stability of every path of a mount of `img`.
fn check_stat_walk(img: &Image, m: &Mount) -> Walk {
    let what = img.path.display().to_string();
    let w = walk(&m.mountpoint);
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let mut names_per_ino: HashMap<u64, usize> = HashMap::new();
    for meta in w.paths.values() {
        *names_per_ino.entry(meta.ino()).or_default() += 1;
    }
    for (rel, meta) in &w.paths {
        let p = m.mountpoint.join(rel);
        let at = format!("{what}: /{rel}");
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{at}: owner");
        let ft = meta.file_type();
        let want_mtime = img.expected_mtime(rel, ft.is_file());
        assert_eq!(meta.mtime(), want_mtime, "{at}: mtime");
        assert_eq!(meta.mtime_nsec(), 0, "{at}: mtime nanoseconds");
        assert_eq!(meta.ctime(), want_mtime, "{at}: ctime");
        assert_eq!(meta.atime(), want_mtime, "{at}: atime");
        if ft.is_dir() {
            assert_eq!(
                meta.mode(),
                libc::S_IFDIR | 0o555,
                "{at}: mode {:o}",
                meta.mode()
            );
            let prefix = if rel.is_empty() {
                String::new()
            } else {
                format!("{rel}/")
            };
            let subdirs = w
                .paths
                .iter()
                .filter(|(r, mm)| {
                    mm.is_dir()
                        && r.strip_prefix(&prefix)
                            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
                })
                .count();
            assert_eq!(
                meta.nlink(),
                2 + subdirs as u64,
                "{at}: directory link count"
            );
            assert_eq!(
                names_per_ino[&meta.ino()],
                1,
                "{at}: a directory has one name"
            );
        } else if ft.is_file() {
            assert_eq!(
                meta.mode(),
                libc::S_IFREG | 0o444,
                "{at}: mode {:o}",
                meta.mode()
            );
            let bytes = read(&p);
            assert_eq!(meta.len(), bytes.len() as u64, "{at}: size vs bytes read");
            assert_eq!(meta.blocks(), meta.len().div_ceil(512), "{at}: st_blocks");
            assert_eq!(meta.blksize(), 4096, "{at}: st_blksize");
            assert_eq!(
                meta.nlink(),
                names_per_ino[&meta.ino()] as u64,
                "{at}: link count vs names found with inode {}",
                meta.ino()
            );
            let name = rel.rsplit('/').next().unwrap();
            if rel.starts_with("images/")
                && matches!(name, "manifest.json" | "config.json" | "image-index.json")
            {
                // Content-addressed: the blob with this content's digest is this inode.
                let blob = format!("blobs/sha256/{}", sha256_hex(&bytes));
                let b = w
                    .paths
                    .get(&blob)
                    .unwrap_or_else(|| panic!("{at}: no {blob} with the same bytes"));
                assert_eq!(meta.ino(), b.ino(), "{at}: a hard link of /{blob}");
                assert!(meta.nlink() >= 2, "{at}: nlink {}", meta.nlink());
            }
            if rel.starts_with("images/") && name == "oci-layout" {
                assert_eq!(
                    meta.ino(),
                    w.paths["oci-layout"].ino(),
                    "{at}: a hard link of /oci-layout"
                );
            }
        } else {
            assert!(ft.is_symlink(), "{at}: unexpected file type {ft:?}");
            assert_eq!(
                meta.mode(),
                libc::S_IFLNK | 0o777,
                "{at}: mode {:o}",
                meta.mode()
            );
            assert_eq!(meta.nlink(), 1, "{at}: symlink link count");
            let target = readlink(&p);
            assert_eq!(meta.len(), target.len() as u64, "{at}: symlink size");
            assert!(!target.starts_with('/'), "{at}: absolute target {target}");
            let resolved = resolve_inside(rel, &target)
                .unwrap_or_else(|| panic!("{at}: target {target} leaves the mount"));
            if w.paths.contains_key(&resolved) {
                let real = fs::canonicalize(&p).unwrap();
                assert_eq!(
                    real,
                    m.mountpoint.join(&resolved),
                    "{at}: resolves to /{resolved}"
                );
            } else {
                let hex = resolved.strip_prefix("blobs/sha256/").unwrap_or_else(|| {
                    panic!("{at}: target {target} (/{resolved}) does not exist")
                });
                let d: Digest = format!("sha256:{hex}").parse().unwrap();
                assert!(
                    !img.blobs.contains_key(&d),
                    "{at}: blob {hex} is in the image but /{resolved} is missing"
                );
            }
        }
    }
    // Inode numbers (and everything else) are stable: a second stat of every path agrees.
    for (rel, meta) in &w.paths {
        let again = fs::symlink_metadata(m.mountpoint.join(rel)).unwrap();
        assert_eq!(
            (
                again.ino(),
                again.mode(),
                again.nlink(),
                again.len(),
                again.mtime()
            ),
            (
                meta.ino(),
                meta.mode(),
                meta.nlink(),
                meta.len(),
                meta.mtime()
            ),
            "{what}: /{rel} changed between two stats"
        );
    }
    w
}

/// Every upstream SIF mounted in the foreground: every path's mode, owner, size, blocks,
/// times, link count, hard links, symlink targets, readdir/lookup agreement and inode
/// stability.
#[test]
fn every_upstream_sif_stats_right() {
    let start = Instant::now();
    let sifs = upstream_sifs();
    let mut paths = 0;
    for path in &sifs {
        let img = Image::open(path);
        let m = Mount::foreground(path);
        let w = check_stat_walk(&img, &m);
        paths += w.paths.len();
        let status = m.unmount().expect("a foreground mount has a status");
        assert!(
            status.success(),
            "{}: sifmount -f exited with {status}",
            path.display()
        );
    }
    eprintln!(
        "{} images, {paths} paths walked in {:.2?}",
        sifs.len(),
        start.elapsed()
    );
}

/// Inode numbers are the same across two mounts of the same image.
#[test]
fn inode_numbers_are_stable_across_mounts() {
    let path = generated("hello-world-cosign-manifest-list.oci.sif");
    let inos = |m: &Mount| -> BTreeMap<String, u64> {
        walk(&m.mountpoint)
            .paths
            .into_iter()
            .map(|(rel, meta)| (rel, meta.ino()))
            .collect()
    };
    let first = Mount::daemon(&path);
    let a = inos(&first);
    first.unmount();
    let second = Mount::foreground(&path);
    let b = inos(&second);
    second.unmount();
    assert!(a.len() > 50, "only {} paths", a.len());
    assert_eq!(
        a,
        b,
        "inode numbers differ between two mounts of {}",
        path.display()
    );
}

// --- 2. skopeo -------------------------------------------------------------------------------

fn skopeo(args: &[&str]) -> mounted::Output {
    mounted::require_tool("skopeo", "skopeo");
    mounted::run(Command::new("skopeo").args(args), SKOPEO_TIMEOUT)
}

/// `skopeo inspect` as JSON; fails showing stderr when skopeo does.
fn skopeo_inspect(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["inspect"];
    all.extend(args);
    let out = skopeo(&all);
    assert!(
        out.success(),
        "skopeo {all:?} failed ({}): {}",
        out.status,
        out.stderr
    );
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("skopeo {all:?}: not JSON ({e}): {}", out.stdout))
}

fn digests_of(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

/// Checks a `skopeo copy … dir:DEST` result: the manifest is the image's, and every blob
/// file equals the image's blob of that name.
fn check_copied_dir(img: &Image, dest: &Path, manifest: &Digest) {
    let files = list(dest);
    assert!(files.contains(&"manifest.json".to_string()), "{files:?}");
    let blob = img.blob_bytes(manifest).unwrap();
    assert_bytes_eq(
        &read(&dest.join("manifest.json")),
        &blob,
        "manifest.json copied by skopeo",
    );
    let mut compared = 0;
    for f in &files {
        if f == "manifest.json" || f == "version" {
            continue;
        }
        let d: Digest = format!("sha256:{f}")
            .parse()
            .unwrap_or_else(|e| panic!("skopeo copied an unexpected file {f}: {e}"));
        let want = img
            .blob_bytes(&d)
            .unwrap_or_else(|| panic!("skopeo copied {f}, which is not a blob of the image"));
        assert_bytes_eq(&read(&dest.join(f)), &want, &format!("copied blob {f}"));
        compared += 1;
    }
    let refs: serde_json::Value = serde_json::from_slice(&blob).unwrap();
    let layers = refs["layers"].as_array().map_or(0, Vec::len);
    assert_eq!(
        compared,
        layers + 1,
        "config and every layer copied: {files:?}"
    );
}

/// The demo image (as `examples/make-oci-sif.rs` writes it) is a valid single-image OCI
/// layout for skopeo at the mount's root and under /images/<name>; a copy out of the mount
/// is byte-identical.
#[test]
fn skopeo_reads_a_single_image_oci_sif() {
    let tmp = tempfile::tempdir().unwrap();
    let sif = tmp.path().join("demo.oci.sif");
    let w = images::write_demo_image(&sif);
    let img = Image::open(&sif);
    let m = Mount::daemon(&sif);
    let mp = m.mountpoint.to_str().unwrap().to_string();

    let v = skopeo_inspect(&[&format!("oci:{mp}")]);
    assert_eq!(v["Digest"], w.manifest.to_string(), "{v}");
    assert_eq!(
        digests_of(&v["Layers"]),
        w.layers.iter().map(|d| d.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(v["Architecture"], "amd64");
    assert_eq!(v["Os"], "linux");
    let raw = skopeo(&["inspect", "--raw", &format!("oci:{mp}")]);
    assert!(raw.success(), "{}", raw.stderr);
    assert_bytes_eq(
        raw.stdout.as_bytes(),
        &img.blob_bytes(&w.manifest).unwrap(),
        "skopeo inspect --raw",
    );
    let config = skopeo(&["inspect", "--config", "--raw", &format!("oci:{mp}")]);
    assert!(config.success(), "{}", config.stderr);
    assert_bytes_eq(
        config.stdout.as_bytes(),
        &img.blob_bytes(&w.config).unwrap(),
        "skopeo inspect --config --raw",
    );

    let name = format!("sha256-{}", &w.manifest.hex()[..12]);
    assert_eq!(list(&m.path("images")), std::slice::from_ref(&name));
    let v = skopeo_inspect(&[&format!("oci:{mp}/images/{name}")]);
    assert_eq!(v["Digest"], w.manifest.to_string(), "{v}");

    // An OCI-to-OCI copy with --preserve-digests (skopeo would otherwise gzip the tar
    // layer) keeps every blob byte-identical.
    let dest = tmp.path().join("copy");
    let out = skopeo(&[
        "copy",
        "--quiet",
        "--preserve-digests",
        &format!("oci:{mp}/images/{name}"),
        &format!("oci:{}:copied", dest.display()),
    ]);
    assert!(out.success(), "skopeo copy failed: {}", out.stderr);
    let copied = list(&dest.join("blobs/sha256"));
    let mut want = vec![w.manifest.hex(), w.config.hex()];
    want.extend(w.layers.iter().map(Digest::hex));
    want.sort();
    assert_eq!(copied, want, "blobs copied by skopeo");
    for hex in &copied {
        let d: Digest = format!("sha256:{hex}").parse().unwrap();
        assert_bytes_eq(
            &read(&dest.join("blobs/sha256").join(hex)),
            &img.blob_bytes(&d).unwrap(),
            &format!("copied blob {hex}"),
        );
    }
    m.unmount();
}

/// hello-world signed with cosign: the root index also lists the signature and attestation
/// images, so `oci:MOUNT` is ambiguous for skopeo, while `oci:MOUNT/images/<name>` (a
/// Docker schema 2 manifest) inspects and copies.
#[test]
fn skopeo_reads_images_beside_cosign_signatures() {
    let sif = generated("hello-world-cosign-manifest.oci.sif");
    let img = Image::open(&sif);
    let expected = img.expected_images().unwrap();
    assert_eq!(expected.len(), 1, "one image besides the cosign images");
    let (name, entry) = expected.iter().next().unwrap();
    let m = Mount::daemon(&sif);
    let mp = m.mountpoint.to_str().unwrap().to_string();

    let out = skopeo(&["inspect", &format!("oci:{mp}")]);
    assert!(
        !out.success(),
        "skopeo inspect oci:MOUNT should be ambiguous: {}",
        out.stdout
    );
    assert!(
        out.stderr.contains("more than one image"),
        "skopeo should refuse the root index listing several images, said: {}",
        out.stderr
    );

    let v = skopeo_inspect(&[&format!("oci:{mp}/images/{name}")]);
    assert_eq!(v["Digest"], entry.digest.to_string(), "{v}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&img.blob_bytes(&entry.digest).unwrap()).unwrap();
    let want_layers: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(digests_of(&v["Layers"]), want_layers);

    // dir: keeps the Docker manifest as it is, so the copy compares byte for byte.
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("copy");
    let out = skopeo(&[
        "copy",
        "--quiet",
        &format!("oci:{mp}/images/{name}"),
        &format!("dir:{}", dest.display()),
    ]);
    assert!(out.success(), "skopeo copy failed: {}", out.stderr);
    check_copied_dir(&img, &dest, &entry.digest);
    m.unmount();
}

/// A manifest list (hello-world for many platforms): skopeo picks linux/amd64 from
/// /images/<name>, reads the list raw, and copies that platform's image.
#[test]
fn skopeo_reads_a_manifest_list() {
    let sif = generated("hello-world-cosign-manifest-list.oci.sif");
    let img = Image::open(&sif);
    let expected = img.expected_images().unwrap();
    assert_eq!(expected.len(), 1, "one image besides the cosign images");
    let (name, entry) = expected.iter().next().unwrap();
    let list_bytes = img.blob_bytes(&entry.digest).unwrap();
    let index = sifmount::oci::Index::parse(&list_bytes).unwrap();
    let amd64 = index
        .entries()
        .iter()
        .find(|e| {
            e.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
        })
        .expect("the list has linux/amd64")
        .digest;
    let m = Mount::foreground(&sif);
    let mp = m.mountpoint.to_str().unwrap().to_string();
    let src = format!("oci:{mp}/images/{name}");
    let platform = ["--override-os", "linux", "--override-arch", "amd64"];

    let raw = skopeo(&["inspect", "--raw", &src]);
    assert!(raw.success(), "{}", raw.stderr);
    assert_bytes_eq(
        raw.stdout.as_bytes(),
        &list_bytes,
        "skopeo inspect --raw of the list",
    );
    let mut args = platform.to_vec();
    args.push(&src);
    let v = skopeo_inspect(&args);
    // skopeo reports the digest of the list it was given and the chosen image's layers.
    assert_eq!(v["Digest"], entry.digest.to_string(), "{v}");
    assert_eq!(v["Architecture"], "amd64");
    let manifest: serde_json::Value =
        serde_json::from_slice(&img.blob_bytes(&amd64).unwrap()).unwrap();
    let want_layers: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        digests_of(&v["Layers"]),
        want_layers,
        "layers of linux/amd64"
    );

    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("copy");
    let dest_ref = format!("dir:{}", dest.display());
    let mut args = platform.to_vec();
    args.extend(["copy", "--quiet", &src, &dest_ref]);
    let out = skopeo(&args);
    assert!(out.success(), "skopeo copy failed: {}", out.stderr);
    check_copied_dir(&img, &dest, &amd64);
    m.unmount();
}

// --- 4. errors, xattrs, statfs ----------------------------------------------------------------

fn assert_erofs<T: std::fmt::Debug>(r: std::io::Result<T>, what: &str) {
    match r {
        Err(e) => assert_eq!(
            e.raw_os_error(),
            Some(libc::EROFS),
            "{what}: expected EROFS, got {e}"
        ),
        Ok(v) => panic!("{what}: succeeded ({v:?}) on a read-only mount"),
    }
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// The result of a libc call returning -1 on error.
fn libc_result(rc: libc::c_int) -> std::io::Result<libc::c_int> {
    if rc == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Every kind of change is refused with EROFS, and nothing changes.
#[test]
fn changes_fail_with_erofs() {
    let sif = generated("hello-world-cosign-manifest.oci.sif");
    let m = Mount::foreground(&sif);
    let file = m.path("oci-layout");
    let blob = m.path(&format!(
        "blobs/sha256/{}",
        list(&m.path("blobs/sha256"))[0]
    ));
    let before = walk(&m.mountpoint).paths.len();

    assert_erofs(OpenOptions::new().write(true).open(&file), "open O_WRONLY");
    assert_erofs(OpenOptions::new().append(true).open(&blob), "open O_APPEND");
    assert_erofs(
        OpenOptions::new().read(true).write(true).open(&blob),
        "open O_RDWR",
    );
    assert_erofs(
        OpenOptions::new().write(true).truncate(true).open(&file),
        "open O_TRUNC",
    );
    assert_erofs(fs::File::create(m.path("new-file")), "create");
    assert_erofs(
        fs::File::create(m.path("cosign/new-file")),
        "create in /cosign",
    );
    assert_erofs(
        fs::write(m.path("blobs/sha256/x"), b"x"),
        "write a new blob",
    );
    assert_erofs(fs::create_dir(m.path("newdir")), "mkdir");
    assert_erofs(fs::create_dir(m.path("cosign/entry")), "mkdir in /cosign");
    assert_erofs(fs::remove_file(&file), "unlink");
    assert_erofs(fs::remove_dir(m.path("cosign")), "rmdir");
    assert_erofs(fs::rename(&file, m.path("renamed")), "rename");
    assert_erofs(
        fs::rename(m.path("images"), m.path("cosign/images")),
        "rename a directory",
    );
    assert_erofs(
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)),
        "chmod",
    );
    let c = cpath(&file);
    assert_erofs(
        libc_result(unsafe { libc::truncate(c.as_ptr(), 0) }),
        "truncate",
    );
    assert_erofs(
        libc_result(unsafe { libc::chown(c.as_ptr(), 1, 1) }),
        "chown",
    );
    assert_erofs(
        libc_result(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), std::ptr::null(), 0) }),
        "utimensat",
    );
    assert_erofs(
        std::os::unix::fs::symlink("oci-layout", m.path("link")),
        "symlink",
    );
    assert_erofs(fs::hard_link(&file, m.path("hardlink")), "link");
    let fifo = cpath(&m.path("fifo"));
    assert_erofs(
        libc_result(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }),
        "mkfifo",
    );
    // set_len on a file opened read-only: the descriptor is not writable.
    let f = fs::File::open(&file).unwrap();
    let e = f.set_len(0).unwrap_err();
    drop(f);
    assert!(
        matches!(
            e.raw_os_error(),
            Some(libc::EINVAL) | Some(libc::EBADF) | Some(libc::EROFS)
        ),
        "ftruncate of a read-only descriptor: {e}"
    );

    // Wrong kinds: reading a directory, reading a link as a file, a missing name.
    let mut s = String::new();
    let e = fs::File::open(m.path("blobs"))
        .unwrap()
        .read_to_string(&mut s)
        .unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(libc::EISDIR),
        "read of a directory: {e}"
    );
    let e = fs::read_link(&file).unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(libc::EINVAL),
        "readlink of a file: {e}"
    );
    let e = fs::read(m.path("no-such-file")).unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(libc::ENOENT),
        "open of a missing name: {e}"
    );

    assert_eq!(walk(&m.mountpoint).paths.len(), before, "nothing was added");
    assert_bytes_eq(
        &read(&file),
        oracle::OCI_LAYOUT,
        "oci-layout after the attempts",
    );
    let status = m.unmount().unwrap();
    assert!(status.success(), "sifmount -f exited with {status}");
}

/// Extended attributes are not implemented: sifmount answers ENOSYS, which the kernel's
/// FUSE client turns into EOPNOTSUPP (== ENOTSUP on Linux) for getxattr and listxattr;
/// setting one fails with EROFS (the mount is read-only).
#[test]
fn xattrs_are_not_supported() {
    let sif = generated("squashfs-image.oci.sif");
    let m = Mount::daemon(&sif);
    for rel in ["oci-layout", "", "images"] {
        let p = cpath(&m.path(rel));
        let name = CString::new("user.test").unwrap();
        let mut buf = [0u8; 64];
        let rc = unsafe {
            libc::getxattr(
                p.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        let e = std::io::Error::last_os_error();
        assert_eq!(rc, -1, "getxattr /{rel} succeeded");
        assert_eq!(
            e.raw_os_error(),
            Some(libc::EOPNOTSUPP),
            "getxattr /{rel}: {e}"
        );
        let rc = unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        let e = std::io::Error::last_os_error();
        assert_eq!(rc, -1, "listxattr /{rel} succeeded");
        assert_eq!(
            e.raw_os_error(),
            Some(libc::EOPNOTSUPP),
            "listxattr /{rel}: {e}"
        );
        let rc = unsafe { libc::setxattr(p.as_ptr(), name.as_ptr(), b"x".as_ptr().cast(), 1, 0) };
        let e = std::io::Error::last_os_error();
        assert_eq!(rc, -1, "setxattr /{rel} succeeded");
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "setxattr /{rel}: {e}");
    }
    m.unmount();
}

/// `statvfs`: 4096-byte blocks, the image's size in blocks, one inode per node, nothing
/// free, read-only, 255-byte names.
#[test]
fn statfs_reports_the_image() {
    for name in [
        "hello-world-cosign-manifest-list.oci.sif",
        "squashfs-image.signed2.oci.sif",
    ] {
        let sif = generated(name);
        let m = Mount::daemon(&sif);
        let inodes = walk(&m.mountpoint).distinct_inodes() as u64;
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let p = cpath(&m.mountpoint);
        libc_result(unsafe { libc::statvfs(p.as_ptr(), &mut st) }).expect("statvfs");
        let size = fs::metadata(&sif).unwrap().len();
        assert_eq!(st.f_bsize, 4096, "{name}: f_bsize");
        assert_eq!(st.f_frsize, 4096, "{name}: f_frsize");
        assert_eq!(st.f_blocks as u64, size.div_ceil(4096), "{name}: f_blocks");
        assert_eq!((st.f_bfree, st.f_bavail), (0, 0), "{name}: free blocks");
        assert_eq!(
            st.f_files as u64, inodes,
            "{name}: f_files vs inodes walked"
        );
        assert_eq!(st.f_ffree, 0, "{name}: f_ffree");
        assert_eq!(st.f_namemax, 255, "{name}: f_namemax");
        assert_ne!(st.f_flag & libc::ST_RDONLY, 0, "{name}: ST_RDONLY");
        m.unmount();
    }
}

// --- 5. mount table entry and unmounting ---------------------------------------------------

/// The mount is a read-only `fuse.sifmount` whose source names the image.
#[test]
fn mount_table_entry() {
    let sif = generated("squashfs-image.oci.sif");
    let m = Mount::daemon(&sif);
    let e = mounted::mount_at(&m.mountpoint).unwrap();
    assert_eq!(e.fs_type, "fuse.sifmount", "{e:?}");
    assert!(
        e.options.split(',').any(|o| o == "ro"),
        "mounted read-only: {e:?}"
    );
    assert!(
        e.source.ends_with("squashfs-image.oci.sif"),
        "the source shown is the image: {e:?}"
    );
    m.unmount();
}

/// `sifmount -u MOUNTPOINT` unmounts a daemonized mount and its daemon exits; the same for
/// a foreground one, which exits with status 0.
#[test]
fn sifmount_u_unmounts() {
    let sif = generated("squashfs-image.oci.sif");
    for mode in [Mode::Daemon, Mode::Foreground] {
        let mut m = Mount::new(&sif, mode, &[]);
        let pid = m.pid();
        let out = mounted::run(
            Command::new(mounted::sifmount_bin())
                .arg("-u")
                .arg(&m.mountpoint),
            mounted::EXIT_TIMEOUT,
        );
        assert!(
            out.success(),
            "sifmount -u {} failed ({}): {}",
            m.mountpoint.display(),
            out.status,
            out.stderr
        );
        assert!(
            !mounted::is_mounted(&m.mountpoint),
            "{mode:?}: {} still mounted when sifmount -u returned",
            m.mountpoint.display()
        );
        let status = m.wait_gone();
        assert!(
            !mounted::process_alive(pid),
            "{mode:?}: pid {pid} still alive"
        );
        if let Some(status) = status {
            assert!(status.success(), "sifmount -f exited with {status}");
        }
    }
}

/// `fusermount3 -u` ends both kinds of mount: the daemon exits, the foreground process
/// exits with status 0.
#[test]
fn fusermount_u_ends_the_process() {
    let sif = generated("squashfs-image.oci.sif");
    let m = Mount::daemon(&sif);
    let pid = m.pid();
    assert!(m.unmount().is_none());
    assert!(!mounted::process_alive(pid));
    let m = Mount::foreground(&sif);
    let status = m.unmount().expect("foreground status");
    assert!(status.success(), "sifmount -f exited with {status}");
}

/// SIGTERM and SIGINT to `sifmount -f` unmount cleanly (status 0, no mount left); SIGTERM
/// to the daemon does too.
#[test]
fn signals_unmount_cleanly() {
    let sif = generated("squashfs-image.oci.sif");
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut m = Mount::foreground(&sif);
        // The mount works before the signal.
        assert_eq!(list(&m.path("blobs")), ["sha256"]);
        mounted::send_signal(m.pid(), signal);
        let status = m.wait_gone().expect("foreground status");
        assert!(
            status.success(),
            "sifmount -f after signal {signal} exited with {status}; log: {}",
            m.log_text()
        );
    }
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut m = Mount::daemon(&sif);
        let pid = m.pid();
        mounted::send_signal(pid, signal);
        m.wait_gone();
        assert!(
            !mounted::process_alive(pid),
            "daemon {pid} alive after signal {signal}"
        );
    }
}

// --- 6. a large blob -------------------------------------------------------------------------

const LARGE: u64 = 256 << 20;

/// Reads a whole file in 1 MiB reads; returns the bytes' digest (when `hash`) and the time
/// spent in `read` calls alone.
fn read_timed(path: &Path, hash: bool) -> (Option<String>, Duration, u64) {
    let mut f = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buf = vec![0u8; 1 << 20];
    let mut hasher = Sha256::new();
    let mut in_read = Duration::ZERO;
    let mut total = 0u64;
    loop {
        let t = Instant::now();
        let n = f
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        in_read += t.elapsed();
        if n == 0 {
            break;
        }
        total += n as u64;
        if hash {
            hasher.update(&buf[..n]);
        }
    }
    let hex = hash.then(|| {
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    });
    (hex, in_read, total)
}

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}

/// A 256 MiB layer reads back through the mount (and through its layers/ link) to its
/// digest; mount time and throughput are printed (run with --nocapture to see them).
#[test]
fn large_blob_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let sif = tmp.path().join("large.oci.sif");
    let t = Instant::now();
    let blob = images::GeneratedBlob::new(0x5eed, LARGE);
    let w = images::write_image(&sif, &[(blob.digest, LARGE)], &blob, 0);
    let made = t.elapsed();
    let m = Mount::daemon(&sif);
    let path = m.path(&format!("blobs/sha256/{}", blob.digest.hex()));
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), LARGE);
    assert_eq!(meta.blocks(), LARGE / 512);

    let (_, first, n) = read_timed(&path, false);
    assert_eq!(n, LARGE, "bytes read");
    let (hex, second, _) = read_timed(&path, true);
    assert_eq!(
        hex.unwrap(),
        blob.digest.hex(),
        "the 256 MiB blob read through the mount hashes to its name"
    );
    // Reads at an odd offset across the end of the file stop at the end.
    let name = list(&m.path("images"))[0].clone();
    let layer = m.path(&format!("images/{name}/layers/0"));
    let mut f = fs::File::open(&layer).unwrap();
    use std::io::{Seek, SeekFrom};
    f.seek(SeekFrom::Start(LARGE - 1000)).unwrap();
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).unwrap();
    drop(f);
    assert_eq!(tail.len(), 1000);
    let mut gen = images::Generated::new(0x5eed, LARGE);
    std::io::copy(&mut (&mut gen).take(LARGE - 1000), &mut std::io::sink()).unwrap();
    let mut want = Vec::new();
    gen.read_to_end(&mut want).unwrap();
    assert_bytes_eq(&tail, &want, "last 1000 bytes through layers/0");
    assert_eq!(w.layers, [blob.digest]);

    eprintln!(
        "large blob: {} MiB image written in {made:.2?}; mount (sifmount IMAGE MP returns) \
         {:.1?}; first read {:.0} MB/s ({first:.2?}), re-read {:.0} MB/s ({second:.2?}); \
         {} build",
        LARGE >> 20,
        m.mount_time,
        mb_per_s(LARGE, first),
        mb_per_s(LARGE, second),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    );
    m.unmount();
}

/// Dropping a mount without unmounting (what happens when a test fails midway) unmounts
/// it, ends its process and removes the temporary mountpoint.
#[test]
fn dropping_a_mount_cleans_up() {
    let sif = generated("squashfs-image.oci.sif");
    for mode in [Mode::Daemon, Mode::Foreground] {
        let m = Mount::new(&sif, mode, &[]);
        let (mp, pid) = (m.mountpoint.clone(), m.pid());
        drop(m);
        assert!(!mounted::is_mounted(&mp), "{} still mounted", mp.display());
        assert!(
            !mounted::process_alive(pid),
            "{mode:?}: pid {pid} still alive"
        );
        assert!(
            !mp.parent().unwrap().exists(),
            "{} left behind",
            mp.display()
        );
    }
}

/// The large blob's generator gives the same stream whatever the read sizes (the writer,
/// the digest and the checks read it in different pieces).
#[test]
fn generated_bytes_do_not_depend_on_read_sizes() {
    let size = 10_007;
    let mut whole = Vec::new();
    images::Generated::new(7, size)
        .read_to_end(&mut whole)
        .unwrap();
    assert_eq!(whole.len() as u64, size);
    for step in [1, 3, 8, 13, 4096] {
        let mut g = images::Generated::new(7, size);
        let mut got = Vec::new();
        let mut buf = vec![0u8; step];
        loop {
            let n = g.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_bytes_eq(&got, &whole, &format!("reads of {step} bytes"));
    }
}
