//! The file tree of a mount, without a kernel (the man page, THE TREE): every upstream image builds
//! a tree whose files hold exactly the bytes of the SIF, named as the design says, with
//! consistent attributes and links.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::lookup::tree_names as names;
use crate::common::{self, upstream, upstream_sifs};
use sha2::{Digest as _, Sha256};
use sifmount::oci::{media_type, Descriptor, Index, OciSif};
use sifmount::sif::{Digest, OpenMode, SifImage};
use sifmount::tree::{Attr, Ino, Kind, Tree, TreeError, DIR_PERM, FILE_PERM, ROOT, SYMLINK_PERM};

/// The layer blob oci-tools' `TestRemoveBlob` goldens remove from an image that still
/// lists it.
const REMOVED_LAYER: &str = "7050e35b49f5e348c4809f5eff915842962cb813f32062d3bbdd35c750dd7d01";

/// The one upstream OCI-SIF whose root index does not parse (truncated digests).
const UNPARSEABLE_INDEX: &str = "sylabs-sif/test/images/one-object-oci-root-index.sif";

fn read_all(tree: &Tree, ino: Ino) -> Vec<u8> {
    let size = tree.attr(ino).unwrap().size as usize;
    let mut buf = vec![0u8; size + 1];
    let n = tree.read(ino, 0, &mut buf).unwrap();
    assert_eq!(n, size, "inode {ino}: read returned {n} of {size} bytes");
    buf.truncate(n);
    buf
}

fn read_path(tree: &Tree, path: &str) -> Vec<u8> {
    let attr = tree.resolve(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    read_all(tree, attr.ino)
}

/// Every node of the tree by path ("" is the root), walking directories only.
fn walk(tree: &Tree) -> BTreeMap<String, Attr> {
    fn go(tree: &Tree, ino: Ino, path: &str, out: &mut BTreeMap<String, Attr>) {
        out.insert(path.to_string(), tree.attr(ino).unwrap());
        for e in tree.entries(ino).unwrap() {
            let child = if path.is_empty() {
                e.name.clone()
            } else {
                format!("{path}/{}", e.name)
            };
            if e.kind == Kind::Dir {
                go(tree, e.ino, &child, out);
            } else {
                out.insert(child, tree.attr(e.ino).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    go(tree, ROOT, "", &mut out);
    out
}

/// Go's zero time in Unix seconds, which zero-time SIFs hold.
const GO_ZERO: i64 = -62_135_596_800;

/// The time a tree shows for a SIF time `t` of the image at `path`: the file's own
/// modification time when the SIF recorded none (the man page, THE TREE).
fn shown_time(t: i64, path: &Path) -> i64 {
    if t == 0 || t == GO_ZERO {
        std::os::unix::fs::MetadataExt::mtime(&std::fs::metadata(path).unwrap())
    } else {
        t
    }
}

/// The tag an image's layouts give it: its root-index reference name when that is one
/// component of the image specification's reference grammar (what skopeo and umoci take
/// after `DIR:`), else `latest`.
fn expected_tag(root_entry: &Descriptor) -> String {
    let grammar = regex::Regex::new(r"^[A-Za-z0-9]+(?:(?:[-._]|--)[A-Za-z0-9]+)*$").unwrap();
    match root_entry.ref_name() {
        Some(name) if name.len() <= 128 && grammar.is_match(name) => name.to_string(),
        _ => "latest".to_string(),
    }
}

/// Checks that `at` (`depth` directories below the root) is an OCI layout of `entry`
/// alone, tagged `tag`, with `blobs/sha256` linking to the root's.
fn check_layout(tree: &Tree, at: &str, entry: &Descriptor, tag: &str, shown: &str) {
    let one: Index = Index::parse(&read_path(tree, &format!("{at}/index.json"))).unwrap();
    assert_eq!(
        one.entries().len(),
        1,
        "{shown}: {at}/index.json has one entry"
    );
    let mut listed = one.entries()[0].clone();
    assert_eq!(listed.ref_name(), Some(tag), "{shown}: {at}/index.json tag");
    let mut want = entry.clone();
    listed.remove_annotation(sifmount::oci::REF_NAME);
    want.remove_annotation(sifmount::oci::REF_NAME);
    assert_eq!(listed, want, "{shown}: {at}/index.json lists its image");
    assert_eq!(names(tree, &format!("{at}/blobs")), ["sha256"]);
    let link = format!("{at}/blobs/sha256");
    let target = tree.readlink(tree.resolve(&link).unwrap().ino).unwrap();
    assert_eq!(
        link_destination(&link, target),
        "blobs/sha256",
        "{shown}: {link}"
    );
    assert_eq!(
        read_path(tree, &format!("{at}/oci-layout")),
        read_path(tree, "oci-layout")
    );
}

/// The path a relative symlink target at `link` points to, normalised.
fn link_destination(link: &str, target: &str) -> String {
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for p in target.split('/') {
        match p {
            ".." => {
                assert!(parts.pop().is_some(), "{link} -> {target} leaves the mount");
            }
            "." | "" => {}
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// Checks what must hold of every tree: modes, sizes, blocks, link counts, `.`/`..`,
/// sorted unique names, and symlinks that stay inside and (unless `dangling` lists them)
/// resolve.
fn check_consistency(tree: &Tree, shown: &str, warnings: &[String]) {
    let all = walk(tree);
    let mut links_to: BTreeMap<Ino, u32> = BTreeMap::new();
    for (path, a) in &all {
        match a.kind {
            Kind::Dir => {
                assert_eq!(a.perm, DIR_PERM, "{shown}: {path}");
                let entries = tree.entries(a.ino).unwrap();
                let sorted: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
                let mut want = sorted.clone();
                want.sort();
                want.dedup();
                assert_eq!(sorted, want, "{shown}: {path}: names sorted and unique");
                let subdirs = entries.iter().filter(|e| e.kind == Kind::Dir).count() as u32;
                assert_eq!(a.nlink, 2 + subdirs, "{shown}: {path}: nlink");
                for e in entries {
                    assert!(
                        !e.name.is_empty()
                            && !e.name.contains('/')
                            && e.name != ".."
                            && e.name != ".",
                        "{shown}: {path}: bad name {:?}",
                        e.name
                    );
                    assert_eq!(tree.lookup(a.ino, e.name.as_bytes()).unwrap().ino, e.ino);
                    if e.kind == Kind::Dir {
                        assert_eq!(
                            tree.parent(e.ino).unwrap(),
                            a.ino,
                            "{shown}: {path}/{}/..",
                            e.name
                        );
                    } else {
                        *links_to.entry(e.ino).or_default() += 1;
                    }
                }
            }
            Kind::File => {
                assert_eq!(a.perm, FILE_PERM, "{shown}: {path}");
                assert_eq!(a.blocks, a.size.div_ceil(512), "{shown}: {path}: st_blocks");
            }
            Kind::Symlink => {
                assert_eq!(a.perm, SYMLINK_PERM, "{shown}: {path}");
                let target = tree.readlink(a.ino).unwrap();
                assert_eq!(a.size, target.len() as u64, "{shown}: {path}: symlink size");
                assert!(
                    !target.starts_with('/'),
                    "{shown}: {path} -> {target} is absolute"
                );
                let dest = link_destination(path, target);
                if let Err(e) = tree.resolve(&dest) {
                    // A link to a missing blob is kept (it says what is missing) and the
                    // build reports it; any other dangling link is a bug.
                    let blob = dest.rsplit('/').next().unwrap();
                    assert!(
                        warnings.iter().any(|w| w.contains(blob)),
                        "{shown}: {path} -> {target} dangles ({e}) and no warning says why"
                    );
                }
            }
        }
    }
    assert_eq!(tree.parent(ROOT).unwrap(), ROOT);
    for (ino, count) in links_to {
        assert_eq!(
            tree.attr(ino).unwrap().nlink,
            count,
            "{shown}: inode {ino}: nlink equals its number of names"
        );
    }
    let inodes: BTreeSet<Ino> = all.values().map(|a| a.ino).collect();
    assert_eq!(
        tree.stats().files,
        inodes.len() as u64,
        "{shown}: statfs counts every inode"
    );
}

#[test]
fn every_upstream_sif_builds_a_tree_holding_its_exact_bytes() {
    let (mut oci_count, mut native_count) = (0, 0);
    for path in upstream_sifs() {
        let shown = path.display().to_string();
        let (tree, report) =
            Tree::open_with_report(&path).unwrap_or_else(|e| panic!("{shown}: {e}"));
        let sif = SifImage::open(&path, OpenMode::ReadOnly).unwrap();

        // /sif/objects: one file per used descriptor, bytes as stored.
        let objects = names(&tree, "sif/objects");
        assert_eq!(objects.len(), sif.used_count(), "{shown}: /sif/objects");
        for (_, d) in sif.descriptors() {
            let name = objects
                .iter()
                .find(|n| n.split('-').next() == Some(&d.id.to_string()))
                .unwrap_or_else(|| panic!("{shown}: no /sif/objects entry for id {}", d.id));
            let file = format!("sif/objects/{name}");
            assert_eq!(
                read_path(&tree, &file),
                sif.read_object(d).unwrap(),
                "{shown}: {file}"
            );
            assert_eq!(
                tree.resolve(&file).unwrap().mtime,
                shown_time(d.modified_at, &path),
                "{shown}: {file}"
            );
        }
        let header: serde_json::Value =
            serde_json::from_slice(&read_path(&tree, "sif/header.json")).unwrap();
        assert_eq!(header["descriptorsTotal"], sif.header().descriptors_total);
        assert_eq!(header["dataSize"], sif.header().data_size);
        let descriptors: serde_json::Value =
            serde_json::from_slice(&read_path(&tree, "sif/descriptors.json")).unwrap();
        assert_eq!(descriptors.as_array().unwrap().len(), sif.used_count());

        match OciSif::from_sif(sif) {
            Err(_) => {
                native_count += 1;
                assert_eq!(
                    names(&tree, ""),
                    ["sif"],
                    "{shown}: a native SIF shows /sif only"
                );
                assert!(report.warnings.is_empty(), "{shown}: {:?}", report.warnings);
            }
            Ok(oci) => {
                oci_count += 1;
                assert_eq!(
                    names(&tree, ""),
                    [
                        "blobs",
                        "cosign",
                        "images",
                        "index.json",
                        "oci-layout",
                        "sif"
                    ],
                    "{shown}"
                );
                assert_eq!(
                    read_path(&tree, "oci-layout"),
                    br#"{"imageLayoutVersion": "1.0.0"}"#
                );
                assert_eq!(
                    read_path(&tree, "index.json"),
                    oci.root_index_bytes().unwrap()
                );
                let listed: BTreeSet<String> = names(&tree, "blobs/sha256").into_iter().collect();
                let stored: BTreeSet<String> = oci.blobs().map(|(d, _)| d.hex()).collect();
                assert_eq!(
                    listed, stored,
                    "{shown}: /blobs/sha256 lists every blob once"
                );
                for hex in &listed {
                    let bytes = read_path(&tree, &format!("blobs/sha256/{hex}"));
                    assert_eq!(
                        format!("{:x}", Sha256::digest(&bytes)),
                        *hex,
                        "{shown}: blob {hex} hashes to its name"
                    );
                }
                if path.ends_with(UNPARSEABLE_INDEX) {
                    assert!(names(&tree, "images").is_empty());
                    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
                    assert!(
                        report.warnings[0].contains("root index"),
                        "{:?}",
                        report.warnings
                    );
                } else {
                    // oci-tools' TestRemoveBlob goldens removed a layer blob that their
                    // manifest still lists: the only other warning upstream files give.
                    assert!(
                        report.warnings.iter().all(|w| w.contains(REMOVED_LAYER)),
                        "{shown}: {:?}",
                        report.warnings
                    );
                    check_images(&tree, &oci, &shown);
                }
            }
        }
        check_consistency(&tree, &shown, &report.warnings);
    }
    assert_eq!(
        (oci_count, native_count),
        (61, 90),
        "(OCI-SIFs, native SIFs) seen"
    );
}

/// `/images/` has one layout per non-cosign root-index entry, and its documents are the
/// blobs the entry references.
fn check_images(tree: &Tree, oci: &OciSif, shown: &str) {
    let index = oci.root_index().unwrap();
    let images: Vec<&Descriptor> = index
        .entries()
        .iter()
        .filter(|e| !e.ref_name().is_some_and(|r| r.starts_with("_cosign:")))
        .collect();
    let dirs = names(tree, "images");
    assert_eq!(
        dirs.len(),
        images.len(),
        "{shown}: /images has one entry per image"
    );
    for dir in dirs {
        let at = format!("images/{dir}");
        let one: Index = Index::parse(&read_path(tree, &format!("{at}/index.json"))).unwrap();
        let digest = one.entries()[0].digest;
        let entry = images
            .iter()
            .find(|e| e.digest == digest)
            .unwrap_or_else(|| panic!("{shown}: {at} is not a root-index entry"));
        let tag = expected_tag(entry);
        check_layout(tree, &at, entry, &tag, shown);
        check_image_content(tree, oci, &at, entry, &tag, shown);
    }
}

fn check_image_content(
    tree: &Tree,
    oci: &OciSif,
    at: &str,
    entry: &Descriptor,
    tag: &str,
    shown: &str,
) {
    let blob = oci.read_blob(&entry.digest).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&blob).unwrap();
    let blob_ino = tree
        .resolve(&format!("blobs/sha256/{}", entry.digest.hex()))
        .unwrap()
        .ino;
    if media_type::is_index(&entry.media_type) {
        let file = tree.resolve(&format!("{at}/image-index.json")).unwrap();
        assert_eq!(
            file.ino, blob_ino,
            "{shown}: {at}/image-index.json is the index blob"
        );
        let subdirs: Vec<String> = tree
            .entries(tree.resolve(at).unwrap().ino)
            .unwrap()
            .iter()
            .filter(|e| {
                e.kind == Kind::Dir && !["layers", "signatures", "blobs"].contains(&&*e.name)
            })
            .map(|e| e.name.clone())
            .collect();
        let manifests = doc["manifests"].as_array().unwrap();
        assert_eq!(
            subdirs.len(),
            manifests.len(),
            "{shown}: {at}: one subdirectory per entry"
        );
        for sub in subdirs {
            let sub_at = format!("{at}/{sub}");
            let manifest_ino = tree
                .resolve(&format!("{sub_at}/manifest.json"))
                .unwrap()
                .ino;
            let m = manifests
                .iter()
                .find(|m| {
                    let d: Digest = m["digest"].as_str().unwrap().parse().unwrap();
                    tree.resolve(&format!("blobs/sha256/{}", d.hex()))
                        .unwrap()
                        .ino
                        == manifest_ino
                })
                .unwrap_or_else(|| panic!("{shown}: {sub_at} is not an entry of the index"));
            let platform = &m["platform"];
            if platform.is_object() {
                assert!(
                    sub.starts_with(&format!(
                        "{}-{}",
                        platform["os"].as_str().unwrap(),
                        platform["architecture"].as_str().unwrap()
                    )),
                    "{shown}: {sub_at} is named after its platform {platform}"
                );
            }
            let d: Descriptor = serde_json::from_value(m.clone()).unwrap();
            check_layout(tree, &sub_at, &d, tag, shown);
            check_image_content(tree, oci, &sub_at, &d, tag, shown);
        }
        return;
    }
    let manifest = tree.resolve(&format!("{at}/manifest.json")).unwrap();
    assert_eq!(
        manifest.ino, blob_ino,
        "{shown}: {at}/manifest.json is the manifest blob"
    );
    let config: Digest = doc["config"]["digest"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        read_path(tree, &format!("{at}/config.json")),
        oci.read_blob(&config).unwrap(),
        "{shown}: {at}/config.json"
    );
    let layers = doc["layers"].as_array().unwrap();
    let links = names(tree, &format!("{at}/layers"));
    assert_eq!(links.len(), layers.len(), "{shown}: {at}/layers");
    for (link, layer) in links.iter().zip(layers) {
        let path = format!("{at}/layers/{link}");
        let target = tree.readlink(tree.resolve(&path).unwrap().ino).unwrap();
        let digest: Digest = layer["digest"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            link_destination(&path, target),
            format!("blobs/sha256/{}", digest.hex())
        );
    }
}

#[test]
fn multi_arch_cosign_fixture_shows_one_image_with_a_directory_per_platform() {
    let tree = Tree::open(&upstream(
        "generated/hello-world-cosign-manifest-list.oci.sif",
    ))
    .unwrap();
    assert_eq!(names(&tree, "images"), ["sha256-00e1ee7c898a"]);
    assert_eq!(
        names(&tree, "images/sha256-00e1ee7c898a"),
        [
            "blobs",
            "image-index.json",
            "index.json",
            "linux-386",
            "linux-amd64",
            "linux-arm-v5",
            "linux-arm-v7",
            "linux-arm64-v8",
            "linux-mips64le",
            "linux-ppc64le",
            "linux-riscv64",
            "linux-s390x",
            "oci-layout",
            "signatures",
            "signed",
        ]
    );
    // The index's own signature and attestation (each platform's signature is about
    // that platform's manifest); nothing verifies without a key.
    let signed = tree.resolve("images/sha256-00e1ee7c898a/signed").unwrap();
    let text = String::from_utf8(read_all(&tree, signed.ino)).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("signed: 2 entries; not verified (no --key or certificate identity given)")
    );
    let mut entries: Vec<&str> = lines.collect();
    entries.sort();
    assert_eq!(entries, ["att-00e1ee7c898a2-1", "sig-00e1ee7c898a2-1"]);
    assert_eq!(
        names(&tree, "images/sha256-00e1ee7c898a/linux-amd64"),
        [
            "blobs",
            "config.json",
            "index.json",
            "layers",
            "manifest.json",
            "oci-layout",
            "signatures"
        ]
    );
    let manifest = tree
        .resolve("images/sha256-00e1ee7c898a/linux-amd64/manifest.json")
        .unwrap();
    assert_eq!(manifest.nlink, 2, "a blob and its readable name");
    // Inode numbers are the same for the same image opened twice.
    let again = Tree::open(&upstream(
        "generated/hello-world-cosign-manifest-list.oci.sif",
    ))
    .unwrap();
    assert_eq!(walk(&tree), walk(&again));
}

#[test]
fn image_names_come_from_ref_names_made_safe_and_unique() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_desc = Descriptor::of(media_type::OCI_CONFIG, config);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[]}}"#,
        media_type::OCI_MANIFEST,
        media_type::OCI_CONFIG,
        config_desc.digest,
        config.len()
    );
    let mut index = Index::empty();
    for name in ["docker.io/library/busybox:latest", "dup", "dup", "..", ""] {
        let mut d = Descriptor::of(media_type::OCI_MANIFEST, manifest.as_bytes());
        if !name.is_empty() {
            d.set_annotation(sifmount::oci::REF_NAME, name);
        }
        index.manifests.as_mut().unwrap().push(d);
    }
    let mut blobs = sifmount::oci::MemBlobs::new();
    blobs.insert(config.to_vec());
    blobs.insert(manifest.clone().into_bytes());
    let path = dir.path().join("names.sif");
    sifmount::oci::write_oci_sif_at_path(&path, &index.to_go_json(), &blobs, 0).unwrap();
    let tree = Tree::open(&path).unwrap();
    let short = format!("sha256-{}", &Digest::of(manifest.as_bytes()).hex()[..12]);
    let want: BTreeSet<String> = [
        "docker.io_library_busybox_latest".to_string(),
        "dup".to_string(),
        format!("dup-{}", &short[7..]),
        short.clone(),
        format!("{short}-{}", &short[7..]),
    ]
    .into_iter()
    .collect();
    let got: BTreeSet<String> = names(&tree, "images").into_iter().collect();
    assert_eq!(got, want);
    check_consistency(&tree, "names.sif", &[]);
}

#[test]
fn reads_at_any_offset_return_the_right_slice() {
    let path = upstream("generated/hello-world-cosign-manifest.oci.sif");
    let tree = Tree::open(&path).unwrap();
    let ino = tree.resolve("index.json").unwrap().ino;
    let whole = read_all(&tree, ino);
    for (offset, len) in [(0, 1), (1, 10), (100, 4096), (whole.len() as u64 - 1, 10)] {
        let mut buf = vec![0u8; len];
        let n = tree.read(ino, offset, &mut buf).unwrap();
        let end = (offset as usize + len).min(whole.len());
        assert_eq!(
            &buf[..n],
            &whole[offset as usize..end],
            "offset {offset}, len {len}"
        );
    }
    let mut buf = [0u8; 8];
    assert_eq!(tree.read(ino, whole.len() as u64, &mut buf).unwrap(), 0);
    assert_eq!(tree.read(ino, u64::MAX, &mut buf).unwrap(), 0);
    assert!(matches!(
        tree.read(ROOT, 0, &mut buf),
        Err(TreeError::IsDir(_))
    ));
    assert!(matches!(
        tree.read(0, 0, &mut buf),
        Err(TreeError::NoInode(0))
    ));
    assert!(matches!(
        tree.read(u64::MAX, 0, &mut buf),
        Err(TreeError::NoInode(_))
    ));
    assert!(matches!(tree.lookup(ino, b"x"), Err(TreeError::NotDir(_))));
    assert!(matches!(
        tree.lookup(ROOT, b"nope"),
        Err(TreeError::NotFound { .. })
    ));
    assert!(matches!(
        tree.lookup(ROOT, b"\xff"),
        Err(TreeError::NotFound { .. })
    ));
    assert!(matches!(tree.readlink(ino), Err(TreeError::NotSymlink(_))));
}

#[test]
fn bad_images_give_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sif");
    let err = Tree::open(&missing).unwrap_err().to_string();
    assert!(err.contains("missing.sif"), "{err}");
    let text = dir.path().join("text.sif");
    std::fs::write(&text, vec![b'x'; 4096]).unwrap();
    let err = Tree::open(&text).unwrap_err().to_string();
    assert!(
        err.contains("text.sif") && err.to_lowercase().contains("sif"),
        "{err}"
    );
    let err = Tree::open(Path::new("/")).unwrap_err().to_string();
    assert!(err.contains("directory"), "{err}");
}

/// A tree whose image another writer changes: a read of an object the change removed
/// fails with `Changed` instead of returning the zeros (or the new bytes) now at its old
/// place, and an object the change kept still reads right. The writer is sifmount's own
/// attach, which deletes and zeroes the old root index and writes a new one after it.
#[test]
fn a_read_of_an_object_another_writer_removed_fails_instead_of_returning_other_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.oci.sif");
    std::fs::copy(upstream("generated/squashfs-image.oci.sif"), &path).unwrap();
    let tree = Tree::open(&path).unwrap();
    let index = tree.resolve("/index.json").unwrap();
    let old_index = read_all(&tree, index.ino);
    let blobs: Vec<(Ino, String)> = tree
        .entries(tree.resolve("/blobs/sha256").unwrap().ino)
        .unwrap()
        .iter()
        .map(|e| (e.ino, e.name.clone()))
        .collect();

    let mut oci = OciSif::open(&path, OpenMode::ReadWrite).unwrap();
    let target = oci.root_index().unwrap().entries()[0].digest;
    let payload = common::simple_signing(&target, "null");
    let drop = sifmount::cosign::DropFiles {
        payload: Some(payload),
        signature: Some(b"c2lmbW91bnQgdHJlZSB0ZXN0\n".to_vec()),
        ..Default::default()
    };
    let a = sifmount::cosign::prepare(&oci, &drop).unwrap().unwrap();
    sifmount::cosign::attach(&mut oci, &a).unwrap();
    drop_oci(oci);

    let mut buf = vec![0u8; old_index.len()];
    match tree.read(index.ino, 0, &mut buf) {
        Err(TreeError::Changed(why)) => assert!(why.contains("changed"), "{why}"),
        other => panic!(
            "the old root index was deleted and zeroed, yet reading it gave {other:?} ({} \
             zero bytes)",
            buf.iter().filter(|&&b| b == 0).count()
        ),
    }
    assert!(
        tree.image_changed().unwrap(),
        "the fingerprint saw the attach"
    );
    // The image's own blobs are all still there, and read right.
    for (ino, name) in blobs {
        let bytes = read_all(&tree, ino);
        assert_eq!(Digest::of(&bytes).hex(), name, "blob {name}");
    }
}

fn drop_oci(oci: OciSif) {
    oci.sif().sync().unwrap();
}

/// Platform layouts repeat their manifest's descriptor in `index.json`: an image listing
/// 100 times an index whose one entry carries a megabyte of annotations gets layouts for
/// the first 16 MiB of them only, and a warning, not 100 MB of `index.json` files (the
/// man page, LIMITS).
#[test]
fn platform_layouts_of_a_descriptor_shown_many_times_are_bounded() {
    use sifmount::oci::{write_oci_sif_at_path, MemBlobs};
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("big-descriptor.oci.sif");
    let layer = vec![0u8; 1024];
    let mut blobs = MemBlobs::new();
    let layer_digest = blobs.insert(layer.clone());
    let (config, manifest) =
        common::images::config_and_manifest(&[(layer_digest, layer.len() as u64)], "A=1");
    blobs.insert(config);
    let mut entry = Descriptor::of(media_type::OCI_MANIFEST, &manifest);
    entry.set_annotation("k", &"x".repeat(1 << 20));
    blobs.insert(manifest);
    let mut list = Index::empty();
    list.append(entry, None);
    let list = list.to_go_json();
    let list_entry = Descriptor::of(media_type::OCI_INDEX, &list);
    blobs.insert(list);
    let mut root = Index::empty();
    for _ in 0..100 {
        root.append(list_entry.clone(), None);
    }
    write_oci_sif_at_path(&path, &root.to_go_json(), &blobs, 0).unwrap();

    let (tree, report) = Tree::open_with_report(&path).unwrap();
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("platform layouts hold more than")),
        "{:?}",
        report.warnings
    );
    let images = names(&tree, "images");
    assert_eq!(images.len(), 100);
    let platform = |image: &str| {
        let dir = format!("images/{image}");
        let sub = names(&tree, &dir)
            .into_iter()
            .find(|n| n.starts_with("sha256-"))
            .expect("the index's one entry has a directory");
        format!("{dir}/{sub}")
    };
    // Built in root-index order, which the names sort in: the first has a layout, the
    // last, past the bound, only its image files.
    let first = platform(&images[0]);
    let index = read_path(&tree, &format!("{first}/index.json"));
    assert!(index.len() > 1 << 20, "the layout repeats the descriptor");
    let last = platform(&images[99]);
    assert!(tree.resolve(&format!("{last}/manifest.json")).is_ok());
    assert!(tree.resolve(&format!("{last}/index.json")).is_err());
    let shown: usize = images
        .iter()
        .filter(|i| tree.resolve(&format!("{}/index.json", platform(i))).is_ok())
        .count();
    // Each is a mebibyte of annotation and a few hundred bytes more: 15 fit in 16 MiB.
    assert_eq!(shown, 15, "16 MiB of layouts");
}
