//! Conformance, OCI-SIF writing (§2 of the conformance cases in the specification kept with the test data (docs/FORMAT.md says where)): oci-tools' Write and UpdateRootIndex rebuilt byte for byte.
//!
//! Each case builds an OCI-SIF with the project's writer from an upstream OCI layout,
//! applies the update algorithm with the golden file's own root index as the new index
//! (new blobs are read out of the golden), and compares the whole file with the golden.
//! Every case runs against the current goldens and, where they differ, against the goldens
//! from before go-containerregistry wrote `artifactType` into index entries.

use std::sync::Arc;

use crate::common::{self, assert_bytes_eq, read_upstream, upstream};
use sifmount::oci::{
    write_oci_sif, BlobSource, Descriptor, Index, LayoutDir, OciSif, Sources, REF_NAME,
};
use sifmount::sif::{Digest, MemStorage, OpenMode, SifImage};

const CURRENT: &str = "sylabs-oci-tools";
const PRE: &str = "sylabs-oci-tools-pre-artifactType";

const HELLO: &str = "hello-world-docker-v2-manifest";
const HELLO_LIST: &str = "hello-world-docker-v2-manifest-list";
const MANY: &str = "many-layers";

fn layout(name: &str) -> LayoutDir {
    LayoutDir::new(upstream(&format!("{CURRENT}/test/images/{name}")))
}

/// The layout's index.json as the given golden generation saw it.
fn layout_index(name: &str, generation: &str) -> Vec<u8> {
    if generation == PRE && name == HELLO {
        return read_upstream(&format!("{PRE}/{HELLO}.index.json"));
    }
    layout(name).index_bytes().expect("layout index.json")
}

fn open_golden(path: &str) -> OciSif {
    OciSif::open(upstream(path), OpenMode::ReadOnly)
        .unwrap_or_else(|e| panic!("golden {path} does not open: {e}"))
}

/// The golden generations that hold this case: the current one always, the
/// pre-artifactType one when it has its own copy.
fn generations(rel: &str) -> Vec<&'static str> {
    let mut g = vec![CURRENT];
    if upstream(&format!("{PRE}/{rel}")).exists() {
        g.push(PRE);
    }
    g
}

fn write_base(root_index: &[u8], source: &dyn BlobSource, spare: i64) -> (Arc<MemStorage>, OciSif) {
    let mem = Arc::new(MemStorage::default());
    let image = write_oci_sif(Box::new(mem.clone()), root_index, source, spare)
        .unwrap_or_else(|e| panic!("write failed: {e}"));
    (mem, image)
}

struct Counter(usize);

impl Counter {
    fn compare(&mut self, got: &[u8], golden_path: &str) {
        assert_bytes_eq(got, &read_upstream(golden_path), golden_path);
        self.0 += 1;
    }
}

#[test]
fn write_cases() {
    let mut n = Counter(0);
    for (case, layout_name, spare) in [
        ("DockerManifest", HELLO, 0),
        ("ManyLayers", MANY, 0),
        ("SpareDescriptor", HELLO, 1),
        ("DockerManifestList", HELLO_LIST, 0),
    ] {
        let rel = format!("pkg/sif/testdata/TestWrite/{case}.golden");
        for generation in generations(&rel) {
            let path = format!("{generation}/{rel}");
            let root = open_golden(&path).root_index_bytes().unwrap();
            let (mem, _) = write_base(&root, &layout(layout_name), spare);
            n.compare(&mem.to_vec(), &path);
        }
    }
    assert_eq!(n.0, 7, "Write cases compared");
}

/// Base = Write(layout index.json, 8 spare), then update to the golden's root index.
fn update_case(n: &mut Counter, rel: &str, layout_name: &str) {
    for generation in generations(rel) {
        let path = format!("{generation}/{rel}");
        let golden = open_golden(&path);
        let lay = layout(layout_name);
        let (mem, mut image) = write_base(&layout_index(layout_name, generation), &lay, 8);
        let new_root = golden.root_index_bytes().unwrap();
        let outcome = image
            .update_root_index(&new_root, &Sources(vec![&golden, &lay]))
            .unwrap_or_else(|e| panic!("{path}: update failed: {e}"));
        assert!(!outcome.unchanged, "{path}: update did nothing");
        n.compare(&mem.to_vec(), &path);
    }
}

#[test]
fn update_cases() {
    let mut n = Counter(0);
    let cases: &[(&str, &str)] = &[
        ("TestUpdate/AddLayer", HELLO),
        ("TestUpdate/ReplaceLayers", MANY),
        ("TestUpdate/AddImage", HELLO),
        ("TestUpdate/AddImageIndex", HELLO),
        ("TestUpdate/RemoveOKNoTemp", HELLO),
        ("TestAppendImage/Default", HELLO),
        ("TestAppendImage/WithReference", HELLO),
        ("TestAppendIndex/Default", HELLO),
        ("TestAppendIndex/WithReference", HELLO),
        ("TestReplace/ReplaceImageManifest", HELLO),
        ("TestReplace/ReplaceImageManifestList", HELLO_LIST),
        ("TestReplace/ReplaceImageNilMatcher", HELLO),
        ("TestReplace/ReplaceImageNoMatch", HELLO),
        ("TestReplace/ReplaceIndexManifest", HELLO),
        ("TestReplace/ReplaceIndexManifestList", HELLO_LIST),
        ("TestReplace/ReplaceIndexNilMatcher", HELLO),
        ("TestReplace/ReplaceIndexNoMatch", HELLO),
        ("TestRemoveManifests/NilMatcher", HELLO_LIST),
        ("TestRemoveManifests/NoMatch", HELLO_LIST),
        ("TestRemoveManifests/Valid", HELLO_LIST),
    ];
    for (case, layout_name) in cases {
        update_case(
            &mut n,
            &format!("pkg/sif/testdata/{case}.golden"),
            layout_name,
        );
    }
    assert_eq!(n.0, 33, "update-based cases compared");
}

/// Two updates from the same base; the intermediate index is serialized by the project
/// with Go's rules, so this also checks the Go JSON encoding of a root index.
#[test]
fn append_multiple() {
    let mut n = Counter(0);
    let rel = "pkg/sif/testdata/TestAppendMultiple/image.golden";
    for generation in generations(rel) {
        let path = format!("{generation}/{rel}");
        let golden = open_golden(&path);
        let lay = layout(HELLO);
        let (mem, mut image) = write_base(&layout_index(HELLO, generation), &lay, 8);
        let final_index = golden.root_index().unwrap();
        let mut mid = final_index.clone();
        let entries = mid.manifests.as_mut().unwrap();
        entries.pop();
        entries[1].set_annotation(REF_NAME, "myimage:v1");
        let sources = Sources(vec![&golden, &lay]);
        image
            .update_root_index(&mid.to_go_json(), &sources)
            .unwrap();
        image
            .update_root_index(&golden.root_index_bytes().unwrap(), &sources)
            .unwrap();
        n.compare(&mem.to_vec(), &path);
    }
    assert_eq!(n.0, 2);
}

#[test]
fn remove_blob() {
    let mut n = Counter(0);
    let rel = "pkg/sif/testdata/TestRemoveBlob/Valid.golden";
    let digest: Digest = "sha256:7050e35b49f5e348c4809f5eff915842962cb813f32062d3bbdd35c750dd7d01"
        .parse()
        .unwrap();
    for generation in generations(rel) {
        let path = format!("{generation}/{rel}");
        let (mem, mut image) = write_base(&layout_index(HELLO, generation), &layout(HELLO), 8);
        image.remove_blob(&digest).unwrap();
        assert!(image.blob(&digest).is_none());
        n.compare(&mem.to_vec(), &path);
    }
    assert_eq!(n.0, 2);
}

/// sourcesink: an empty OCI-SIF (`SIFEmpty`) with 4 or 32 spare slots, then an image or
/// index written into it.
#[test]
fn sourcesink_sif_write() {
    let mut n = Counter(0);
    let empty = Index::empty().to_go_json();
    assert_eq!(
        empty,
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#
    );
    for (case, layout_name, spare) in [
        ("ImageDefaults", HELLO, 4),
        ("ImageWithReference", HELLO, 4),
        ("IndexDefaults", HELLO_LIST, 32),
        ("IndexWithReference", HELLO_LIST, 32),
    ] {
        let rel = format!("pkg/sourcesink/testdata/TestSIFWrite/{case}.golden");
        for generation in generations(&rel) {
            let path = format!("{generation}/{rel}");
            let golden = open_golden(&path);
            let lay = layout(layout_name);
            let (mem, mut image) = write_base(&empty, &lay, spare);
            image
                .update_root_index(
                    &golden.root_index_bytes().unwrap(),
                    &Sources(vec![&golden, &lay]),
                )
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            n.compare(&mem.to_vec(), &path);
        }
    }
    assert_eq!(n.0, 6);
}

/// Every OCI-SIF golden in both generations is covered by a case above.
#[test]
fn every_oci_tools_golden_has_a_case() {
    let mut count = 0;
    for generation in [CURRENT, PRE] {
        for dir in ["pkg/sif/testdata", "pkg/sourcesink/testdata/TestSIFWrite"] {
            count += common::upstream_files_under(&format!("{generation}/{dir}"))
                .iter()
                .filter(|f| f.ends_with(".golden"))
                .count();
        }
    }
    // 7 write + 33 update + 2 append-multiple + 2 remove-blob + 6 sourcesink.
    assert_eq!(count, 50, "golden files found; a new one needs a case");
}

/// An update that needs more descriptors than the image can free grows the table first
/// (upstream would delete the old root index and then fail): the result holds what the
/// golden holds and passes every check on reopen.
#[test]
fn update_without_capacity_grows_the_table() {
    let lay = layout(HELLO);
    let (mem, mut image) = write_base(&layout_index(HELLO, CURRENT), &lay, 0);
    let old_total = image.sif().slots().len();
    assert_eq!(image.sif().free_slots(), 0);
    let golden = open_golden(&format!(
        "{CURRENT}/pkg/sif/testdata/TestUpdate/AddImage.golden"
    ));
    image
        .update_root_index(
            &golden.root_index_bytes().unwrap(),
            &Sources(vec![&golden, &lay]),
        )
        .unwrap_or_else(|e| panic!("update onto a full table: {e}"));
    let sif = SifImage::from_storage(Box::new(MemStorage::new(mem.to_vec())), OpenMode::ReadOnly)
        .unwrap_or_else(|e| panic!("the grown image does not reopen: {e}"));
    assert!(sif.slots().len() > old_total, "the table grew");
    let reopened = OciSif::from_sif(sif).unwrap();
    assert_eq!(reopened.verify_blobs().unwrap(), vec![]);
    assert_eq!(
        reopened.root_index_bytes().unwrap(),
        golden.root_index_bytes().unwrap()
    );
    let want: Vec<Digest> = golden.blobs().map(|(d, _)| d).collect();
    let got: Vec<Digest> = reopened.blobs().map(|(d, _)| d).collect();
    let (mut want_sorted, mut got_sorted) = (want.clone(), got.clone());
    want_sorted.sort();
    got_sorted.sort();
    assert_eq!(got_sorted, want_sorted, "the golden's blobs, no more");
}

/// Index::append moves a reference name to the new entry and keeps the old entry.
#[test]
fn append_moves_reference() {
    let mut idx = Index::empty();
    let a = Descriptor::of("application/vnd.oci.image.manifest.v1+json", b"a");
    let b = Descriptor::of("application/vnd.oci.image.manifest.v1+json", b"b");
    idx.append(a, Some("x:1"));
    idx.append(b, Some("x:1"));
    let e = idx.entries();
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].ref_name(), None);
    assert!(
        e[0].annotations.is_none(),
        "empty annotation maps are dropped"
    );
    assert_eq!(e[1].ref_name(), Some("x:1"));
    assert_eq!(idx.remove(|_| true), 2);
    assert!(String::from_utf8(idx.to_go_json())
        .unwrap()
        .ends_with(r#""manifests":null}"#));
}
