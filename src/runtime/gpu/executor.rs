//! The wgpu executor: the graph is lowered once, at load, to a list of dispatches with
//! their pipelines, parameters and buffers; a step writes the step buffer once, records
//! every dispatch in one command encoder and submits once (its commands encoded while
//! the step before ran, where that step foresaw it: see [`super::ahead`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::ahead::{Ahead, Readout, StepShape};
use super::arena::{ActivationId, Arena, Use};
use super::kv::GpuKvCache;
use super::lower::{lower, max_elements, LoadTimes, Loader, Value};
use super::profile::Timing;
use super::progress::UploadProgress;
use super::shaders::{Access, COOP_PREFILL};
use super::top_k::{TopK, TOP_K_MAX};
use super::weights::{padded, WeightRead};
use super::{GpuContext, GpuError};
use crate::gguf::GgufFile;
use crate::graph::{CacheDecl, Dim, Graph, Step, TensorType};
use crate::runtime::cpu::RunError;
use crate::runtime::{Candidate, DecodeInput, KvType};

/// Sizes fixed at load: buffers are allocated for the largest step.
#[derive(Debug, Clone, Copy)]
pub struct GpuOptions {
    /// The most tokens one step may run (the prefill chunk).
    pub max_tokens: usize,
    /// Positions of the KV caches this executor makes.
    pub context: usize,
    /// Storage type of their keys and values.
    pub kv_type: KvType,
    /// How the decode matmuls read x.
    pub decode_input: DecodeInput,
    /// With x in 8 bits, whether a kernel that makes a matmul's x rounds it once for its
    /// readers (`RUN_RECORD_BYTES`), rather than each reader's every workgroup rounding
    /// it. The two give the same values, but for the order in which a folded norm sums
    /// x's squares: the kernel tests hold one to the other.
    pub round_once: bool,
}

/// The step buffer's words before its tokens: tokens, positions before, positions after,
/// top-k candidates (`Step` in wgsl/prelude.wgsl).
const STEP_HEADER_WORDS: usize = 4;
/// Where the step buffer's tokens start, in bytes.
const TOKENS_AT: u64 = 4 * STEP_HEADER_WORDS as u64;

/// Where a step's tokens come from.
#[derive(Debug, Clone, Copy)]
pub enum StepInput<'t> {
    /// These tokens, written by the host.
    Host(&'t [u32]),
    /// One token: the argmax of the greedy step before, which that step copied into the
    /// step buffer on the device ([`GpuExecutor::submit_greedy`]).
    Device,
}

/// A greedy step submitted and not yet read: its argmax lands in a token read-back
/// buffer ([`GpuExecutor::read_token`]).
#[derive(Debug)]
pub struct PendingToken {
    slot: usize,
    submission: wgpu::SubmissionIndex,
}

/// Rows of an activation: the step's tokens or a fixed count.
#[derive(Debug, Clone, Copy)]
pub(super) enum Rows {
    Tokens,
    Fixed(u32),
}

impl Rows {
    pub fn of(dim: Dim) -> Rows {
        match dim {
            Dim::Fixed(n) => Rows::Fixed(n as u32),
            _ => Rows::Tokens,
        }
    }

    pub fn resolve(self, tokens: u32) -> u32 {
        match self {
            Rows::Tokens => tokens,
            Rows::Fixed(n) => n,
        }
    }

    /// As kernels take it: 0 for T.
    pub fn param(self) -> u32 {
        match self {
            Rows::Tokens => 0,
            Rows::Fixed(n) => n,
        }
    }
}

/// How many workgroups a dispatch needs in a step.
#[derive(Debug, Clone, Copy)]
pub(super) enum Grid {
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
    /// else one per tile of 64 rows (`MATMUL_TILE`) by `token_tile` tokens.
    Matmul {
        rows: u32,
        tokens: Rows,
        token_tile: u32,
    },
    /// A longer step's attention: one workgroup per query head and tile of `tile`
    /// tokens ([`query_tile`]).
    QueryTiles { heads: u32, tile: u32 },
    /// A decode step's attention: one workgroup per query head and run of the keys it
    /// sees (all the context, or the last `window` positions when that is not 0).
    AttentionRuns { heads: u32, window: u32 },
}

/// Tokens a longer step's attention workgroup takes for heads of `head_dim` values:
/// the most, up to 32, whose rows fill 2048 values, a power of two (`query_tile` in
/// wgsl/self_attention.wgsl).
pub(super) fn query_tile(head_dim: u32) -> u32 {
    let fit = (2048 / head_dim.max(1)).clamp(1, 32);
    1 << fit.ilog2()
}

/// Runs of keys a decode step's attention splits a head's keys into, at most
/// (`MAX_RUNS` in wgsl/self_attention.wgsl).
pub(super) const MAX_ATTENTION_RUNS: usize = 64;

/// Keys a decode step's attention workgroup takes: whole blocks of 64, in at most
/// [`MAX_ATTENTION_RUNS`] runs, and all of them up to [`ONE_RUN_BLOCKS`] blocks
/// (`run_len` in wgsl/self_attention.wgsl).
pub(super) fn attention_run_len(keys: u32) -> u32 {
    const BLOCK: u32 = 64;
    let blocks = keys.div_ceil(BLOCK);
    if blocks <= ONE_RUN_BLOCKS {
        return BLOCK * blocks;
    }
    BLOCK * blocks.div_ceil(MAX_ATTENTION_RUNS as u32)
}

/// Blocks of keys that one run takes whole, so that short contexts need no combine
/// dispatch (`ONE_RUN_BLOCKS` in wgsl/self_attention.wgsl).
pub(super) const ONE_RUN_BLOCKS: u32 = 2;

/// The runs of a decode step's attention over `context` positions (the last `window`
/// of them when that is not 0).
fn attention_runs(context: u32, window: u32) -> u32 {
    let keys = if window == 0 {
        context
    } else {
        context.min(window)
    };
    keys.div_ceil(attention_run_len(keys))
}

/// Which steps a dispatch runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Steps {
    Every,
    /// Those where its grid has several rows (a single row's kernel does its work in
    /// the others: a matmul's folded norm, attention for several tokens).
    SeveralRows,
    /// Those where its grid has one row (decode's split attention).
    OneRow,
    /// Decode steps whose attention splits into several runs (the combine of an
    /// attention over the last `window` positions, or all when 0).
    SeveralRuns {
        window: u32,
    },
}

impl Grid {
    /// The rows of the activation it runs over.
    fn rows(self) -> Rows {
        match self {
            Grid::Items { rows, .. } | Grid::Groups { rows, .. } => rows,
            Grid::Matmul { tokens, .. } => tokens,
            Grid::QueryTiles { .. } | Grid::AttentionRuns { .. } => Rows::Tokens,
        }
    }
}

const ITEMS_PER_GROUP: u32 = 256;
/// The prefill matmul's output tile: weight rows × tokens.
pub(super) const MATMUL_TILE: u32 = 64;

/// Where a storage binding's buffer comes from.
#[derive(Clone)]
pub(super) enum Source {
    /// A buffer of its own (weights, constants).
    Buffer(wgpu::Buffer),
    /// An activation's range of the arena.
    Activation(ActivationId),
    /// A KV cache's buffer, bound when the cache is made.
    Cache(usize),
}

/// A matmul's kernels for a single row of x, each with the rows a workgroup of it
/// computes: in one-token steps, and in longer steps (a last-row view), whose matmuls
/// read x in f32 whatever the session's [`DecodeInput`].
pub(super) struct SingleRow {
    pub one_token: (wgpu::ComputePipeline, u32),
    pub longer: (wgpu::ComputePipeline, u32),
}

pub(super) struct Dispatch {
    pub label: String,
    /// The kernel of a step of several rows: its entry point and pipeline.
    pub entry: &'static str,
    pub pipeline: wgpu::ComputePipeline,
    /// Matmuls: the kernels for a single row of x.
    pub single_row: Option<SingleRow>,
    pub grid: Grid,
    pub layout: wgpu::BindGroupLayout,
    pub params_offset: u64,
    pub sources: Vec<Source>,
    /// How the kernel sees each source.
    pub access: &'static [Access],
    /// The weight bytes it reads (set by `Loader::reads` for embeddings and matmuls).
    pub weight: WeightRead,
    /// The steps it runs in (`Loader::runs_in` sets it; every step unless said).
    pub steps: Steps,
}

impl Dispatch {
    fn binds_cache(&self) -> bool {
        self.sources.iter().any(|s| matches!(s, Source::Cache(_)))
    }

    /// The activations it binds and how.
    pub fn uses(&self) -> Vec<Use> {
        debug_assert_eq!(self.sources.len(), self.access.len(), "{}", self.label);
        self.sources
            .iter()
            .zip(self.access)
            .filter_map(|(source, &access)| match source {
                Source::Activation(activation) => Some(Use {
                    activation: *activation,
                    access,
                }),
                _ => None,
            })
            .collect()
    }

    /// Whether it runs in a step of `tokens` tokens over `context` positions.
    fn runs(&self, tokens: u32, context: u32) -> bool {
        let rows = self.grid.rows().resolve(tokens);
        match self.steps {
            Steps::Every => true,
            Steps::SeveralRows => rows > 1,
            Steps::OneRow => rows == 1,
            Steps::SeveralRuns { window } => rows == 1 && attention_runs(context, window) > 1,
        }
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
            Grid::Matmul {
                rows,
                tokens: x,
                token_tile,
            } => match (&self.single_row, x.resolve(tokens)) {
                (Some(single), 1) => {
                    let (pipeline, rows_per_group) = if tokens == 1 {
                        &single.one_token
                    } else {
                        &single.longer
                    };
                    (pipeline, rows.div_ceil(*rows_per_group))
                }
                (_, t) => (
                    &self.pipeline,
                    rows.div_ceil(MATMUL_TILE) * t.div_ceil(token_tile),
                ),
            },
            Grid::QueryTiles { heads, tile } => (&self.pipeline, heads * tokens.div_ceil(tile)),
            Grid::AttentionRuns { heads, window } => {
                (&self.pipeline, heads * attention_runs(context, window))
            }
        }
    }
}

/// Lays `n` workgroups out on a grid no wider than the device allows.
pub(super) fn grid_2d(n: u32, max_dim: u32) -> (u32, u32) {
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
#[derive(Clone, Copy)]
pub(super) struct Params(pub [u32; PARAM_WORDS]);

/// Every dispatch's slot holds this many words (the epilogue's steps need the most);
/// slots are 256-byte aligned on most devices anyway.
const PARAM_WORDS: usize = 64;

impl Params {
    pub const BYTES: usize = PARAM_WORDS * 4;

    pub fn new(words: &[u32]) -> Params {
        let mut p = Params([0; PARAM_WORDS]);
        p.0[..words.len()].copy_from_slice(words);
        p
    }
}

/// The pipelines of one module and the layout they share.
pub(super) struct ModulePipelines {
    pub layout: wgpu::BindGroupLayout,
    /// What specialisations of an entry point are built from (`specialised`).
    pub pipeline_layout: wgpu::PipelineLayout,
    pub shader: wgpu::ShaderModule,
    pub by_entry: HashMap<&'static str, wgpu::ComputePipeline>,
}

/// A bind group of `resources` at bindings 0, 1, … in order.
pub(super) fn bind_in_order<'a>(
    device: &wgpu::Device,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    resources: impl IntoIterator<Item = wgpu::BindingResource<'a>>,
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry> = resources
        .into_iter()
        .enumerate()
        .map(|(i, resource)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource,
        })
        .collect();
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &entries,
    })
}

static NEXT_EXECUTOR: AtomicU64 = AtomicU64::new(0);
static NEXT_CACHE: AtomicU64 = AtomicU64::new(0);

/// A graph bound to the weights of one GGUF file, on one device.
pub struct GpuExecutor<'a> {
    context: &'a GpuContext,
    id: u64,
    options: GpuOptions,
    /// Bytes of every buffer made at load (weights, activations, step, read-back).
    allocated: u64,
    /// The graph's KV caches.
    caches: Vec<CacheDecl>,
    n_vocab: usize,
    step: wgpu::Buffer,
    params: wgpu::Buffer,
    dispatches: Vec<Dispatch>,
    /// Per dispatch: its bind group, unless it binds a cache (then the cache holds it).
    bind_groups: Vec<Option<wgpu::BindGroup>>,
    arena: Arena,
    output: ActivationId,
    output_type: TensorType,
    readback: wgpu::Buffer,
    top_k: TopK,
    /// The commands of the step the last one foresaw.
    ahead: Mutex<Option<Ahead>>,
    /// Where chained greedy steps leave their argmax, in turn, so that the host reads
    /// one step's while the next runs.
    token_readbacks: [wgpu::Buffer; 2],
    /// The token read-back buffer of the next chained step.
    next_slot: AtomicUsize,
    /// Matmul dispatches whose one-token kernel loads x as the kernel before it rounded
    /// it (`RUN_RECORD_BYTES`).
    runs_read: usize,
    load_times: LoadTimes,
}

/// The buffers every dispatch's bind group draws on.
struct Bindings<'b> {
    step: &'b wgpu::Buffer,
    params: &'b wgpu::Buffer,
    arena: &'b Arena,
    caches: &'b [wgpu::Buffer],
}

fn bind_group(device: &wgpu::Device, dispatch: &Dispatch, b: &Bindings) -> wgpu::BindGroup {
    let Bindings {
        step,
        params,
        arena,
        caches,
    } = b;
    let params = wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer: params,
        offset: dispatch.params_offset,
        size: wgpu::BufferSize::new(Params::BYTES as u64),
    });
    let sources = dispatch.sources.iter().map(|source| match source {
        Source::Buffer(b) => b.as_entire_binding(),
        Source::Activation(a) => arena.binding(*a),
        Source::Cache(c) => caches[*c].as_entire_binding(),
    });
    let resources = [step.as_entire_binding(), params]
        .into_iter()
        .chain(sources);
    bind_in_order(device, &dispatch.label, &dispatch.layout, resources)
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
        let mut loader = Loader::new(context, gguf, options);
        let names: std::collections::HashSet<&str> = graph
            .schedule()
            .flat_map(|id| graph.node(id).op.weights())
            .map(|w| w.name.as_str())
            .collect();
        let weight_bytes = names
            .iter()
            .filter_map(|name| gguf.tensor_data(name))
            .map(|(_, bytes)| bytes.len() as u64)
            .sum();
        loader.progress = Some(UploadProgress::new(weight_bytes));
        let output_node = graph.node(graph.output);
        let lowered = context.scoped(wgpu::ErrorFilter::OutOfMemory, || {
            let (values, n_vocab) = lower(graph, &mut loader)?;
            let Value::Activation(view) = values[graph.output.index()].clone() else {
                return Err(GpuError::Unsupported(
                    "the output is not an activation".into(),
                ));
            };
            let output = loader.whole("output", view)?;
            Ok((output, loader.arena(output)?, n_vocab))
        });
        let needed = loader.allocated;
        let oom = |reason: String| GpuError::OutOfMemory {
            needed,
            offered: format!(
                "which {} could not provide ({reason}; its largest buffer may be {} bytes)",
                context.adapter_description(),
                loader.limits.max_buffer_size
            ),
        };
        // Dropping the progress erases its line, before any error or notice prints.
        loader.progress = None;
        let (output, arena, n_vocab) = lowered.map_err(oom)??;
        context.check()?;
        let device = &context.device;

        let max_tokens = options.max_tokens;
        let step_words = STEP_HEADER_WORDS + max_tokens;
        let step = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("step"),
            size: (step_words * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });

        let output_row_len = output_node.ty.row_len().unwrap_or(1);
        let output_rows = Rows::of(output_node.ty.shape[0]);
        let out_bytes = (max_elements(&output_node.ty, options) * 4) as u64;
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: padded(out_bytes as usize),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });

        let token_readbacks = [0, 1].map(|_| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("token read-back"),
                size: 4,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });

        let top_k = TopK::new(
            context,
            &step,
            arena.binding(output),
            output_row_len as u32,
            output_rows.param(),
        )?;

        let params = wgpu::util::DeviceExt::create_buffer_init(
            device,
            &wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: &loader.params,
                usage: wgpu::BufferUsages::UNIFORM,
            },
        );
        let bindings = Bindings {
            step: &step,
            params: &params,
            arena: &arena,
            caches: &[],
        };
        let bind_groups = loader
            .dispatches
            .iter()
            .map(|d| (!d.binds_cache()).then(|| bind_group(device, d, &bindings)))
            .collect();
        context.check()?;
        context.save_pipeline_cache();
        let allocated = [&step, &readback, &params]
            .iter()
            .map(|b| b.size())
            .sum::<u64>()
            + top_k.bytes
            + needed;
        Ok(GpuExecutor {
            context,
            id: NEXT_EXECUTOR.fetch_add(1, Ordering::Relaxed),
            options,
            allocated,
            caches: graph.caches.clone(),
            n_vocab,
            step,
            params,
            dispatches: loader.dispatches,
            bind_groups,
            arena,
            output,
            output_type: output_node.ty.clone(),
            readback,
            top_k,
            ahead: Mutex::new(None),
            token_readbacks,
            next_slot: AtomicUsize::new(0),
            runs_read: loader.runs_read,
            load_times: loader.times,
        })
    }

    /// How the decode matmuls read x.
    pub fn decode_input(&self) -> DecodeInput {
        self.options.decode_input
    }

    /// Matmul dispatches whose one-token kernel loads x in 8 bits as the kernel that
    /// made x rounded it, rather than rounding it itself.
    pub fn runs_read(&self) -> usize {
        self.runs_read
    }

    /// Whether the prefill matmuls run on tensor cores (`matmul_prefill_coop`).
    pub fn runs_on_tensor_cores(&self) -> bool {
        self.dispatches.iter().any(|d| d.entry == COOP_PREFILL)
    }

    /// Dispatches a step of `tokens` tokens after `past` runs (the top-k after it not
    /// counted).
    pub fn dispatch_count(&self, tokens: usize, past: usize) -> usize {
        self.dispatch_reads(tokens, past).count()
    }

    /// Each dispatch a step of `tokens` tokens after `past` runs, in order: its index
    /// among all dispatches, its label (its graph node's) and the weight bytes it reads.
    pub fn dispatch_reads(
        &self,
        tokens: usize,
        past: usize,
    ) -> impl Iterator<Item = (usize, &str, u64)> + '_ {
        let context = (past + tokens) as u32;
        self.dispatches
            .iter()
            .enumerate()
            .filter(move |(_, d)| d.runs(tokens as u32, context))
            .map(move |(i, d)| (i, d.label.as_str(), d.weight.bytes(tokens)))
    }

    /// Dispatches of the longest step: the timestamp slots a profile needs.
    pub(super) fn dispatch_slots(&self) -> usize {
        self.dispatches.len()
    }

    /// Weight bytes a step of `tokens` tokens reads (embedding rows and matmul weights).
    pub fn weight_bytes(&self, tokens: usize) -> u64 {
        self.dispatch_reads(tokens, 0)
            .map(|(_, _, bytes)| bytes)
            .sum()
    }

    /// Bytes of the activation arena (every intermediate of a step, sharing bytes where
    /// lifetimes allow), and of its activations had each a buffer of its own.
    pub fn activation_bytes(&self) -> (u64, u64) {
        self.arena.bytes()
    }

    /// Values in a row of the output (the vocabulary, for logits).
    pub fn output_row_len(&self) -> usize {
        self.output_type.row_len().unwrap_or(1)
    }

    /// Where the load's host time went.
    pub fn load_times(&self) -> LoadTimes {
        self.load_times
    }

    /// Bytes of the device buffers made at load (a KV cache's are its own).
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated
    }

    /// The device it runs on.
    pub fn context(&self) -> &'a GpuContext {
        self.context
    }

    /// A KV cache of `options.context` positions for this executor, of `options.kv_type`.
    pub fn kv_cache(&self) -> Result<GpuKvCache, GpuError> {
        let device = &self.context.device;
        let capacity = self.options.context;
        let buffers: Vec<wgpu::Buffer> = self
            .caches
            .iter()
            .map(|c| {
                let values = c.positions(capacity) * c.row_len;
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&c.name),
                    size: padded(values * self.options.kv_type.bytes()),
                    // A source of the context shift's copy.
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                })
            })
            .collect();
        let bind_groups = self
            .dispatches
            .iter()
            .map(|d| {
                let bindings = Bindings {
                    step: &self.step,
                    params: &self.params,
                    arena: &self.arena,
                    caches: &buffers,
                };
                d.binds_cache().then(|| bind_group(device, d, &bindings))
            })
            .collect();
        self.context.check()?;
        Ok(GpuKvCache {
            owner: self.id,
            id: NEXT_CACHE.fetch_add(1, Ordering::Relaxed),
            capacity,
            bytes: buffers.iter().map(|b| b.size()).sum(),
            bind_groups,
            buffers,
        })
    }

    /// The context shift: drops positions `keep .. keep + n` of `kv`, which holds
    /// `past` positions; the later ones move down by `n` (keys turned back by `n`
    /// positions), as the CPU's [`crate::runtime::KvCache::discard`].
    pub fn discard(
        &self,
        kv: &mut GpuKvCache,
        keep: usize,
        n: usize,
        past: usize,
    ) -> Result<(), GpuError> {
        if kv.owner != self.id {
            return Err(GpuError::ForeignCache);
        }
        super::shift::discard(
            self.context,
            &self.step,
            &self.caches,
            self.options.kv_type,
            kv,
            keep..keep + n,
            past,
        )
    }

    /// Runs one step over `tokens` at positions `past ..`, reading and extending `kv`.
    /// Returns the output node's value (the logits, row-major).
    pub fn run(
        &self,
        tokens: &[u32],
        past: usize,
        kv: &mut GpuKvCache,
    ) -> Result<Vec<f32>, GpuError> {
        self.run_reading(tokens, past, kv, false)
    }

    /// Runs one step like [`Self::run`] and reads nothing back: it only extends `kv`
    /// (the chunks of a long prompt before its last).
    pub fn advance(
        &self,
        tokens: &[u32],
        past: usize,
        kv: &mut GpuKvCache,
    ) -> Result<(), GpuError> {
        self.submit(StepInput::Host(tokens), past, kv, 0, Readout::Nothing)?;
        Ok(())
    }

    /// Runs one step like [`Self::run`] and returns only the output's last row (sampling
    /// after a long prompt reads back one row of logits, not one per token).
    pub fn run_last_row(
        &self,
        tokens: &[u32],
        past: usize,
        kv: &mut GpuKvCache,
    ) -> Result<Vec<f32>, GpuError> {
        self.run_reading(tokens, past, kv, true)
    }

    /// Runs one step and reads back the output, or only its last row.
    fn run_reading(
        &self,
        tokens: &[u32],
        past: usize,
        kv: &mut GpuKvCache,
        last_row: bool,
    ) -> Result<Vec<f32>, GpuError> {
        let step = Step {
            past,
            tokens: tokens.len(),
        };
        let all = (self.output_type.elements(step) * 4) as u64;
        let row = (self.output_type.row_len().unwrap_or(1) * 4) as u64;
        let (from, bytes) = if last_row { (all - row, row) } else { (0, all) };
        let readout = Readout::Output { from, bytes };
        self.submit(StepInput::Host(tokens), past, kv, 0, readout)?;
        self.read(&self.readback, bytes)
    }

    /// Runs one step like [`Self::run`] and returns the index of the largest value of
    /// the output's last row (greedy decoding: 4 bytes come back).
    pub fn run_argmax(
        &self,
        tokens: &[u32],
        past: usize,
        kv: &mut GpuKvCache,
    ) -> Result<u32, GpuError> {
        // The index is the first word of the first candidate.
        let data = self.run_best(tokens, past, kv, 1, 4)?;
        Ok(u32::from_le_bytes([data[0], data[1], data[2], data[3]]))
    }

    /// Runs one step like [`Self::run`] and returns the `k` largest values of the
    /// output's last row with their indices, in the sampler's order (larger first, the
    /// smaller index first among equals); `k` pairs come back.
    pub fn run_top_k(
        &self,
        tokens: &[u32],
        past: usize,
        kv: &mut GpuKvCache,
        k: usize,
    ) -> Result<Vec<Candidate>, GpuError> {
        let most = TOP_K_MAX.min(self.output_row_len());
        if k == 0 || k > most {
            return Err(GpuError::Unsupported(format!(
                "top-k of {k}: the device takes 1 to {most} candidates"
            )));
        }
        let data = self.run_best(tokens, past, kv, k, TopK::candidate_bytes(k))?;
        Ok(TopK::candidates(&data))
    }

    /// Runs one step, takes the `k` best of the last row on the device and reads back
    /// the first `bytes` of them.
    fn run_best(
        &self,
        tokens: &[u32],
        past: usize,
        kv: &mut GpuKvCache,
        k: usize,
        bytes: u64,
    ) -> Result<Vec<u8>, GpuError> {
        let readout = Readout::Best { bytes };
        self.submit(StepInput::Host(tokens), past, kv, k as u32, readout)?;
        self.read(&self.top_k.readback, bytes)
    }

    /// Submits a greedy decoding step and returns before it runs: its argmax goes to
    /// the step buffer as the next step's token (for a step of [`StepInput::Device`]),
    /// and to a read-back buffer for [`Self::read_token`]. The device then runs one
    /// step after another with no wait for the host; the host reads each token while
    /// the next step runs. At most two steps may be pending: each takes the read-back
    /// buffer the step two before it took.
    pub fn submit_greedy(
        &self,
        input: StepInput,
        past: usize,
        kv: &GpuKvCache,
    ) -> Result<PendingToken, GpuError> {
        let slot = self.next_slot.fetch_xor(1, Ordering::Relaxed) & 1;
        let submission = self.submit(input, past, kv, 1, Readout::Chained { slot })?;
        Ok(PendingToken { slot, submission })
    }

    /// Waits for a greedy step and returns its argmax.
    pub fn read_token(&self, pending: PendingToken) -> Result<u32, GpuError> {
        let buffer = &self.token_readbacks[pending.slot];
        let token: Vec<u32> = self.read_after(buffer, 4, Some(pending.submission))?;
        Ok(token[0])
    }

    /// Submits a step, `top_k` the candidates a top-k after it takes: its commands
    /// those encoded ahead where the step before foresaw its shape, and then, where the
    /// host will wait for it, encodes the step it foresees (see [`super::ahead`]).
    fn submit(
        &self,
        input: StepInput,
        past: usize,
        kv: &GpuKvCache,
        top_k: u32,
        readout: Readout,
    ) -> Result<wgpu::SubmissionIndex, GpuError> {
        let tokens = match input {
            StepInput::Host(tokens) => {
                self.check_tokens(tokens)?;
                tokens.len()
            }
            StepInput::Device => 1,
        };
        self.check(tokens, past, kv)?;
        let shape = StepShape {
            tokens: tokens as u32,
            context: (past + tokens) as u32,
            cache: kv.id,
            readout,
        };
        let ahead = self.ahead_slot().take();
        let commands = match ahead {
            Some(ahead) if ahead.shape == shape => ahead.commands,
            _ => self.commands(shape, kv),
        };
        self.write_step(input, past, top_k);
        let submission = self.context.queue.submit([commands]);
        if let Some(next) = shape.next(kv.capacity) {
            let commands = self.commands(next, kv);
            *self.ahead_slot() = Some(Ahead {
                shape: next,
                commands,
            });
        }
        Ok(submission)
    }

    fn ahead_slot(&self) -> std::sync::MutexGuard<'_, Option<Ahead>> {
        // The slot holds no invariant a panic elsewhere could break.
        self.ahead
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A step's commands: its dispatches, then the copy of what it reads back.
    fn commands(&self, shape: StepShape, kv: &GpuKvCache) -> wgpu::CommandBuffer {
        let mut encoder = self.encode(shape.tokens, shape.context, kv, None);
        let max_dim = self.context.limits().max_compute_workgroups_per_dimension;
        match shape.readout {
            Readout::Nothing => {}
            Readout::Output { from, bytes } => {
                let (output, offset, _) = self.arena.region(self.output);
                encoder.copy_buffer_to_buffer(output, offset + from, &self.readback, 0, bytes);
            }
            Readout::Best { bytes } => {
                self.top_k.record(&mut encoder, max_dim);
                encoder.copy_buffer_to_buffer(&self.top_k.best, 0, &self.top_k.readback, 0, bytes);
            }
            Readout::Chained { slot } => {
                self.top_k.record(&mut encoder, max_dim);
                let best = &self.top_k.best;
                encoder.copy_buffer_to_buffer(best, 0, &self.step, TOKENS_AT, 4);
                encoder.copy_buffer_to_buffer(best, 0, &self.token_readbacks[slot], 0, 4);
            }
        }
        encoder.finish()
    }

    /// Checks the step, writes the step buffer and records every dispatch, timed as
    /// `timing` says.
    pub(super) fn record_timed(
        &self,
        tokens: &[u32],
        past: usize,
        kv: &GpuKvCache,
        timing: Timing,
    ) -> Result<wgpu::CommandEncoder, GpuError> {
        self.check_tokens(tokens)?;
        self.check(tokens.len(), past, kv)?;
        self.write_step(StepInput::Host(tokens), past, 0);
        let context = (past + tokens.len()) as u32;
        Ok(self.encode(tokens.len() as u32, context, kv, Some(timing)))
    }

    /// Errors for a step the executor cannot run.
    fn check(&self, tokens: usize, past: usize, kv: &GpuKvCache) -> Result<(), GpuError> {
        if kv.owner != self.id {
            return Err(GpuError::ForeignCache);
        }
        if tokens == 0 {
            return Err(RunError::NoTokens.into());
        }
        if tokens > self.options.max_tokens {
            return Err(GpuError::TooManyTokens {
                tokens,
                max: self.options.max_tokens,
            });
        }
        if past + tokens > kv.capacity {
            return Err(RunError::ContextFull {
                needed: past + tokens,
                capacity: kv.capacity,
            }
            .into());
        }
        Ok(())
    }

    /// Errors for tokens outside the vocabulary.
    fn check_tokens(&self, tokens: &[u32]) -> Result<(), GpuError> {
        match tokens.iter().find(|&&t| t as usize >= self.n_vocab) {
            Some(&id) => Err(RunError::TokenOutOfRange {
                id,
                n_vocab: self.n_vocab,
            }
            .into()),
            None => Ok(()),
        }
    }

    /// The step buffer's words: its tokens (those of the host; a step of the device's
    /// token leaves the token its predecessor copied there) and positions, and the
    /// top-k's candidates.
    fn write_step(&self, input: StepInput, past: usize, top_k: u32) {
        let (t, tokens): (u32, &[u32]) = match input {
            StepInput::Host(tokens) => (tokens.len() as u32, tokens),
            StepInput::Device => (1, &[]),
        };
        let context = past as u32 + t;
        let header: [u32; STEP_HEADER_WORDS] = [t, past as u32, context, top_k];
        let mut words = header.to_vec();
        words.extend_from_slice(tokens);
        self.context
            .queue
            .write_buffer(&self.step, 0, bytemuck::cast_slice(&words));
    }

    /// Records every dispatch of a step of `t` tokens ending at `context`: all in one
    /// compute pass, or each in its own where every dispatch is timed.
    fn encode(
        &self,
        t: u32,
        context: u32,
        kv: &GpuKvCache,
        timing: Option<Timing>,
    ) -> wgpu::CommandEncoder {
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
        let running = (0..self.dispatches.len()).filter(|&i| self.dispatches[i].runs(t, context));
        match timing {
            None | Some(Timing::WholeStep(_)) => {
                let writes = timing.map(|timing| timing.timestamps().writes(0));
                let mut pass = step_pass(&mut encoder, writes);
                for i in running {
                    encode(&mut pass, i);
                }
            }
            Some(Timing::EachDispatch(timestamps)) => {
                for i in running {
                    encode(&mut step_pass(&mut encoder, Some(timestamps.writes(i))), i);
                }
            }
        }
        encoder
    }

    /// Maps `buffer` after the submitted work and copies out its first `bytes`.
    pub(super) fn read<T: bytemuck::Pod>(
        &self,
        buffer: &wgpu::Buffer,
        bytes: u64,
    ) -> Result<Vec<T>, GpuError> {
        self.read_after(buffer, bytes, None)
    }

    /// Maps `buffer` once `submission` is done (all submitted work for None) and copies
    /// out its first `bytes` as values of `T`, in one copy (a decode step waits on it).
    fn read_after<T: bytemuck::Pod>(
        &self,
        buffer: &wgpu::Buffer,
        bytes: u64,
        submission: Option<wgpu::SubmissionIndex>,
    ) -> Result<Vec<T>, GpuError> {
        let slice = buffer.slice(..bytes);
        let (sender, receiver) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = sender.send(r);
        });
        self.context
            .wait_for_message(&receiver, submission)?
            .map_err(|e| GpuError::Device(format!("reading results back: {e}")))?;
        let data = bytemuck::pod_collect_to_vec(
            &slice
                .get_mapped_range()
                .map_err(|e| GpuError::Device(format!("reading results back: {e}")))?,
        );
        buffer.unmap();
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_tiles_hold_2048_values_of_q_at_most_and_32_tokens() {
        let tiles: Vec<u32> = [16, 64, 80, 96, 128, 256].map(query_tile).to_vec();
        assert_eq!(tiles, [32, 32, 16, 16, 16, 8]);
    }
}
