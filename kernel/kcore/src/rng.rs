//! A small seedable pseudo-random generator, Marsaglia's xorshift64, for
//! tests, fuzzing and stress runs: the same seed always gives the same
//! sequence, so a failure can be replayed from the seed it printed. It is
//! not for anything that needs unpredictability.

/// The xorshift64 generator (13, 7, 17).
#[derive(Debug, Clone)]
pub struct XorShift64(u64);

impl XorShift64 {
    /// A generator from `seed`. Zero is xorshift's one fixed point, so it is
    /// replaced by a fixed non-zero constant.
    pub const fn new(seed: u64) -> Self {
        XorShift64(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `0..n`; `n` must not be 0. (The modulo bias is far below
    /// what tests can notice.)
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// An index in `0..len`; `len` must not be 0.
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// True once in `one_in` times on average; `one_in` must not be 0.
    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::XorShift64;

    #[test]
    fn same_seed_same_sequence() {
        let (mut a, mut b) = (XorShift64::new(42), XorShift64::new(42));
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn zero_seed_does_not_stick() {
        let mut r = XorShift64::new(0);
        assert!((0..10).map(|_| r.next_u64()).all(|x| x != 0));
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = XorShift64::new(7);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let x = r.below(10);
            assert!(x < 10);
            seen[x as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
