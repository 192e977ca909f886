//! The context shift on the device, with the result of the CPU's `KvCache::discard`:
//! for each cache, a copy of it, then the `cache_shift` kernel (wgsl/kv_shift.wgsl)
//! moves the kept rows down from the copy and turns a rotary cache's keys back.

use std::ops::Range;

use super::executor::{bind_in_order, grid_2d, ModulePipelines, Params};
use super::lower::{ring_slots, rope_mode};
use super::shaders::Module;
use super::{GpuContext, GpuError, GpuKvCache};
use crate::graph::CacheDecl;
use crate::model::RopeMode;
use crate::runtime::KvType;

/// Rows (and their kernel parameters) of one cache that a shift moves.
fn shift_params(
    cache: &CacheDecl,
    capacity: usize,
    keep: usize,
    n: usize,
    past: usize,
) -> Result<Option<(Params, u32)>, GpuError> {
    let new_past = past - n;
    let slots = cache.positions(capacity);
    // As the CPU: positions first .. new_past take the rows n later (a ring still
    // holds those: they are within its last `slots` positions).
    let first = keep.max(new_past.saturating_sub(slots)).min(new_past);
    if first == new_past {
        return Ok(None);
    }
    let (mode, head_dim, n_rot, freq_scale) = match cache.rotary {
        Some(r) if r.mode == RopeMode::Halves && r.n_rot % 4 != 0 => {
            return Err(GpuError::Unsupported(format!(
                "shifting `{}`: the GPU turns halves-paired keys of a rotation length that is a multiple of 4, not {}",
                cache.name, r.n_rot
            )))
        }
        Some(r) => (rope_mode(r.mode), r.head_dim, r.n_rot, r.freq_scale),
        None => (2, cache.row_len, 0, 1.0),
    };
    let params = Params::new(&[
        cache.row_len as u32,
        head_dim as u32,
        n_rot as u32,
        mode,
        freq_scale.to_bits(),
        n as u32,
        first as u32,
        new_past as u32,
        ring_slots(cache, capacity),
    ]);
    let pairs = (new_past - first) * cache.row_len / 2;
    Ok(Some((params, pairs as u32)))
}

/// Drops the `dropped` positions of `kv`'s caches, which hold `past` positions, in one
/// submit. `step` is bound where every module expects the step (the kernel ignores it).
pub(super) fn discard(
    context: &GpuContext,
    step: &wgpu::Buffer,
    caches: &[CacheDecl],
    kv_type: KvType,
    kv: &GpuKvCache,
    dropped: Range<usize>,
    past: usize,
) -> Result<(), GpuError> {
    let (keep, n, capacity, buffers) = (dropped.start, dropped.len(), kv.capacity, &kv.buffers);
    let device = &context.device;
    let pipelines = ModulePipelines::build(context, Module::KvShift(kv_type))?;
    let largest = buffers.iter().map(|b| b.size()).max().unwrap_or(16);
    let moved = context
        .scoped(wgpu::ErrorFilter::OutOfMemory, || {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kv shift"),
                size: largest,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })
        .map_err(|reason| GpuError::OutOfMemory {
            needed: largest,
            offered: format!("for the context shift's copy of a cache ({reason})"),
        })?;
    let max_dim = context.limits().max_compute_workgroups_per_dimension;
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("kv shift"),
    });
    for (cache, buffer) in caches.iter().zip(buffers) {
        let Some((params, pairs)) = shift_params(cache, capacity, keep, n, past)? else {
            continue;
        };
        let buffer_of = |contents: &[u8], usage| {
            wgpu::util::DeviceExt::create_buffer_init(
                device,
                &wgpu::util::BufferInitDescriptor {
                    label: Some("kv shift"),
                    contents,
                    usage,
                },
            )
        };
        let params = buffer_of(bytemuck::cast_slice(&params.0), wgpu::BufferUsages::UNIFORM);
        // A rotation's inverse frequencies; a value cache binds a placeholder.
        let table = cache.rotary.map_or(vec![0.0f32; 4], |r| r.inv_freq());
        let inv_freq = buffer_of(bytemuck::cast_slice(&table), wgpu::BufferUsages::STORAGE);
        let resources = [step, &params, &moved, buffer, &inv_freq].map(|b| b.as_entire_binding());
        let bind_group = bind_in_order(device, "kv shift", &pipelines.layout, resources);
        encoder.copy_buffer_to_buffer(buffer, 0, &moved, 0, buffer.size());
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("kv shift"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipelines.by_entry["cache_shift"]);
        pass.set_bind_group(0, &bind_group, &[]);
        let (x, y) = grid_2d(pairs.div_ceil(256), max_dim);
        pass.dispatch_workgroups(x, y, 1);
    }
    context.queue.submit([encoder.finish()]);
    context.check()
}
