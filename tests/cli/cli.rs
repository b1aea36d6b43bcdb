//! The `sifmount` binary and the `make-oci-sif` example, run as a user runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common;
use sifmount::oci::{ImageKind, Index, Manifest, OciSif};
use sifmount::sif::{CreateOptions, DataType, ObjectInput, OpenMode, SifImage};

const COSIGN_IMAGE: &str = "generated/hello-world-cosign-manifest.oci.sif";
const COSIGN_LAYOUT: &str = "sylabs-oci-tools/test/images/hello-world-cosign-manifest";
const NATIVE_IMAGE: &str = "sylabs-singularity/e2e/testdata/busybox_amd64.sif";
/// The manifest the cosign signature and attestation in COSIGN_IMAGE sign.
const SIGNED: &str = "432f982638b3aefab73cc58ab28f5c16e96fdb504e8c134fc58dff4bae8bf338";

pub(crate) fn sifmount(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sifmount"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run sifmount")
}

fn run(args: &[&str]) -> Output {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    sifmount(&args)
}

fn run_on(flag: &str, image: &Path) -> Output {
    sifmount(&[flag.as_ref(), image.as_os_str()])
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
pub(crate) fn assert_status(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit status\n--- stdout\n{}\n--- stderr\n{}",
        stdout(o),
        stderr(o)
    );
}

#[test]
fn inspect_oci_sif_lists_descriptors_and_root_index() {
    let image = common::upstream(COSIGN_IMAGE);
    let o = run_on("--inspect", &image);
    assert_status(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("Deterministic: yes"), "{out}");
    assert!(out.contains("Created:       zero time"), "{out}");
    assert!(
        out.contains("Descriptors:   10 used, 0 free, 10 total"),
        "{out}"
    );
    // Every used descriptor is a row of the table; the root index is the last object.
    assert_eq!(out.matches("OCI.Blob ").count(), 9, "{out}");
    assert!(out.contains("OCI.RootIndex"), "{out}");
    // The root index entries with the cosign reference names.
    assert!(
        out.contains(&format!("_cosign:sha256-{SIGNED}.sig")),
        "{out}"
    );
    assert!(
        out.contains(&format!("_cosign:sha256-{SIGNED}.att")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "application/vnd.docker.distribution.manifest.v2+json   525  sha256:{SIGNED}"
        )),
        "{out}"
    );
    assert!(out.contains("9 OCI blobs"), "{out}");
    assert!(!out.contains("native SIF (no"), "{out}");
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}

#[test]
fn inspect_native_sif_says_native() {
    let image = common::upstream(NATIVE_IMAGE);
    let o = run_on("--inspect", &image);
    assert_status(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("native SIF (no OCI root index)"), "{out}");
    assert!(out.contains("Architecture:  amd64 (code 02)"), "{out}");
    assert!(
        out.contains("Created:       2021-08-02 19:09:36 UTC"),
        "{out}"
    );
    assert!(out.contains("Deterministic: no"), "{out}");
    assert!(
        out.contains("Squashfs/*System/amd64"),
        "partition extra: {out}"
    );
    assert!(out.contains("group 1"), "signature link: {out}");
    assert!(!out.contains("OCI root index:"), "{out}");
}

#[test]
fn inspect_two_root_indexes_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two-roots.sif");
    let index = Index::empty().to_go_json();
    SifImage::create_at_path(
        &path,
        &CreateOptions::deterministic(),
        vec![
            ObjectInput::new(DataType::OciRootIndex, index.as_slice()),
            ObjectInput::new(DataType::OciRootIndex, index.as_slice()),
        ],
    )
    .unwrap();
    let o = run_on("--inspect", &path);
    assert_status(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("not an OCI-SIF: the image has 2 OCI root indexes (slots 0, 1)"),
        "{out}"
    );
    assert!(!out.contains("native SIF (no"), "{out}");
    assert!(!out.contains("OCI root index:"), "{out}");

    let o = run_on("--verify", &path);
    assert_status(&o, 1);
    assert!(stderr(&o).contains("2 OCI root indexes"), "{}", stderr(&o));
}

#[test]
fn verify_passes_on_a_good_image() {
    let o = run_on("--verify", &common::upstream(COSIGN_IMAGE));
    assert_status(&o, 0);
    assert!(
        stdout(&o).starts_with("9 blobs verified: "),
        "{}",
        stdout(&o)
    );
    assert_eq!(stdout(&o).lines().count(), 1, "{}", stdout(&o));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}

#[test]
fn verify_fails_on_a_flipped_byte() {
    let src = common::upstream(COSIGN_IMAGE);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flipped.oci.sif");
    std::fs::copy(&src, &path).unwrap();

    // Flip one byte in the middle of the signed manifest's blob.
    let digest = format!("sha256:{SIGNED}").parse().unwrap();
    let (slot, id, at) = {
        let oci = OciSif::open(&path, OpenMode::ReadOnly).unwrap();
        let d = oci.blob(&digest).expect("the signed manifest is stored");
        let slot = oci
            .sif()
            .descriptors()
            .find(|(_, x)| x.id == d.id)
            .unwrap()
            .0;
        (slot, d.id, (d.offset + d.size / 2) as usize)
    };
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    assert_verify_fails_saying(
        &path,
        &[
            &format!(
                "blob in slot {slot} (id {id}) does not match its digest: recorded \
                 sha256:{SIGNED}, actual sha256:"
            ),
            "1 of 9 blobs failed verification",
        ],
    );
}

#[test]
fn verify_fails_on_a_missing_layer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incomplete.oci.sif");
    std::fs::copy(common::upstream(COSIGN_IMAGE), &path).unwrap();
    let o = run_on("--verify", &path);
    assert_status(&o, 0);

    // Delete the signed manifest's first layer; the manifest still names it.
    let signed = format!("sha256:{SIGNED}").parse().unwrap();
    let mut oci = OciSif::open(&path, OpenMode::ReadWrite).unwrap();
    let manifest = Manifest::parse(&oci.read_blob(&signed).unwrap()).unwrap();
    let layer = manifest.layers[0].digest;
    oci.remove_blob(&layer).unwrap();
    drop(oci);

    assert_verify_fails_saying(
        &path,
        &[
            &format!(
                "blob {layer} named by manifest sha256:{SIGNED} (layer 0) is missing from \
                 the image"
            ),
            "1 named blob missing from the image",
        ],
    );
}

/// `--verify IMAGE` exits 1, printing nothing on stdout and exactly these lines (each
/// prefixed `sifmount: IMAGE: `, matched as a prefix) on stderr.
fn assert_verify_fails_saying(path: &Path, lines: &[&str]) {
    let o = run_on("--verify", path);
    assert_status(&o, 1);
    let err = stderr(&o);
    let shown = path.display().to_string();
    for line in lines {
        assert!(err.contains(&format!("sifmount: {shown}: {line}")), "{err}");
    }
    assert_eq!(err.lines().count(), lines.len(), "{err}");
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
}

#[test]
fn verify_refuses_a_native_sif() {
    let image = common::upstream(NATIVE_IMAGE);
    let o = run_on("--verify", &image);
    assert_status(&o, 1);
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!("sifmount: {}: ", image.display())),
        "{err}"
    );
    assert!(err.contains("not an OCI-SIF"), "{err}");
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such.sif");
    for flag in ["--inspect", "--verify"] {
        let o = run_on(flag, &path);
        assert_status(&o, 1);
        let err = stderr(&o);
        assert!(
            err.starts_with(&format!("sifmount: {}: cannot open", path.display())),
            "{flag}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn non_sif_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8]); 3] = [
        ("text.sif", b"this is not a SIF file, just some text that is long enough to fill a header and then some more bytes for good measure........"),
        ("short.sif", b"SIF_MAGIC"),
        ("empty.sif", b""),
    ];
    for (name, content) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        for flag in ["--inspect", "--verify"] {
            let o = run_on(flag, &path);
            assert_status(&o, 1);
            let err = stderr(&o);
            assert!(
                err.starts_with(&format!("sifmount: {}: not a SIF file", path.display())),
                "{name} {flag}: {err}"
            );
            assert!(o.stdout.is_empty(), "{name} {flag}: {}", stdout(&o));
        }
    }
}

/// Runs sifmount with stdout and stderr in files rather than pipes, so that a daemon that
/// kept them open could not block the test, and fails the test if it takes more than
/// `LIMIT`: none of these command lines may hang.
fn run_bounded(args: &[&std::ffi::OsStr]) -> Output {
    const LIMIT: std::time::Duration = std::time::Duration::from_secs(30);
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sifmount"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("run sifmount");
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "sifmount {args:?} still running after {LIMIT:?}; stderr so far: {}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap(),
        stderr: std::fs::read(&err_path).unwrap(),
    }
}

fn os(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<std::ffi::OsString> {
    args.iter().map(|a| a.as_ref().to_os_string()).collect()
}

/// Runs a command line that must fail before mounting anything, and checks the common
/// promises: the status, one line on stderr starting with "sifmount: " and containing
/// `needle`, nothing on stdout. Returns the message.
#[track_caller]
fn refused(args: &[&dyn AsRef<std::ffi::OsStr>], status: i32, needle: &str) -> String {
    let args = os(args);
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let o = run_bounded(&refs);
    assert_status(&o, status);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
    assert!(err.starts_with("sifmount: "), "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: wanted {needle:?} in: {err}"
    );
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(o.stdout.is_empty(), "{args:?}: {}", stdout(&o));
    err.trim_end().to_string()
}

#[test]
fn mount_of_a_missing_image_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("no-such.sif");
    let err = refused(&[&image, &dir.path()], 1, "cannot open");
    assert!(
        err.starts_with(&format!("sifmount: {}: cannot open", image.display())),
        "{err}"
    );
}

#[test]
fn mount_of_a_file_that_is_not_a_sif_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("text.sif");
    std::fs::write(&image, b"this is not a SIF file, only text\n").unwrap();
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir(&mountpoint).unwrap();
    let err = refused(&[&image, &mountpoint], 1, "not a SIF file");
    assert!(
        err.starts_with(&format!("sifmount: {}: not a SIF file", image.display())),
        "{err}"
    );
}

#[test]
fn mount_needs_an_existing_directory_that_is_not_a_mount_point() {
    let image = common::upstream(COSIGN_IMAGE);
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = refused(&[&image, &missing], 1, "mountpoint does not exist");
    assert_eq!(
        err,
        format!("sifmount: {}: mountpoint does not exist", missing.display())
    );

    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let err = refused(&[&image, &file], 1, "mountpoint is not a directory");
    assert_eq!(
        err,
        format!(
            "sifmount: {}: mountpoint is not a directory",
            file.display()
        )
    );
    refused(
        &[&image, &file.join("below")],
        1,
        "part of its path is not a directory",
    );

    // /proc is a mount point on every Linux machine: mounting over it is refused before
    // any FUSE work, so this needs no FUSE.
    refused(
        &[&image, &"/proc"],
        1,
        "/proc: mountpoint is busy: /proc is already a mount point (proc from proc)",
    );
}

#[test]
fn bad_mount_options_are_usage_errors_naming_the_option() {
    let image = common::upstream(COSIGN_IMAGE);
    let dir = tempfile::tempdir().unwrap();
    let mp = dir.path();
    let err = refused(&[&"-o", &"ro,bogus", &image, &mp], 2, "'bogus'");
    assert_eq!(
        err,
        "sifmount: unknown mount option 'bogus' (sifmount(1) lists the options -o accepts)"
    );
    refused(
        &[&"-o", &"allow_other,allow_root", &image, &mp],
        2,
        "allow_other and allow_root cannot be used together",
    );
    // In two -o arguments, and with the options after the operands as mount.fuse3 puts them.
    refused(
        &[
            &image,
            &mp,
            &"-o",
            &"allow_root",
            &"-o",
            &"nosuid,allow_other",
        ],
        2,
        "allow_other and allow_root",
    );
    refused(
        &[&"-o", &"uid=abc", &image, &mp],
        2,
        "'uid=abc': not a numeric ID",
    );
    refused(&[&"-o", &"threads=0", &image, &mp], 2, "'threads=0'");
    refused(&[&"-o", &"uid", &image, &mp], 2, "'uid' needs a value");
    refused(
        &[&"-o", &"nosuid=1", &image, &mp],
        2,
        "'nosuid' takes no value",
    );
    // Options are checked before anything else: a missing image is not reached.
    refused(
        &[&"-obogus", &dir.path().join("none.sif"), &mp],
        2,
        "'bogus'",
    );
}

#[test]
fn options_from_fstab_and_mount_reach_the_mountpoint_check() {
    // What mount(8) and mount.fuse3 hand over (rw, dev, suid, fstab-only options) is
    // accepted: the command gets as far as the mountpoint check.
    let image = common::upstream(COSIGN_IMAGE);
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    refused(
        &[
            &image,
            &missing,
            &"-o",
            &"rw,defaults,noauto,nofail,_netdev,user,x-systemd.automount,comment=x,dev,suid",
            &"-o",
            &"ro,noexec,nosuid,nodev,noatime,uid=0,gid=0,fsname=demo,threads=2,default_permissions",
        ],
        1,
        "mountpoint does not exist",
    );
}

#[test]
fn unmount_refuses_what_it_must_not_unmount() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused(&[&"-u", &dir.path()], 1, "not mounted");
    assert_eq!(
        err,
        format!("sifmount: {}: not mounted", dir.path().display())
    );
    let missing = dir.path().join("missing");
    let err = refused(&[&"-u", &missing], 1, "no such directory");
    assert_eq!(
        err,
        format!("sifmount: {}: no such directory", missing.display())
    );
    // Run as root, a careless -u must not take away a file system that is not FUSE.
    refused(&[&"-u", &"/proc"], 1, "not a FUSE mount but proc");
    assert!(std::path::Path::new("/proc/self").exists());
    // -u takes one mountpoint and nothing else.
    let o = run(&["-u", "/a", "image.sif", "/b"]);
    assert_status(&o, 2);
}

#[test]
fn usage_errors_exit_2_and_version_and_help_work() {
    assert_status(&run(&[]), 2);
    assert_status(&run(&["only-an-image.sif"]), 2);
    assert_status(&run(&["--inspect", "a", "--verify", "b"]), 2);
    assert_status(&run(&["--bogus"]), 2);
    // Options without anything to do.
    let o = run(&["-f", "-o", "ro"]);
    assert_status(&o, 2);
    assert!(
        stderr(&o).starts_with("sifmount: nothing to do: give IMAGE MOUNTPOINT"),
        "{}",
        stderr(&o)
    );

    let o = run(&["--version"]);
    assert_status(&o, 0);
    assert_eq!(
        stdout(&o).trim(),
        format!("sifmount {}", env!("CARGO_PKG_VERSION"))
    );
    let o = run(&["--help"]);
    assert_status(&o, 0);
    for word in [
        "--inspect",
        "--verify",
        "--debug",
        "--foreground",
        "--unmount",
        "-o <OPT[,OPT...]>",
        "allow_other",
        "MOUNTPOINT",
    ] {
        assert!(stdout(&o).contains(word), "{word}: {}", stdout(&o));
    }
}

#[test]
fn debug_flag_turns_on_debug_logging() {
    let image = common::upstream(COSIGN_IMAGE);
    let quiet = run_on("--verify", &image);
    assert!(quiet.stderr.is_empty(), "{}", stderr(&quiet));
    let o = sifmount(&["-d".as_ref(), "--verify".as_ref(), image.as_os_str()]);
    assert_status(&o, 0);
    assert!(stderr(&o).contains("DEBUG"), "{}", stderr(&o));
}

/// Runs the example through cargo, so that it is built from the current sources.
fn make_oci_sif(args: &[&std::ffi::OsStr]) -> Output {
    let o = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", "make-oci-sif", "--"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo");
    assert_status(&o, 0);
    o
}

#[test]
fn example_demo_image_is_reproducible_and_valid() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.oci.sif");
    let b = dir.path().join("b.oci.sif");
    let o = make_oci_sif(&[a.as_os_str()]);
    make_oci_sif(&[b.as_os_str()]);
    let bytes = std::fs::read(&a).unwrap();
    common::assert_bytes_eq(&bytes, &std::fs::read(&b).unwrap(), "second demo image");

    let oci = OciSif::open(&a, OpenMode::ReadOnly).unwrap();
    assert_eq!(oci.verify_blobs().unwrap(), vec![]);
    let sif = oci.sif();
    assert!(sif.header().is_deterministic());
    assert_eq!(sif.free_slots(), 8, "SingularityCE's 8 spare descriptors");
    assert_eq!(sif.used_count(), 4, "layer, config, manifest, root index");
    assert_eq!(ImageKind::of(sif), ImageKind::OciSif { root_slot: 3 });

    // What the example reports is the truth.
    let root = oci.root_index_descriptor().describe_extra();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!(
            "{}: {} bytes, 4 objects, root index {root}",
            a.display(),
            bytes.len()
        )
    );

    // One image, no ref.name (SingularityCE's convention), linux/amd64, one tar layer
    // holding hello.txt.
    let index = oci.root_index().unwrap();
    assert_eq!(index.entries().len(), 1);
    let entry = &index.entries()[0];
    assert_eq!(entry.ref_name(), None);
    assert_eq!(
        oci.root_index_bytes().unwrap(),
        index.to_go_json(),
        "compact"
    );
    let manifest = Manifest::parse(&oci.read_blob(&entry.digest).unwrap()).unwrap();
    assert_eq!(manifest.layers.len(), 1);
    let config: serde_json::Value =
        serde_json::from_slice(&oci.read_blob(&manifest.config.digest).unwrap()).unwrap();
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        manifest.layers[0].digest.to_string()
    );
    let layer = oci.read_blob(&manifest.layers[0].digest).unwrap();
    assert_eq!(layer.len() % 512, 0, "tar blocks");
    assert_eq!(&layer[..4], b"etc/");
    assert_eq!(&layer[257..263], b"ustar\0");
    let text = String::from_utf8_lossy(&layer);
    assert!(text.contains("hello.txt"), "layer lists hello.txt");
    assert!(
        text.contains("Hello from an OCI-SIF"),
        "layer holds hello.txt"
    );

    // And sifmount itself agrees.
    let o = run_on("--verify", &a);
    assert_status(&o, 0);
    assert!(stdout(&o).starts_with("3 blobs verified"), "{}", stdout(&o));
}

#[test]
fn example_from_layout_matches_upstream_write() {
    // oci-tools wrote the upstream file from this layout with no spare descriptors.
    let layout = common::upstream(COSIGN_LAYOUT);
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("from-layout.oci.sif");
    make_oci_sif(&[
        "--from-layout".as_ref(),
        layout.as_os_str(),
        "--spare".as_ref(),
        "0".as_ref(),
        out.as_os_str(),
    ]);
    common::assert_bytes_eq(
        &std::fs::read(&out).unwrap(),
        &common::read_upstream(COSIGN_IMAGE),
        "make-oci-sif --from-layout",
    );
}

#[test]
fn example_from_layout_keeps_referrers_index_json_omits() {
    // As cosign save leaves it: a referrer manifest (subject = the image) among the
    // blobs, with no index.json entry.
    let layout = common::testdata().join("cosign/synth-referrer-bundle");
    let referrer = "sha256:d9fda2f803efb63c37979097fa82fc9838628bc2f8c6c3a9b3504b5f64982d02";
    let index_json = std::fs::read(layout.join("index.json")).unwrap();
    assert!(!String::from_utf8_lossy(&index_json).contains(&referrer[7..]));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("referrer.oci.sif");
    make_oci_sif(&[
        "--from-layout".as_ref(),
        layout.as_os_str(),
        out.as_os_str(),
    ]);
    let oci = OciSif::open(&out, OpenMode::ReadOnly).unwrap();
    assert_eq!(oci.root_index_bytes().unwrap(), index_json, "verbatim");
    let manifest = Manifest::parse(&oci.read_blob(&referrer.parse().unwrap()).unwrap()).unwrap();
    assert_eq!(
        manifest.subject.as_ref().map(|s| s.digest.hex()),
        Some(SIGNED.to_string())
    );
    for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
        assert!(oci.read_blob(&d.digest).is_ok(), "{} is kept", d.digest);
    }
    assert_eq!(oci.verify_blobs().unwrap(), vec![]);
    // The bundle it carries is the image's signature, and verifies.
    let key = common::testdata().join("cosign/keys/synth-cosign.pub");
    let o = sifmount(&[
        "--verify".as_ref(),
        out.as_os_str(),
        "--key".as_ref(),
        key.as_os_str(),
    ]);
    assert_status(&o, 0);
    assert!(
        stdout(&o).contains(&format!("verified by 1 of 1 entries (sha256:{SIGNED})")),
        "{}",
        stdout(&o)
    );
}

#[test]
fn recover_says_what_it_found_and_removes_a_torn_journal() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.oci.sif");
    std::fs::copy(
        common::upstream("generated/squashfs-image.signed1.oci.sif"),
        &image,
    )
    .unwrap();
    let before = std::fs::read(&image).unwrap();
    let o = run_on("--recover", &image);
    assert_status(&o, 0);
    assert!(stdout(&o).contains("nothing to do"), "{}", stdout(&o));

    // A journal cut short by a crash while it was written: the update never began.
    let journal = dir.path().join("image.oci.sif.sifmount-journal");
    std::fs::write(&journal, b"SIFMOUNT-JOURNAL, cut short").unwrap();
    let o = run_on("--recover", &image);
    assert_status(&o, 0);
    assert!(stdout(&o).contains("torn"), "{}", stdout(&o));
    assert!(!journal.exists(), "the torn journal is removed");
    common::assert_bytes_eq(&std::fs::read(&image).unwrap(), &before, "recovered image");

    let o = run_on("--recover", &dir.path().join("missing.sif"));
    assert_status(&o, 1);
    assert!(stderr(&o).contains("missing.sif"), "{}", stderr(&o));
}
