//! Speed as llama-bench measures it: `pp N` is one batched step over an N-token prompt
//! from an empty cache, `tg N` is N single-token steps from an empty cache; each is
//! repeated and reported as tokens per second (median and spread). On a GPU it adds
//! the figures that say how far generation is from the memory roofline.

use std::time::{Duration, Instant};

use super::cpu::RunError;
use super::gpu::{copy_bandwidth, step_gpu_us, CopyBandwidth, GpuError, COPY_DEFINITION};
use super::{DecodeInput, Session};

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
    /// Tokens in the context before each test (llama-bench's `-d`).
    pub depth: usize,
    /// Prompt processing, tokens per second.
    pub pp_tok_s: Spread,
    /// Generation, tokens per second.
    pub tg_tok_s: Spread,
    /// Time to the first token's logits after an `prompt_tokens` prompt, in ms.
    pub ttft_ms: Spread,
    /// Only on a GPU.
    pub gpu: Option<GpuFigures>,
}

/// What a decode step asks of the device, and what the device can give.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GpuFigures {
    /// Dispatches of the first decode step after the depth (a short context's attention
    /// needs no combine dispatch).
    pub dispatches_per_token: usize,
    /// Weight bytes a decode step reads: every matmul weight, one embedding row.
    pub weight_bytes_per_token: u64,
    /// Whether the prefill matmuls ran on tensor cores.
    pub tensor_cores: bool,
    /// Whether the decode matmuls rounded x to 8 bits (`--int8-decode`).
    pub int8_decode: bool,
    /// The device's copy bandwidth, measured here.
    pub copy: CopyBandwidth,
    pub copy_definition: &'static str,
    /// Weight bytes per token × tg tok/s (median) ÷ copy bandwidth.
    pub tg_bandwidth_fraction: f64,
    /// GPU time of one decode step in the middle of tg's context (`depth + gen / 2`
    /// positions before it), recorded as generation records it and timed as one pass
    /// (`profile`'s `one_pass_us`); None without generation or timestamp queries.
    pub tg_step_gpu_us: Option<f64>,
    /// That step's GPU time × tg tok/s (median): the share of a generated token's time
    /// the device is busy; the rest it waits for the host. Timed apart from tg's steps,
    /// so it may pass 1 by their spread.
    pub tg_device_busy: Option<f64>,
    /// Device memory of the executor's buffers and the KV cache.
    pub allocated_bytes: u64,
    /// Of which the activation arena.
    pub activation_bytes: u64,
    /// The activations had each a buffer of its own.
    pub unshared_activation_bytes: u64,
}

/// Where a load's time went, from the file to the first token's logits (the issue's
/// load figure: page cache warm, file → first token).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LoadReport {
    /// File to the first token's logits: the sum of the four phases below, in ms.
    pub to_first_token_ms: f64,
    /// Reading the GGUF: its header, tokenizer and memory map.
    pub file_ms: f64,
    /// Opening the device (on the CPU, only choosing it).
    pub device_ms: f64,
    /// Building the session: weights to their buffers, pipelines, the KV cache.
    pub session_ms: f64,
    /// The first one-token step and its logits (on a GPU, after the last weights'
    /// copies from their staging buffers).
    pub first_step_ms: f64,
    /// Of `session_ms` on a GPU: weights copied into staging buffers, and waits for a
    /// staging buffer's copy to the device.
    pub weights_ms: Option<f64>,
    /// Of `session_ms` on a GPU: shader modules and pipelines built.
    pub pipelines_ms: Option<f64>,
}

impl LoadReport {
    /// Completes a load of phases `file`, `device` and `session` (each a duration) by
    /// timing the session's first one-token step; the session is reset after it.
    pub fn after_first_step(
        session: &mut Session<'_>,
        file: Duration,
        device: Duration,
        opened: Duration,
    ) -> Result<LoadReport, RunError> {
        let start = Instant::now();
        session.logits_last(&[0])?;
        let first_step = start.elapsed();
        session.reset();
        let times = session.gpu_parts().map(|(e, _)| e.load_times());
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Ok(LoadReport {
            to_first_token_ms: ms(file + device + opened + first_step),
            file_ms: ms(file),
            device_ms: ms(device),
            session_ms: ms(opened),
            first_step_ms: ms(first_step),
            weights_ms: times.map(|t| ms(t.weights)),
            pipelines_ms: times.map(|t| ms(t.pipelines)),
        })
    }
}

/// Runs the benchmark on `session`: its cache is reset before every repetition, then
/// filled with `depth` tokens (untimed) before the timed prompt or generation. The
/// tokens are arbitrary ids below `n_vocab`, as llama-bench's are.
pub fn bench(
    session: &mut Session<'_>,
    prompt_tokens: usize,
    gen_tokens: usize,
    repetitions: usize,
    depth: usize,
) -> Result<BenchReport, RunError> {
    let n_vocab = session.model().config.n_vocab as u64;
    // Arbitrary ids below n_vocab (in u64, so that no count of tokens overflows).
    let id = |i: usize, step: u64, salt: u64| ((i as u64 * step + salt) % n_vocab) as u32;
    let tokens = |n: usize, salt: u64| -> Vec<u32> { (0..n).map(|i| id(i, 7919, salt)).collect() };
    let (prompt, context) = (tokens(prompt_tokens, 13), tokens(depth, 101));
    let start_at_depth = |session: &mut Session<'_>| -> Result<(), RunError> {
        session.reset();
        if depth > 0 {
            session.logits_last(&context)?;
        }
        Ok(())
    };
    // One untimed warm-up of each kind: first-touch page faults and pipeline warm-up.
    let (mut pp, mut tg, mut ttft) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..=repetitions {
        if prompt_tokens > 0 {
            start_at_depth(session)?;
            let start = Instant::now();
            session.logits_last(&prompt)?;
            let seconds = start.elapsed().as_secs_f64();
            if rep > 0 {
                pp.push(prompt_tokens as f64 / seconds);
                ttft.push(seconds * 1000.0);
            }
        }
        if gen_tokens > 0 {
            start_at_depth(session)?;
            let start = Instant::now();
            for i in 0..gen_tokens {
                session.logits_last(&[id(i, 104_729, 7)])?;
            }
            if rep > 0 {
                tg.push(gen_tokens as f64 / start.elapsed().as_secs_f64());
            }
        }
    }
    let tg_tok_s = Spread::of(&tg);
    Ok(BenchReport {
        prompt_tokens,
        gen_tokens,
        repetitions,
        depth,
        pp_tok_s: Spread::of(&pp),
        gpu: gpu_figures(session, tg_tok_s.median, depth, gen_tokens)?,
        tg_tok_s,
        ttft_ms: Spread::of(&ttft),
    })
}

fn gpu_figures(
    session: &mut Session<'_>,
    tg_tok_s: f64,
    depth: usize,
    gen_tokens: usize,
) -> Result<Option<GpuFigures>, RunError> {
    let Some((executor, kv)) = session.gpu_parts() else {
        return Ok(None);
    };
    let device = |e: GpuError| RunError::Device(e.to_string());
    let copy = copy_bandwidth(executor.context()).map_err(device)?;
    let tg_step_gpu_us = (gen_tokens > 0 && executor.context().has_timestamps())
        .then(|| step_gpu_us(executor, kv, &[0], depth + gen_tokens / 2))
        .transpose()
        .map_err(device)?;
    let weight_bytes_per_token = executor.weight_bytes(1);
    Ok(Some(GpuFigures {
        dispatches_per_token: executor.dispatch_count(1, depth),
        weight_bytes_per_token,
        tensor_cores: executor.runs_on_tensor_cores(),
        int8_decode: executor.decode_input() == DecodeInput::Int8,
        tg_bandwidth_fraction: weight_bytes_per_token as f64 * tg_tok_s / (copy.gb_s * 1e9),
        tg_step_gpu_us,
        tg_device_busy: tg_step_gpu_us.map(|us| us * tg_tok_s / 1e6),
        copy,
        copy_definition: COPY_DEFINITION,
        allocated_bytes: executor.allocated_bytes() + kv.bytes(),
        activation_bytes: executor.activation_bytes().0,
        unshared_activation_bytes: executor.activation_bytes().1,
    }))
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
