//! Speed as llama-bench measures it: `pp N` is one batched step over an N-token prompt
//! from an empty cache, `tg N` is N single-token steps from an empty cache; each is
//! repeated and reported as tokens per second (median and spread).

use std::time::Instant;

use super::cpu::RunError;
use super::Session;

/// Median, smallest and largest of repeated measurements.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Spread {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n == 0 {
            f64::NAN
        } else if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Spread {
            median,
            min: sorted.first().copied().unwrap_or(f64::NAN),
            max: sorted.last().copied().unwrap_or(f64::NAN),
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BenchReport {
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub repetitions: usize,
    /// Prompt processing, tokens per second.
    pub pp_tok_s: Spread,
    /// Generation, tokens per second.
    pub tg_tok_s: Spread,
    /// Time to the first token's logits after an `prompt_tokens` prompt, in ms.
    pub ttft_ms: Spread,
}

/// Runs the benchmark on `session` (its cache is reset before every repetition). The
/// tokens are arbitrary ids below `n_vocab`, as llama-bench's are.
pub fn bench(
    session: &mut Session<'_>,
    prompt_tokens: usize,
    gen_tokens: usize,
    repetitions: usize,
) -> Result<BenchReport, RunError> {
    let n_vocab = session.model().config.n_vocab as u32;
    let prompt: Vec<u32> = (0..prompt_tokens as u32)
        .map(|i| (i * 7919 + 13) % n_vocab)
        .collect();
    // One untimed warm-up of each kind: first-touch page faults and pipeline warm-up.
    let (mut pp, mut tg, mut ttft) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..=repetitions {
        if prompt_tokens > 0 {
            session.reset();
            let start = Instant::now();
            session.logits_last(&prompt)?;
            let seconds = start.elapsed().as_secs_f64();
            if rep > 0 {
                pp.push(prompt_tokens as f64 / seconds);
                ttft.push(seconds * 1000.0);
            }
        }
        if gen_tokens > 0 {
            session.reset();
            let start = Instant::now();
            for i in 0..gen_tokens as u32 {
                session.logits_last(&[(i * 104_729 + 7) % n_vocab])?;
            }
            if rep > 0 {
                tg.push(gen_tokens as f64 / start.elapsed().as_secs_f64());
            }
        }
    }
    Ok(BenchReport {
        prompt_tokens,
        gen_tokens,
        repetitions,
        pp_tok_s: Spread::of(&pp),
        tg_tok_s: Spread::of(&tg),
        ttft_ms: Spread::of(&ttft),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_middle() {
        let s = Spread::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Spread::of(&[1.0, 4.0]).median, 2.5);
    }
}
