//! The device's copy bandwidth, measured by the harness itself: the roofline that
//! bandwidth-bound steps (decoding reads every weight once a token) are judged against.

use std::time::Instant;

use super::executor::{bind_in_order, grid_2d, ModulePipelines};
use super::shaders::Module;
use super::{GpuContext, GpuError};

/// The largest copy measured on a hardware GPU, and on a software one (lavapipe,
/// llvmpipe copies with the CPU; more only takes longer).
const HARDWARE_BYTES: u64 = 256 << 20;
const SOFTWARE_BYTES: u64 = 64 << 20;
/// Copies in the long submit; the short one has one. Their difference cancels the
/// submit → wait round trip (~85 µs on an H100, a third of one 256 MiB copy).
const COPIES: u32 = 8;
const REPETITIONS: usize = 5;

/// How the figure is defined, for reports.
pub const COPY_DEFINITION: &str =
    "bytes copied ÷ time, by a compute kernel on the device (16 bytes an invocation); each byte is read once and written once";

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CopyBandwidth {
    /// Bytes of one copy.
    pub bytes: u64,
    /// Median over the repetitions.
    pub gb_s: f64,
    pub repetitions: usize,
}

/// Copies a buffer of up to 256 MiB (64 MiB on a software adapter, never more than the
/// device's largest buffer) back and forth with the copy kernel; the time of one copy
/// is the difference between a submit of `COPIES + 1` copies and a submit of one,
/// divided by `COPIES`.
pub fn copy_bandwidth(context: &GpuContext) -> Result<CopyBandwidth, GpuError> {
    let cap = if context.is_software() {
        SOFTWARE_BYTES
    } else {
        HARDWARE_BYTES
    };
    let limits = context.limits();
    let bytes = cap
        .min(limits.max_buffer_size)
        .min(limits.max_storage_buffer_binding_size)
        / 16
        * 16;
    let device = &context.device;
    let buffers = context
        .scoped(wgpu::ErrorFilter::OutOfMemory, || {
            [0, 1].map(|_| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("copy bandwidth"),
                    size: bytes,
                    usage: wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                })
            })
        })
        .map_err(|reason| GpuError::OutOfMemory {
            needed: 2 * bytes,
            offered: format!("for the copy bandwidth test ({reason})"),
        })?;
    let pipelines = ModulePipelines::build(context, Module::Copy)?;
    let small = |usage| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("copy bandwidth"),
            size: 16,
            usage,
            mapped_at_creation: false,
        })
    };
    let (step, params) = (
        small(wgpu::BufferUsages::STORAGE),
        small(wgpu::BufferUsages::UNIFORM),
    );
    // Back and forth, so that each copy waits for the one before.
    let bind_groups = [0, 1].map(|i| {
        let resources =
            [&step, &params, &buffers[i], &buffers[1 - i]].map(|b| b.as_entire_binding());
        bind_in_order(device, "copy bandwidth", &pipelines.layout, resources)
    });
    let (x, y) = grid_2d(
        (bytes / 16).div_ceil(256) as u32,
        limits.max_compute_workgroups_per_dimension,
    );
    let run = |copies: u32| -> Result<f64, GpuError> {
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipelines.by_entry["copy"]);
            for i in 0..copies as usize {
                pass.set_bind_group(0, &bind_groups[i % 2], &[]);
                pass.dispatch_workgroups(x, y, 1);
            }
        }
        let start = Instant::now();
        context.queue.submit([encoder.finish()]);
        context.wait()?;
        Ok(start.elapsed().as_secs_f64())
    };
    // The first submit also warms the pipeline and touches the new buffers.
    run(COPIES + 1)?;
    let mut rates = Vec::with_capacity(REPETITIONS);
    for _ in 0..REPETITIONS {
        let one = run(1)?;
        let many = run(COPIES + 1)?;
        // Should timer noise outweigh the copies, the long submit's average stands in.
        let difference = (many - one) / COPIES as f64;
        let seconds = if difference > 0.0 {
            difference
        } else {
            many / (COPIES + 1) as f64
        };
        rates.push(bytes as f64 / seconds / 1e9);
    }
    Ok(CopyBandwidth {
        bytes,
        gb_s: crate::runtime::bench::Spread::of(&rates).median,
        repetitions: REPETITIONS,
    })
}
