//! The OCI image layouts a mount shows, read by the real tools as they are (the man page,
//! THE TREE, and docs/FORMAT.md, Layouts under /images): `skopeo inspect` and `skopeo copy`
//! at the root, each `/images/NAME` and each platform directory of a manifest list;
//! `umoci ls`, `umoci stat` and `umoci unpack --image MNT/images/NAME[:TAG]`; and
//! oci-image-tool (Debian's other offline layout reader) validating and unpacking.
//!
//! Needs /dev/fuse, `fusermount3`, `skopeo`, `umoci` and `oci-image-tool` (`.ci/run`
//! installs them); fails, saying how to install what is missing, rather than skipping.
//! Shared fixtures are mounted `-o ro`.

use std::path::{Path, PathBuf};
use std::process::Command;

use sifmount::oci::{Index, Manifest, OciSif, REF_NAME};
use sifmount::sif::{Digest, OpenMode};

use crate::common::mounted::{assert_ok, ls, read, run_tool, sifmount_bin, Mode, Mount, Output};
use crate::common::{assert_bytes_eq, cosign_data, images, upstream};

/// The one file of the demo image's layer that the tests look for after an unpack.
const HELLO: &str = "Hello from a real-mount test.\n";

fn mount_ro(image: &Path) -> Mount {
    Mount::new(image, Mode::Daemon, &["-o", "ro"])
}

fn skopeo(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    run_tool("skopeo", "skopeo", args)
}

fn umoci(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    run_tool("umoci", "umoci", args)
}

fn oci_image_tool(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    run_tool("oci-image-tool", "oci-image-tool", args)
}

/// `skopeo inspect oci:DIR` as JSON.
fn inspect(layout: &str, m: &Mount) -> serde_json::Value {
    let out = skopeo(&[&"inspect", &format!("oci:{layout}")]);
    assert_ok(&out, &format!("skopeo inspect oci:{layout}"), m);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "skopeo inspect oci:{layout}: not JSON ({e}): {}",
            out.stdout
        )
    })
}

/// `umoci ls --layout DIR`: the tags, one a line.
fn umoci_tags(layout: &Path, m: &Mount) -> Vec<String> {
    let out = umoci(&[&"ls", &"--layout", &layout]);
    assert_ok(&out, &format!("umoci ls --layout {}", layout.display()), m);
    out.stdout.lines().map(str::to_string).collect()
}

/// The reference names of the root index of `image`, as stored, sorted.
fn root_ref_names(image: &Path) -> Vec<String> {
    let oci = OciSif::open(image, OpenMode::ReadOnly)
        .unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let mut names: Vec<String> = oci
        .root_index()
        .expect("the root index parses")
        .entries()
        .iter()
        .filter_map(|e| e.ref_name().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// The demo image (one uncompressed tar layer holding `hello.txt`), signed with the
/// synth key by `sifmount --sign`, in `dir`: its root index lists the image, unnamed as
/// SingularityCE writes it, and its `_cosign:` signature image.
fn signed_demo_image(dir: &Path) -> (PathBuf, Digest) {
    let (image, manifest) = images::demo_image_at(dir, "demo.oci.sif", 8);
    let out = crate::common::mounted::run(
        Command::new(sifmount_bin())
            .arg("--sign")
            .arg(&image)
            .arg("--key")
            .arg(cosign_data("keys/synth-cosign.key"))
            .env("COSIGN_PASSWORD", "test-password"),
        crate::common::mounted::TOOL_TIMEOUT,
    );
    assert!(out.success(), "sifmount --sign: {}", out.stderr);
    (image, manifest)
}

/// A signed OCI-SIF with a tar layer: umoci unpacks `/images/NAME` by its tag and by
/// umoci's default tag, oci-image-tool validates and unpacks it, and `umoci ls` of the
/// root lists what the stored root index names (the signature image only).
#[test]
fn umoci_and_oci_image_tool_unpack_an_image_beside_its_signature() {
    let tmp = tempfile::tempdir().unwrap();
    let (image, manifest) = signed_demo_image(tmp.path());
    let m = mount_ro(&image);
    let name = format!("sha256-{}", &manifest.hex()[..12]);
    assert_eq!(ls(&m.path("images")), std::slice::from_ref(&name));
    let dir = m.path(&format!("images/{name}"));

    let root_names = root_ref_names(&image);
    assert_eq!(root_names.len(), 1, "only the signature image is named");
    assert!(root_names[0].starts_with("_cosign:"), "{root_names:?}");
    assert_eq!(
        umoci_tags(&m.mountpoint, &m),
        root_names,
        "umoci ls of the root"
    );
    assert_eq!(umoci_tags(&dir, &m), ["latest"], "umoci ls of {name}");

    for (i, reference) in [
        format!("{}:latest", dir.display()),
        dir.display().to_string(),
    ]
    .iter()
    .enumerate()
    {
        let bundle = tmp.path().join(format!("bundle-{i}"));
        let out = umoci(&[&"unpack", &"--rootless", &"--image", reference, &bundle]);
        assert_ok(&out, &format!("umoci unpack --image {reference}"), &m);
        assert_eq!(
            String::from_utf8_lossy(&read(&bundle.join("rootfs/hello.txt"))),
            HELLO,
            "umoci unpack --image {reference}: rootfs/hello.txt"
        );
    }

    let v = inspect(&format!("{}:latest", dir.display()), &m);
    assert_eq!(v["Digest"], manifest.to_string(), "{v}");

    let out = oci_image_tool(&[
        &"validate",
        &"--type",
        &"image",
        &"--ref",
        &"name=latest",
        &dir,
    ]);
    assert_ok(&out, "oci-image-tool validate", &m);
    let rootfs = tmp.path().join("oci-image-tool-rootfs");
    let out = oci_image_tool(&[&"unpack", &"--ref", &"name=latest", &dir, &rootfs]);
    assert_ok(&out, "oci-image-tool unpack", &m);
    assert_eq!(
        String::from_utf8_lossy(&read(&rootfs.join("hello.txt"))),
        HELLO,
        "oci-image-tool unpack: hello.txt"
    );
    m.unmount();
}

/// SingularityCE's signed squashfs OCI-SIF: skopeo inspects and copies `/images/NAME`
/// (the copy's manifest is the image's, byte for byte); umoci finds the image by its tag,
/// states it, and stops only at the squashfs layer it cannot unpack; `umoci ls` of the
/// root lists the stored root index's names. The unsigned one is a single image, which
/// skopeo reads at the root too.
#[test]
fn skopeo_and_umoci_read_a_signed_upstream_oci_sif() {
    let signed = upstream("generated/squashfs-image.signed1.oci.sif");
    let oci = OciSif::open(&signed, OpenMode::ReadOnly).unwrap();
    let root = oci.root_index().unwrap();
    let entry = root
        .entries()
        .iter()
        .find(|e| e.ref_name().is_none())
        .expect("the image is the unnamed root-index entry")
        .clone();
    let manifest_bytes = oci.read_blob(&entry.digest).unwrap();
    let m = mount_ro(&signed);
    let name = format!("sha256-{}", &entry.digest.hex()[..12]);
    let dir = m.path(&format!("images/{name}"));

    let v = inspect(dir.to_str().unwrap(), &m);
    assert_eq!(v["Digest"], entry.digest.to_string(), "{v}");
    let raw = skopeo(&[
        &"inspect",
        &"--raw",
        &format!("oci:{}:latest", dir.display()),
    ]);
    assert_ok(&raw, "skopeo inspect --raw", &m);
    assert_bytes_eq(
        raw.stdout.as_bytes(),
        &manifest_bytes,
        "skopeo inspect --raw",
    );

    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    let out = skopeo(&[
        &"copy",
        &"--quiet",
        &format!("oci:{}", dir.display()),
        &format!("oci:{}:copied", out_dir.display()),
    ]);
    assert_ok(&out, "skopeo copy", &m);
    let copied = Index::parse(&read(&out_dir.join("index.json"))).unwrap();
    assert_eq!(copied.entries().len(), 1);
    assert_eq!(
        copied.entries()[0].digest,
        entry.digest,
        "the copied manifest's digest"
    );
    assert_eq!(copied.entries()[0].ref_name(), Some("copied"));
    assert_bytes_eq(
        &read(&out_dir.join("blobs/sha256").join(entry.digest.hex())),
        &manifest_bytes,
        "the copied manifest",
    );

    assert_eq!(umoci_tags(&dir, &m), ["latest"], "umoci ls of {name}");
    assert_eq!(
        umoci_tags(&m.mountpoint, &m),
        root_ref_names(&signed),
        "umoci ls of the root lists what the root index names"
    );
    let layer = Manifest::parse(&manifest_bytes).unwrap().layers[0].digest;
    let out = umoci(&[&"stat", &"--image", &format!("{}:latest", dir.display())]);
    assert_ok(&out, "umoci stat", &m);
    assert!(out.stdout.contains(&layer.to_string()), "{}", out.stdout);
    let bundle = tmp.path().join("bundle");
    let out = umoci(&[
        &"unpack",
        &"--rootless",
        &"--image",
        &format!("{}:latest", dir.display()),
        &bundle,
    ]);
    assert!(
        !out.success()
            && out
                .stderr
                .contains("application/vnd.sylabs.image.layer.v1.squashfs"),
        "umoci unpack should find the image by its tag and stop at the squashfs layer: {}",
        out.stderr
    );
    m.unmount();

    let unsigned = upstream("generated/squashfs-image.oci.sif");
    let m = mount_ro(&unsigned);
    let v = inspect(m.mountpoint.to_str().unwrap(), &m);
    assert_eq!(
        v["Digest"],
        entry.digest.to_string(),
        "skopeo at the root: {v}"
    );
    m.unmount();
}

/// A manifest list (hello-world for nine platforms, signed): each platform directory is
/// an OCI layout of its one manifest, tagged as its image is, which skopeo inspects and
/// copies and umoci lists; `/images/NAME` is the layout of the list.
#[test]
fn every_platform_directory_of_a_manifest_list_is_a_layout() {
    let image = upstream("generated/hello-world-cosign-manifest-list.oci.sif");
    let oci = OciSif::open(&image, OpenMode::ReadOnly).unwrap();
    let list_entry = oci
        .root_index()
        .unwrap()
        .entries()
        .iter()
        .find(|e| e.ref_name().is_none())
        .expect("the list is the unnamed root-index entry")
        .clone();
    let list = Index::parse(&oci.read_blob(&list_entry.digest).unwrap()).unwrap();
    let m = mount_ro(&image);
    let name = format!("sha256-{}", &list_entry.digest.hex()[..12]);
    let dir = m.path(&format!("images/{name}"));

    let v = inspect(dir.to_str().unwrap(), &m);
    assert_eq!(v["Digest"], list_entry.digest.to_string(), "{v}");
    assert_eq!(umoci_tags(&dir, &m), ["latest"]);

    let mut platforms = 0;
    for sub in ls(&dir) {
        let at = dir.join(&sub);
        if !at.join("manifest.json").exists() {
            continue;
        }
        platforms += 1;
        let index = Index::parse(&read(&at.join("index.json"))).unwrap();
        assert_eq!(index.entries().len(), 1, "{sub}/index.json");
        let entry = &index.entries()[0];
        assert_eq!(
            entry.annotation(REF_NAME),
            Some("latest"),
            "{sub}/index.json"
        );
        let listed = list
            .entries()
            .iter()
            .find(|e| e.digest == entry.digest)
            .unwrap_or_else(|| panic!("{sub}: {} is not in the list", entry.digest));
        assert_eq!(
            std::fs::read_link(at.join("blobs/sha256")).unwrap(),
            Path::new("../../../../blobs/sha256")
        );
        let v = inspect(at.to_str().unwrap(), &m);
        assert_eq!(v["Digest"], entry.digest.to_string(), "{sub}: {v}");
        let platform = listed
            .platform
            .as_ref()
            .expect("list entries have platforms");
        assert_eq!(v["Architecture"], platform.architecture, "{sub}: {v}");
        assert_eq!(v["Os"], platform.os, "{sub}: {v}");
        assert_eq!(umoci_tags(&at, &m), ["latest"], "umoci ls of {sub}");
    }
    assert_eq!(platforms, list.entries().len(), "one layout per platform");

    let amd64 = dir.join("linux-amd64");
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("amd64");
    let out = skopeo(&[
        &"copy",
        &"--quiet",
        // No tag: skopeo looks tags up only on entries of OCI media types, and these
        // manifests are Docker's; a layout of one image needs none.
        &format!("oci:{}", amd64.display()),
        &format!("dir:{}", out_dir.display()),
    ]);
    assert_ok(&out, "skopeo copy of linux-amd64", &m);
    assert_bytes_eq(
        &read(&out_dir.join("manifest.json")),
        &read(&amd64.join("manifest.json")),
        "the copied linux-amd64 manifest",
    );
    m.unmount();
}
