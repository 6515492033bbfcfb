//! Pairwise (all-pairs) selection of test cases with constraints.
//!
//! Every factor has a few levels; a case picks one level per factor. Not every
//! combination is possible (a consumer of events needs a database, ...), so the
//! caller gives a predicate. The pairs to cover are those that occur in at least
//! one possible combination; cases are then picked greedily (AETG-style, the
//! candidate covering most uncovered pairs wins, first one on ties), which is
//! deterministic and small: the full product here is thousands of cases, the
//! pairwise cut a couple of dozen.

use std::collections::BTreeSet;

/// A case: the chosen level of each factor, by index.
pub type Case = Vec<usize>;

/// Every combination of levels, `levels[i]` being the number of levels of factor `i`.
pub fn product(levels: &[usize]) -> Vec<Case> {
    let mut out = vec![Vec::new()];
    for &n in levels {
        out = out
            .into_iter()
            .flat_map(|c| {
                (0..n).map(move |l| {
                    let mut c = c.clone();
                    c.push(l);
                    c
                })
            })
            .collect();
    }
    out
}

/// The pairs (factor a, level, factor b, level), a < b, that `case` covers.
pub fn pairs(case: &[usize]) -> Vec<(usize, usize, usize, usize)> {
    let mut out = Vec::new();
    for a in 0..case.len() {
        for b in a + 1..case.len() {
            out.push((a, case[a], b, case[b]));
        }
    }
    out
}

/// A set of possible cases covering every pair that any possible case covers.
pub fn cover(levels: &[usize], possible: impl Fn(&[usize]) -> bool) -> Vec<Case> {
    let candidates: Vec<Case> = product(levels)
        .into_iter()
        .filter(|c| possible(c))
        .collect();
    let mut uncovered: BTreeSet<_> = candidates.iter().flat_map(|c| pairs(c)).collect();
    let mut chosen = Vec::new();
    while !uncovered.is_empty() {
        let best = candidates
            .iter()
            .max_by_key(|c| {
                let gain = pairs(c).iter().filter(|p| uncovered.contains(p)).count();
                // max_by_key keeps the last maximum; prefer the first.
                (gain, std::cmp::Reverse(c.to_vec()))
            })
            .expect("a candidate covers the pairs");
        for p in pairs(best) {
            uncovered.remove(&p);
        }
        chosen.push(best.clone());
    }
    chosen
}

/// A subset of `cases` in which every level of every factor occurs at least once
/// (each-choice coverage), picked greedily in order.
pub fn each_level(levels: &[usize], cases: &[Case]) -> Vec<Case> {
    let mut missing: BTreeSet<(usize, usize)> = cases
        .iter()
        .flat_map(|c| c.iter().copied().enumerate())
        .collect();
    debug_assert!(missing.len() <= levels.iter().sum());
    let mut out = Vec::new();
    while !missing.is_empty() {
        let best = cases
            .iter()
            .max_by_key(|c| {
                let gain = c
                    .iter()
                    .copied()
                    .enumerate()
                    .filter(|x| missing.contains(x))
                    .count();
                (gain, std::cmp::Reverse(c.to_vec()))
            })
            .expect("a case covers the levels");
        for x in best.iter().copied().enumerate() {
            missing.remove(&x);
        }
        out.push(best.clone());
    }
    out
}
