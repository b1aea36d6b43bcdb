//! The descriptor table in memory, remembering which slots changed since it was last
//! written.
//!
//! Every change to an image rewrites its table. Writing all of it cost an attach on a
//! 10,000-object image four 6 MB encodes and overlay writes (and as much memory) for
//! the three or four slots that changed. Mutable access goes only through this type,
//! so a slot cannot change without being marked: the compiler sees to it.

use std::collections::BTreeSet;
use std::ops::{Deref, Index, IndexMut, Range};

use super::descriptor::Descriptor;

#[derive(Clone, Debug)]
pub(super) struct Slots {
    all: Vec<Descriptor>,
    /// Slots changed since the table was last written.
    dirty: BTreeSet<usize>,
}

impl Slots {
    /// A table as read from storage: nothing to write.
    pub fn written(all: Vec<Descriptor>) -> Slots {
        Slots {
            all,
            dirty: BTreeSet::new(),
        }
    }

    /// A table storage does not hold yet: every slot is to be written.
    pub fn unwritten(all: Vec<Descriptor>) -> Slots {
        let dirty = (0..all.len()).collect();
        Slots { all, dirty }
    }

    /// Grows or shrinks the table; new slots are to be written.
    pub fn resize(&mut self, len: usize, value: Descriptor) {
        let old = self.all.len();
        self.all.resize(len, value);
        self.dirty.retain(|&i| i < len);
        self.dirty.extend(old..len);
    }

    /// The changed slots as runs of adjacent slots, in table order.
    pub fn dirty_runs(&self) -> Vec<Range<usize>> {
        let mut runs: Vec<Range<usize>> = Vec::new();
        for &i in &self.dirty {
            match runs.last_mut() {
                Some(run) if run.end == i => run.end += 1,
                _ => runs.push(i..i + 1),
            }
        }
        runs
    }

    /// Called once the changed slots are on storage.
    pub fn mark_written(&mut self) {
        self.dirty.clear();
    }
}

impl Deref for Slots {
    type Target = [Descriptor];
    fn deref(&self) -> &[Descriptor] {
        &self.all
    }
}

impl Index<usize> for Slots {
    type Output = Descriptor;
    fn index(&self, i: usize) -> &Descriptor {
        &self.all[i]
    }
}

impl IndexMut<usize> for Slots {
    /// Any mutable access counts as a change: marking a slot that stays the same only
    /// writes its bytes again.
    fn index_mut(&mut self, i: usize) -> &mut Descriptor {
        let d = &mut self.all[i];
        self.dirty.insert(i);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_remembered_as_runs() {
        let mut s = Slots::written(vec![Descriptor::unused(); 10]);
        assert!(s.dirty_runs().is_empty());
        s[3].id = 1;
        s[4].id = 2;
        s[8].id = 3;
        assert_eq!(s.dirty_runs(), vec![3..5, 8..9]);
        s.mark_written();
        assert!(s.dirty_runs().is_empty());
        s.resize(12, Descriptor::unused());
        assert_eq!(s.dirty_runs(), vec![10..12]);
        assert_eq!(
            Slots::unwritten(vec![Descriptor::unused(); 3]).dirty_runs(),
            vec![0..3]
        );
    }
}
