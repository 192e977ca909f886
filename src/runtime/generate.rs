//! The generation loop: prefill the prompt, then sample and decode one token at a
//! time until an end-of-generation token or the length limit, streaming each token
//! to a callback.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::time::Instant;

use super::cpu::RunError;
use super::{Sampler, Session};

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StopReason {
    /// An end-of-generation token (not included in the output).
    Eog,
    /// `max_tokens` were generated.
    Length,
    /// The callback asked to stop.
    Stopped,
}

/// What to generate and when to stop.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    /// Tokens that end generation (the tokenizer's end-of-generation set).
    pub eog: HashSet<u32>,
    /// On a full context, drop the older half of the cache (after the first
    /// `keep` tokens) and go on, as llama.cpp's `--context-shift` does; otherwise a full
    /// context is an error.
    pub context_shift: bool,
    /// Tokens at the start that a context shift keeps (llama.cpp keeps the BOS).
    pub keep: usize,
}

/// Timings of one generation, in llama.cpp's terms.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Timings {
    pub prompt_ms: f64,
    pub gen_ms: f64,
    pub prompt_tok_s: f64,
    pub gen_tok_s: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub tokens: Vec<u32>,
    pub stop: StopReason,
    pub timings: Timings,
}

impl Generation {
    /// `tokens` generated after a prompt of `prompt_len` tokens that took `prompt_ms`,
    /// decoding from `decode_start` until now.
    fn timed(
        tokens: Vec<u32>,
        stop: StopReason,
        prompt_len: usize,
        prompt_ms: f64,
        decode_start: Instant,
    ) -> Generation {
        let gen_ms = decode_start.elapsed().as_secs_f64() * 1000.0;
        Generation {
            timings: Timings {
                prompt_ms,
                gen_ms,
                prompt_tok_s: per_second(prompt_len, prompt_ms),
                gen_tok_s: per_second(tokens.len().saturating_sub(1), gen_ms),
            },
            tokens,
            stop,
        }
    }
}

fn per_second(n: usize, ms: f64) -> f64 {
    if ms > 0.0 {
        n as f64 * 1000.0 / ms
    } else {
        0.0
    }
}

impl Session<'_> {
    /// Generates after `prompt` (appended to what the session already holds), calling
    /// `on_token` with each new token as soon as it is chosen.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        sampler: &mut Sampler,
        options: &GenerateOptions,
        mut on_token: impl FnMut(u32) -> ControlFlow<()>,
    ) -> Result<Generation, RunError> {
        if prompt.is_empty() {
            return Err(RunError::NoTokens);
        }
        if sampler.is_plain_greedy() && self.on_gpu() {
            return self.generate_chained(prompt, options, on_token);
        }
        let mut history = prompt.to_vec();
        let mut generated = Vec::new();
        let start = Instant::now();
        self.make_room(prompt.len(), options)?;
        let mut next = self.next_token(prompt, sampler, &history)?;
        let prompt_ms = start.elapsed().as_secs_f64() * 1000.0;
        let decode_start = Instant::now();
        let mut stop = StopReason::Length;
        while generated.len() < options.max_tokens {
            let token = next;
            if options.eog.contains(&token) {
                stop = StopReason::Eog;
                break;
            }
            generated.push(token);
            history.push(token);
            if on_token(token).is_break() {
                stop = StopReason::Stopped;
                break;
            }
            if generated.len() == options.max_tokens {
                break;
            }
            self.make_room(1, options)?;
            next = self.next_token(&[token], sampler, &history)?;
        }
        Ok(Generation::timed(
            generated,
            stop,
            prompt.len(),
            prompt_ms,
            decode_start,
        ))
    }

    /// Greedy generation on a GPU with the steps chained on the device: each step takes
    /// its token from the argmax of the step before without a round trip through the
    /// host, and goes in before the host reads that token, so that the device runs
    /// step after step while the host reads, checks and streams each token. Where a
    /// token ends generation, the step already running over it is dropped from the
    /// session (its cache slot is the next step's to overwrite). Tokens, stops and
    /// positions are those of the step-by-step loop of [`Self::generate`].
    fn generate_chained(
        &mut self,
        prompt: &[u32],
        options: &GenerateOptions,
        mut on_token: impl FnMut(u32) -> ControlFlow<()>,
    ) -> Result<Generation, RunError> {
        let mut generated = Vec::new();
        let start = Instant::now();
        self.make_room(prompt.len(), options)?;
        let mut pending = self.submit_greedy(Some(prompt))?;
        let (mut prompt_ms, mut decode_start) = (None, start);
        let mut stop = StopReason::Length;
        while let Some(this) = pending.take() {
            // The step over this step's token, if one may be wanted and fits.
            let wanted = generated.len() + 1 < options.max_tokens;
            let next = if wanted && self.position() < self.context() {
                self.submit_greedy(None)?
            } else {
                None
            };
            let token = self.read_token(this)?;
            if prompt_ms.is_none() {
                prompt_ms = Some(start.elapsed().as_secs_f64() * 1000.0);
                decode_start = Instant::now();
            }
            let ended = if generated.len() == options.max_tokens {
                Some(StopReason::Length)
            } else if options.eog.contains(&token) {
                Some(StopReason::Eog)
            } else {
                generated.push(token);
                on_token(token).is_break().then_some(StopReason::Stopped)
            };
            if let Some(reason) = ended {
                stop = reason;
                if next.is_some() {
                    self.truncate(self.position() - 1);
                }
                break;
            }
            if generated.len() == options.max_tokens {
                break;
            }
            pending = match next {
                Some(next) => Some(next),
                None => {
                    self.make_room(1, options)?;
                    self.submit_greedy(Some(&[token]))?
                }
            };
        }
        let prompt_ms = prompt_ms.unwrap_or(0.0);
        Ok(Generation::timed(
            generated,
            stop,
            prompt.len(),
            prompt_ms,
            decode_start,
        ))
    }

    /// Runs `tokens` (the end of `history`) and chooses the token after them. Plain
    /// greedy decoding asks the session for the argmax and top-k sampling for the
    /// candidates it needs, which a GPU computes on the device (4 bytes or k pairs come
    /// back instead of the vocabulary's logits).
    fn next_token(
        &mut self,
        tokens: &[u32],
        sampler: &mut Sampler,
        history: &[u32],
    ) -> Result<u32, RunError> {
        if sampler.is_plain_greedy() {
            return self.argmax_last(tokens);
        }
        if let Some(k) = sampler.candidates_needed(history) {
            let candidates = self.top_k_last(tokens, k)?;
            return Ok(sampler.choose(candidates, history));
        }
        let logits = self.logits_last(tokens)?;
        Ok(sampler.sample(&logits, history))
    }

    /// Ensures `n` more tokens fit, shifting the context if allowed.
    fn make_room(&mut self, n: usize, options: &GenerateOptions) -> Result<(), RunError> {
        let capacity = self.context();
        if self.position() + n <= capacity {
            return Ok(());
        }
        let kept = options.keep.min(self.position());
        let discard = (self.position() - kept) / 2;
        if !options.context_shift || discard == 0 || self.position() - discard + n > capacity {
            return Err(RunError::ContextFull {
                needed: self.position() + n,
                capacity,
            });
        }
        self.discard(kept, discard)?;
        Ok(())
    }
}
