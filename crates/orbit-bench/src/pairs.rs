//! Paired rounds: two subjects (`A`, `B`) measured back to back in many short pairs, in
//! ABBA order (pair 0 runs A then B, pair 1 B then A, ...), each pair giving one ratio
//! B / A. The headline is the median of the per-pair ratios, with its quartiles and
//! spread beside it.
//!
//! Why: when a workload's rounds are bimodal for reasons both subjects share (the
//! `observe` scenario's call rounds run at about 1.25M or 1.8M calls/s depending on
//! where the tokio scheduler places caller and server), the ratio of the two subjects'
//! medians over a handful of rounds follows how many rounds of each subject happened to
//! land in the fast mode: a coin flip. Pairing removes the drift between the two
//! subjects' rounds (a pair's two rounds are seconds apart), ABBA removes the order
//! effect (each subject runs first in half the pairs), and the median of ratios is
//! decided by the pairs whose rounds landed in the same mode (at least half of them
//! when both subjects have the same chance of the fast mode). What it does not show is
//! a subject landing in the slow mode more often in a minority of pairs: a scenario
//! with modes reports each subject's count of slow-mode rounds beside it. Both
//! statistics, the ratio of medians and the median of pair ratios, are reported.

use crate::util::median;

/// The order of subjects 0 and 1 in pair `k` (ABBA: even pairs `[0, 1]`, odd `[1, 0]`).
pub fn abba(k: usize) -> [usize; 2] {
    if k.is_multiple_of(2) {
        [0, 1]
    } else {
        [1, 0]
    }
}

/// The `q` quantile (0..=1) of `xs`, linearly interpolated between the closest ranks;
/// `None` for no figures.
pub fn quantile(xs: &[f64], q: f64) -> Option<f64> {
    let mut xs: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (xs.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo as f64))
}

/// The ratios `b / a` of each complete pair (pairs with a missing or zero `a` are left
/// out).
pub fn ratios(pairs: &[(Option<f64>, Option<f64>)]) -> Vec<f64> {
    pairs
        .iter()
        .filter_map(|&(a, b)| match (a, b) {
            (Some(a), Some(b)) if a > 0.0 => Some(b / a),
            _ => None,
        })
        .collect()
}

/// The median of per-pair ratios, `None` for no pairs.
pub fn median_ratio(pairs: &[(Option<f64>, Option<f64>)]) -> Option<f64> {
    median(&ratios(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abba_alternates_who_goes_first() {
        let orders: Vec<[usize; 2]> = (0..4).map(abba).collect();
        assert_eq!(orders, [[0, 1], [1, 0], [0, 1], [1, 0]]);
    }

    #[test]
    fn quantiles_interpolate_and_skip_non_finite() {
        let xs = [4.0, 1.0, 3.0, 2.0, f64::NAN];
        assert_eq!(quantile(&xs, 0.0), Some(1.0));
        assert_eq!(quantile(&xs, 1.0), Some(4.0));
        assert_eq!(quantile(&xs, 0.5), Some(2.5));
        assert_eq!(quantile(&xs, 0.25), Some(1.75));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn mode_flips_do_not_decide_the_median_of_pair_ratios() {
        // Both subjects with the same chance of a fast (1.8) or slow (1.25) round; B is
        // 2% slower within each mode. A's median happens to be fast, B's slow: the
        // ratio of medians reads 0.68x, the median of pair ratios 0.98x.
        let (f, s) = (1.8, 1.25);
        let pairs = [
            (Some(f), Some(f * 0.98)),
            (Some(f), Some(s * 0.98)),
            (Some(s), Some(s * 0.98)),
            (Some(f), Some(s * 0.98)),
            (Some(s), Some(f * 0.98)),
            (Some(f), Some(f * 0.98)),
            (Some(s), Some(s * 0.98)),
        ];
        let a: Vec<f64> = pairs.iter().filter_map(|p| p.0).collect();
        let b: Vec<f64> = pairs.iter().filter_map(|p| p.1).collect();
        let of_medians = median(&b).unwrap() / median(&a).unwrap();
        assert!((of_medians - 0.68).abs() < 0.01, "{of_medians}");
        let m = median_ratio(&pairs).unwrap();
        assert!((m - 0.98).abs() < 1e-9, "{m}");
        // A missing or zero figure drops the pair.
        assert!(ratios(&[(None, Some(1.0)), (Some(0.0), Some(1.0))]).is_empty());
    }
}
