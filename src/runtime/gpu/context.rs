//! The device: adapter choice, the device opened with the adapter's own limits, and
//! the errors wgpu reports out of band (device lost, uncaptured errors) kept for the
//! next check instead of wgpu's default panic.

use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::pipeline_cache::PipelineCache;
use super::{GpuError, Reduction};

/// Which adapter to open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AdapterChoice {
    /// The best adapter there is: a discrete GPU before an integrated or virtual one,
    /// a software rasteriser (lavapipe, llvmpipe) last; Vulkan, Metal and DX12 before GL.
    #[default]
    Auto,
    /// The first adapter (in `Auto`'s order) whose name contains this, ignoring case.
    Named(String),
}

impl FromStr for AdapterChoice {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(if s.eq_ignore_ascii_case("auto") {
            AdapterChoice::Auto
        } else {
            AdapterChoice::Named(s.to_string())
        })
    }
}

/// An open device and its queue.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    /// Whether the device was opened with `TIMESTAMP_QUERY` (pass timestamps, for profiling).
    timestamps: bool,
    /// Whether it was opened with cooperative matrices for the prefill matmul.
    tensor_cores: bool,
    /// How the decode matmul sums over its workgroup: in subgroups where it was opened
    /// with them.
    reduction: Reduction,
    /// Errors wgpu reported outside any error scope, and why the device was lost.
    reported: Arc<Mutex<Vec<String>>>,
    pipeline_cache: Option<PipelineCache>,
}

fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let device = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    (device, backend)
}

fn describe(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
}

/// How long a wait polls the device before it blocks: a decode step ends within it,
/// and a blocking wait wakes tens of µs after the device is done (measured: polling
/// made TinyLlama's synchronous decode 7 – 10% faster on an H100), while polling keeps
/// one host core busy for at most this long. A software adapter never polls: it
/// computes on the host's cores.
const SPIN: Duration = Duration::from_millis(20);

/// Blocks on a wgpu future (every native wgpu future resolves once the device is polled).
pub(super) fn block_on<F: Future>(f: F) -> F::Output {
    pollster::block_on(f)
}

/// Whether an adapter can run `matmul_prefill_coop`: 16 × 16 × 16 cooperative
/// multiplies of f16 into f32 (wgpu's experimental feature), f16 in shaders, and
/// subgroups of exactly 32 (the kernel's workgroup of 128 is four of them, each
/// multiplying its own part of the tile).
fn has_tensor_cores(adapter: &wgpu::Adapter) -> bool {
    let needed = wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX | wgpu::Features::SHADER_F16;
    let info = adapter.get_info();
    adapter.features().contains(needed)
        && info.subgroup_min_size == 32
        && info.subgroup_max_size == 32
        && adapter.cooperative_matrix_properties().iter().any(|c| {
            (c.m_size, c.n_size, c.k_size) == (16, 16, 16)
                && c.ab_type == wgpu::CooperativeScalarType::F16
                && c.cr_type == wgpu::CooperativeScalarType::F32
        })
}

/// Whether an adapter's subgroups serve the decode matmul's sums: subgroups of 4 or
/// more, so that each of its four groups of rows has a slot a subgroup in an array of
/// one a invocation (wgsl/reduce/subgroups.wgsl).
fn has_subgroups(adapter: &wgpu::Adapter) -> bool {
    adapter.features().contains(wgpu::Features::SUBGROUP)
        && adapter.get_info().subgroup_min_size >= 4
}

/// The optional features a device is opened with, each only where the adapter has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceFeatures {
    /// The prefill matmul on tensor cores (`matmul_prefill_coop`: W and x rounded to
    /// f16, sums in f32).
    pub tensor_cores: bool,
    /// The decode matmul's sums in subgroups ([`Reduction::Subgroups`]).
    pub subgroups: bool,
}

impl Default for DeviceFeatures {
    fn default() -> Self {
        DeviceFeatures {
            tensor_cores: false,
            subgroups: true,
        }
    }
}

impl GpuContext {
    /// The adapter `choice` names, opened with the default features.
    pub fn new(choice: &AdapterChoice) -> Result<GpuContext, GpuError> {
        Self::open(choice, DeviceFeatures::default())
    }

    /// As [`Self::new`], with the features `wanted` where the adapter has them.
    pub fn open(choice: &AdapterChoice, wanted: DeviceFeatures) -> Result<GpuContext, GpuError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let mut adapters = block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        adapters.sort_by_key(|a| rank(&a.get_info()));
        let names: Vec<String> = adapters.iter().map(|a| describe(&a.get_info())).collect();
        let adapter = match choice {
            AdapterChoice::Auto => adapters.into_iter().next().ok_or_else(|| {
                GpuError::NoAdapter(
                    "wgpu found no adapter on any backend (install a Vulkan, Metal or DX12 \
                     driver; Mesa's lavapipe gives a software one)"
                        .into(),
                )
            })?,
            AdapterChoice::Named(part) => {
                let wanted = part.to_lowercase();
                adapters
                    .into_iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(&wanted))
                    .ok_or_else(|| {
                        GpuError::NoAdapter(format!(
                            "none is named like `{part}`; there are: {}",
                            if names.is_empty() {
                                "none".to_string()
                            } else {
                                names.join(", ")
                            }
                        ))
                    })?
            }
        };
        let info = adapter.get_info();
        // Optional features only where the adapter offers them: asking for one it lacks
        // fails the whole device request.
        let mut features =
            adapter.features() & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::PIPELINE_CACHE);
        let tensor_cores = wanted.tensor_cores && has_tensor_cores(&adapter);
        if tensor_cores {
            features |=
                wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX | wgpu::Features::SHADER_F16;
        }
        let reduction = if wanted.subgroups && has_subgroups(&adapter) {
            features |= wgpu::Features::SUBGROUP;
            Reduction::Subgroups
        } else {
            Reduction::Tree
        };
        let (device, queue) = block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("rustorch"),
            required_features: features,
            required_limits: adapter.limits(),
            // SAFETY: the one experimental feature asked for, cooperative matrices, is
            // asked for only where the adapter reports the configuration the kernel uses.
            experimental_features: if tensor_cores {
                unsafe { wgpu::ExperimentalFeatures::enabled() }
            } else {
                wgpu::ExperimentalFeatures::disabled()
            },
            ..Default::default()
        }))
        .map_err(|e| GpuError::DeviceRequest {
            adapter: describe(&info),
            reason: e.to_string(),
        })?;
        let reported = Arc::new(Mutex::new(Vec::new()));
        let sink = reported.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut list) = sink.lock() {
                list.push(e.to_string());
            }
        }));
        let sink = reported.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut list) = sink.lock() {
                list.push(format!("device lost ({reason:?}): {message}"));
            }
        });
        let pipeline_cache = PipelineCache::open(&device, &info);
        Ok(GpuContext {
            device,
            queue,
            pipeline_cache,
            info,
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            tensor_cores,
            reduction,
            reported,
        })
    }

    /// The on-disk pipeline cache pipelines are built through, where there is one.
    pub(super) fn pipeline_cache(&self) -> Option<&wgpu::PipelineCache> {
        self.pipeline_cache.as_ref().map(|c| &c.cache)
    }

    /// Writes the pipeline cache back to disk (after building pipelines).
    pub(super) fn save_pipeline_cache(&self) {
        if let Some(cache) = &self.pipeline_cache {
            cache.save();
        }
    }

    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// True when compute passes can write GPU timestamps (`TIMESTAMP_QUERY`), which
    /// [`super::GpuExecutor::profile`] needs.
    pub fn has_timestamps(&self) -> bool {
        self.timestamps
    }

    /// How the decode matmul sums over its workgroup on this device.
    pub fn reduction(&self) -> Reduction {
        self.reduction
    }

    /// True when the prefill matmul runs on tensor cores ([`DeviceFeatures::tensor_cores`]).
    pub fn has_tensor_cores(&self) -> bool {
        self.tensor_cores
    }

    /// True for a software rasteriser (lavapipe, llvmpipe): correct, but slower than
    /// the CPU interpreter.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// The adapter's name, backend and kind, as messages print it.
    pub fn adapter_description(&self) -> String {
        describe(&self.info)
    }

    pub fn limits(&self) -> wgpu::Limits {
        self.device.limits()
    }

    /// Fails with the first error wgpu reported out of band since the last check.
    pub(super) fn check(&self) -> Result<(), GpuError> {
        let first = match self.reported.lock() {
            Ok(mut list) => list.drain(..).next(),
            Err(_) => Some("an error handler panicked".to_string()),
        };
        match first {
            None => Ok(()),
            Some(message) if message.starts_with("device lost") => {
                Err(GpuError::DeviceLost(message))
            }
            Some(message) => Err(GpuError::Device(message)),
        }
    }

    /// Runs `f` inside an error scope of `filter`, returning wgpu's error as `Err(message)`.
    pub(super) fn scoped<T>(
        &self,
        filter: wgpu::ErrorFilter,
        f: impl FnOnce() -> T,
    ) -> Result<T, String> {
        let scope = self.device.push_error_scope(filter);
        let value = f();
        match block_on(scope.pop()) {
            None => Ok(value),
            Some(e) => Err(e.to_string()),
        }
    }

    /// Waits for all submitted work.
    pub(super) fn wait(&self) -> Result<(), GpuError> {
        self.wait_for(None)
    }

    /// Waits for the message a callback of the submitted work sends on `receiver` (a
    /// buffer's mapping), polling the device for up to [`SPIN`] before blocking until
    /// `submission` is done (all submitted work for None).
    pub(super) fn wait_for_message<T>(
        &self,
        receiver: &std::sync::mpsc::Receiver<T>,
        submission: Option<wgpu::SubmissionIndex>,
    ) -> Result<T, GpuError> {
        let start = Instant::now();
        let spin = self.info.device_type != wgpu::DeviceType::Cpu;
        while spin && start.elapsed() < SPIN {
            self.device
                .poll(wgpu::PollType::Poll)
                .map_err(|e| GpuError::DeviceLost(e.to_string()))?;
            if let Ok(message) = receiver.try_recv() {
                self.check()?;
                return Ok(message);
            }
            std::hint::spin_loop();
        }
        self.wait_for(submission)?;
        receiver
            .recv()
            .map_err(|_| GpuError::DeviceLost("the read-back never completed".into()))
    }

    /// Waits for `submission` and the work before it (all submitted work for None).
    pub(super) fn wait_for(
        &self,
        submission: Option<wgpu::SubmissionIndex>,
    ) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: submission,
                timeout: None,
            })
            .map_err(|e| GpuError::DeviceLost(e.to_string()))?;
        self.check()
    }
}
