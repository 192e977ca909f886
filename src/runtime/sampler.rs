//! Choosing the next token from logits: greedy, or temperature sampling filtered by
//! top-k, top-p and min-p, with a repetition penalty. A seeded sampler is reproducible.

use crate::synth::SplitMix64;

/// Sampling settings; the defaults are llama.cpp's.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    /// 0 is greedy.
    pub temperature: f32,
    /// 0 keeps every token.
    pub top_k: usize,
    /// 1 keeps every token.
    pub top_p: f32,
    /// 0 keeps every token.
    pub min_p: f32,
    /// 1 is no penalty.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

impl SamplerConfig {
    pub fn greedy() -> SamplerConfig {
        SamplerConfig {
            temperature: 0.0,
            ..SamplerConfig::default()
        }
    }

    /// Checks the ranges; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_string()) };
        check(
            self.temperature >= 0.0 && self.temperature.is_finite(),
            "--temp must be ≥ 0",
        )?;
        check(
            (0.0..=1.0).contains(&self.top_p),
            "--top-p must be in [0, 1]",
        )?;
        check(
            (0.0..=1.0).contains(&self.min_p),
            "--min-p must be in [0, 1]",
        )?;
        check(
            self.repeat_penalty > 0.0 && self.repeat_penalty.is_finite(),
            "--repeat-penalty must be > 0",
        )
    }
}

/// A sampler with its random state.
#[derive(Debug, Clone)]
pub struct Sampler {
    config: SamplerConfig,
    rng: SplitMix64,
}

/// Index of the largest value (the first, on ties).
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best
}

/// A token and its logit.
pub type Candidate = (u32, f32);

/// The sampler's order: the larger logit first, the smaller token first among equal
/// logits (−0 equals +0, as a GPU's `>` sees them).
fn order(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    let value = |c: &Candidate| if c.1 == 0.0 { 0.0 } else { c.1 };
    value(b).total_cmp(&value(a)).then(a.0.cmp(&b.0))
}

/// The `k` largest logits with their tokens, in the sampler's order; the GPU's top-k
/// kernel returns the same.
pub fn top_k(logits: &[f32], k: usize) -> Vec<Candidate> {
    let mut all: Vec<Candidate> = logits
        .iter()
        .enumerate()
        .map(|(t, &l)| (t as u32, l))
        .collect();
    if k < all.len() {
        all.select_nth_unstable_by(k, order);
        all.truncate(k);
    }
    all.sort_unstable_by(order);
    all
}

impl Sampler {
    pub fn new(config: SamplerConfig) -> Sampler {
        let rng = SplitMix64::new(config.seed);
        Sampler { config, rng }
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// True when the choice is the argmax of the logits alone (no temperature, no penalty).
    pub fn is_plain_greedy(&self) -> bool {
        self.config.temperature <= 0.0 && self.config.repeat_penalty == 1.0
    }

    /// How many of the largest logits decide the next choice, when fewer than all do:
    /// top-k (one for greedy), plus the recent tokens a repeat penalty may push below
    /// them. A penalty above 1 only lowers logits, so every token of the top-k after it
    /// was among that many before it; a penalty below 1 may lift any token.
    pub fn candidates_needed(&self, history: &[u32]) -> Option<usize> {
        let c = &self.config;
        let base = match (c.temperature <= 0.0, c.top_k) {
            (true, _) => 1,
            (false, 0) => return None,
            (false, k) => k,
        };
        if c.repeat_penalty == 1.0 {
            return Some(base);
        }
        if c.repeat_penalty < 1.0 {
            return None;
        }
        let recent: std::collections::HashSet<u32> = self.recent(history).iter().copied().collect();
        Some(base.saturating_add(recent.len()))
    }

    fn recent<'h>(&self, history: &'h [u32]) -> &'h [u32] {
        &history[history.len().saturating_sub(self.config.repeat_last_n)..]
    }

    /// Picks the next token given the logits and the tokens so far.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let all = logits
            .iter()
            .enumerate()
            .map(|(t, &l)| (t as u32, l))
            .collect();
        self.choose(all, history)
    }

    /// Picks the next token from `candidates` (not empty): every logit, or at least the
    /// [`Self::candidates_needed`] largest (the choice is then the same; NaN logits
    /// aside, which the GPU's top-k never takes).
    pub fn choose(&mut self, mut candidates: Vec<Candidate>, history: &[u32]) -> u32 {
        let c = &self.config;
        if c.repeat_penalty != 1.0 {
            let recent: std::collections::HashSet<u32> =
                self.recent(history).iter().copied().collect();
            for (token, l) in candidates.iter_mut() {
                if recent.contains(token) {
                    // As llama.cpp: shrink positive logits, grow negative ones.
                    *l = if *l > 0.0 {
                        *l / c.repeat_penalty
                    } else {
                        *l * c.repeat_penalty
                    };
                }
            }
        }
        if c.temperature <= 0.0 {
            return candidates
                .iter()
                .min_by(|a, b| order(a, b))
                .map_or(0, |c| c.0);
        }
        candidates.sort_unstable_by(order);
        if c.top_k > 0 {
            candidates.truncate(c.top_k);
        }
        // Probabilities at the sampling temperature.
        let max = candidates[0].1;
        let mut probs: Vec<f32> = candidates
            .iter()
            .map(|&(_, l)| ((l - max) / c.temperature).exp())
            .collect();
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        // top-p: the smallest prefix whose mass reaches top_p.
        let mut cumulative = 0.0;
        let mut keep = probs.len();
        for (i, p) in probs.iter().enumerate() {
            cumulative += p;
            if cumulative >= c.top_p {
                keep = i + 1;
                break;
            }
        }
        // min-p: drop tokens less likely than min_p times the most likely one.
        let floor = c.min_p * probs[0];
        keep = keep.min(probs.iter().take_while(|&&p| p >= floor).count().max(1));
        let kept = &probs[..keep];
        let mass: f32 = kept.iter().sum();
        let mut r = self.rng.unit() * mass;
        for (i, p) in kept.iter().enumerate() {
            if r < *p {
                return candidates[i].0;
            }
            r -= p;
        }
        candidates[keep - 1].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_argmax_and_penalties_apply() {
        let mut s = Sampler::new(SamplerConfig::greedy());
        assert_eq!(s.sample(&[0.1, 2.0, 1.9], &[]), 1);
        let mut s = Sampler::new(SamplerConfig {
            repeat_penalty: 1.2,
            ..SamplerConfig::greedy()
        });
        assert_eq!(s.sample(&[0.1, 2.0, 1.9], &[1]), 2);
    }

    #[test]
    fn the_same_seed_gives_the_same_choices() {
        let logits: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin()).collect();
        let config = SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 42,
            ..SamplerConfig::default()
        };
        let run = |c: SamplerConfig| {
            let mut s = Sampler::new(c);
            (0..50).map(|_| s.sample(&logits, &[])).collect::<Vec<_>>()
        };
        assert_eq!(run(config.clone()), run(config.clone()));
        let other = run(SamplerConfig {
            seed: 43,
            ..config.clone()
        });
        assert_ne!(run(config), other);
    }

    #[test]
    fn filters_restrict_the_choice() {
        let logits = [5.0, 4.9, 0.0, -3.0];
        let mut s = Sampler::new(SamplerConfig {
            temperature: 1.0,
            top_k: 2,
            top_p: 1.0,
            min_p: 0.0,
            ..SamplerConfig::default()
        });
        for _ in 0..200 {
            assert!(s.sample(&logits, &[]) < 2);
        }
        let mut s = Sampler::new(SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.5,
            ..SamplerConfig::default()
        });
        for _ in 0..200 {
            assert!(s.sample(&logits, &[]) < 2);
        }
    }

    #[test]
    fn out_of_range_settings_are_named() {
        let bad = SamplerConfig {
            top_p: 2.0,
            ..SamplerConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err(), "--top-p must be in [0, 1]");
    }

    #[test]
    fn top_k_takes_the_largest_in_order_and_ties_by_token() {
        let logits = [1.0, 3.0, -0.0, 3.0, 0.0, 2.0];
        assert_eq!(top_k(&logits, 3), vec![(1, 3.0), (3, 3.0), (5, 2.0)]);
        // −0 and +0 are equal: the smaller token comes first.
        let all = top_k(&logits, 10);
        assert_eq!(all.len(), logits.len());
        assert_eq!(all[4..].iter().map(|c| c.0).collect::<Vec<_>>(), [2, 4]);
    }

    #[test]
    fn the_needed_candidates_choose_as_every_logit_does() {
        let mut rng = SplitMix64::new(7);
        for case in 0..200u64 {
            // Few distinct values, so that ties occur.
            let logits: Vec<f32> = (0..300)
                .map(|_| (rng.unit() * 40.0).floor() / 4.0 - 5.0)
                .collect();
            let history: Vec<u32> = (0..30).map(|_| (rng.unit() * 300.0) as u32).collect();
            let config = SamplerConfig {
                temperature: [0.0, 0.7, 1.5][case as usize % 3],
                top_k: 1 + case as usize % 50,
                repeat_penalty: [1.0, 1.3, 3.0][case as usize / 3 % 3],
                repeat_last_n: 20,
                seed: case,
                ..SamplerConfig::default()
            };
            let mut everything = Sampler::new(config.clone());
            let mut fewest = Sampler::new(config.clone());
            let k = fewest.candidates_needed(&history).unwrap();
            for _ in 0..5 {
                assert_eq!(
                    fewest.choose(top_k(&logits, k), &history),
                    everything.sample(&logits, &history),
                    "{config:?}"
                );
            }
        }
        let all = |c: SamplerConfig| Sampler::new(c).candidates_needed(&[1, 2]);
        let boost = SamplerConfig {
            repeat_penalty: 0.8,
            ..SamplerConfig::default()
        };
        assert_eq!(all(boost), None, "a penalty below 1 can lift any token");
        let unlimited = SamplerConfig {
            top_k: 0,
            ..SamplerConfig::default()
        };
        assert_eq!(all(unlimited), None);
    }
}
