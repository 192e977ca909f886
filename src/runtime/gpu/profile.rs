//! GPU time per dispatch from timestamp queries: a profiled step records each dispatch
//! in its own compute pass that writes its begin and end times (this needs only
//! `TIMESTAMP_QUERY`), resolves them into a buffer and reads them back. The normal step
//! (one pass, one submit) is untouched; profiling runs the same step again, and once
//! more as one pass timed from its begin to its end: what the device spends on the step
//! as generation runs it, the gaps between dependent dispatches included, which the
//! passes of the first way lengthen.

use std::time::Instant;

use super::{GpuError, GpuExecutor, GpuKvCache};
use crate::runtime::cpu::RunError;

/// How a profiled step is timed.
#[derive(Clone, Copy)]
pub(super) enum Timing<'t> {
    /// Each dispatch in its own pass, timed (slots `2 i`, `2 i + 1` for dispatch `i`).
    EachDispatch(&'t Timestamps),
    /// The step's one pass, timed as a whole (slots 0 and 1).
    WholeStep(&'t Timestamps),
}

impl<'t> Timing<'t> {
    pub(super) fn timestamps(self) -> &'t Timestamps {
        match self {
            Timing::EachDispatch(t) | Timing::WholeStep(t) => t,
        }
    }
}

/// Timestamp slots for the dispatches of one step: two per dispatch (begin, end), in
/// query sets of at most `QUERY_SET_MAX_QUERIES` (an even number, so a pair never
/// straddles two sets).
pub(super) struct Timestamps {
    sets: Vec<wgpu::QuerySet>,
    queries: u32,
    resolved: wgpu::Buffer,
    readback: wgpu::Buffer,
}

const PER_SET: u32 = wgpu::QUERY_SET_MAX_QUERIES;

impl Timestamps {
    fn new(device: &wgpu::Device, dispatches: usize) -> Timestamps {
        let queries = 2 * dispatches as u32;
        let sets = (0..queries.div_ceil(PER_SET))
            .map(|s| {
                device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("profile"),
                    ty: wgpu::QueryType::Timestamp,
                    count: (queries - s * PER_SET).min(PER_SET),
                })
            })
            .collect();
        let bytes = (queries.max(1) as u64) * wgpu::QUERY_SIZE as u64;
        let buffer = |label, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        Timestamps {
            sets,
            queries,
            resolved: buffer(
                "profile resolve",
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            ),
            readback: buffer(
                "profile readback",
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
        }
    }

    /// Where the pass of dispatch `i` writes its begin and end times.
    pub(super) fn writes(&self, i: usize) -> wgpu::ComputePassTimestampWrites<'_> {
        let query = 2 * i as u32;
        let slot = query % PER_SET;
        wgpu::ComputePassTimestampWrites {
            query_set: &self.sets[(query / PER_SET) as usize],
            beginning_of_pass_write_index: Some(slot),
            end_of_pass_write_index: Some(slot + 1),
        }
    }

    /// Resolves every set into the read-back buffer, after the step's passes.
    fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        for (s, set) in self.sets.iter().enumerate() {
            let first = s as u32 * PER_SET;
            let count = (self.queries - first).min(PER_SET);
            // PER_SET × 8 bytes keeps each offset a multiple of QUERY_RESOLVE_BUFFER_ALIGNMENT.
            let offset = first as u64 * wgpu::QUERY_SIZE as u64;
            encoder.resolve_query_set(set, 0..count, &self.resolved, offset);
        }
        encoder.copy_buffer_to_buffer(&self.resolved, 0, &self.readback, 0, self.bytes());
    }

    fn bytes(&self) -> u64 {
        self.queries as u64 * wgpu::QUERY_SIZE as u64
    }
}

/// One dispatch's share of a profiled step.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DispatchTime {
    /// Its place in the step.
    pub index: usize,
    /// Its graph node's label (a weight split into parts gives one dispatch a part).
    pub label: String,
    pub gpu_us: f64,
    /// Of the step's summed GPU time.
    pub percent: f64,
    pub weight_bytes: u64,
    /// Weight bytes ÷ GPU time, for dispatches that read weights.
    pub gb_s: Option<f64>,
}

/// One step, profiled.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepProfile {
    pub tokens: usize,
    /// Positions already in the cache.
    pub past: usize,
    /// The sum of every dispatch's GPU time.
    pub gpu_us: f64,
    /// From the first dispatch's begin to the last one's end.
    pub span_us: f64,
    /// Host time of the profiled step: step buffer written, passes recorded and
    /// submitted, timestamps read back.
    pub wall_us: f64,
    /// Host time of the same step run normally (one pass, one submit, the greedy
    /// token's 4 bytes read back), as generation runs it.
    pub unprofiled_wall_us: f64,
    /// GPU time of the step recorded as one pass, as generation records it, from the
    /// pass's begin to its end: the dispatches and the gaps between them.
    pub one_pass_us: f64,
    /// In the order they ran.
    pub dispatches: Vec<DispatchTime>,
}

/// A prefill step of a prompt and the decode step of one token after it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Profile {
    /// Dispatches in the decode step.
    pub dispatches_per_token: usize,
    /// Nanoseconds per timestamp tick, as the queue reports it.
    pub timestamp_period_ns: f32,
    pub prefill: StepProfile,
    pub decode: StepProfile,
}

/// Profiles `prompt` as one prefill step from an empty cache, then the decode step of
/// the token greedy decoding picks after it. Each step runs once unprofiled first (its
/// wall time; the first run of all is a warm-up, untimed) and then profiled.
pub fn profile(
    executor: &GpuExecutor,
    kv: &mut GpuKvCache,
    prompt: &[u32],
) -> Result<Profile, GpuError> {
    let context = executor.context();
    if !context.has_timestamps() {
        return Err(GpuError::Unsupported(format!(
            "profiling needs timestamp queries (TIMESTAMP_QUERY), which {} does not offer",
            context.adapter_description()
        )));
    }
    // The prompt and the token after it, before anything runs.
    if prompt.len() + 1 > kv.capacity() {
        return Err(RunError::ContextFull {
            needed: prompt.len() + 1,
            capacity: kv.capacity(),
        }
        .into());
    }
    // Warm-up: some drivers compile pipelines and clear new buffers on first use.
    let next = executor.run_argmax(prompt, 0, kv)?;
    executor.run_argmax(&[next], prompt.len(), kv)?;
    Ok(Profile {
        dispatches_per_token: executor.dispatch_count(1, prompt.len()),
        timestamp_period_ns: context.queue.get_timestamp_period(),
        prefill: profile_step(executor, kv, prompt, 0)?,
        decode: profile_step(executor, kv, &[next], prompt.len())?,
    })
}

/// Runs one step normally, then again with each dispatch timed and once more timed
/// as one pass (all write the same cache positions with the same values).
fn profile_step(
    executor: &GpuExecutor,
    kv: &mut GpuKvCache,
    tokens: &[u32],
    past: usize,
) -> Result<StepProfile, GpuError> {
    let context = executor.context();
    let start = Instant::now();
    executor.run_argmax(tokens, past, kv)?;
    let unprofiled_wall_us = start.elapsed().as_secs_f64() * 1e6;

    let timestamps = Timestamps::new(&context.device, executor.dispatch_slots());
    let start = Instant::now();
    let ticks = timed_run(
        executor,
        kv,
        tokens,
        past,
        Timing::EachDispatch(&timestamps),
    )?;
    let wall_us = start.elapsed().as_secs_f64() * 1e6;
    let one_pass_us = step_gpu_us(executor, kv, tokens, past)?;
    let us_per_tick = context.queue.get_timestamp_period() as f64 / 1000.0;
    // Slots of dispatches the step skips hold nothing: only the running ones count.
    let ran: Vec<usize> = executor
        .dispatch_reads(tokens.len(), past)
        .map(|(index, _, _)| index)
        .collect();
    let times: Vec<f64> = ticks
        .chunks_exact(2)
        .map(|pair| pair[1].saturating_sub(pair[0]) as f64 * us_per_tick)
        .collect();
    let gpu_us: f64 = ran.iter().map(|&i| times[i]).sum();
    let begin = ran.iter().map(|&i| ticks[2 * i]).min().unwrap_or(0);
    let end = ran.iter().map(|&i| ticks[2 * i + 1]).max().unwrap_or(0);
    let dispatches = executor
        .dispatch_reads(tokens.len(), past)
        .enumerate()
        .map(|(index, (slot, label, weight_bytes))| (index, label, weight_bytes, times[slot]))
        .map(|(index, label, weight_bytes, gpu_us_each)| DispatchTime {
            index,
            label: label.to_string(),
            gpu_us: gpu_us_each,
            percent: if gpu_us > 0.0 {
                100.0 * gpu_us_each / gpu_us
            } else {
                0.0
            },
            weight_bytes,
            gb_s: (weight_bytes > 0 && gpu_us_each > 0.0)
                .then(|| weight_bytes as f64 / gpu_us_each / 1e3),
        })
        .collect();
    Ok(StepProfile {
        tokens: tokens.len(),
        past,
        gpu_us,
        span_us: end.saturating_sub(begin) as f64 * us_per_tick,
        wall_us,
        unprofiled_wall_us,
        one_pass_us,
        dispatches,
    })
}

/// The GPU time of one step over `tokens` after `past` positions, recorded as
/// generation records it (one pass) and timed from the pass's begin to its end. The
/// device must have timestamp queries.
pub fn step_gpu_us(
    executor: &GpuExecutor,
    kv: &GpuKvCache,
    tokens: &[u32],
    past: usize,
) -> Result<f64, GpuError> {
    let context = executor.context();
    let timestamps = Timestamps::new(&context.device, 1);
    let ticks = timed_run(executor, kv, tokens, past, Timing::WholeStep(&timestamps))?;
    let us_per_tick = context.queue.get_timestamp_period() as f64 / 1000.0;
    Ok(ticks[1].saturating_sub(ticks[0]) as f64 * us_per_tick)
}

/// Runs the step timed as `timing` says and returns the timestamps' ticks.
fn timed_run(
    executor: &GpuExecutor,
    kv: &GpuKvCache,
    tokens: &[u32],
    past: usize,
    timing: Timing,
) -> Result<Vec<u64>, GpuError> {
    let timestamps = timing.timestamps();
    let mut encoder = executor.record_timed(tokens, past, kv, timing)?;
    timestamps.resolve(&mut encoder);
    executor.context().queue.submit([encoder.finish()]);
    executor.read(&timestamps.readback, timestamps.bytes())
}
