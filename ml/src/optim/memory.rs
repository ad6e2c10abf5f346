//! The limited memory of L-BFGS and OWL-QN: the last `m` curvature pairs and the two-loop
//! recursion over them.

use std::collections::VecDeque;

use crate::linalg::dot;

/// One curvature pair `s = x⁺ − x`, `y = ∇f(x⁺) − ∇f(x)` with `ρ = 1 / sᵀy`.
#[derive(Debug, Clone)]
struct Pair {
    s: Vec<f64>,
    y: Vec<f64>,
    rho: f64,
}

/// The last `capacity` curvature pairs, oldest first.
#[derive(Debug, Clone)]
pub(crate) struct Memory {
    capacity: usize,
    pairs: VecDeque<Pair>,
}

impl Memory {
    /// An empty memory of `capacity` pairs (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            pairs: VecDeque::new(),
        }
    }

    /// Adds a pair unless its curvature `sᵀy` is not safely positive (then the inverse
    /// Hessian approximation would stop being positive definite); returns whether it was kept.
    pub(crate) fn push(&mut self, s: Vec<f64>, y: Vec<f64>) -> bool {
        let sy = dot(&s, &y);
        let yy = dot(&y, &y);
        if !(sy.is_finite() && yy.is_finite() && sy > 1e-10 * yy && sy > 0.0) {
            return false;
        }
        if self.pairs.len() == self.capacity {
            self.pairs.pop_front();
        }
        self.pairs.push_back(Pair {
            s,
            y,
            rho: 1.0 / sy,
        });
        true
    }

    /// Forgets every pair.
    pub(crate) fn clear(&mut self) {
        self.pairs.clear();
    }

    /// Whether no pair is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// `−H g` by the two-loop recursion (`−g` when empty).
    pub(crate) fn direction(&self, g: &[f64]) -> Vec<f64> {
        let mut q = g.to_vec();
        let mut alphas = vec![0.0; self.pairs.len()];
        for (pair, alpha) in self.pairs.iter().zip(alphas.iter_mut()).rev() {
            *alpha = pair.rho * dot(&pair.s, &q);
            for (qi, yi) in q.iter_mut().zip(&pair.y) {
                *qi -= *alpha * yi;
            }
        }
        if let Some(last) = self.pairs.back() {
            let gamma = 1.0 / (last.rho * dot(&last.y, &last.y));
            q.iter_mut().for_each(|v| *v *= gamma);
        }
        for (pair, alpha) in self.pairs.iter().zip(&alphas) {
            let beta = pair.rho * dot(&pair.y, &q);
            for (qi, si) in q.iter_mut().zip(&pair.s) {
                *qi += si * (alpha - beta);
            }
        }
        q.iter_mut().for_each(|v| *v = -*v);
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_loop_recovers_the_inverse_of_a_diagonal_hessian() {
        // For f = ½ Σ hᵢ xᵢ², pairs along each axis make H exact: −H g = −g / h.
        let h = [1.0, 4.0, 10.0];
        let mut memory = Memory::new(10);
        for i in 0..h.len() {
            let mut s = vec![0.0; 3];
            s[i] = 1.0;
            let y: Vec<f64> = s.iter().zip(&h).map(|(a, b)| a * b).collect();
            assert!(memory.push(s, y));
        }
        let d = memory.direction(&[2.0, 8.0, 30.0]);
        for (di, want) in d.iter().zip([-2.0, -2.0, -3.0]) {
            assert!((di - want).abs() < 1e-12, "{d:?}");
        }
    }

    #[test]
    fn pairs_without_positive_curvature_are_dropped() {
        let mut memory = Memory::new(2);
        assert!(!memory.push(vec![1.0, 0.0], vec![-1.0, 0.0]));
        assert!(memory.is_empty());
        assert_eq!(memory.direction(&[1.0, -2.0]), vec![-1.0, 2.0]);
    }
}
