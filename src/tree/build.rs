//! Building a [`Tree`] from an opened image: every name and inode is decided here.

use std::collections::HashMap;
use std::path::Path;

use super::names::{self, UniqueNames};
use super::{
    sif_json, Because, Content, DirEntry, ImageTrust, Ino, Kind, Node, NodeData, Tree, TreeError,
    TreeOptions, ROOT,
};
use crate::cosign;
use crate::oci::{media_type, Descriptor, ImageKind, Index, OciSif};
use crate::sif::{Descriptor as SifDescriptor, Digest, SifImage};

/// The bytes of every `oci-layout` file, as the OCI image layout specification writes it.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion": "1.0.0"}"#;

/// How deep indexes may nest under `/images/<name>/` before the tree stops following
/// them (real images nest one level; a cycle would otherwise never end).
const MAX_IMAGE_DEPTH: usize = 8;

/// The most names `/images` holds (man/sifmount.1, LIMITS). `/images` unfolds the graph of
/// indexes and manifests into a tree, and a graph of a few kilobytes can unfold into
/// billions of directories: an index may list one manifest any number of times, or each
/// of nested indexes list the next many times. Each name costs about 200 bytes, so the
/// bound keeps such an image to about 50 MB of memory; real images need hundreds.
pub const MAX_IMAGE_NAMES: usize = 250_000;

/// The most bytes the `index.json` files of platform layouts under `/images` hold
/// together (man/sifmount.1, LIMITS). Each repeats its manifest's descriptor, and
/// `/images` can show one descriptor many times (an index listing another many times):
/// a descriptor of a megabyte of annotations, unfolded, would take gigabytes. Real
/// images need kilobytes; past the bound, platform directories are not layouts.
pub const MAX_LAYOUT_BYTES: usize = 16 << 20;

/// The most warnings a report keeps: a hostile image can have a problem per entry of a
/// 100,000-entry index, and one line per problem would flood the log. The rest are
/// counted in a last line.
const MAX_WARNINGS: usize = 1000;

/// What the tree could not show, one line each; the command line logs them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BuildReport {
    pub warnings: Vec<String>,
}

/// Go's zero `time.Time` in Unix seconds: what oci-tools and the SIF library write as
/// the time of an image made without one (`OptCreateDeterministic`, every OCI-SIF
/// oci-tools writes). Like 0, it means no time was recorded.
pub const GO_ZERO_TIME: i64 = -62_135_596_800;

/// The time a file shows for a SIF time `t`: `t`, unless the SIF recorded none (0 or
/// [`GO_ZERO_TIME`]); then the image file's own modification time, when the image is a
/// file (man/sifmount.1, THE TREE). Year 1 is what `ls -l` showed before, and `cp -a`
/// made 1901 of it.
pub(super) fn shown_time(t: i64, file_mtime: Option<i64>) -> i64 {
    match file_mtime {
        Some(file) if t == 0 || t == GO_ZERO_TIME => file,
        _ => t,
    }
}

/// Builds the tree of `sif`, opened from `path`; `file_mtime` is the image file's
/// modification time (Unix seconds), shown where the SIF records no time.
pub(super) fn build(
    path: &Path,
    sif: SifImage,
    options: &TreeOptions,
    file_mtime: Option<i64>,
) -> Result<(Tree, BuildReport), TreeError> {
    let shown = path.display().to_string();
    let header = sif.header().clone();
    // Most images need about three nodes per object (its blob, its /sif/objects file, a
    // layer link or an entry file): sized once, the vector of a 10,000-object image never
    // holds its old and new buffers at once while doubling.
    let mut b = Builder {
        nodes: Vec::with_capacity(3 * sif.used_count() + 64),
        slot_of_id: sif.descriptors().map(|(i, d)| (d.id, i as u32)).collect(),
        report: BuildReport::default(),
        mtime: shown_time(header.modified_at, file_mtime),
        crtime: shown_time(header.created_at, file_mtime),
        file_mtime,
        oci_layout: None,
        tag: String::new(),
        blobs: HashMap::new(),
        path: shown.clone(),
        signatures: HashMap::new(),
        image_paths: HashMap::new(),
        options,
        cosign_dir: None,
        cosign_entries: Vec::new(),
        verdicts: HashMap::new(),
        image_dirs: Vec::new(),
        withheld: HashMap::new(),
        names: 0,
        image_names_end: usize::MAX,
        images_truncated: false,
        ancestors: Vec::new(),
        unreadable: HashMap::new(),
        dropped_warnings: 0,
        layout_bytes: 0,
    };
    let root = b.dir(ROOT);
    debug_assert_eq!(root, ROOT);
    b.sif_dir(&sif);

    let sif = match ImageKind::of(&sif) {
        ImageKind::Native => sif,
        ImageKind::Ambiguous { slots } => {
            b.warn(format!(
                "{} OCI root indexes (slots {slots:?}): not an OCI-SIF, showing /sif only",
                slots.len()
            ));
            sif
        }
        ImageKind::OciSif { .. } => {
            let oci = OciSif::from_sif(sif)
                .map_err(|e| TreeError::Open(Because::with(format!("{shown}: {e}"), e)))?;
            b.oci(&oci);
            oci.into_sif()
        }
    };

    let image_len = sif
        .file_len()
        .map_err(|e| TreeError::Open(Because::with(format!("{shown}: {e}"), e)))?;
    if b.dropped_warnings > 0 {
        let more = format!("{shown}: {} more warnings not shown", b.dropped_warnings);
        b.report.warnings.push(more);
    }
    let nodes = b.finish();
    let mut tree = Tree {
        path: path.to_path_buf(),
        nodes,
        storage: sif.into_storage(),
        image_len,
        slots: None,
        cosign_dir: b.cosign_dir,
        cosign_entries: std::mem::take(&mut b.cosign_entries),
        verdicts: std::mem::take(&mut b.verdicts),
        withheld: std::mem::take(&mut b.withheld),
        images: std::mem::take(&mut b.image_dirs)
            .into_iter()
            .map(|i| ImageTrust {
                name: i.name,
                digest: i.digest,
                verified: i.verified,
                holds_entries: i.holds_entries,
            })
            .collect(),
        cosign_by_dir: HashMap::new(),
        fingerprint: 0,
        table_place: [0; 16],
        verified: Default::default(),
    };
    tree.index_cosign_entries();
    Ok((tree, b.report))
}

/// A number that changes whenever the object behind a file could hold other bytes: the
/// descriptor's ID, type, place, size, digest (Extra) and time. Inode numbers of a
/// read-write mount are tied to it, so an inode never changes content (see `inodes.rs`).
///
/// OCI objects are named by their digest (Extra), which fixes their bytes wherever they
/// lie: they keep their identity when a table growth moves them.
pub(super) fn object_identity(d: &SifDescriptor) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if d.data_type().is_oci() {
        (d.data_type_raw, d.size).hash(&mut h);
    } else {
        (d.id, d.data_type_raw, d.offset, d.size, d.modified_at).hash(&mut h);
    }
    // Only up to the last non-zero byte: the field is 384 bytes, mostly padding, and
    // hashing all of it for every object was a tenth of the mount time.
    let end = d.extra.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    d.extra[..end].hash(&mut h);
    h.finish()
}

/// A number no earlier tree of this process had: the identity of documents that change
/// with every commit (`/sif/descriptors.json`), so that each tree gives them a new inode.
pub(super) fn next_tree_number() -> u64 {
    static TREES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    TREES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

pub(super) struct Builder<'o> {
    nodes: Vec<Node>,
    /// Each object's slot in the descriptor table, by ID: what reads check
    /// (`Content::Range`).
    slot_of_id: HashMap<u32, u32>,
    report: BuildReport,
    /// Times of everything that is not one object: the header's ([`shown_time`]).
    pub(super) mtime: i64,
    pub(super) crtime: i64,
    /// The image file's modification time, for objects that record none.
    file_mtime: Option<i64>,
    /// The `oci-layout` file every layout shares.
    oci_layout: Option<Ino>,
    /// The tag of the `/images/<name>/` being built ([`names::image_tag`]), which each
    /// layout below it gives its one image too.
    tag: String,
    /// The inode of `/blobs/sha256/<hex>` for every blob.
    pub(super) blobs: HashMap<Digest, Ino>,
    pub(super) path: String,
    /// Names of the `/cosign` entries about each target digest, for `signatures/`.
    pub(super) signatures: HashMap<Digest, Vec<String>>,
    /// Where each manifest or index shown under `/images` is (`images/<name>/<platform>`).
    pub(super) image_paths: HashMap<Digest, String>,
    pub(super) options: &'o TreeOptions,
    /// `/cosign`, when the image is an OCI-SIF.
    pub(super) cosign_dir: Option<Ino>,
    /// Each `/cosign/<entry>/` directory and the entry it shows.
    pub(super) cosign_entries: Vec<(Ino, cosign::Entry)>,
    /// Each verified entry's verdict, by entry name (only when the mount verifies).
    pub(super) verdicts: HashMap<String, cosign::Verdict>,
    /// Each `/images/<name>/` directory.
    pub(super) image_dirs: Vec<ImageDir>,
    /// The objects `require_signed` withholds, by slot, with their digests.
    pub(super) withheld: HashMap<u32, Digest>,
    /// Names linked so far, and the count at which `/images` is full
    /// ([`MAX_IMAGE_NAMES`]; `usize::MAX` until `/images` is built).
    names: usize,
    image_names_end: usize,
    images_truncated: bool,
    /// The indexes being unfolded under `/images`, outermost first: one that lists any
    /// of them is a cycle (possible only with digests that do not match the bytes).
    ancestors: Vec<Digest>,
    /// Documents under `/images` that could not be read or parsed, with why: an index
    /// may list the same broken megabyte 100,000 times, and it is read once.
    unreadable: HashMap<Digest, String>,
    /// Warnings past [`MAX_WARNINGS`].
    dropped_warnings: usize,
    /// The bytes of the platform layouts' `index.json` files so far
    /// ([`MAX_LAYOUT_BYTES`]).
    layout_bytes: usize,
}

/// A top-level `/images/<name>/` directory being built.
pub(super) struct ImageDir {
    pub(super) name: String,
    pub(super) digest: Digest,
    pub(super) dir: Ino,
    /// How many entries about it verify, when the tree verifies.
    pub(super) verified: Option<usize>,
    /// Whether it is itself a signature image or referrer: its layers are entries.
    pub(super) holds_entries: bool,
}

impl Builder<'_> {
    pub(super) fn warn(&mut self, message: String) {
        if self.report.warnings.len() >= MAX_WARNINGS {
            self.dropped_warnings += 1;
            return;
        }
        self.report
            .warnings
            .push(format!("{}: {message}", self.path));
    }

    /// Whether `/images` has all the names it may hold; says so once.
    fn images_full(&mut self) -> bool {
        if self.names < self.image_names_end {
            return false;
        }
        if !self.images_truncated {
            self.images_truncated = true;
            self.warn(format!(
                "images: more than {MAX_IMAGE_NAMES} names (indexes that list the same \
                 images many times?); the rest of /images is not shown"
            ));
        }
        true
    }

    fn push(&mut self, data: NodeData, mtime: i64, crtime: i64, parent: Ino) -> Ino {
        self.nodes.push(Node {
            data,
            nlink: 0,
            mtime,
            crtime,
            parent,
        });
        self.nodes.len() as Ino
    }

    pub(super) fn node(&self, ino: Ino) -> &Node {
        &self.nodes[(ino - 1) as usize]
    }

    pub(super) fn node_mut(&mut self, ino: Ino) -> &mut Node {
        &mut self.nodes[(ino - 1) as usize]
    }

    /// A new directory, not yet linked anywhere (except the root, its own parent).
    pub(super) fn dir(&mut self, parent: Ino) -> Ino {
        self.push(NodeData::Dir(Vec::new()), self.mtime, self.crtime, parent)
    }

    /// A new directory named `name` in `parent`.
    pub(super) fn subdir(&mut self, parent: Ino, name: &str) -> Ino {
        let ino = self.dir(parent);
        self.link(parent, name, ino);
        ino
    }

    pub(super) fn file(&mut self, content: Content, mtime: i64, crtime: i64) -> Ino {
        self.push(NodeData::File(content), mtime, crtime, 0)
    }

    /// A file holding the bytes of one SIF object, with its times; an OCI object named
    /// by its digest, when small, is served only as bytes that have that digest
    /// (`verified.rs`).
    pub(super) fn object_file(&mut self, d: &SifDescriptor) -> Ino {
        let checked =
            d.size as u64 <= super::verified::VERIFIED_MAX && matches!(d.oci_digest(), Some(Ok(_)));
        self.range_file(d, checked)
    }

    /// The bytes of one SIF object as stored, under `/sif/objects/`: named by its place
    /// in the table, not its digest, and the way to look at an object whose bytes do
    /// not match it.
    fn stored_object_file(&mut self, d: &SifDescriptor) -> Ino {
        self.range_file(d, false)
    }

    fn range_file(&mut self, d: &SifDescriptor, checked: bool) -> Ino {
        self.file(
            Content::Range {
                offset: d.offset as u64,
                size: d.size as u64,
                identity: object_identity(d),
                slot: self.slot_of_id.get(&d.id).copied().unwrap_or(u32::MAX),
                checked,
            },
            shown_time(d.modified_at, self.file_mtime),
            shown_time(d.created_at, self.file_mtime),
        )
    }

    pub(super) fn generated(&mut self, dir: Ino, name: &str, bytes: Vec<u8>) -> Ino {
        let ino = self.file(
            Content::Bytes(bytes.into_boxed_slice()),
            self.mtime,
            self.crtime,
        );
        self.link(dir, name, ino);
        ino
    }

    pub(super) fn symlink(&mut self, dir: Ino, name: &str, target: String) {
        let ino = self.push(
            NodeData::Symlink(target.into_boxed_str()),
            self.mtime,
            self.crtime,
            0,
        );
        self.link(dir, name, ino);
    }

    /// Adds `name` → `child` to directory `dir`. Callers make names unique per directory.
    pub(super) fn link(&mut self, dir: Ino, name: &str, child: Ino) {
        let kind = self.nodes[(child - 1) as usize].kind();
        self.names += 1;
        self.node_mut(child).nlink += 1;
        match &mut self.node_mut(dir).data {
            NodeData::Dir(entries) => entries.push(DirEntry {
                name: name.to_string(),
                ino: child,
                kind,
            }),
            _ => unreachable!("link: inode {dir} is a directory made by this builder"),
        }
    }

    /// Sorts every directory and sets directory link counts (`.`, its name, and each
    /// subdirectory's `..`).
    fn finish(&mut self) -> Vec<Node> {
        let mut nodes = std::mem::take(&mut self.nodes);
        for node in &mut nodes {
            if let NodeData::Dir(entries) = &mut node.data {
                entries.sort_by(|a, b| a.name.cmp(&b.name));
                let subdirs = entries.iter().filter(|e| e.kind == Kind::Dir).count();
                node.nlink = 2 + subdirs as u32;
            }
        }
        nodes
    }

    /// `/sif/`: header, descriptor table and every object's bytes.
    fn sif_dir(&mut self, sif: &SifImage) {
        let dir = self.subdir(ROOT, "sif");
        self.generated(dir, "header.json", sif_json::header(sif.header()));
        let objects = self.subdir(dir, "objects");
        for (_, d) in sif.descriptors() {
            let ino = self.stored_object_file(d);
            self.link(objects, &names::object_file_name(d), ino);
        }
        let doc = self.file(
            Content::Descriptors {
                identity: next_tree_number(),
                len: std::sync::OnceLock::new(),
                doc: std::sync::OnceLock::new(),
            },
            self.mtime,
            self.crtime,
        );
        self.link(dir, "descriptors.json", doc);
    }

    /// The OCI image layout at the root, `/images/` and `/cosign/`.
    fn oci(&mut self, oci: &OciSif) {
        let layout = self.generated(ROOT, "oci-layout", OCI_LAYOUT.to_vec());
        self.oci_layout = Some(layout);
        let root_index = oci.root_index_descriptor();
        let index_ino = self.object_file(root_index);
        self.link(ROOT, "index.json", index_ino);

        let blobs = self.subdir(ROOT, "blobs");
        let sha256 = self.subdir(blobs, "sha256");
        for (digest, d) in oci.blobs() {
            let ino = self.object_file(d);
            self.link(sha256, &digest.hex(), ino);
            self.blobs.insert(digest, ino);
        }

        let cosign_dir = self.subdir(ROOT, "cosign");
        self.cosign_dir = Some(cosign_dir);
        let images = self.subdir(ROOT, "images");
        // Discovery parses the root index too, and drops it before it is parsed here: a
        // root index of 100,000 entries is tens of megabytes parsed, and two at once
        // would double a mount's peak memory.
        let discovery = cosign::discover(oci);
        let index = match oci.root_index_bytes().and_then(|b| Index::parse(&b)) {
            Ok(index) => index,
            Err(e) => {
                // (Discovery says the same of the root index: not repeated.)
                self.warn(format!("root index: {e}; /images and /cosign are empty"));
                return;
            }
        };
        for w in &discovery.warnings {
            self.warn(format!("cosign: {w}"));
        }
        for e in &discovery.entries {
            self.signatures
                .entry(e.target)
                .or_default()
                .push(e.name.clone());
        }
        self.images(oci, images, &index);
        drop(index);
        self.cosign_entries(oci, cosign_dir, discovery.entries);
        if self.options.require_signed {
            self.require_signed(oci, images);
        }
    }

    /// `/images/<name>/` for every root-index entry that is not a cosign image.
    fn images(&mut self, oci: &OciSif, images: Ino, index: &Index) {
        self.image_names_end = self.names.saturating_add(MAX_IMAGE_NAMES);
        let mut taken = UniqueNames::default();
        for entry in index.entries() {
            if entry.ref_name().is_some_and(cosign::is_cosign_ref) {
                continue;
            }
            if self.images_full() {
                break;
            }
            let name = taken.claim(names::image_name(entry), &entry.digest);
            self.image_layout(oci, images, &name, entry);
        }
    }

    /// `/images/<name>/`: an OCI image layout of its own holding just `entry`, plus the
    /// image's documents under readable names.
    fn image_layout(&mut self, oci: &OciSif, images: Ino, name: &str, entry: &Descriptor) {
        let dir = self.subdir(images, name);
        self.image_dirs.push(ImageDir {
            name: name.to_string(),
            digest: entry.digest,
            dir,
            verified: None,
            holds_entries: false,
        });
        self.tag = names::image_tag(entry);
        self.layout_files(dir, entry, 2);
        self.image_content(oci, dir, entry, 2, &format!("images/{name}"));
    }

    /// What makes `dir`, `depth` directories below the root, an OCI image layout holding
    /// just `entry`: the shared `oci-layout`, an `index.json` listing `entry` under the
    /// tag of its image (so `umoci unpack --image DIR:TAG` finds it), and `blobs/sha256`
    /// linking to the root's. `blobs` itself is a directory, not a link: oci-image-tool
    /// refuses a layout whose `blobs` is not one (docs/FORMAT.md, Layouts under /images).
    fn layout_files(&mut self, dir: Ino, entry: &Descriptor, depth: usize) {
        let index = Index::single_entry_named_go_json(entry, &self.tag);
        // The top-level layouts together are the size of the root index; platform
        // layouts can repeat one descriptor without end.
        if depth > 2 {
            if self.layout_bytes.saturating_add(index.len()) > MAX_LAYOUT_BYTES {
                if self.layout_bytes <= MAX_LAYOUT_BYTES {
                    self.layout_bytes = usize::MAX;
                    self.warn(format!(
                        "images: platform layouts hold more than {MAX_LAYOUT_BYTES} bytes of \
                         index.json (descriptors shown many times?); the rest of the \
                         platform directories are not OCI layouts"
                    ));
                }
                return;
            }
            self.layout_bytes += index.len();
        }
        if let Some(layout) = self.oci_layout {
            self.link(dir, "oci-layout", layout);
        }
        self.generated(dir, "index.json", index);
        let blobs = self.subdir(dir, "blobs");
        let to_root = "../".repeat(depth + 1);
        self.symlink(blobs, "sha256", format!("{to_root}blobs/sha256"));
    }

    /// `signatures/`: a link to each `/cosign` entry about `digest`. `depth` is how many
    /// directories `dir` lies below the root.
    fn signature_links(&mut self, dir: Ino, digest: &Digest, depth: usize) {
        let sigs = self.subdir(dir, "signatures");
        let names = self.signatures.get(digest).cloned().unwrap_or_default();
        let to_root = "../".repeat(depth + 1);
        for name in names {
            if self.images_full() {
                break;
            }
            self.symlink(sigs, &name, format!("{to_root}cosign/{name}"));
        }
    }

    /// `manifest.json`, `config.json` and `layers/` of a manifest, or `image-index.json`
    /// and one subdirectory per entry of an index. `depth` is how many directories `dir`
    /// lies below the root, for relative link targets.
    fn image_content(
        &mut self,
        oci: &OciSif,
        dir: Ino,
        entry: &Descriptor,
        depth: usize,
        at: &str,
    ) {
        let digest = entry.digest;
        if self.images_full() {
            return;
        }
        let Some(&blob) = self.blobs.get(&digest) else {
            self.warn(format!("{at}: blob {digest} is not in the image"));
            return;
        };
        if let Some(why) = self.unreadable.get(&digest) {
            let why = why.clone();
            self.warn(format!("{at}: {why}"));
            return;
        }
        let refs = match oci.references(&digest) {
            Ok(refs) => refs,
            Err(e) => {
                self.unreadable.insert(digest, e.to_string());
                self.warn(format!("{at}: {e}"));
                return;
            }
        };
        let to_root = "../".repeat(depth + 1);
        if media_type::is_index(&entry.media_type)
            || (refs.manifests.is_some() && refs.config.is_none())
        {
            self.link(dir, "image-index.json", blob);
            self.image_paths.insert(digest, at.to_string());
            self.signature_links(dir, &digest, depth);
            if depth >= MAX_IMAGE_DEPTH {
                self.warn(format!(
                    "{at}: indexes nested deeper than {MAX_IMAGE_DEPTH}; not followed"
                ));
                return;
            }
            let mut taken = UniqueNames::default();
            // The index directory's own files: a platform named so gets another name.
            for own in [
                "image-index.json",
                "signatures",
                "oci-layout",
                "index.json",
                "blobs",
            ] {
                taken.reserve(own);
            }
            self.ancestors.push(digest);
            for m in refs.manifests.as_deref().unwrap_or(&[]) {
                if self.images_full() {
                    break;
                }
                if self.ancestors.contains(&m.digest) {
                    self.warn(format!(
                        "{at}: index {digest} lists {}, one of the indexes it is listed in (a \
                         cycle, which only digests that do not match the bytes can make); not \
                         followed",
                        m.digest
                    ));
                    continue;
                }
                let name = taken.claim(names::platform_dir_name(m), &m.digest);
                let sub = self.subdir(dir, &name);
                self.layout_files(sub, m, depth + 1);
                self.image_content(oci, sub, m, depth + 1, &format!("{at}/{name}"));
            }
            self.ancestors.pop();
            return;
        }
        self.link(dir, "manifest.json", blob);
        self.image_paths.insert(digest, at.to_string());
        self.signature_links(dir, &digest, depth);
        if let Some(config) = &refs.config {
            match self.blobs.get(&config.digest) {
                Some(&ino) => self.link(dir, "config.json", ino),
                None => self.warn(format!(
                    "{at}: config blob {} is not in the image",
                    config.digest
                )),
            }
        }
        let layers = refs.layers.as_deref().unwrap_or(&[]);
        let layers_dir = self.subdir(dir, "layers");
        for (i, layer) in layers.iter().enumerate() {
            if self.images_full() {
                break;
            }
            if !self.blobs.contains_key(&layer.digest) {
                // The link is still made: a dangling link says exactly what is missing.
                self.warn(format!(
                    "{at}: layer blob {} is not in the image",
                    layer.digest
                ));
            }
            self.symlink(
                layers_dir,
                &names::layer_name(i, layers.len()),
                format!("{to_root}blobs/sha256/{}", layer.digest.hex()),
            );
        }
    }
}
