//! A strong Wolfe line search that asks for one trial step at a time (Nocedal & Wright,
//! algorithms 3.5 "line search" and 3.6 "zoom", with safeguarded cubic interpolation).
//!
//! The search sees the scalar function `φ(t) = f(x + t d)`: the caller evaluates each trial,
//! numbers it, and reports `φ(t)` and `φ'(t) = ∇f(x + t d)ᵀd`.
//!
//! Near a minimum, `φ(t) − φ(0)` drowns in rounding long before the gradient does, and a test
//! on function values alone stops at coefficients accurate to about `√ε`. So, as Hager &
//! Zhang (2005, "A new conjugate gradient method with guaranteed descent and an efficient line
//! search") do, sufficient decrease also holds in its *approximate* form
//! `φ'(t) ≤ (2c₁ − 1) φ'(0)` (exact for a quadratic) when `φ(t) ≤ φ(0) + 10⁻¹² |φ(0)|`.

/// Sufficient decrease constant `c₁`.
const C1: f64 = 1e-4;
/// Curvature constant `c₂` (0.9: the usual choice for quasi-Newton directions).
const C2: f64 = 0.9;
/// Trials per search before giving up (or settling for the best sufficient decrease).
const MAX_TRIALS: usize = 30;
/// Relative size of `φ(0)` within which function values are taken as equal.
const NOISE: f64 = 1e-12;

/// What the search wants next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Decision {
    /// Evaluate `φ` at this step.
    Try(f64),
    /// Accept the trial with this number.
    Accept(usize),
    /// No acceptable step.
    Fail,
}

#[derive(Debug, Clone, Copy)]
struct Point {
    t: f64,
    f: f64,
    dg: f64,
    /// The caller's trial number; `None` for `t = 0` (the current iterate).
    trial: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Bracket { prev: Point },
    Zoom { lo: Point, hi: Point },
}

/// The search state between trials.
#[derive(Debug, Clone)]
pub(crate) struct StrongWolfe {
    f0: f64,
    dg0: f64,
    trials: usize,
    pending: f64,
    phase: Phase,
}

impl StrongWolfe {
    /// A search from `φ(0) = f0`, `φ'(0) = dg0 < 0`, first trying `t0`.
    pub(crate) fn new(f0: f64, dg0: f64, t0: f64) -> (Self, Decision) {
        let origin = Point {
            t: 0.0,
            f: f0,
            dg: dg0,
            trial: None,
        };
        let search = Self {
            f0,
            dg0,
            trials: 0,
            pending: t0,
            phase: Phase::Bracket { prev: origin },
        };
        (search, Decision::Try(t0))
    }

    /// The step of the pending trial.
    pub(crate) fn pending(&self) -> f64 {
        self.pending
    }

    /// Whether `p` is within rounding of `φ(0)` and decreases `φ` judging by its slope.
    fn approximately_decreases(&self, p: &Point) -> bool {
        p.f <= self.f0 + NOISE * self.f0.abs() && p.dg <= (2.0 * C1 - 1.0) * self.dg0
    }

    fn armijo_fails(&self, p: &Point) -> bool {
        let exact = p.f <= self.f0 + C1 * p.t * self.dg0;
        !(exact || self.approximately_decreases(p))
    }

    /// Whether `p` is no better than `q`: a higher value, unless rounding hides the difference
    /// and the slope shows a decrease.
    fn no_better(&self, p: &Point, q: &Point) -> bool {
        p.f >= q.f && !self.approximately_decreases(p)
    }

    fn curvature_holds(&self, p: &Point) -> bool {
        p.dg.abs() <= -C2 * self.dg0
    }

    /// Reports trial number `trial` (at the pending step): `φ = f`, `φ' = dg`.
    pub(crate) fn tell(&mut self, trial: usize, f: f64, dg: f64) -> Decision {
        self.trials += 1;
        let cur = Point {
            t: self.pending,
            f: if f.is_finite() { f } else { f64::INFINITY },
            dg: if dg.is_finite() { dg } else { f64::NAN },
            trial: Some(trial),
        };
        match self.phase {
            Phase::Bracket { prev } => {
                if self.armijo_fails(&cur) || (prev.trial.is_some() && self.no_better(&cur, &prev))
                {
                    return self.zoom(prev, cur);
                }
                if self.curvature_holds(&cur) {
                    return Decision::Accept(trial);
                }
                if cur.dg >= 0.0 {
                    return self.zoom(cur, prev);
                }
                if self.trials >= MAX_TRIALS {
                    // Sufficient decrease holds; the slope is still steep, but take it.
                    return Decision::Accept(trial);
                }
                self.phase = Phase::Bracket { prev: cur };
                self.pending = cur.t * 2.0;
                Decision::Try(self.pending)
            }
            Phase::Zoom { lo, hi } => {
                if self.armijo_fails(&cur) || self.no_better(&cur, &lo) {
                    self.zoom(lo, cur)
                } else {
                    if self.curvature_holds(&cur) {
                        return Decision::Accept(trial);
                    }
                    if cur.dg * (hi.t - lo.t) >= 0.0 {
                        self.zoom(cur, lo)
                    } else {
                        self.zoom(cur, hi)
                    }
                }
            }
        }
    }

    /// Continues in `[lo, hi]` (either order): `lo` satisfies sufficient decrease and has the
    /// lowest value seen, the interval holds a point satisfying the strong Wolfe conditions.
    fn zoom(&mut self, lo: Point, hi: Point) -> Decision {
        let width = (hi.t - lo.t).abs();
        if self.trials >= MAX_TRIALS || width <= 1e-14 * lo.t.abs().max(hi.t.abs()) {
            return match lo.trial {
                Some(i) => Decision::Accept(i),
                None => Decision::Fail,
            };
        }
        let (a, b) = (lo.t.min(hi.t), lo.t.max(hi.t));
        let t = match cubic_minimizer(&lo, &hi) {
            Some(t) if t >= a + 0.1 * width && t <= b - 0.1 * width => t,
            _ => 0.5 * (a + b),
        };
        self.phase = Phase::Zoom { lo, hi };
        self.pending = t;
        Decision::Try(t)
    }
}

/// The minimizer of the cubic interpolating `f` and `f'` at `a` and `b` (Nocedal & Wright
/// eq. 3.59), when it exists.
fn cubic_minimizer(a: &Point, b: &Point) -> Option<f64> {
    if !(a.f.is_finite() && b.f.is_finite() && a.dg.is_finite() && b.dg.is_finite()) {
        return None;
    }
    let d1 = a.dg + b.dg - 3.0 * (a.f - b.f) / (a.t - b.t);
    let disc = d1 * d1 - a.dg * b.dg;
    if disc.is_nan() || disc < 0.0 {
        return None;
    }
    let d2 = (b.t - a.t).signum() * disc.sqrt();
    let t = b.t - (b.t - a.t) * (b.dg + d2 - d1) / (b.dg - a.dg + 2.0 * d2);
    t.is_finite().then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search on φ and returns the accepted step.
    fn search(phi: impl Fn(f64) -> (f64, f64), t0: f64) -> Option<f64> {
        let (f0, dg0) = phi(0.0);
        let (mut ls, mut decision) = StrongWolfe::new(f0, dg0, t0);
        let mut steps = Vec::new();
        loop {
            match decision {
                Decision::Try(t) => {
                    assert_eq!(t, ls.pending());
                    steps.push(t);
                    let (f, dg) = phi(t);
                    decision = ls.tell(steps.len() - 1, f, dg);
                }
                Decision::Accept(i) => return Some(steps[i]),
                Decision::Fail => return None,
            }
        }
    }

    fn assert_wolfe(phi: impl Fn(f64) -> (f64, f64), t: f64) {
        let (f0, dg0) = phi(0.0);
        let (f, dg) = phi(t);
        assert!(f <= f0 + C1 * t * dg0, "sufficient decrease fails at {t}");
        assert!(dg.abs() <= -C2 * dg0, "curvature fails at {t}");
    }

    #[test]
    fn accepts_strong_wolfe_steps_from_too_short_and_too_long_first_trials() {
        // φ(t) = (t − 3)², minimum at 3.
        let phi = |t: f64| ((t - 3.0).powi(2), 2.0 * (t - 3.0));
        for t0 in [1e-3, 1.0, 100.0, 1e6] {
            let t = search(phi, t0).unwrap_or(f64::NAN);
            assert_wolfe(phi, t);
        }
    }

    #[test]
    fn survives_infinite_values_at_long_steps() {
        let phi = |t: f64| {
            if t > 5.0 {
                (f64::INFINITY, f64::NAN)
            } else {
                ((t - 1.0).powi(2), 2.0 * (t - 1.0))
            }
        };
        let t = search(phi, 1000.0).unwrap_or(f64::NAN);
        assert_wolfe(phi, t);
    }

    #[test]
    fn fails_when_nothing_decreases() {
        // A "descent" direction that is not one: φ increases for every t > 0.
        let phi = |t: f64| (t, if t == 0.0 { -1.0 } else { 1.0 });
        assert_eq!(search(phi, 1.0), None);
    }
}
