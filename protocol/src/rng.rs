//! Deterministic, seeded randomness for the sans-IO cores.
//!
//! Upstream draws the initial request counter, the `new_str` string ids and the Fernet IVs from the
//! OS (`random.SystemRandom`, `os.urandom`). A sans-IO core must give the same output for the same
//! inputs, so every such draw comes from this generator instead, seeded by the caller (the adapter
//! seeds it from the OS; the simulator and tests from a fixed `u64`).
//!
//! The generator is xoshiro256** (Blackman and Vigna), seeded through SplitMix64 as its authors
//! recommend. It is not a cryptographic generator: Fernet only needs IVs that do not repeat under one
//! key, which 128 bits drawn from a 256-bit-state generator give in practice, and the counters and
//! string ids only need to be hard to collide by accident. An adapter that wants OS-grade IVs seeds
//! each connection from the OS, which is what [`Rng::from_seed`] is for.
//!
//! Independent streams: [`Rng::fork`] derives a child generator from the parent's seed material and
//! a stream label (e.g. one per connection, one per subsystem), without advancing the parent, so
//! adding a stream never shifts the numbers another stream sees.

/// One step of SplitMix64: used to expand a `u64` seed into the xoshiro state and to mix labels.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small deterministic random number generator (xoshiro256**), seeded from a `u64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    state: [u64; 4],
    /// The seed this generator was built from, kept so that [`Rng::fork`] does not depend on how
    /// many numbers were drawn before the fork.
    seed: u64,
}

impl Rng {
    /// Builds a generator from a 64-bit seed. Equal seeds give equal sequences.
    pub fn from_seed(seed: u64) -> Self {
        let mut sm = seed;
        let mut state = [0u64; 4];
        for word in &mut state {
            *word = splitmix64(&mut sm);
        }
        // xoshiro must not start from the all-zero state; SplitMix64 never yields four zeros in a
        // row, but keep the invariant explicit.
        if state == [0; 4] {
            state[0] = 1;
        }
        Self { state, seed }
    }

    /// The seed this generator was built from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Derives an independent generator for the stream `label` (a connection number, a subsystem
    /// tag). The parent is not advanced: forking the same label twice gives the same child.
    pub fn fork(&self, label: u64) -> Rng {
        let mut sm = self.seed ^ 0x6A09_E667_F3BC_C909;
        let a = splitmix64(&mut sm);
        let mut sl = label ^ a;
        let b = splitmix64(&mut sl);
        Rng::from_seed(a.rotate_left(17) ^ b)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Next 32 random bits (the high half of [`Rng::next_u64`], the better half of xoshiro).
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A uniform value in `0..bound` (Lemire's multiply-shift with rejection). `bound` must be
    /// non-zero; a zero bound returns 0 rather than panicking.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        loop {
            let x = self.next_u64();
            let m = u128::from(x) * u128::from(bound);
            let low = m as u64;
            if low >= bound.wrapping_neg() % bound {
                return (m >> 64) as u64;
            }
        }
    }

    /// Fills `out` with random bytes.
    pub fn fill_bytes(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    /// Sixteen random bytes, e.g. a Fernet IV.
    pub fn next_iv(&mut self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        self.fill_bytes(&mut iv);
        iv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro_reference_sequence() {
        // Reference: xoshiro256** with state {1, 2, 3, 4} gives 11520, 0, 1509978240,
        // 1215971899390074240 (first outputs of the authors' C code).
        let mut rng = Rng {
            state: [1, 2, 3, 4],
            seed: 0,
        };
        assert_eq!(rng.next_u64(), 11520);
        assert_eq!(rng.next_u64(), 0);
        assert_eq!(rng.next_u64(), 1_509_978_240);
        assert_eq!(rng.next_u64(), 1_215_971_899_390_074_240);
    }

    #[test]
    fn splitmix_reference() {
        // SplitMix64 from seed 0: first output 0xE220A8397B1DCDAF (authors' reference).
        let mut s = 0u64;
        assert_eq!(splitmix64(&mut s), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn same_seed_same_sequence_and_forks_are_independent_of_draws() {
        let mut a = Rng::from_seed(42);
        let mut b = Rng::from_seed(42);
        let fork_before = a.fork(7);
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_eq!(a.fork(7), fork_before);
        assert_ne!(a.fork(7), a.fork(8));
        assert_ne!(Rng::from_seed(42).next_u64(), Rng::from_seed(43).next_u64());
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = Rng::from_seed(1);
        for bound in [1u64, 2, 3, 10, 1 << 32, u64::MAX] {
            for _ in 0..100 {
                assert!(rng.below(bound) < bound);
            }
        }
        assert_eq!(rng.below(0), 0);
    }

    #[test]
    fn fill_bytes_handles_odd_lengths() {
        let mut a = Rng::from_seed(9);
        let mut b = Rng::from_seed(9);
        let mut buf = [0u8; 13];
        a.fill_bytes(&mut buf);
        let first = b.next_u64().to_le_bytes();
        let second = b.next_u64().to_le_bytes();
        assert_eq!(&buf[..8], &first);
        assert_eq!(&buf[8..], &second[..5]);
    }
}
