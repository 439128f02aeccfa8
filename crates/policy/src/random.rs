//! Random draws as plain values, so the policy stays reproducible.
//!
//! The policy never asks the operating system for randomness: callers pass a [`Draw`] to
//! every decision. Adapters seed a [`SplitMix64`] once per client; tests and simulations
//! seed it with a constant and replay exactly.

/// A uniform random number in `[0, 1)`, the only kind of randomness the policy consumes.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Draw(f64);

impl Draw {
    /// The smallest draw: jitter then picks the shortest delay it can.
    pub const MIN: Draw = Draw(0.0);
    /// The draw in the middle of the range.
    pub const HALF: Draw = Draw(0.5);

    /// A draw from 64 random bits (the top 53 become the fraction).
    #[must_use]
    pub fn from_bits(bits: u64) -> Self {
        #[allow(
            clippy::cast_precision_loss,
            reason = "53 bits fit an f64 mantissa exactly"
        )]
        let fraction = (bits >> 11) as f64 / (1_u64 << 53) as f64;
        Draw(fraction)
    }

    /// A draw from a number in `[0, 1)`; `None` for anything outside that range.
    #[must_use]
    pub fn new(value: f64) -> Option<Self> {
        (0.0..1.0).contains(&value).then_some(Draw(value))
    }

    /// The number in `[0, 1)`.
    #[must_use]
    pub fn get(self) -> f64 {
        self.0
    }
}

/// A small, fast, seedable generator (SplitMix64) for producing [`Draw`]s.
///
/// Not cryptographic; it only spreads retries apart. Same seed, same sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator that replays the same sequence for the same `seed`.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next draw in `[0, 1)`.
    pub fn draw(&mut self) -> Draw {
        Draw::from_bits(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_in_range() {
        assert_eq!(Draw::from_bits(0).get(), 0.0);
        assert!(Draw::from_bits(u64::MAX).get() < 1.0);
        assert_eq!(Draw::new(1.0), None);
        assert_eq!(Draw::new(-0.1), None);
        assert_eq!(Draw::new(f64::NAN), None);
        assert_eq!(Draw::new(0.25).map(Draw::get), Some(0.25));
    }

    #[test]
    fn same_seed_same_sequence() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        let mut c = SplitMix64::new(43);
        let first: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let second: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let other: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(first, second);
        assert_ne!(first, other);
    }

    #[test]
    fn draws_spread_over_the_range() {
        let mut rng = SplitMix64::new(7);
        let mut buckets = [0_u32; 10];
        for _ in 0..10_000 {
            let index = (rng.draw().get() * 10.0) as usize;
            buckets[index] += 1;
        }
        assert!(
            buckets.iter().all(|&count| (800..1200).contains(&count)),
            "{buckets:?}"
        );
    }
}
