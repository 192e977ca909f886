//! Perplexity by llama.cpp's method (`llama-perplexity`): the text's tokens are cut
//! into chunks of `ctx`; each chunk starts with BOS where the model adds one; only
//! the second half of each chunk is scored (logits at positions ctx/2 .. ctx−2
//! predict tokens ctx/2+1 .. ctx−1); PPL = exp(mean negative log-likelihood).

use super::cpu::RunError;
use super::{DecodeInput, KvType, Model};

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Perplexity {
    pub ppl: f64,
    pub chunks: usize,
    pub ctx: usize,
    pub scored_tokens: usize,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PerplexityError {
    #[error("perplexity needs at least 2 × ctx = {needed} tokens; the text has {found}")]
    TooShort { needed: usize, found: usize },
    #[error("ctx must be at least 4, got {0}")]
    ContextTooSmall(usize),
    #[error(transparent)]
    Run(#[from] RunError),
}

/// `-log softmax(logits)[target]`, computed stably.
fn negative_log_likelihood(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    max + sum.ln() - logits[target] as f64
}

/// Runs the text's `tokens` (already tokenised, with BOS if the model adds one) in
/// chunks of `ctx`; `on_chunk(i, running_ppl)` reports progress after each chunk.
pub fn perplexity(
    model: &Model,
    tokens: &[u32],
    ctx: usize,
    bos: Option<u32>,
    mut on_chunk: impl FnMut(usize, f64),
) -> Result<Perplexity, PerplexityError> {
    if ctx < 4 {
        return Err(PerplexityError::ContextTooSmall(ctx));
    }
    if tokens.len() < 2 * ctx {
        return Err(PerplexityError::TooShort {
            needed: 2 * ctx,
            found: tokens.len(),
        });
    }
    let n_vocab = model.config.n_vocab;
    let chunks = tokens.len() / ctx;
    let first = ctx / 2;
    let (mut nll, mut scored) = (0.0, 0);
    for chunk in 0..chunks {
        let mut input = tokens[chunk * ctx..(chunk + 1) * ctx].to_vec();
        if let Some(bos) = bos {
            input[0] = bos;
        }
        let mut session = model.session(Some(ctx), KvType::F16, DecodeInput::F32)?;
        let logits = session.logits_all(&input)?;
        for pos in first..ctx - 1 {
            let target = input[pos + 1] as usize;
            nll += negative_log_likelihood(&logits[pos * n_vocab..(pos + 1) * n_vocab], target);
            scored += 1;
        }
        on_chunk(chunk, (nll / scored as f64).exp());
    }
    Ok(Perplexity {
        ppl: (nll / scored as f64).exp(),
        chunks,
        ctx,
        scored_tokens: scored,
    })
}
