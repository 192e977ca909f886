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

    /// Picks the next token given the logits and the tokens so far.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let c = &self.config;
        let mut logits = logits.to_vec();
        if c.repeat_penalty != 1.0 {
            let recent = &history[history.len().saturating_sub(c.repeat_last_n)..];
            let mut seen = std::collections::HashSet::new();
            for &t in recent {
                let t = t as usize;
                if t < logits.len() && seen.insert(t) {
                    // As llama.cpp: shrink positive logits, grow negative ones.
                    let l = &mut logits[t];
                    *l = if *l > 0.0 {
                        *l / c.repeat_penalty
                    } else {
                        *l * c.repeat_penalty
                    };
                }
            }
        }
        if c.temperature <= 0.0 {
            return argmax(&logits) as u32;
        }
        let mut candidates: Vec<(usize, f32)> = logits.into_iter().enumerate().collect();
        candidates.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
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
                return candidates[i].0 as u32;
            }
            r -= p;
        }
        candidates[keep - 1].0 as u32
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
}
