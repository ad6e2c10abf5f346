//! Seeded randomness shared by every algorithm: SplitMix64 (Steele, Lea & Flood 2014), keyed by
//! the training seed, a purpose, a round and (for rows) the row's own values or index.
//!
//! A decision drawn here depends on those keys only, never on partitions' placement,
//! executors or threads: that is what makes a seeded model the same on 1 or N executors. A
//! few lines of well-known code instead of a `rand` dependency in the library.

/// SplitMix64's increment (the golden ratio in 64 bits).
pub const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
/// The starting state of [`point_hash`].
pub const HASH_START: u64 = 0x243F_6A88_85A3_08D3;

/// The SplitMix64 finalizer: a bijective 64-bit mix.
#[inline(always)]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A key for (seed, purpose, round).
pub fn stream(seed: u64, purpose: u64, round: u64) -> u64 {
    mix64(mix64(seed ^ purpose).wrapping_add(GOLDEN) ^ round)
}

/// A uniform number in `[0, 1)` from 64 random bits.
#[inline(always)]
pub fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The bits of a coordinate, with `-0.0` read as `0.0` (they are the same point).
#[inline(always)]
pub fn value_bits(v: f64) -> u64 {
    (v + 0.0).to_bits()
}

/// One coordinate folded into a point hash (see [`point_hash`]).
#[inline(always)]
pub fn hash_step(h: u64, v: f64) -> u64 {
    mix64(h ^ value_bits(v)).wrapping_add(GOLDEN)
}

/// A hash of a point's coordinates: equal points hash equal wherever they are stored.
pub fn point_hash(values: impl Iterator<Item = f64>) -> u64 {
    values.fold(HASH_START, hash_step)
}

/// The SplitMix64 generator, for seeded choices made in sequence (the driver's picks).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix64(self.0)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        unit(self.next_u64())
    }

    /// Uniform in `0..n` (`n > 0`), by rejection so it is exactly uniform.
    pub fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let r = self.next_u64();
            if r < zone {
                return (r % n) as usize;
            }
        }
    }
}
