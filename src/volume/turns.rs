//! Phase-fair turns at the volume state's lock, so that neither readers nor writers can
//! shut the others out.

use std::sync::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Phase-fair turns at the state lock: readers share a turn, a writer has one alone, and
/// a writer that finishes lets in every reader that was waiting before the next writer
/// goes (while a writer waits, readers arriving wait for its turn to end). So a reader
/// waits for at most the writer holding the lock and one more, however many writers
/// queue, and a writer for at most the readers inside and those already waiting.
/// Readers never take a turn inside a turn: a nested read would wait for the writer
/// waiting on the outer one.
#[derive(Default)]
struct Turns {
    state: Mutex<TurnState>,
    changed: Condvar,
}

#[derive(Default)]
struct TurnState {
    /// Readers inside.
    readers: usize,
    writing: bool,
    writers_waiting: usize,
    readers_waiting: usize,
    /// Waiting readers let in by the last writer to finish, not yet inside: writers wait
    /// for them too.
    admitted: usize,
}

impl Turns {
    fn lock(&self) -> MutexGuard<'_, TurnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, s: MutexGuard<'a, TurnState>) -> MutexGuard<'a, TurnState> {
        self.changed.wait(s).unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> ReadTurn<'_> {
        let mut s = self.lock();
        if s.writing || s.writers_waiting > 0 {
            s.readers_waiting += 1;
            while s.writing || s.admitted == 0 {
                s = self.wait(s);
            }
            s.admitted -= 1;
            s.readers_waiting -= 1;
        }
        s.readers += 1;
        ReadTurn(self)
    }

    fn write(&self) -> WriteTurn<'_> {
        let mut s = self.lock();
        s.writers_waiting += 1;
        while s.writing || s.readers > 0 || s.admitted > 0 {
            s = self.wait(s);
        }
        s.writers_waiting -= 1;
        s.writing = true;
        WriteTurn(self)
    }
}

struct ReadTurn<'a>(&'a Turns);

impl Drop for ReadTurn<'_> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.readers -= 1;
        if s.readers == 0 {
            self.0.changed.notify_all();
        }
    }
}

struct WriteTurn<'a>(&'a Turns);

impl Drop for WriteTurn<'_> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.writing = false;
        s.admitted = s.readers_waiting;
        self.0.changed.notify_all();
    }
}

/// A value behind a reader-writer lock that is entered only through [`Turns`]: std's
/// lock lets no new reader in while a writer waits, so writers that keep it busy (four
/// `cp`s into /cosign, each commit holding it through its fsyncs) would shut readers out
/// for as long as they go on. The lock itself then never makes anyone wait.
///
/// A panic while the lock was held leaves it poisoned; the value is still the last one a
/// change completed or refused (changes are made image first, then state), so serving on
/// is better than failing every request.
pub(super) struct TurnLock<T> {
    turns: Turns,
    value: RwLock<T>,
}

impl<T> TurnLock<T> {
    pub(super) fn new(value: T) -> TurnLock<T> {
        TurnLock {
            turns: Turns::default(),
            value: RwLock::new(value),
        }
    }

    /// A shared turn: readers go together.
    pub(super) fn read(&self) -> Shared<'_, T> {
        let turn = self.turns.read();
        Shared {
            guard: self.value.read().unwrap_or_else(|e| e.into_inner()),
            _turn: turn,
        }
    }

    /// A turn alone.
    pub(super) fn write(&self) -> Alone<'_, T> {
        let turn = self.turns.write();
        Alone {
            guard: self.value.write().unwrap_or_else(|e| e.into_inner()),
            _turn: turn,
        }
    }
}

/// The value, read in a shared turn. Fields drop in order: the lock, then the turn.
pub(super) struct Shared<'a, T> {
    guard: RwLockReadGuard<'a, T>,
    _turn: ReadTurn<'a>,
}

impl<T> std::ops::Deref for Shared<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

/// The value, changed in a turn of its own. Fields drop in order: the lock, then the
/// turn.
pub(super) struct Alone<'a, T> {
    guard: RwLockWriteGuard<'a, T>,
    _turn: WriteTurn<'a>,
}

impl<T> std::ops::Deref for Alone<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> std::ops::DerefMut for Alone<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

#[cfg(test)]
mod tests {
    use super::Turns;
    use std::sync::{mpsc, Arc};

    /// Waits (without a deadline: a hang is the failure) until `cond` holds of the turns.
    fn until(t: &Turns, cond: impl Fn(&super::TurnState) -> bool) {
        while !cond(&t.lock()) {
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_reader_waiting_goes_before_the_next_writer() {
        let t = Arc::new(Turns::default());
        let first = t.write();
        let (tx, rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let reader = {
            let (t, tx) = (t.clone(), tx.clone());
            std::thread::spawn(move || {
                let _turn = t.read();
                tx.send("reader").unwrap();
                release_rx.recv().unwrap();
            })
        };
        until(&t, |s| s.readers_waiting == 1);
        let writer = {
            let t = t.clone();
            std::thread::spawn(move || {
                let _turn = t.write();
                tx.send("writer").unwrap();
            })
        };
        until(&t, |s| s.writers_waiting == 1);
        drop(first);
        // The writer cannot go while the reader holds its turn: whatever the scheduler
        // does, the reader is first.
        assert_eq!(rx.recv().unwrap(), "reader");
        release_tx.send(()).unwrap();
        assert_eq!(rx.recv().unwrap(), "writer");
        reader.join().unwrap();
        writer.join().unwrap();
    }

    #[test]
    fn readers_arriving_while_a_writer_waits_let_it_go_first() {
        let t = Arc::new(Turns::default());
        let inside = t.read();
        let (tx, rx) = mpsc::channel();
        let writer = {
            let (t, tx) = (t.clone(), tx.clone());
            std::thread::spawn(move || {
                let _turn = t.write();
                tx.send("writer").unwrap();
            })
        };
        until(&t, |s| s.writers_waiting == 1);
        let late = {
            let t = t.clone();
            std::thread::spawn(move || {
                let _turn = t.read();
                tx.send("late reader").unwrap();
            })
        };
        until(&t, |s| s.readers_waiting == 1);
        drop(inside);
        assert_eq!(rx.recv().unwrap(), "writer");
        assert_eq!(rx.recv().unwrap(), "late reader");
        writer.join().unwrap();
        late.join().unwrap();
    }
}
