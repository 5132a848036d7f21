//! The anti-replay window (pure): which frame counters of one sender under
//! one key were already accepted.
//!
//! A sliding bitmap over the last [`WINDOW`] counters below the highest one
//! accepted, as IPsec keeps per security association (RFC 4303 section
//! 3.4.3, with a larger window). UDP may reorder frames, so a counter
//! below the highest is still accepted once while it is inside the window;
//! anything older is refused, since the window can no longer tell whether
//! it was seen.

/// How many counters below the highest accepted one are still tracked.
/// 2048 frames is about 20 ms of a saturated 1 Gbit/s link: far more
/// reordering than one UDP path shows.
pub const WINDOW: u64 = 2048;

const WORDS: usize = (WINDOW / 64) as usize;

/// The accepted counters of one (sender, key) pair.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// The highest accepted counter; meaningless while `bits` is empty.
    top: u64,
    /// Whether any counter was accepted yet.
    any: bool,
    /// Bit `c % WINDOW` is set when counter `c` (within the window) was
    /// accepted.
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            top: 0,
            any: false,
            bits: [0; WORDS],
        }
    }
}

impl ReplayWindow {
    /// Whether `counter` would be accepted: newer than the highest, or
    /// inside the window and not seen. Changes nothing, so a frame can be
    /// refused cheaply before its tag is checked.
    pub fn check(&self, counter: u64) -> bool {
        if !self.any || counter > self.top {
            return true;
        }
        let age = self.top - counter;
        age < WINDOW && !self.is_set(counter)
    }

    /// Records `counter` as accepted; returns false (and changes nothing)
    /// if [`check`](Self::check) would refuse it. Call it only once the
    /// frame is known to be authentic, so forged frames cannot move the
    /// window.
    pub fn accept(&mut self, counter: u64) -> bool {
        if !self.check(counter) {
            return false;
        }
        if !self.any {
            self.any = true;
            self.top = counter;
        } else if counter > self.top {
            self.advance(counter);
        }
        self.set(counter);
        true
    }

    /// Moves the top to `counter`, forgetting the counters that fall out of
    /// the window (their bits are reused by the new ones).
    fn advance(&mut self, counter: u64) {
        let gap = counter - self.top;
        if gap >= WINDOW {
            self.bits = [0; WORDS];
        } else {
            for c in self.top + 1..=counter {
                self.clear(c);
            }
        }
        self.top = counter;
    }

    fn slot(counter: u64) -> (usize, u64) {
        let bit = counter % WINDOW;
        ((bit / 64) as usize, 1 << (bit % 64))
    }

    fn is_set(&self, counter: u64) -> bool {
        let (word, mask) = Self::slot(counter);
        self.bits[word] & mask != 0
    }

    fn set(&mut self, counter: u64) {
        let (word, mask) = Self::slot(counter);
        self.bits[word] |= mask;
    }

    fn clear(&mut self, counter: u64) {
        let (word, mask) = Self::slot(counter);
        self.bits[word] &= !mask;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_counter_is_accepted_once() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(0));
        assert!(!w.accept(0));
        assert!(w.accept(1));
        assert!(!w.accept(1));
    }

    #[test]
    fn reordered_counters_inside_the_window_are_accepted_once() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(100));
        assert!(w.accept(98));
        assert!(w.accept(99));
        assert!(!w.accept(98));
        assert!(!w.accept(99));
        assert!(!w.accept(100));
        assert!(w.accept(101));
    }

    #[test]
    fn window_edges() {
        let mut w = ReplayWindow::default();
        let top = 10_000;
        assert!(w.accept(top));
        // The oldest counter still tracked, then the first one that is not.
        assert!(w.check(top - (WINDOW - 1)));
        assert!(!w.check(top - WINDOW));
        assert!(w.accept(top - (WINDOW - 1)));
        assert!(!w.accept(top - (WINDOW - 1)));
        assert!(!w.accept(top - WINDOW));
        // Check alone changes nothing.
        assert!(w.check(top - 5));
        assert!(w.check(top - 5));
    }

    #[test]
    fn advancing_forgets_bits_that_leave_the_window() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(5));
        // 5 + WINDOW shares 5's bit: it must be clear for the new counter,
        // and 5 itself is now too old.
        assert!(w.accept(5 + WINDOW));
        assert!(!w.accept(5));
        assert!(w.accept(6));
        assert!(!w.accept(6));
        // Bits between the old and new top were cleared on the way.
        assert!(w.accept(5 + WINDOW - 1));
    }

    #[test]
    fn a_big_jump_clears_everything() {
        let mut w = ReplayWindow::default();
        for c in 0..100 {
            assert!(w.accept(c));
        }
        let far = 1 << 40;
        assert!(w.accept(far));
        assert!(!w.check(99));
        assert!(w.accept(far - 1));
        assert!(w.accept(far - (WINDOW - 1)));
        assert!(!w.accept(far));
    }

    #[test]
    fn every_counter_in_a_long_run_is_accepted_exactly_once() {
        let mut w = ReplayWindow::default();
        // Pairs swapped: 1, 0, 3, 2, ...
        for c in 0..10_000u64 {
            assert!(w.accept(c ^ 1), "{c}");
        }
        for c in 10_000 - WINDOW..10_000 {
            assert!(!w.accept(c), "{c}");
        }
    }
}
