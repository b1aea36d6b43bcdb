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

/// The names listed in the volume's directory `path`, which must exist.
pub fn names(v: &Volume, path: &str) -> Vec<String> {
    let dir = resolve(v, path).unwrap();
    v.entries(dir)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect()
}

/// The names listed in the tree's directory `path`, which must exist.
pub fn tree_names(tree: &Tree, path: &str) -> Vec<String> {
    let ino = tree.resolve(path).unwrap().ino;
    tree.entries(ino)
        .unwrap()
        .iter()
        .map(|e| e.name.clone())
        .collect()
}
