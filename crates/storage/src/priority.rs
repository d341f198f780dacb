//! Background work's lower CPU priority. A thread that does background work (the lease
//! manager's runtime for expiries and revoke-prefix jobs) lowers its own nice value and is
//! marked as background; the file backend commits a group of writes that came only from
//! such threads on a writer thread at the same lower priority (`file`), so a revocation
//! storm's memtable inserts yield to requests the way the rest of its work does.
//!
//! On Linux a nice value belongs to one thread. Lowering is one-way: without
//! `CAP_SYS_NICE` a thread cannot raise its priority again, which is why background
//! groups get a thread of their own instead of the writer switching back and forth.

use std::cell::Cell;

/// Nice value of background threads: weighs about a third of a normal thread, so under
/// full request load background work is slowed, never stopped.
pub const NICE: i32 = 5;

thread_local! {
    static BACKGROUND: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as doing background work and lowers its CPU priority. The mark
/// holds even if lowering fails (the thread then keeps normal priority).
pub fn enter_background() -> rustix::io::Result<()> {
    BACKGROUND.with(|b| b.set(true));
    rustix::process::setpriority_process(None, NICE)
}

/// Whether the calling thread does background work.
pub fn is_background() -> bool {
    BACKGROUND.with(Cell::get)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_background_thread_is_marked_and_lowered() {
        let (marked, nice) = std::thread::spawn(|| {
            let before = super::is_background();
            super::enter_background().unwrap();
            assert!(!before);
            (
                super::is_background(),
                rustix::process::getpriority_process(None).unwrap(),
            )
        })
        .join()
        .unwrap();
        assert!(marked);
        assert_eq!(nice, super::NICE);
        assert!(!super::is_background(), "the mark is the thread's own");
    }
}
