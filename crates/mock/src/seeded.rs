//! Seeded pseudo-random draws, so that scripted randomness (a rule's chance, the byte sizes
//! of a body written in pieces) replays exactly from its seed.

/// The next value of a SplitMix64 sequence: small, fast and plenty for fault draws.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A draw in `0.0..1.0` from the top 53 bits.
#[allow(clippy::cast_precision_loss)] // 53 bits fit an f64 exactly.
pub(crate) fn unit(draw: u64) -> f64 {
    (draw >> 11) as f64 / (1u64 << 53) as f64
}

/// The next draw in `1..=max` (`max` at least 1).
pub(crate) fn one_to(state: &mut u64, max: usize) -> usize {
    let max = u64::try_from(max.max(1)).unwrap_or(u64::MAX);
    let draw = splitmix64(state) % max;
    usize::try_from(draw).map_or(usize::MAX, |draw| draw.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_to_stays_in_range_and_reaches_both_ends() {
        let mut state = 7;
        let draws: Vec<usize> = (0..1000).map(|_| one_to(&mut state, 5)).collect();
        assert!(draws.iter().all(|d| (1..=5).contains(d)));
        assert!(draws.contains(&1) && draws.contains(&5));
        let mut state = 7;
        assert!((0..100).all(|_| one_to(&mut state, 1) == 1));
        assert_eq!(one_to(&mut 3, 0), 1);
    }

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let run = |mut state: u64| (0..50).map(|_| splitmix64(&mut state)).collect::<Vec<_>>();
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        let mut state = 9;
        assert!((0..1000).all(|_| (0.0..1.0).contains(&unit(splitmix64(&mut state)))));
    }
}
