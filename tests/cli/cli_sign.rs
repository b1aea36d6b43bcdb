//! `sifmount --sign IMAGE --key KEY` run as a user runs it (the man page, SIGNING): each
//! test key signs a copy of an upstream OCI-SIF; what it stores verifies with `openssl`
//! and with `sifmount --verify`, the payload is SingularityCE's, `-a` and `--recursive`
//! work, and every key or password problem leaves the image byte-identical.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use serde_json::{Map, Value};
use sifmount::cosign::{PublicKey, SIGNATURE_ANNOTATION};
use sifmount::oci::{Index, Manifest, OciSif};
use sifmount::sif::{Digest, OpenMode};

use super::cli::assert_status;
use crate::common::{self, cosign_data, writable_copy};

const UNSIGNED: &str = "generated/squashfs-image.oci.sif";
const MANIFEST_LIST: &str = "generated/hello-world-cosign-manifest-list.oci.sif";

/// `sifmount --sign IMAGE --key KEY ARGS...` with COSIGN_PASSWORD set to `password`
/// (unset for `None`) and no terminal on standard input.
fn sign(image: &Path, key: &Path, password: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sifmount"));
    c.arg("--sign")
        .arg(image)
        .arg("--key")
        .arg(key)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("COSIGN_PASSWORD");
    if let Some(p) = password {
        c.env("COSIGN_PASSWORD", p);
    }
    c.output().expect("run sifmount")
}

fn sifmount_with_password(args: &[&std::ffi::OsStr], password: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sifmount"));
    c.args(args)
        .env_remove("RUST_LOG")
        .env_remove("COSIGN_PASSWORD");
    if let Some(p) = password {
        c.env("COSIGN_PASSWORD", p);
    }
    c.output().expect("run sifmount")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn openssl(args: &[&std::ffi::OsStr]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (needed to check signatures): {e}"))
}

/// Whether openssl says `sig` is `public`'s signature of `payload`.
fn openssl_verifies(public: &Path, payload: &[u8], sig: &[u8], ed25519: bool) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let (msg, sig_file) = (dir.path().join("payload"), dir.path().join("sig"));
    std::fs::write(&msg, payload).unwrap();
    std::fs::write(&sig_file, sig).unwrap();
    let args: Vec<&std::ffi::OsStr> = if ed25519 {
        vec![
            "pkeyutl".as_ref(),
            "-verify".as_ref(),
            "-pubin".as_ref(),
            "-inkey".as_ref(),
            public.as_os_str(),
            "-rawin".as_ref(),
            "-in".as_ref(),
            msg.as_os_str(),
            "-sigfile".as_ref(),
            sig_file.as_os_str(),
        ]
    } else {
        vec![
            "dgst".as_ref(),
            "-sha256".as_ref(),
            "-verify".as_ref(),
            public.as_os_str(),
            "-signature".as_ref(),
            sig_file.as_os_str(),
            msg.as_os_str(),
        ]
    };
    openssl(&args).status.success()
}

/// The layers of the `.sig` image of `target`: payload and raw signature, in order.
fn signatures_of(image: &Path, target: &Digest) -> Vec<(Vec<u8>, Vec<u8>)> {
    let oci = OciSif::open(image, OpenMode::ReadOnly).unwrap();
    let name = format!("_cosign:sha256-{}.sig", target.hex());
    let root = oci.root_index().unwrap();
    let Some(entry) = root.entries().iter().find(|e| e.ref_name() == Some(&name)) else {
        return Vec::new();
    };
    let manifest = Manifest::parse(&oci.read_blob(&entry.digest).unwrap()).unwrap();
    manifest
        .layers
        .iter()
        .map(|l| {
            let sig = l.annotations.as_ref().unwrap()[SIGNATURE_ANNOTATION].clone();
            (
                oci.read_blob(&l.digest).unwrap(),
                base64::engine::general_purpose::STANDARD
                    .decode(sig)
                    .unwrap(),
            )
        })
        .collect()
}

/// The first root-index entry that is no `_cosign:` image.
fn the_image(image: &Path) -> Digest {
    let oci = OciSif::open(image, OpenMode::ReadOnly).unwrap();
    let root = oci.root_index().unwrap();
    root.entries()
        .iter()
        .find(|e| e.ref_name().is_none_or(|n| !n.starts_with("_cosign:")))
        .unwrap()
        .digest
}

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("{value} is not an object"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// SingularityCE's payload about `target`, fields in its order, with `optional` holding
/// creator, timestamp (an integer, about now) and `annotations`.
fn assert_singularity_payload(payload: &[u8], target: &Digest, annotations: &[(&str, &str)]) {
    let v: Value = serde_json::from_slice(payload).unwrap();
    assert_eq!(keys(&v), ["critical", "optional"]);
    assert_eq!(keys(&v["critical"]), ["identity", "image", "type"]);
    assert_eq!(keys(&v["critical"]["identity"]), ["docker-reference"]);
    assert_eq!(v["critical"]["identity"]["docker-reference"], "");
    assert_eq!(keys(&v["critical"]["image"]), ["docker-manifest-digest"]);
    assert_eq!(
        v["critical"]["image"]["docker-manifest-digest"],
        target.to_string()
    );
    assert_eq!(v["critical"]["type"], "cosign container image signature");
    let mut want: BTreeMap<&str, Value> = annotations
        .iter()
        .map(|(k, v)| (*k, Value::from(*v)))
        .collect();
    want.insert(
        "creator",
        format!("sifmount/{}", env!("CARGO_PKG_VERSION")).into(),
    );
    let timestamp = &v["optional"]["timestamp"];
    assert!(
        timestamp.is_i64(),
        "timestamp {timestamp} is not an integer"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - timestamp.as_i64().unwrap()).abs() < 300,
        "{timestamp}"
    );
    want.insert("timestamp", timestamp.clone());
    // Sorted, as Go writes a map.
    assert_eq!(
        keys(&v["optional"]),
        want.keys().copied().collect::<Vec<_>>()
    );
    let got: Map<String, Value> = v["optional"].as_object().unwrap().clone();
    for (k, w) in want {
        assert_eq!(got[k], w, "optional.{k}");
    }
}

struct TestKey {
    key: PathBuf,
    password: Option<&'static str>,
    public: PathBuf,
    ed25519: bool,
}

/// The fixtures' keys with their `.pub`, and openssl-made PKCS#8 keys of the other kinds.
fn test_keys(dir: &Path) -> Vec<TestKey> {
    let mut out = vec![
        TestKey {
            key: cosign_data("keys/singularity-cosign.key"),
            password: Some(""),
            public: cosign_data("keys/singularity-cosign.pub"),
            ed25519: false,
        },
        TestKey {
            key: cosign_data("keys/synth-cosign.key"),
            password: Some("test-password"),
            public: cosign_data("keys/synth-cosign.pub"),
            ed25519: false,
        },
    ];
    for (name, genpkey) in [
        (
            "p384",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"][..],
        ),
        ("ed25519", &["-algorithm", "ED25519"][..]),
        (
            "rsa",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
        ),
    ] {
        let key = dir.join(format!("{name}.key"));
        let public = dir.join(format!("{name}.pub"));
        let mut args: Vec<&std::ffi::OsStr> = vec!["genpkey".as_ref()];
        args.extend(genpkey.iter().map(std::ffi::OsStr::new));
        args.extend(["-out".as_ref(), key.as_os_str()]);
        assert!(openssl(&args).status.success(), "openssl genpkey {name}");
        let o = openssl(&[
            "pkey".as_ref(),
            "-in".as_ref(),
            key.as_os_str(),
            "-pubout".as_ref(),
            "-out".as_ref(),
            public.as_os_str(),
        ]);
        assert!(o.status.success(), "openssl pkey -pubout {name}");
        out.push(TestKey {
            key,
            password: None,
            public,
            ed25519: name == "ed25519",
        });
    }
    out
}

#[test]
fn each_key_signs_what_openssl_and_verify_accept() {
    let dir = tempfile::tempdir().unwrap();
    for k in test_keys(dir.path()) {
        let work = tempfile::tempdir().unwrap();
        let image = writable_copy(work.path(), UNSIGNED);
        let target = the_image(&image);
        let shown = k.key.display();
        let o = sign(&image, &k.key, k.password, &[]);
        assert_status(&o, 0);
        let out = text(&o.stdout);
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            [format!(
                "{target}: signed: cosign/sig-{}-1",
                &target.hex()[..13]
            )],
            "{shown}"
        );
        let sigs = signatures_of(&image, &target);
        assert_eq!(sigs.len(), 1, "{shown}");
        let (payload, sig) = &sigs[0];
        assert_singularity_payload(payload, &target, &[]);
        assert!(
            openssl_verifies(&k.public, payload, sig, k.ed25519),
            "{shown}: openssl rejects the signature"
        );
        assert!(
            !openssl_verifies(&k.public, b"{}", sig, k.ed25519),
            "{shown}: openssl accepts it for another payload"
        );
        let v = sifmount_with_password(
            &[
                "--verify".as_ref(),
                image.as_os_str(),
                "--key".as_ref(),
                k.public.as_os_str(),
            ],
            None,
        );
        assert_status(&v, 0);
        assert!(
            text(&v.stdout).contains("verified by 1 of 1 entries"),
            "{shown}"
        );
        let siftool = Command::new("siftool")
            .arg("list")
            .arg(&image)
            .output()
            .expect("run siftool (it reads what we wrote)");
        assert!(siftool.status.success(), "siftool list: {siftool:?}");
    }
}

#[test]
fn cosign_repo_keys_sign_and_verify_given_as_private_keys() {
    // These keys have no .pub: `--verify --key` takes the private key and uses its
    // public half, which must verify what the key signed (and not another key's).
    for rel in [
        "keys/cosign-repo/pemcosignkey.key",
        "keys/cosign-repo/pemsigstorekey.key",
    ] {
        let work = tempfile::tempdir().unwrap();
        let image = writable_copy(work.path(), UNSIGNED);
        let key = cosign_data(rel);
        assert_status(&sign(&image, &key, Some("hello"), &[]), 0);
        let verify = |key: &Path, password: Option<&str>| {
            sifmount_with_password(
                &[
                    "--verify".as_ref(),
                    image.as_os_str(),
                    "--key".as_ref(),
                    key.as_os_str(),
                ],
                password,
            )
        };
        assert_status(&verify(&key, Some("hello")), 0);
        assert_status(&verify(&cosign_data("keys/synth-cosign.pub"), None), 1);
        // Without its password (and no terminal), --verify says so, naming the key.
        let o = verify(&key, None);
        assert_status(&o, 1);
        let err = text(&o.stderr);
        assert!(
            err.contains(&key.display().to_string()) && err.contains("COSIGN_PASSWORD"),
            "{err}"
        );
    }
}

#[test]
fn annotations_join_optional_and_reserved_ones_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let image = writable_copy(work.path(), UNSIGNED);
    let target = the_image(&image);
    let key = cosign_data("keys/singularity-cosign.key");
    let o = sign(
        &image,
        &key,
        Some(""),
        &["-a", "foo=bar", "--annotation", "a=b=c", "-a", "foo=baz"],
    );
    assert_status(&o, 0);
    let sigs = signatures_of(&image, &target);
    assert_singularity_payload(&sigs[0].0, &target, &[("a", "b=c"), ("foo", "baz")]);

    let before = std::fs::read(&image).unwrap();
    for bad in ["creator=me", "timestamp=1", "novalue", "=x"] {
        let o = sign(&image, &key, Some(""), &["-a", bad]);
        assert_status(&o, 2);
        assert_eq!(text(&o.stderr).lines().count(), 1, "{}", text(&o.stderr));
        assert!(text(&o.stderr).contains(bad), "{}", text(&o.stderr));
        assert!(
            std::fs::read(&image).unwrap() == before,
            "-a {bad} changed the image"
        );
    }
}

#[test]
fn signing_again_adds_a_layer() {
    let work = tempfile::tempdir().unwrap();
    let image = writable_copy(work.path(), UNSIGNED);
    let target = the_image(&image);
    let key = cosign_data("keys/synth-cosign.key");
    assert_status(&sign(&image, &key, Some("test-password"), &[]), 0);
    // A second later the payload's timestamp differs.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let o = sign(&image, &key, Some("test-password"), &[]);
    assert_status(&o, 0);
    assert!(text(&o.stdout).ends_with("-2\n"), "{}", text(&o.stdout));
    let sigs = signatures_of(&image, &target);
    assert_eq!(sigs.len(), 2);
    assert_ne!(sigs[0].0, sigs[1].0);
    let public = PublicKey::load(&cosign_data("keys/synth-cosign.pub")).unwrap();
    assert!(sigs.iter().all(|(p, s)| public.verify(p, s)));
}

#[test]
fn recursive_signs_every_platform_manifest() {
    let work = tempfile::tempdir().unwrap();
    let image = writable_copy(work.path(), MANIFEST_LIST);
    let list = the_image(&image);
    let children: Vec<Digest> = {
        let oci = OciSif::open(&image, OpenMode::ReadOnly).unwrap();
        Index::parse(&oci.read_blob(&list).unwrap())
            .unwrap()
            .entries()
            .iter()
            .map(|e| e.digest)
            .collect()
    };
    assert!(children.len() > 1, "a multi-platform fixture");
    let before: BTreeMap<Digest, usize> = std::iter::once(list)
        .chain(children.iter().copied())
        .map(|d| (d, signatures_of(&image, &d).len()))
        .collect();
    let key = cosign_data("keys/singularity-cosign.key");
    let public_path = cosign_data("keys/singularity-cosign.pub");
    let o = sign(&image, &key, Some(""), &["--recursive"]);
    assert_status(&o, 0);
    let out = text(&o.stdout);
    assert_eq!(out.lines().count(), 1 + children.len(), "{out}");
    for (target, n) in &before {
        assert!(out.contains(&format!("{target}: signed: ")), "{out}");
        let sigs = signatures_of(&image, target);
        assert_eq!(sigs.len(), n + 1, "{target}");
        let (payload, sig) = sigs.last().unwrap();
        assert_singularity_payload(payload, target, &[]);
        assert!(
            openssl_verifies(&public_path, payload, sig, false),
            "{target}"
        );
    }

    // Without --recursive only the index is signed.
    let o = sign(&image, &key, Some(""), &[]);
    assert_status(&o, 0);
    assert_eq!(text(&o.stdout).lines().count(), 1);
    assert!(text(&o.stdout).starts_with(&format!("{list}: ")));
}

/// Runs `--sign` expecting it to fail with `status`, one line on stderr containing each of
/// `needles`, and the image unchanged.
fn assert_refused(
    image: &Path,
    key: &Path,
    password: Option<&str>,
    args: &[&str],
    status: i32,
    needles: &[&str],
) {
    let before = std::fs::read(image).unwrap();
    let o = sign(image, key, password, args);
    assert_status(&o, status);
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    for n in needles {
        assert!(err.contains(n), "{err} (wanted {n:?})");
    }
    assert!(o.stdout.is_empty(), "{}", text(&o.stdout));
    assert!(
        std::fs::read(image).unwrap() == before,
        "the image changed although signing failed: {err}"
    );
    assert!(
        !image.with_extension("sif.sifmount-journal").exists(),
        "a journal was left"
    );
}

#[test]
fn key_problems_leave_the_image_as_it_was() {
    let work = tempfile::tempdir().unwrap();
    let image = writable_copy(work.path(), UNSIGNED);
    let synth = cosign_data("keys/synth-cosign.key");
    let synth_shown = synth.display().to_string();
    assert_refused(
        &image,
        &synth,
        Some("wrong"),
        &[],
        1,
        &[&synth_shown, "wrong password"],
    );
    assert_refused(
        &image,
        &synth,
        None,
        &[],
        1,
        &[&synth_shown, "COSIGN_PASSWORD"],
    );
    let sec1 = cosign_data("keys/cosign-repo/pemcosigneckey.key");
    assert_refused(
        &image,
        &sec1,
        Some("hello"),
        &[],
        1,
        &[&sec1.display().to_string(), "SEC1"],
    );
    let test_key = cosign_data("cosign-repo/cosign-test.key");
    assert_refused(
        &image,
        &test_key,
        Some(""),
        &[],
        1,
        &[&test_key.display().to_string(), "wrong password"],
    );
    let public = cosign_data("keys/synth-cosign.pub");
    assert_refused(
        &image,
        &public,
        None,
        &[],
        1,
        &[&public.display().to_string(), "not a private key"],
    );
    let missing = work.path().join("missing.key");
    assert_refused(
        &image,
        &missing,
        None,
        &[],
        1,
        &[&missing.display().to_string()],
    );
}

#[test]
fn image_choice_and_locks_are_respected() {
    let work = tempfile::tempdir().unwrap();
    let image = writable_copy(work.path(), UNSIGNED);
    let target = the_image(&image);
    let key = cosign_data("keys/singularity-cosign.key");
    assert_refused(
        &image,
        &key,
        Some(""),
        &["--image", "nosuch"],
        2,
        &["--image nosuch", "sha256-"],
    );
    // A read-write mount (or anything holding the writer lock) keeps --sign out.
    {
        let _lock = sifmount::sif::WriterLock::acquire(&image).unwrap();
        assert_refused(
            &image,
            &key,
            Some(""),
            &[],
            1,
            &["already open for writing"],
        );
    }
    let o = sign(&image, &key, Some(""), &["--image", &target.hex()[..12]]);
    assert_status(&o, 0);
    assert!(text(&o.stdout).starts_with(&format!("{target}: signed: ")));
    // --sign takes one key and no verification options.
    let pubkey = cosign_data("keys/singularity-cosign.pub");
    let o = sign(&image, &key, Some(""), &["--key", pubkey.to_str().unwrap()]);
    assert_status(&o, 2);
    let o = sign(&image, &key, Some(""), &["--insecure-ignore-tlog"]);
    assert_status(&o, 2);
    let o = sifmount_with_password(&["--recursive".as_ref()], None);
    assert_status(&o, 2);
}

#[test]
fn an_image_with_several_images_needs_image() {
    use sifmount::oci::{media_type, write_oci_sif_at_path, Descriptor, MemBlobs, Sources};
    let work = tempfile::tempdir().unwrap();
    let image = work.path().join("two.oci.sif");
    // Two images without layers (configs differ), spare descriptors for the signature.
    let mut docs = MemBlobs::new();
    let mut index = Index::empty();
    let mut manifests = Vec::new();
    for env in ["A=1", "B=2"] {
        let (config, manifest) = common::images::config_and_manifest(&[], env);
        docs.insert(config);
        index.append(Descriptor::of(media_type::OCI_MANIFEST, &manifest), None);
        manifests.push(docs.insert(manifest));
    }
    write_oci_sif_at_path(&image, &index.to_go_json(), &Sources(vec![&docs]), 8).unwrap();
    let key = cosign_data("keys/singularity-cosign.key");
    assert_refused(
        &image,
        &key,
        Some(""),
        &[],
        2,
        &[
            "has 2 images",
            "--image",
            &manifests[0].to_string(),
            &manifests[1].to_string(),
        ],
    );
    let o = sign(
        &image,
        &key,
        Some(""),
        &["--image", &manifests[1].to_string()],
    );
    assert_status(&o, 0);
    assert_eq!(signatures_of(&image, &manifests[1]).len(), 1);
    assert!(signatures_of(&image, &manifests[0]).is_empty());
}
