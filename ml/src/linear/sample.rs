//! Reproducible Bernoulli row sampling for SGD mini-batches.
//!
//! Row `r` of partition `p` is in the mini-batch of iteration `t` when `u < fraction`, where
//! `u ∈ [0, 1)` is the `r`-th output of a SplitMix64 stream (Steele, Lea & Flood 2014) keyed
//! by `(seed, p, t)`. The decision depends on nothing else: not on blocks, threads or
//! executors. The generator is [`crate::random`]'s.

use serde::{Deserialize, Serialize};

use crate::random::{mix64 as mix, unit, GOLDEN as GOLDEN_GAMMA};

/// Which rows an SGD iteration uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Expected fraction of rows in the mini-batch, in `(0, 1]`.
    pub fraction: f64,
    /// The training seed.
    pub seed: u64,
    /// The iteration, so that each iteration draws a different mini-batch.
    pub iteration: u64,
}

/// The sampler of one partition for one iteration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowSampler {
    key: u64,
    fraction: f64,
}

impl RowSampler {
    pub(crate) fn new(sample: &Sample, partition: u32) -> Self {
        let key = mix(
            mix(mix(sample.seed.wrapping_add(GOLDEN_GAMMA)) ^ u64::from(partition))
                .wrapping_add(GOLDEN_GAMMA)
                ^ sample.iteration,
        );
        Self {
            key,
            fraction: sample.fraction,
        }
    }

    /// `1.0` when row `row` of the partition is in the mini-batch, else `0.0`.
    #[inline(always)]
    pub(crate) fn weight(&self, row: u64) -> f64 {
        let z = mix(self
            .key
            .wrapping_add(row.wrapping_add(1).wrapping_mul(GOLDEN_GAMMA)));
        if unit(z) < self.fraction {
            1.0
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_about_the_fraction_and_differs_by_iteration_and_partition() {
        let s = |iteration, partition| {
            RowSampler::new(
                &Sample {
                    fraction: 0.3,
                    seed: 7,
                    iteration,
                },
                partition,
            )
        };
        let picks = |r: RowSampler| (0..100_000u64).map(|i| r.weight(i)).collect::<Vec<_>>();
        let a = picks(s(1, 0));
        let kept: f64 = a.iter().sum::<f64>() / a.len() as f64;
        assert!((kept - 0.3).abs() < 0.01, "{kept}");
        assert_eq!(a, picks(s(1, 0)), "the same key gives the same rows");
        assert_ne!(a, picks(s(2, 0)));
        assert_ne!(a, picks(s(1, 1)));
        let all = RowSampler::new(
            &Sample {
                fraction: 1.0,
                seed: 1,
                iteration: 0,
            },
            0,
        );
        assert!((0..1000).all(|i| all.weight(i) == 1.0));
    }
}
