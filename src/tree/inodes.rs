//! Inode numbers that survive rebuilding the tree.
//!
//! A read-write mount rebuilds its [`Tree`] after every change to the image. The kernel
//! keeps what it learnt about inode numbers (names, sizes, cached pages), so a number
//! must keep meaning the same thing: a node keeps its number across rebuilds as long as
//! it is reached by the same path and holds the same content, and a number is never
//! given to anything else. A file whose content changes (`/index.json` after an attach)
//! therefore gets a new number, and pages cached for the old one can never be served
//! for it.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use super::{Content, Ino, NodeData, Tree, ROOT};

/// Every identity seen during a mount and the number it was given.
#[derive(Debug, Default)]
pub struct InodeTable {
    numbers: HashMap<Box<str>, Ino>,
    next: Ino,
}

impl InodeTable {
    pub fn new() -> InodeTable {
        InodeTable {
            numbers: HashMap::new(),
            next: ROOT,
        }
    }

    /// A table whose first free number is after `count`: the numbers of a tree as built,
    /// entered later with [`Tree::enter_numbers`].
    pub fn after(count: usize) -> InodeTable {
        InodeTable {
            numbers: HashMap::new(),
            next: ROOT + count as Ino,
        }
    }

    /// A number that no node has had and none will get: for files and directories that
    /// live outside the tree (staged writes).
    pub fn fresh(&mut self) -> Ino {
        let ino = self.next;
        self.next += 1;
        ino
    }

    /// The path the node numbered `ino` was first reached by, for a number a tree node
    /// had (not one [`InodeTable::fresh`] gave out). A linear search: asked only when the
    /// kernel opens an inode a commit has just replaced.
    pub fn path_of(&self, ino: Ino) -> Option<&str> {
        self.numbers
            .iter()
            .find(|(_, &n)| n == ino)
            .and_then(|(key, _)| key.split('\0').next())
    }

    fn number(&mut self, key: String) -> Ino {
        if let Some(&ino) = self.numbers.get(key.as_str()) {
            return ino;
        }
        let ino = self.fresh();
        self.numbers.insert(key.into_boxed_str(), ino);
        ino
    }
}

impl Tree {
    /// Whether [`Tree::renumber`] has run.
    pub fn is_numbered(&self) -> bool {
        self.slots.is_some()
    }

    /// The numbers this tree was built with (inode = index + 1), entered in a table made
    /// with [`InodeTable::after`]`(self.node_count())`, which has not given them out.
    pub fn enter_numbers(&self, table: &mut InodeTable) {
        assert!(
            self.slots.is_none(),
            "only a tree as built has its own numbers"
        );
        for (slot, key) in self.identity_keys().into_iter().enumerate() {
            table.numbers.insert(key.into_boxed_str(), slot as Ino + 1);
        }
    }

    /// How many nodes the tree has.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Gives every node its number from `table`. Numbers are assigned in node order, so
    /// a tree numbered by a new table keeps the numbers it was built with.
    pub fn renumber(&mut self, table: &mut InodeTable) {
        assert!(
            self.slots.is_none(),
            "a tree is numbered once, right after it is built"
        );
        let keys = self.identity_keys();
        let old_to_new: Vec<Ino> = keys.into_iter().map(|k| table.number(k)).collect();
        let new = |old: Ino| old_to_new[(old - 1) as usize];
        for node in &mut self.nodes {
            if node.parent != 0 {
                node.parent = new(node.parent);
            }
            if let NodeData::Dir(entries) = &mut node.data {
                for e in entries.iter_mut() {
                    e.ino = new(e.ino);
                }
            }
        }
        if let Some(dir) = self.cosign_dir.as_mut() {
            *dir = new(*dir);
        }
        for (dir, _) in &mut self.cosign_entries {
            *dir = new(*dir);
        }
        self.index_cosign_entries();
        self.slots = Some(
            old_to_new
                .iter()
                .enumerate()
                .map(|(slot, &ino)| (ino, slot))
                .collect(),
        );
    }

    /// For each node (by index), the path it is first reached by, walking directories in
    /// name order, and what it holds. Must run before numbering (inode = index + 1).
    fn identity_keys(&self) -> Vec<String> {
        let mut paths: Vec<Option<String>> = vec![None; self.nodes.len()];
        paths[(ROOT - 1) as usize] = Some(String::new());
        let mut todo = vec![ROOT];
        while let Some(dir) = todo.pop() {
            let base = paths[(dir - 1) as usize].clone().unwrap_or_default();
            if let NodeData::Dir(entries) = &self.nodes[(dir - 1) as usize].data {
                // Reversed onto a stack, so directories are walked in name order.
                for e in entries.iter().rev() {
                    let slot = (e.ino - 1) as usize;
                    if paths[slot].is_none() {
                        paths[slot] = Some(format!("{base}/{}", e.name));
                        if matches!(self.nodes[slot].data, NodeData::Dir(_)) {
                            todo.push(e.ino);
                        }
                    }
                }
            }
        }
        paths
            .into_iter()
            .zip(&self.nodes)
            .enumerate()
            .map(|(slot, (path, node))| {
                // Nodes no directory lists cannot be reached; the slot keeps them apart.
                let path = path.unwrap_or_else(|| format!("\0unlinked {slot}"));
                let what = match &node.data {
                    NodeData::Dir(_) => "d".to_string(),
                    NodeData::Symlink(target) => format!("l{target}"),
                    NodeData::File(Content::Bytes(b)) => {
                        let mut h = std::collections::hash_map::DefaultHasher::new();
                        b.hash(&mut h);
                        format!("b{:x}", h.finish())
                    }
                    NodeData::File(Content::Range { identity, .. }) => format!("r{identity:x}"),
                    NodeData::File(Content::Descriptors { identity, .. }) => {
                        format!("g{identity:x}")
                    }
                };
                format!("{path}\0{what}")
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_numbers_are_never_reused() {
        let mut t = InodeTable::new();
        let a = t.number("/a\0d".into());
        assert_eq!(a, ROOT);
        let f = t.fresh();
        let b = t.number("/b\0d".into());
        assert!(f != a && f != b && a != b);
        assert_eq!(t.number("/a\0d".into()), a);
    }
}
