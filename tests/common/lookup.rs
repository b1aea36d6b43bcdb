//! Paths in the library's file tree ([`Tree`]) and in a volume ([`Volume`]), for the
//! tests that use them without a mount.
#![allow(dead_code)]

use sifmount::tree::{Ino, Tree, TreeError, ROOT};
use sifmount::volume::Volume;

/// The inode at `path` ("" or "/" is the root) of a volume, looked up one name at a
/// time as the kernel would.
pub fn resolve(v: &Volume, path: &str) -> Result<Ino, TreeError> {
    let mut ino = ROOT;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        ino = v.lookup(ino, part.as_bytes())?.ino;
    }
    Ok(ino)
}

/// The names listed in the volume's directory `path`, which must exist; for `/cosign`,
/// without the summary files every listing of it has ([`crate::common::without_summary`]).
pub fn names(v: &Volume, path: &str) -> Vec<String> {
    let dir = resolve(v, path).unwrap();
    let all = v
        .entries(dir)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    crate::common::without_summary(path, all)
}

/// The names listed in the tree's directory `path`, which must exist; for `/cosign`,
/// without the summary files.
pub fn tree_names(tree: &Tree, path: &str) -> Vec<String> {
    let ino = tree.resolve(path).unwrap().ino;
    let all = tree
        .entries(ino)
        .unwrap()
        .iter()
        .map(|e| e.name.clone())
        .collect();
    crate::common::without_summary(path, all)
}
