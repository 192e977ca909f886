//! The wgpu executor: the graph is lowered once, at load, to a list of dispatches with
//! their pipelines, parameters and buffers; a step writes the step buffer once, records
//! every dispatch in one command encoder and submits once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::context::block_on;
use super::kv::GpuKvCache;
use super::profile::Timestamps;
use super::shaders::{Access, Module, COLS_MULTIPLE, MATMUL_ROWS_PER_GROUP};
use super::weights::{padded, upload, WeightPart, WeightRead};
use super::{GpuContext, GpuError};
use crate::gguf::GgufFile;
use crate::graph::{Dim, Graph, Op, Step, TensorType, Weight};
use crate::model::RopeMode;
use crate::runtime::cpu::{kernels, RunError};

/// Sizes fixed at load: buffers are allocated for the largest step.
#[derive(Debug, Clone, Copy)]
pub struct GpuOptions {
    /// The most tokens one step may run (the prefill chunk).
    pub max_tokens: usize,
    /// Positions of the KV caches this executor makes.
    pub context: usize,
}

/// Rows of an activation: the step's tokens or a fixed count.
#[derive(Debug, Clone, Copy)]
enum Rows {
    Tokens,
    Fixed(u32),
}

impl Rows {
    fn of(dim: Dim) -> Rows {
        match dim {
            Dim::Fixed(n) => Rows::Fixed(n as u32),
            _ => Rows::Tokens,
        }
    }

    fn resolve(self, tokens: u32) -> u32 {
        match self {
            Rows::Tokens => tokens,
            Rows::Fixed(n) => n,
        }
    }

    /// As kernels take it: 0 for T.
    fn param(self) -> u32 {
        match self {
            Rows::Tokens => 0,
            Rows::Fixed(n) => n,
        }
    }
}

/// How many workgroups a dispatch needs in a step.
#[derive(Debug, Clone, Copy)]
enum Grid {
    /// One invocation per item, 256 to a workgroup: `per_row` items per row, times the
    /// context length when `per_context`.
    Items {
        per_row: u32,
        rows: Rows,
        per_context: bool,
    },
    /// One workgroup per item: `per_row` items per row.
    Groups { per_row: u32, rows: Rows },
    /// A matmul over `rows` weight rows: one workgroup per few rows with one row of x,
    /// else one per 16 × 16 tile.
    Matmul { rows: u32, tokens: Rows },
}

const ITEMS_PER_GROUP: u32 = 256;
const MATMUL_TILE: u32 = 16;

/// Where a storage binding's buffer comes from.
#[derive(Clone)]
enum Source {
    Buffer(wgpu::Buffer),
    /// A KV cache's buffer, bound when the cache is made.
    Cache(usize),
}

struct Dispatch {
    label: String,
    pipeline: wgpu::ComputePipeline,
    /// Matmuls: the kernel for a single row of x.
    single_row: Option<wgpu::ComputePipeline>,
    grid: Grid,
    layout: wgpu::BindGroupLayout,
    params_offset: u64,
    sources: Vec<Source>,
    /// The weight bytes it reads (set by `Loader::reads` for embeddings and matmuls).
    weight: WeightRead,
}

impl Dispatch {
    fn binds_cache(&self) -> bool {
        self.sources.iter().any(|s| matches!(s, Source::Cache(_)))
    }

    /// The pipeline and workgroup count for a step of `tokens` tokens and `context` keys.
    fn launch(&self, tokens: u32, context: u32) -> (&wgpu::ComputePipeline, u32) {
        let items = |n: u32| n.div_ceil(ITEMS_PER_GROUP);
        match self.grid {
            Grid::Items {
                per_row,
                rows,
                per_context,
            } => {
                let n = per_row * rows.resolve(tokens) * if per_context { context } else { 1 };
                (&self.pipeline, items(n))
            }
            Grid::Groups { per_row, rows } => (&self.pipeline, per_row * rows.resolve(tokens)),
            Grid::Matmul { rows, tokens: x } => match (&self.single_row, x.resolve(tokens)) {
                (Some(single), 1) => (single, rows.div_ceil(MATMUL_ROWS_PER_GROUP)),
                (_, t) => (
                    &self.pipeline,
                    rows.div_ceil(MATMUL_TILE) * t.div_ceil(MATMUL_TILE),
                ),
            },
        }
    }
}

/// Lays `n` workgroups out on a grid no wider than the device allows.
fn grid_2d(n: u32, max_dim: u32) -> (u32, u32) {
    if n <= max_dim {
        (n.max(1), 1)
    } else {
        (max_dim, n.div_ceil(max_dim))
    }
}

/// A compute pass of a step; `timestamp_writes` when profiled.
fn step_pass<'e>(
    encoder: &'e mut wgpu::CommandEncoder,
    timestamp_writes: Option<wgpu::ComputePassTimestampWrites<'_>>,
) -> wgpu::ComputePass<'e> {
    encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("step"),
        timestamp_writes,
    })
}

/// The parameters of one dispatch, as the kernel's `Params` struct reads them.
#[derive(Default)]
struct Params([u32; PARAM_WORDS]);

const PARAM_WORDS: usize = 8;

impl Params {
    fn new(words: &[u32]) -> Params {
        let mut p = Params::default();
        p.0[..words.len()].copy_from_slice(words);
        p
    }
}

/// The pipelines of one module and the layout they share.
struct ModulePipelines {
    layout: wgpu::BindGroupLayout,
    by_entry: HashMap<&'static str, wgpu::ComputePipeline>,
}

/// A node's value on the device.
#[derive(Clone)]
enum Value {
    /// The token ids, which live in the step buffer.
    TokenIds,
    Buffer(wgpu::Buffer),
    /// The KV cache `usize` (what a `CacheWrite` yields).
    Cache(usize),
}

static NEXT_EXECUTOR: AtomicU64 = AtomicU64::new(0);

/// A graph bound to the weights of one GGUF file, on one device.
pub struct GpuExecutor<'a> {
    context: &'a GpuContext,
    id: u64,
    options: GpuOptions,
    /// Bytes of every buffer made at load (weights, activations, step, read-back).
    allocated: u64,
    cache_row_lens: Vec<usize>,
    n_vocab: usize,
    step: wgpu::Buffer,
    params: wgpu::Buffer,
    dispatches: Vec<Dispatch>,
    /// Per dispatch: its bind group, unless it binds a cache (then the cache holds it).
    bind_groups: Vec<Option<wgpu::BindGroup>>,
    output: wgpu::Buffer,
    output_type: TensorType,
    readback: wgpu::Buffer,
    argmax_pipeline: wgpu::ComputePipeline,
    argmax_bind_group: wgpu::BindGroup,
    argmax_result: wgpu::Buffer,
    argmax_readback: wgpu::Buffer,
}

/// What loading builds up before the executor exists.
struct Loader<'a> {
    context: &'a GpuContext,
    gguf: &'a GgufFile,
    options: GpuOptions,
    limits: wgpu::Limits,
    pipelines: HashMap<Module, ModulePipelines>,
    params: Vec<u8>,
    param_stride: usize,
    weights: HashMap<String, std::rc::Rc<Vec<WeightPart>>>,
    dispatches: Vec<Dispatch>,
    /// Bytes of every buffer made, for the out-of-memory message.
    allocated: u64,
}

impl<'a> Loader<'a> {
    fn pipelines(&mut self, module: Module) -> Result<&ModulePipelines, GpuError> {
        if !self.pipelines.contains_key(&module) {
            let built = build_pipelines(self.context, module)?;
            self.pipelines.insert(module, built);
        }
        Ok(&self.pipelines[&module])
    }

    fn buffer(&mut self, label: &str, bytes: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
        self.allocated += bytes;
        self.context.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage,
            mapped_at_creation: false,
        })
    }

    /// An activation buffer for `elements` f32 values at most.
    fn activation(&mut self, label: &str, elements: usize) -> Result<wgpu::Buffer, GpuError> {
        let bytes = padded(elements * 4);
        if bytes > self.limits.max_storage_buffer_binding_size {
            return Err(GpuError::Unsupported(format!(
                "activation `{label}` takes {bytes} bytes at {} tokens and {} positions, more than \
                 the device's largest storage binding ({} bytes); lower max_tokens or context",
                self.options.max_tokens, self.options.context, self.limits.max_storage_buffer_binding_size
            )));
        }
        Ok(self.buffer(
            label,
            bytes,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        ))
    }

    /// A weight in its stored type, uploaded once however many nodes read it.
    fn weight(&mut self, w: &Weight) -> Result<std::rc::Rc<Vec<WeightPart>>, GpuError> {
        if let Some(parts) = self.weights.get(&w.name) {
            return Ok(parts.clone());
        }
        if !w.cols.is_multiple_of(COLS_MULTIPLE) {
            return Err(GpuError::Unsupported(format!(
                "weight `{}` has rows of {} values; the GPU kernels need a multiple of {COLS_MULTIPLE}",
                w.name, w.cols
            )));
        }
        let bytes = self.tensor_bytes(&w.name)?;
        let row_bytes = kernels::row_bytes(w.ty, w.cols);
        let max_binding = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        self.allocated += bytes.len() as u64;
        let parts = std::rc::Rc::new(upload(
            &self.context.device,
            &w.name,
            bytes,
            w.rows,
            row_bytes,
            max_binding,
        )?);
        self.weights.insert(w.name.clone(), parts.clone());
        Ok(parts)
    }

    fn tensor_bytes(&self, name: &str) -> Result<&'a [u8], GpuError> {
        let gguf: &'a GgufFile = self.gguf;
        gguf.tensor_data(name)
            .map(|(_, bytes)| bytes)
            .ok_or_else(|| RunError::MissingWeight(name.to_string()).into())
    }

    /// A weight vector (a norm's), dequantised to f32 as the CPU interpreter keeps it.
    fn vector(&mut self, w: &Weight) -> Result<wgpu::Buffer, GpuError> {
        let bytes = self.tensor_bytes(&w.name)?;
        let mut values = vec![0f32; w.rows * w.cols];
        kernels::dequantize_row(w.ty, bytes, &mut values);
        self.allocated += values.len() as u64 * 4;
        Ok(wgpu::util::DeviceExt::create_buffer_init(
            &self.context.device,
            &wgpu::util::BufferInitDescriptor {
                label: Some(&w.name),
                contents: bytemuck::cast_slice(&values),
                usage: wgpu::BufferUsages::STORAGE,
            },
        ))
    }

    fn add_params(&mut self, params: Params) -> u64 {
        let offset = self.params.len();
        self.params
            .extend_from_slice(bytemuck::cast_slice(&params.0));
        self.params.resize(offset + self.param_stride, 0);
        offset as u64
    }

    fn dispatch(
        &mut self,
        label: &str,
        module: Module,
        entry: &'static str,
        params: Params,
        grid: Grid,
        sources: Vec<Source>,
    ) -> Result<(), GpuError> {
        let params_offset = self.add_params(params);
        let pipelines = self.pipelines(module)?;
        let single_row = match module {
            Module::Matmul(_) => Some(pipelines.by_entry["matmul_decode"].clone()),
            _ => None,
        };
        let dispatch = Dispatch {
            label: label.to_string(),
            pipeline: pipelines.by_entry[entry].clone(),
            single_row,
            grid,
            layout: pipelines.layout.clone(),
            params_offset,
            sources,
            weight: WeightRead::None,
        };
        self.dispatches.push(dispatch);
        Ok(())
    }

    /// Records the weight bytes the dispatch added last reads.
    fn reads(&mut self, weight: WeightRead) {
        if let Some(d) = self.dispatches.last_mut() {
            d.weight = weight;
        }
    }
}

fn build_pipelines(context: &GpuContext, module: Module) -> Result<ModulePipelines, GpuError> {
    let device = &context.device;
    let rejected = |reason: String| GpuError::ShaderRejected {
        module: module.name(),
        reason,
    };
    context
        .scoped(wgpu::ErrorFilter::Validation, || {
            let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&module.name()),
                source: wgpu::ShaderSource::Wgsl(module.source().into()),
            });
            let buffer = |binding: u32, ty: wgpu::BufferBindingType| wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            };
            let mut entries = vec![
                buffer(0, wgpu::BufferBindingType::Storage { read_only: true }),
                buffer(1, wgpu::BufferBindingType::Uniform),
            ];
            for (i, access) in module.storage().iter().enumerate() {
                let read_only = *access == Access::Read;
                entries.push(buffer(
                    2 + i as u32,
                    wgpu::BufferBindingType::Storage { read_only },
                ));
            }
            let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(&module.name()),
                entries: &entries,
            });
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(&module.name()),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let by_entry = module
                .entry_points()
                .iter()
                .map(|&entry| {
                    let pipeline =
                        device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                            label: Some(entry),
                            layout: Some(&pipeline_layout),
                            module: &shader,
                            entry_point: Some(entry),
                            compilation_options: wgpu::PipelineCompilationOptions {
                                constants: module.constants(),
                                zero_initialize_workgroup_memory: false,
                            },
                            cache: None,
                        });
                    (entry, pipeline)
                })
                .collect();
            ModulePipelines { layout, by_entry }
        })
        .map_err(rejected)
}

fn bind_group(
    device: &wgpu::Device,
    dispatch: &Dispatch,
    step: &wgpu::Buffer,
    params: &wgpu::Buffer,
    caches: &[wgpu::Buffer],
) -> wgpu::BindGroup {
    let mut entries = vec![
        wgpu::BindGroupEntry {
            binding: 0,
            resource: step.as_entire_binding(),
        },
        wgpu::BindGroupEntry {
            binding: 1,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: params,
                offset: dispatch.params_offset,
                size: wgpu::BufferSize::new((PARAM_WORDS * 4) as u64),
            }),
        },
    ];
    for (i, source) in dispatch.sources.iter().enumerate() {
        let buffer = match source {
            Source::Buffer(b) => b,
            Source::Cache(c) => &caches[*c],
        };
        entries.push(wgpu::BindGroupEntry {
            binding: 2 + i as u32,
            resource: buffer.as_entire_binding(),
        });
    }
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(&dispatch.label),
        layout: &dispatch.layout,
        entries: &entries,
    })
}

fn f(v: f32) -> u32 {
    v.to_bits()
}

impl<'a> GpuExecutor<'a> {
    /// Uploads the weights `graph` reads, builds its pipelines and buffers.
    pub fn new(
        graph: &Graph,
        gguf: &'a GgufFile,
        context: &'a GpuContext,
        options: GpuOptions,
    ) -> Result<GpuExecutor<'a>, GpuError> {
        context.check()?;
        let limits = context.limits();
        let mut loader = Loader {
            context,
            gguf,
            options,
            param_stride: (PARAM_WORDS * 4)
                .next_multiple_of(limits.min_uniform_buffer_offset_alignment as usize),
            limits,
            pipelines: HashMap::new(),
            params: Vec::new(),
            weights: HashMap::new(),
            dispatches: Vec::new(),
            allocated: 0,
        };
        let lowered = context.scoped(wgpu::ErrorFilter::OutOfMemory, || lower(graph, &mut loader));
        let needed = loader.allocated;
        let oom = |reason: String| GpuError::OutOfMemory {
            needed,
            offered: format!(
                "which {} could not provide ({reason}; its largest buffer may be {} bytes)",
                context.adapter_description(),
                loader.limits.max_buffer_size
            ),
        };
        let (values, n_vocab) = lowered.map_err(oom)??;
        context.check()?;
        let device = &context.device;

        let max_tokens = options.max_tokens;
        let step_words = 4 + max_tokens;
        let step = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("step"),
            size: (step_words * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });

        let output_node = graph.node(graph.output);
        let output_row_len = output_node.ty.row_len().unwrap_or(1);
        let output_rows = Rows::of(output_node.ty.shape[0]);
        let Value::Buffer(output) = values[graph.output.index()].clone() else {
            return Err(GpuError::Unsupported(
                "the output is not an activation".into(),
            ));
        };
        let out_bytes = (max_elements(&output_node.ty, options) * 4) as u64;
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: padded(out_bytes as usize),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });

        // Greedy decoding's argmax over the last row of the output.
        let argmax_result = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("argmax"),
            size: 4,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let argmax_readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("argmax readback"),
            size: 4,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let argmax_params =
            loader.add_params(Params::new(&[output_row_len as u32, output_rows.param()]));
        let argmax_pipelines = loader.pipelines(Module::Argmax)?;
        let argmax = Dispatch {
            label: "argmax".into(),
            pipeline: argmax_pipelines.by_entry["argmax"].clone(),
            single_row: None,
            grid: Grid::Groups {
                per_row: 1,
                rows: Rows::Fixed(1),
            },
            layout: argmax_pipelines.layout.clone(),
            params_offset: argmax_params,
            sources: vec![
                Source::Buffer(output.clone()),
                Source::Buffer(argmax_result.clone()),
            ],
            weight: WeightRead::None,
        };

        let params = wgpu::util::DeviceExt::create_buffer_init(
            device,
            &wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: &loader.params,
                usage: wgpu::BufferUsages::UNIFORM,
            },
        );
        let argmax_bind_group = bind_group(device, &argmax, &step, &params, &[]);
        let bind_groups = loader
            .dispatches
            .iter()
            .map(|d| (!d.binds_cache()).then(|| bind_group(device, d, &step, &params, &[])))
            .collect();
        context.check()?;
        let allocated = [&step, &readback, &argmax_result, &argmax_readback, &params]
            .iter()
            .map(|b| b.size())
            .sum::<u64>()
            + needed;
        Ok(GpuExecutor {
            context,
            id: NEXT_EXECUTOR.fetch_add(1, Ordering::Relaxed),
            options,
            allocated,
            cache_row_lens: graph.caches.iter().map(|c| c.row_len).collect(),
            n_vocab,
            step,
            params,
            dispatches: loader.dispatches,
            bind_groups,
            output,
            output_type: output_node.ty.clone(),
            readback,
            argmax_pipeline: argmax.pipeline,
            argmax_bind_group,
            argmax_result,
            argmax_readback,
        })
    }

    /// Dispatches per step (the argmax not counted).
    pub fn dispatch_count(&self) -> usize {
        self.dispatches.len()
    }

    /// Each dispatch of a step, in order: its label (its graph node's) and the weight
    /// bytes it reads in a step of `tokens` tokens.
    pub fn dispatch_reads(&self, tokens: usize) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.dispatches
            .iter()
            .map(move |d| (d.label.as_str(), d.weight.bytes(tokens)))
    }

    /// Weight bytes a step of `tokens` tokens reads (embedding rows and matmul weights).
    pub fn weight_bytes(&self, tokens: usize) -> u64 {
        self.dispatch_reads(tokens).map(|(_, bytes)| bytes).sum()
    }

    /// Bytes of the device buffers made at load (a KV cache's are its own).
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated
    }

    /// The device it runs on.
    pub fn context(&self) -> &'a GpuContext {
        self.context
    }

    /// A KV cache of `options.context` positions for this executor, f16 on the device.
    pub fn kv_cache(&self) -> Result<GpuKvCache, GpuError> {
        let device = &self.context.device;
        let capacity = self.options.context;
        let buffers: Vec<wgpu::Buffer> = self
            .cache_row_lens
            .iter()
            .enumerate()
            .map(|(i, len)| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("kv cache {i}")),
                    size: padded(capacity * len * 2),
                    usage: wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                })
            })
            .collect();
        let bind_groups = self
            .dispatches
            .iter()
            .map(|d| {
                d.binds_cache()
                    .then(|| bind_group(device, d, &self.step, &self.params, &buffers))
            })
            .collect();
        self.context.check()?;
        Ok(GpuKvCache {
            owner: self.id,
            capacity,
            bytes: buffers.iter().map(|b| b.size()).sum(),
            bind_groups,
        })
    }

    /// Runs one step over `tokens` at positions `past ..`, reading and extending `kv`.
    /// Returns the output node's value (the logits, row-major).
    pub fn run(
        &self,
        tokens: &[u32],
        past: usize,
        kv: &mut GpuKvCache,
    ) -> Result<Vec<f32>, GpuError> {
        let mut encoder = self.record(tokens, past, kv, None)?;
        let step = Step {
            past,
            tokens: tokens.len(),
        };
        let bytes = (self.output_type.elements(step) * 4) as u64;
        encoder.copy_buffer_to_buffer(&self.output, 0, &self.readback, 0, bytes);
        self.context.queue.submit([encoder.finish()]);
        let data = self.read(&self.readback, bytes)?;
        Ok(bytemuck::cast_slice(&data).to_vec())
    }

    /// Runs one step like [`Self::run`] and returns the index of the largest value of
    /// the output's last row (greedy decoding: 4 bytes come back).
    pub fn run_argmax(
        &self,
        tokens: &[u32],
        past: usize,
        kv: &mut GpuKvCache,
    ) -> Result<u32, GpuError> {
        let mut encoder = self.record(tokens, past, kv, None)?;
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("argmax"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.argmax_pipeline);
            pass.set_bind_group(0, &self.argmax_bind_group, &[]);
            pass.dispatch_workgroups(1, 1, 1);
        }
        encoder.copy_buffer_to_buffer(&self.argmax_result, 0, &self.argmax_readback, 0, 4);
        self.context.queue.submit([encoder.finish()]);
        let data = self.read(&self.argmax_readback, 4)?;
        Ok(u32::from_le_bytes([data[0], data[1], data[2], data[3]]))
    }

    /// Checks the step, writes the step buffer and records every dispatch: all in one
    /// compute pass, or with `timestamps` each in its own pass that writes its begin and
    /// end times (the profiler's way; a pass is the finest a timestamp needs no extra
    /// feature for).
    pub(super) fn record(
        &self,
        tokens: &[u32],
        past: usize,
        kv: &GpuKvCache,
        timestamps: Option<&Timestamps>,
    ) -> Result<wgpu::CommandEncoder, GpuError> {
        if kv.owner != self.id {
            return Err(GpuError::ForeignCache);
        }
        if tokens.is_empty() {
            return Err(RunError::NoTokens.into());
        }
        if tokens.len() > self.options.max_tokens {
            return Err(GpuError::TooManyTokens {
                tokens: tokens.len(),
                max: self.options.max_tokens,
            });
        }
        if past + tokens.len() > kv.capacity {
            return Err(RunError::ContextFull {
                needed: past + tokens.len(),
                capacity: kv.capacity,
            }
            .into());
        }
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= self.n_vocab) {
            return Err(RunError::TokenOutOfRange {
                id,
                n_vocab: self.n_vocab,
            }
            .into());
        }
        let (t, context) = (tokens.len() as u32, (past + tokens.len()) as u32);
        let mut words = vec![t, past as u32, context, 0];
        words.extend_from_slice(tokens);
        self.context
            .queue
            .write_buffer(&self.step, 0, bytemuck::cast_slice(&words));

        let max_dim = self.context.limits().max_compute_workgroups_per_dimension;
        let mut encoder =
            self.context
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("step"),
                });
        let encode = |pass: &mut wgpu::ComputePass, i: usize| {
            let d = &self.dispatches[i];
            let bind_group = match (&self.bind_groups[i], &kv.bind_groups[i]) {
                (Some(g), _) | (None, Some(g)) => g,
                (None, None) => unreachable!("every dispatch has a bind group"),
            };
            let (pipeline, groups) = d.launch(t, context);
            let (x, y) = grid_2d(groups, max_dim);
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, bind_group, &[]);
            pass.dispatch_workgroups(x, y, 1);
        };
        match timestamps {
            None => {
                let mut pass = step_pass(&mut encoder, None);
                for i in 0..self.dispatches.len() {
                    encode(&mut pass, i);
                }
            }
            Some(timestamps) => {
                for i in 0..self.dispatches.len() {
                    encode(&mut step_pass(&mut encoder, Some(timestamps.writes(i))), i);
                }
            }
        }
        Ok(encoder)
    }

    /// Maps `buffer` after the submitted work and copies out its first `bytes`.
    pub(super) fn read(&self, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>, GpuError> {
        let slice = buffer.slice(..bytes);
        let (sender, receiver) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = sender.send(r);
        });
        self.context.wait()?;
        block_on(async { receiver.recv() })
            .map_err(|_| GpuError::DeviceLost("the read-back never completed".into()))?
            .map_err(|e| GpuError::Device(format!("reading results back: {e}")))?;
        let data = slice
            .get_mapped_range()
            .map_err(|e| GpuError::Device(format!("reading results back: {e}")))?
            .to_vec();
        buffer.unmap();
        Ok(data)
    }
}

/// Lowers every node to dispatches; returns each node's value and the vocabulary size.
fn lower(graph: &Graph, l: &mut Loader) -> Result<(Vec<Value>, usize), GpuError> {
    let opts = l.options;
    let mut values: Vec<Value> = Vec::with_capacity(graph.len());
    let mut n_vocab = 0;
    for id in graph.schedule() {
        let node = graph.node(id);
        let label = node.label.as_str();
        let inputs = graph.inputs(id);
        let input = |i: usize| -> Result<wgpu::Buffer, GpuError> {
            match &values[inputs[i].index()] {
                Value::Buffer(b) => Ok(b.clone()),
                _ => Err(GpuError::Unsupported(format!(
                    "`{label}` reads input {i} as an activation, which it is not"
                ))),
            }
        };
        let cache_input = |i: usize| -> Result<usize, GpuError> {
            match &values[inputs[i].index()] {
                Value::Cache(c) => Ok(*c),
                _ => Err(GpuError::Unsupported(format!(
                    "`{label}` reads input {i} as a KV cache, which it is not"
                ))),
            }
        };
        let rows = node.ty.shape.first().map_or(Rows::Tokens, |d| Rows::of(*d));
        let n = node.ty.row_len().unwrap_or(1) as u32;
        let items = |per_row: u32| Grid::Items {
            per_row,
            rows,
            per_context: false,
        };
        let value = match &node.op {
            Op::TokenIds => Value::TokenIds,
            Op::CacheWrite { cache } => {
                let x = input(0)?;
                let row_len = graph.caches[*cache].row_len as u32;
                if !row_len.is_multiple_of(2) {
                    return Err(GpuError::Unsupported(format!("`{label}`: odd cache rows")));
                }
                l.dispatch(
                    label,
                    Module::KvCache,
                    "cache_write",
                    Params::new(&[row_len]),
                    Grid::Items {
                        per_row: row_len / 2,
                        rows: Rows::Tokens,
                        per_context: false,
                    },
                    vec![Source::Buffer(x), Source::Cache(*cache)],
                )?;
                Value::Cache(*cache)
            }
            op => {
                let out = l.activation(label, max_elements(&node.ty, opts))?;
                let o = Source::Buffer(out.clone());
                match op {
                    Op::TokenIds | Op::CacheWrite { .. } => unreachable!("handled above"),
                    Op::RmsNormMul { .. }
                    | Op::Linear { .. }
                    | Op::Columns { .. }
                    | Op::Attention { .. } => {
                        return Err(GpuError::Unsupported(format!(
                            "`{label}`: fused {} nodes have no GPU kernel yet; the GPU runs the canonical graph",
                            op.name()
                        )));
                    }
                    Op::Embed { table } => {
                        n_vocab = table.rows;
                        for part in l.weight(table)?.iter() {
                            l.dispatch(
                                label,
                                Module::Embed(table.ty),
                                "embed",
                                Params::new(&[
                                    table.cols as u32,
                                    part.rows as u32,
                                    part.first_row as u32,
                                ]),
                                items(table.cols as u32 / 8),
                                vec![Source::Buffer(part.buffer.clone()), o.clone()],
                            )?;
                            l.reads(WeightRead::embed(part, table.rows));
                        }
                    }
                    Op::MatMul { weight } => {
                        let x = input(0)?;
                        for part in l.weight(weight)?.iter() {
                            l.dispatch(
                                label,
                                Module::Matmul(weight.ty),
                                "matmul_prefill",
                                Params::new(&[
                                    part.rows as u32,
                                    part.first_row as u32,
                                    weight.cols as u32,
                                    weight.rows as u32,
                                    rows.param(),
                                ]),
                                Grid::Matmul {
                                    rows: part.rows as u32,
                                    tokens: rows,
                                },
                                vec![
                                    Source::Buffer(part.buffer.clone()),
                                    Source::Buffer(x.clone()),
                                    o.clone(),
                                ],
                            )?;
                            l.reads(WeightRead::matmul(part));
                        }
                    }
                    Op::MulWeight { weight } => {
                        let (x, w) = (input(0)?, l.vector(weight)?);
                        let len = (weight.rows * weight.cols) as u32;
                        let params = Params::new(&[n, rows.param(), 0, len]);
                        let sources = vec![Source::Buffer(x), Source::Buffer(w), o];
                        l.dispatch(label, Module::Elementwise, "mul", params, items(n), sources)?;
                    }
                    Op::Scale { factor } => {
                        let x = input(0)?;
                        let params = Params::new(&[n, rows.param(), f(*factor), 0]);
                        let sources = vec![Source::Buffer(x.clone()), Source::Buffer(x), o];
                        l.dispatch(
                            label,
                            Module::Elementwise,
                            "scale",
                            params,
                            items(n),
                            sources,
                        )?;
                    }
                    Op::Add | Op::Mul | Op::Silu | Op::GeluTanh => {
                        let a = input(0)?;
                        let b = if inputs.len() > 1 {
                            input(1)?
                        } else {
                            a.clone()
                        };
                        let entry = match op {
                            Op::Add => "add",
                            Op::Mul => "mul",
                            Op::Silu => "silu",
                            _ => "gelu_tanh",
                        };
                        let params = Params::new(&[n, rows.param(), 0, u32::MAX]);
                        let sources = vec![Source::Buffer(a), Source::Buffer(b), o];
                        l.dispatch(label, Module::Elementwise, entry, params, items(n), sources)?;
                    }
                    Op::LastRow => {
                        let x = input(0)?;
                        let params = Params::new(&[n, 1, 0, 0]);
                        let sources = vec![Source::Buffer(x.clone()), Source::Buffer(x), o];
                        l.dispatch(
                            label,
                            Module::Elementwise,
                            "last_row",
                            params,
                            items(n),
                            sources,
                        )?;
                    }
                    Op::RmsNorm { eps, group } => {
                        let x = input(0)?;
                        let groups = n / *group as u32;
                        l.dispatch(
                            label,
                            Module::RmsNorm,
                            "rms_norm",
                            Params::new(&[*group as u32, groups, rows.param(), f(*eps)]),
                            Grid::Groups {
                                per_row: groups,
                                rows,
                            },
                            vec![Source::Buffer(x), o],
                        )?;
                    }
                    Op::Rope(rope) => {
                        let x = input(0)?;
                        let mode = match rope.mode {
                            RopeMode::Adjacent => 0,
                            RopeMode::Halves => 1,
                        };
                        let params = Params::new(&[
                            n,
                            rope.head_dim as u32,
                            rope.n_rot as u32,
                            mode,
                            f(rope.base),
                            f(rope.freq_scale),
                            rows.param(),
                        ]);
                        let sources = vec![Source::Buffer(x), o];
                        l.dispatch(label, Module::Rope, "rope", params, items(n), sources)?;
                    }
                    Op::AttnScores {
                        n_head,
                        n_head_kv,
                        head_dim,
                        scale,
                    } => {
                        let (q, k) = (input(0)?, cache_input(1)?);
                        let heads = [*n_head as u32, *n_head_kv as u32, *head_dim as u32];
                        let params = Params::new(&[
                            heads[0],
                            heads[1],
                            heads[2],
                            f(*scale),
                            0,
                            f(f32::NEG_INFINITY),
                        ]);
                        let grid = Grid::Items {
                            per_row: heads[0],
                            rows: Rows::Tokens,
                            per_context: true,
                        };
                        let sources = vec![Source::Buffer(q), Source::Cache(k), o];
                        l.dispatch(
                            label,
                            Module::Attention,
                            "attn_scores",
                            params,
                            grid,
                            sources,
                        )?;
                    }
                    Op::AttnMask { window } => {
                        let (x, h) = (input(0)?, attention_heads(node.ty.shape[0], label)?);
                        let window = window.unwrap_or(0) as u32;
                        let params = Params::new(&[h, 1, 1, 0, window, f(f32::NEG_INFINITY)]);
                        let grid = Grid::Items {
                            per_row: h,
                            rows: Rows::Tokens,
                            per_context: true,
                        };
                        let sources = vec![Source::Buffer(x.clone()), Source::Buffer(x), o];
                        l.dispatch(label, Module::Attention, "attn_mask", params, grid, sources)?;
                    }
                    Op::Softmax => {
                        let (x, h) = (input(0)?, attention_heads(node.ty.shape[0], label)?);
                        let params = Params::new(&[h, 1, 1, 0, 0, f(f32::NEG_INFINITY)]);
                        let grid = Grid::Groups {
                            per_row: h,
                            rows: Rows::Tokens,
                        };
                        let sources = vec![Source::Buffer(x.clone()), Source::Buffer(x), o];
                        l.dispatch(label, Module::Attention, "softmax", params, grid, sources)?;
                    }
                    Op::AttnMix {
                        n_head,
                        n_head_kv,
                        head_dim,
                    } => {
                        let (p, v) = (input(0)?, cache_input(1)?);
                        let heads = [*n_head as u32, *n_head_kv as u32, *head_dim as u32];
                        let params = Params::new(&[
                            heads[0],
                            heads[1],
                            heads[2],
                            0,
                            0,
                            f(f32::NEG_INFINITY),
                        ]);
                        let sources = vec![Source::Buffer(p), Source::Cache(v), o];
                        let grid = items(heads[0] * heads[2]);
                        l.dispatch(label, Module::Attention, "attn_mix", params, grid, sources)?;
                    }
                }
                Value::Buffer(out)
            }
        };
        values.push(value);
    }
    Ok((values, n_vocab))
}

/// Elements of a tensor in the largest step.
fn max_elements(ty: &TensorType, options: GpuOptions) -> usize {
    ty.shape
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => *n,
            Dim::Tokens => options.max_tokens,
            Dim::Context => options.context,
        })
        .product()
}

/// Heads of an attention tensor `[H, T, ctx]` (its first dim).
fn attention_heads(first: Dim, label: &str) -> Result<u32, GpuError> {
    match first {
        Dim::Fixed(h) => Ok(h as u32),
        _ => Err(GpuError::Unsupported(format!(
            "`{label}`: the GPU softmax and mask work on attention scores [H, T, P+T]"
        ))),
    }
}
