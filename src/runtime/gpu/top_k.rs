//! The k largest logits of the output's last row, on the device (wgsl/top_k.wgsl):
//! sampling reads back k (token, logit) pairs instead of the vocabulary's logits, and
//! greedy decoding (k = 1) reads back 4 bytes.

use super::executor::{bind_in_order, grid_2d, ModulePipelines};
use super::shaders::Module;
use super::{GpuContext, GpuError};
use crate::runtime::Candidate;

/// The most candidates one step can ask for (`TOP_K_MAX` in wgsl/top_k.wgsl).
pub const TOP_K_MAX: usize = 128;
/// Logits each workgroup of the first dispatch takes (`CHUNK` in wgsl/top_k.wgsl).
pub(super) const CHUNK: u32 = 1024;
/// Bytes of one candidate: its token, then its logit.
const CANDIDATE_BYTES: u64 = 8;

/// The two dispatches and their buffers, bound once at load.
pub(super) struct TopK {
    chunks_pipeline: wgpu::ComputePipeline,
    merge_pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    chunks: u32,
    /// The candidates, the best first: its first word is the argmax.
    pub best: wgpu::Buffer,
    pub readback: wgpu::Buffer,
    /// Bytes of the buffers it made.
    pub bytes: u64,
}

impl TopK {
    /// Top-k over the last of `rows` rows (0: the step's tokens) of `n` logits bound by
    /// `logits`.
    pub fn new(
        context: &GpuContext,
        step: &wgpu::Buffer,
        logits: wgpu::BindingResource,
        n: u32,
        rows: u32,
    ) -> Result<TopK, GpuError> {
        let device = &context.device;
        let pipelines = ModulePipelines::build(context, Module::TopK)?;
        let chunks = n.div_ceil(CHUNK);
        let buffer = |label: &str, bytes: u64, usage: wgpu::BufferUsages| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        let storage = wgpu::BufferUsages::STORAGE;
        let best_bytes = TOP_K_MAX as u64 * CANDIDATE_BYTES;
        let chunk_best = buffer("top-k of each chunk", chunks as u64 * best_bytes, storage);
        let best = buffer("top-k", best_bytes, storage | wgpu::BufferUsages::COPY_SRC);
        let readback = buffer(
            "top-k read-back",
            best_bytes,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        // The kernel's Params: n, rows, chunks (a uniform binding of 16 bytes).
        let params = wgpu::util::DeviceExt::create_buffer_init(
            device,
            &wgpu::util::BufferInitDescriptor {
                label: Some("top-k parameters"),
                contents: bytemuck::cast_slice(&[n, rows, chunks, 0]),
                usage: wgpu::BufferUsages::UNIFORM,
            },
        );
        let resources = [
            step.as_entire_binding(),
            params.as_entire_binding(),
            logits,
            chunk_best.as_entire_binding(),
            best.as_entire_binding(),
        ];
        let bind_group = bind_in_order(device, "top-k", &pipelines.layout, resources);
        let bytes = [&chunk_best, &best, &readback, &params]
            .iter()
            .map(|b| b.size())
            .sum();
        Ok(TopK {
            chunks_pipeline: pipelines.by_entry["top_k_chunks"].clone(),
            merge_pipeline: pipelines.by_entry["top_k_merge"].clone(),
            bind_group,
            chunks,
            best,
            readback,
            bytes,
        })
    }

    /// Records both dispatches into `best` (the step's `top_k` says how many candidates
    /// they take).
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder, max_dim: u32) {
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("top-k"),
                timestamp_writes: None,
            });
            pass.set_bind_group(0, &self.bind_group, &[]);
            pass.set_pipeline(&self.chunks_pipeline);
            let (x, y) = grid_2d(self.chunks, max_dim);
            pass.dispatch_workgroups(x, y, 1);
            pass.set_pipeline(&self.merge_pipeline);
            pass.dispatch_workgroups(1, 1, 1);
        }
    }

    /// Bytes the read-back of `k` candidates takes.
    pub fn candidate_bytes(k: usize) -> u64 {
        k as u64 * CANDIDATE_BYTES
    }

    /// The candidates in read-back bytes.
    pub fn candidates(data: &[u8]) -> Vec<Candidate> {
        data.chunks_exact(CANDIDATE_BYTES as usize)
            .map(|c| {
                let word = |i: usize| [c[i], c[i + 1], c[i + 2], c[i + 3]];
                (u32::from_le_bytes(word(0)), f32::from_le_bytes(word(4)))
            })
            .collect()
    }
}
