//! Lowering, once at load: every node of the graph becomes its dispatches — kernel,
//! parameters, buffers — and every weight it reads is uploaded as it is first met.
//! Graph views (`columns`, `last_row`) become [`View`]s that kernels read in place; a
//! kernel that reads only whole tensors gets a copy. Activations are numbered as they
//! are asked for and placed in the arena ([`super::arena`]) once every dispatch is known.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::arena::{ActivationId, Arena, ArenaLayout, Use};
use super::executor::{
    query_tile, Dispatch, Grid, ModulePipelines, Params, Rows, SingleRow, Source, Steps,
    MATMUL_TILE, MAX_ATTENTION_RUNS,
};
use super::fold::{self, PLAIN};
use super::progress::UploadProgress;
use super::shaders::{
    coop_matmul_source_to_build, Access, DecodeKernel, DecodeMatrix, Module, Specialisation,
    COLS_MULTIPLE, COOP_PREFILL, COOP_TOKENS, COOP_X_HALF, RUN_RECORD_BYTES,
};
use super::staging::StagingRing;
use super::weights::{padded, upload, RowLayout, WeightPart, WeightRead};
use super::{GpuContext, GpuError, GpuOptions};
use crate::gguf::GgufFile;
use crate::graph::{
    CacheDecl, Cols, Dim, Epilogue, Graph, NodeId, NormPrologue, Op, TensorType, Weight,
};
use crate::model::{Activation, RopeMode};
use crate::runtime::cpu::{kernels, RunError};
use crate::runtime::{DecodeInput, INT8_RUN};

/// An activation as a kernel reads it: `rows` rows of `len` values, `stride` apart,
/// from `offset` values into `activation`; with `last_row`, the one row is row T − 1.
#[derive(Clone)]
pub(super) struct View {
    pub activation: ActivationId,
    pub rows: Rows,
    pub len: u32,
    pub offset: u32,
    pub stride: u32,
    pub last_row: bool,
    /// The one-token step's row in 8 bits, as the kernel that made it rounded it,
    /// where it did: only a whole row from its first column.
    pub runs: Option<Runs>,
}

/// An activation's row rounded to 8 bits by the decode kernel that made it: records of
/// `RUN_RECORD_BYTES` a run of 8 values, which were multiplied by the weight of the
/// norm prologue `norm` (its readers') before they were rounded, where there is one.
#[derive(Clone)]
pub(super) struct Runs {
    pub activation: ActivationId,
    pub norm: Option<String>,
}

impl View {
    fn whole(activation: ActivationId, rows: Rows, len: u32) -> View {
        View {
            activation,
            rows,
            len,
            offset: 0,
            stride: len,
            last_row: false,
            runs: None,
        }
    }

    fn is_whole(&self) -> bool {
        self.offset == 0 && self.stride == self.len && !self.last_row
    }
}

/// A node's value on the device.
#[derive(Clone)]
pub(super) enum Value {
    /// The token ids, which live in the step buffer.
    TokenIds,
    Activation(View),
    /// The KV cache `usize` (what a `CacheWrite` yields).
    Cache(usize),
}

/// What lowering builds up before the executor exists.
pub(super) struct Loader<'a> {
    pub context: &'a GpuContext,
    pub gguf: &'a GgufFile,
    pub options: GpuOptions,
    pub limits: wgpu::Limits,
    pub pipelines: HashMap<Module, ModulePipelines>,
    /// The specialisations built so far.
    specialisations: HashMap<(Module, Specialisation), wgpu::ComputePipeline>,
    pub params: Vec<u8>,
    pub param_stride: usize,
    /// Uploaded weights by the names they were uploaded under (several weights of one
    /// type that one linear reads share a buffer, named `a+b+…`).
    weights: HashMap<String, Rc<Vec<WeightPart>>>,
    pub dispatches: Vec<Dispatch>,
    /// Bound where a kernel ignores a binding (no prologue, no residual, …): one to
    /// read, one to write (WebGPU lets a dispatch bind a buffer one way only).
    unused: [Option<wgpu::Buffer>; 2],
    /// Bytes of every buffer made, for the out-of-memory message.
    pub allocated: u64,
    /// Bytes of each activation asked for (the arena places them once all are known).
    activations: Vec<u64>,
    /// Weight bytes uploaded of those the graph reads.
    pub progress: Option<UploadProgress>,
    /// Norm weights uploaded, by name.
    norms: HashMap<String, wgpu::Buffer>,
    /// Matmul dispatches whose decode kernel loads x as the kernel before it rounded it.
    pub runs_read: usize,
    /// Where the load's time went.
    pub times: LoadTimes,
    /// Carries the weights to the device.
    staging: StagingRing<'a>,
}

/// Host time a load spent on its two long tasks, for `bench`'s load figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadTimes {
    /// Copying (or repacking) weights into staging buffers, and waiting for a staging
    /// buffer's copy to the device to finish before filling it again.
    pub weights: Duration,
    /// Building shader modules and pipelines (from the pipeline cache where it has them).
    pub pipelines: Duration,
}

fn f(v: f32) -> u32 {
    v.to_bits()
}

impl<'a> Loader<'a> {
    pub fn new(context: &'a GpuContext, gguf: &'a GgufFile, options: GpuOptions) -> Loader<'a> {
        let limits = context.limits();
        Loader {
            context,
            gguf,
            options,
            param_stride: Params::BYTES
                .next_multiple_of(limits.min_uniform_buffer_offset_alignment as usize),
            limits,
            pipelines: HashMap::new(),
            specialisations: HashMap::new(),
            params: Vec::new(),
            weights: HashMap::new(),
            dispatches: Vec::new(),
            unused: [None, None],
            allocated: 0,
            activations: Vec::new(),
            progress: None,
            norms: HashMap::new(),
            runs_read: 0,
            times: LoadTimes::default(),
            staging: StagingRing::new(context),
        }
    }

    pub fn pipelines(&mut self, module: Module) -> Result<&ModulePipelines, GpuError> {
        if !self.pipelines.contains_key(&module) {
            let start = Instant::now();
            let built = ModulePipelines::build(self.context, module)?;
            self.times.pipelines += start.elapsed();
            self.pipelines.insert(module, built);
        }
        Ok(&self.pipelines[&module])
    }

    pub fn buffer(&mut self, label: &str, bytes: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
        self.allocated += bytes;
        self.context.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage,
            mapped_at_creation: false,
        })
    }

    /// An activation of `elements` f32 values at most, in the arena.
    fn activation(&mut self, label: &str, elements: usize) -> Result<ActivationId, GpuError> {
        let bytes = padded(elements * 4);
        if bytes > self.limits.max_storage_buffer_binding_size {
            return Err(GpuError::Unsupported(format!(
                "activation `{label}` takes {bytes} bytes at {} tokens and {} positions, more than \
                 the device's largest storage binding ({} bytes); lower max_tokens or context",
                self.options.max_tokens,
                self.options.context,
                self.limits.max_storage_buffer_binding_size
            )));
        }
        self.activations.push(bytes);
        Ok(self.activations.len() - 1)
    }

    /// Places every activation once lowering is done; `kept` (the output) stays live
    /// after the last dispatch.
    pub fn arena(&mut self, kept: ActivationId) -> Result<Arena, GpuError> {
        let uses: Vec<Vec<Use>> = self.dispatches.iter().map(Dispatch::uses).collect();
        let align = u64::from(self.limits.min_storage_buffer_offset_alignment).max(16);
        let layout = ArenaLayout::place(&self.activations, &uses, kept, align);
        if let Some(&bank) = layout
            .banks
            .iter()
            .find(|&&b| b > self.limits.max_buffer_size)
        {
            return Err(GpuError::Unsupported(format!(
                "an activation bank takes {bank} bytes at {} tokens and {} positions, more than \
                 the device's largest buffer ({} bytes); lower max_tokens or context",
                self.options.max_tokens, self.options.context, self.limits.max_buffer_size
            )));
        }
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
        let bytes = std::mem::take(&mut self.activations);
        Ok(Arena::new(layout, bytes, |label, size| {
            self.buffer(label, size, usage)
        }))
    }

    fn unused(&mut self) -> wgpu::Buffer {
        self.placeholder(Access::Read)
    }

    fn unused_writable(&mut self) -> wgpu::Buffer {
        self.placeholder(Access::ReadWrite)
    }

    fn placeholder(&mut self, access: Access) -> wgpu::Buffer {
        let slot = usize::from(access == Access::ReadWrite);
        if self.unused[slot].is_none() {
            self.unused[slot] = Some(self.buffer("unused", 16, wgpu::BufferUsages::STORAGE));
        }
        self.unused[slot].clone().expect("made above")
    }

    /// Weights of one type with the same row length, in their stored type, side by
    /// side in one buffer (split by rows where the device's binding limit says);
    /// uploaded once however many nodes read them.
    fn weights(&mut self, ws: &[&Weight]) -> Result<Rc<Vec<WeightPart>>, GpuError> {
        let name = ws
            .iter()
            .map(|w| w.name.as_str())
            .collect::<Vec<_>>()
            .join("+");
        if let Some(parts) = self.weights.get(&name) {
            return Ok(parts.clone());
        }
        let (ty, cols) = (ws[0].ty, ws[0].cols);
        if !cols.is_multiple_of(COLS_MULTIPLE) {
            return Err(GpuError::Unsupported(format!(
                "weight `{name}` has rows of {cols} values; the GPU kernels need a multiple of {COLS_MULTIPLE}"
            )));
        }
        let segments = ws
            .iter()
            .map(|w| self.tensor_bytes(&w.name))
            .collect::<Result<Vec<_>, _>>()?;
        let max_binding = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        let bytes = segments.iter().map(|s| s.len() as u64).sum::<u64>();
        self.allocated += bytes;
        let start = Instant::now();
        let parts = Rc::new(upload(
            &mut self.staging,
            &name,
            &segments,
            RowLayout::new(ty, cols),
            max_binding,
        )?);
        self.times.weights += start.elapsed();
        self.uploaded(bytes);
        self.weights.insert(name, parts.clone());
        Ok(parts)
    }

    fn uploaded(&mut self, file_bytes: u64) {
        if let Some(progress) = &mut self.progress {
            progress.advance(file_bytes);
        }
    }

    fn tensor_bytes(&self, name: &str) -> Result<&'a [u8], GpuError> {
        let gguf: &'a GgufFile = self.gguf;
        gguf.tensor_data(name)
            .map(|(_, bytes)| bytes)
            .ok_or_else(|| RunError::MissingWeight(name.to_string()).into())
    }

    /// A norm's weight vector (`vectors`), uploaded once however many kernels read it.
    fn norm(&mut self, w: &Weight) -> Result<wgpu::Buffer, GpuError> {
        if let Some(buffer) = self.norms.get(&w.name) {
            return Ok(buffer.clone());
        }
        let buffer = self.vectors(&[w], &[])?;
        self.norms.insert(w.name.clone(), buffer.clone());
        Ok(buffer)
    }

    /// Weight vectors (norms'), dequantised to f32 as the CPU interpreter keeps them,
    /// one after the other in one buffer, and then `more` values.
    fn vectors(&mut self, ws: &[&Weight], more: &[f32]) -> Result<wgpu::Buffer, GpuError> {
        let mut values = Vec::new();
        for w in ws {
            let bytes = self.tensor_bytes(&w.name)?;
            let start = values.len();
            values.resize(start + w.rows * w.cols, 0f32);
            kernels::dequantize_row(w.ty, bytes, &mut values[start..]);
            self.uploaded(bytes.len() as u64);
        }
        values.extend_from_slice(more);
        self.allocated += values.len() as u64 * 4;
        Ok(wgpu::util::DeviceExt::create_buffer_init(
            &self.context.device,
            &wgpu::util::BufferInitDescriptor {
                label: Some(ws.first().map_or("rotary frequencies", |w| &w.name)),
                contents: bytemuck::cast_slice(&values),
                usage: wgpu::BufferUsages::STORAGE,
            },
        ))
    }

    pub fn add_params(&mut self, params: Params) -> u64 {
        let offset = self.params.len();
        self.params
            .extend_from_slice(bytemuck::cast_slice(&params.0));
        self.params.resize(offset + self.param_stride, 0);
        offset as u64
    }

    pub fn dispatch(
        &mut self,
        label: &str,
        module: Module,
        entry: &'static str,
        params: Params,
        grid: Grid,
        sources: Vec<Source>,
    ) -> Result<(), GpuError> {
        let pipeline = self.pipelines(module)?.by_entry[entry].clone();
        self.push_dispatch(label, module, (entry, pipeline), params, grid, sources)
    }

    /// A dispatch of an entry point that is built only specialised.
    fn dispatch_specialised(
        &mut self,
        label: &str,
        module: Module,
        specialisation: Specialisation,
        params: Params,
        grid: Grid,
        sources: Vec<Source>,
    ) -> Result<(), GpuError> {
        let pipeline = self.specialised(module, specialisation)?;
        let entry = (specialisation.entry(), pipeline);
        self.push_dispatch(label, module, entry, params, grid, sources)
    }

    fn push_dispatch(
        &mut self,
        label: &str,
        module: Module,
        (entry, pipeline): (&'static str, wgpu::ComputePipeline),
        params: Params,
        grid: Grid,
        sources: Vec<Source>,
    ) -> Result<(), GpuError> {
        let params_offset = self.add_params(params);
        let layout = self.pipelines(module)?.layout.clone();
        self.dispatches.push(Dispatch {
            label: label.to_string(),
            entry,
            pipeline,
            single_row: None,
            grid,
            layout,
            params_offset,
            sources,
            access: module.storage(),
            weight: WeightRead::None,
            steps: Steps::Every,
        });
        Ok(())
    }

    /// A linear's matmul over one part of its weights (`Grid::Matmul`), decoded by the
    /// decode matmul folding `fold`. On tensor cores where the device was opened with
    /// them, after a dispatch that rounds x to f16 (into an activation of its own): that
    /// kernel stores whole tiles, so only where the output's rows are whole tiles of 64
    /// and its tokens whole tiles of COOP_TOKENS at the most tokens a step takes (the
    /// rows past a step's tokens are never read).
    fn matmul(
        &mut self,
        label: &str,
        params: Params,
        (matrix, tokens): (DecodeMatrix, Rows),
        mut sources: Vec<Source>,
        fold: u32,
    ) -> Result<(), GpuError> {
        let DecodeMatrix { rows, cols, ty, .. } = matrix;
        let module = Module::Matmul(ty);
        let coop = self.pipelines(module)?.by_entry.contains_key(COOP_PREFILL)
            && rows % MATMUL_TILE == 0
            && matches!(tokens, Rows::Tokens)
            && self.options.max_tokens.is_multiple_of(COOP_TOKENS as usize);
        let (entry, token_tile) = if coop {
            // Two f16 a value: half as many f32 elements.
            let half_x = self.activation(
                &format!("{label} (x in f16)"),
                self.options.max_tokens * cols as usize / 2,
            )?;
            sources[HALF_X_BINDING] = Source::Activation(half_x);
            let grid = Grid::Items {
                per_row: cols / 4,
                rows: tokens,
                per_context: false,
            };
            let rounding = format!("{label} (x to f16)");
            self.dispatch(
                &rounding,
                module,
                COOP_X_HALF,
                params,
                grid,
                sources.clone(),
            )?;
            self.runs_in(Steps::SeveralRows);
            (COOP_PREFILL, COOP_TOKENS)
        } else {
            ("matmul_prefill", MATMUL_TILE)
        };
        let grid = Grid::Matmul {
            rows,
            tokens,
            token_tile,
        };
        self.dispatch(label, module, entry, params, grid, sources)?;
        let kernel = |input| DecodeKernel::new(fold, matrix, input);
        let single_row = SingleRow {
            one_token: self.decode_kernel(module, kernel(self.options.decode_input))?,
            longer: self.decode_kernel(module, kernel(DecodeInput::F32))?,
        };
        if let Some(d) = self.dispatches.last_mut() {
            d.single_row = Some(single_row);
        }
        Ok(())
    }

    /// Says in which steps the dispatch added last runs.
    fn runs_in(&mut self, steps: Steps) {
        if let Some(d) = self.dispatches.last_mut() {
            d.steps = steps;
        }
    }

    /// `module`'s decode matmul specialised as `kernel` says, and the rows a workgroup
    /// of it computes.
    fn decode_kernel(
        &mut self,
        module: Module,
        kernel: DecodeKernel,
    ) -> Result<(wgpu::ComputePipeline, u32), GpuError> {
        let pipeline = self.specialised(module, Specialisation::Decode(kernel))?;
        Ok((pipeline, kernel.rows_per_group()))
    }

    /// `module`'s entry point specialised as `specialisation` says (each built once).
    fn specialised(
        &mut self,
        module: Module,
        specialisation: Specialisation,
    ) -> Result<wgpu::ComputePipeline, GpuError> {
        let key = (module, specialisation);
        if !self.specialisations.contains_key(&key) {
            let context = self.context;
            let pipelines = self.pipelines(module)?;
            let start = Instant::now();
            let built = pipelines.specialised(
                context,
                specialisation.entry(),
                &specialisation.constants(),
            )?;
            self.times.pipelines += start.elapsed();
            self.specialisations.insert(key, built);
        }
        Ok(self.specialisations[&key].clone())
    }

    /// Records the weight bytes the dispatch added last reads.
    fn reads(&mut self, weight: WeightRead) {
        if let Some(d) = self.dispatches.last_mut() {
            d.weight = weight;
        }
    }

    /// `view` as a whole tensor: itself, or a copy for kernels that read no views.
    pub fn whole(&mut self, label: &str, view: View) -> Result<ActivationId, GpuError> {
        if view.is_whole() {
            return Ok(view.activation);
        }
        let rows = if view.last_row {
            Rows::Fixed(1)
        } else {
            view.rows
        };
        let out = self.activation(label, max_rows(rows, self.options) * view.len as usize)?;
        let params = Params::new(&[
            view.len,
            rows.param(),
            0,
            0,
            view.offset,
            view.stride,
            u32::from(view.last_row),
        ]);
        let sources = vec![
            Source::Activation(view.activation),
            Source::Activation(view.activation),
            Source::Activation(out),
        ];
        let grid = Grid::Items {
            per_row: view.len,
            rows,
            per_context: false,
        };
        self.dispatch(
            label,
            Module::Elementwise,
            "copy_view",
            params,
            grid,
            sources,
        )?;
        Ok(out)
    }
}

impl ModulePipelines {
    pub(super) fn build(context: &GpuContext, module: Module) -> Result<ModulePipelines, GpuError> {
        let device = &context.device;
        let rejected = |reason: String| GpuError::ShaderRejected {
            module: module.name(),
            reason,
        };
        let source = module
            .source_to_build(context.reduction())
            .map_err(|e| rejected(format!("reading its file: {e}")))?;
        let coop_source = match module {
            Module::Matmul(_) if context.has_tensor_cores() => Some(
                coop_matmul_source_to_build(&source)
                    .map_err(|e| rejected(format!("reading its tensor-core file: {e}")))?,
            ),
            _ => None,
        };
        context
            .scoped(wgpu::ErrorFilter::Validation, || {
                let shader = shader_module(device, &module.name(), &source);
                let buffer =
                    |binding: u32, ty: wgpu::BufferBindingType| wgpu::BindGroupLayoutEntry {
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
                let pipeline_layout =
                    device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: Some(&module.name()),
                        bind_group_layouts: &[Some(&layout)],
                        immediate_size: 0,
                    });
                let pipeline = |shader: &wgpu::ShaderModule, entry: &'static str| {
                    let built = compute_pipeline(context, &pipeline_layout, shader, entry, &[]);
                    (entry, built)
                };
                // Some entry points are only built specialised (`Loader::specialised`).
                let mut by_entry: HashMap<_, _> = module
                    .entry_points()
                    .iter()
                    .filter(|entry| !Specialisation::ENTRIES.contains(entry))
                    .map(|&entry| pipeline(&shader, entry))
                    .collect();
                // The tensor-core prefill, built on the same layout so that it takes the
                // matmul's bind groups.
                if let Some(coop) = &coop_source {
                    let shader = shader_module(device, &module.name(), coop);
                    by_entry.extend([COOP_X_HALF, COOP_PREFILL].map(|e| pipeline(&shader, e)));
                }
                ModulePipelines {
                    layout,
                    pipeline_layout,
                    shader,
                    by_entry,
                }
            })
            .map_err(rejected)
    }
}

impl ModulePipelines {
    /// `entry` with its override constants set to `constants`.
    pub(super) fn specialised(
        &self,
        context: &GpuContext,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Result<wgpu::ComputePipeline, GpuError> {
        context
            .scoped(wgpu::ErrorFilter::Validation, || {
                compute_pipeline(
                    context,
                    &self.pipeline_layout,
                    &self.shader,
                    entry,
                    constants,
                )
            })
            .map_err(|reason| GpuError::ShaderRejected {
                module: format!("{entry} {constants:?}"),
                reason,
            })
    }
}

/// A module of `wgsl/`'s kernels, built without the counter wgpu otherwise adds to
/// every loop against loops that never end: without them an H100 decoded TinyLlama 6%
/// to 11% faster, Mistral-7B 1% to 8%, and prefilled Mistral 15% faster (BENCHMARKS.md,
/// session 11). Bounds and division checks stay.
fn shader_module(device: &wgpu::Device, label: &str, source: &str) -> wgpu::ShaderModule {
    let checks = wgpu::ShaderRuntimeChecks {
        force_loop_bounding: false,
        ..wgpu::ShaderRuntimeChecks::checked()
    };
    let descriptor = wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    };
    // SAFETY: every loop in wgsl/ ends: each runs up to a bound that is a constant, an
    // override or a dispatch parameter, by a step that is a positive constant or
    // override, halves toward zero, or is positive by construction: a norm epilogue's
    // group (a head, of at least the 2 values the rotation turns, or the embedding)
    // and the attention tile's keys (at least 4 for heads of at most 256, which the
    // executor requires). Modules from `$RUSTORCH_WGSL_DIR` are the user's own.
    unsafe { device.create_shader_module_trusted(descriptor, checks) }
}

fn compute_pipeline(
    context: &GpuContext,
    layout: &wgpu::PipelineLayout,
    shader: &wgpu::ShaderModule,
    entry: &str,
    constants: &[(&str, f64)],
) -> wgpu::ComputePipeline {
    context
        .device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: Some(layout),
            module: shader,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: context.pipeline_cache(),
        })
}

/// The epilogue kernel's encoding of each step (see `wgsl/epilogue.wgsl`), and what
/// its `vectors` buffer holds: the `Norm` steps' weights in order, then the `Rope`
/// steps' inverse frequencies.
fn epilogue_steps(epilogue: &[Epilogue]) -> (Vec<[u32; 8]>, Vec<&Weight>, Vec<f32>) {
    let mut vectors: Vec<&Weight> = Vec::new();
    let mut vector_len = 0;
    let norms_len: usize = epilogue
        .iter()
        .map(|s| match s {
            Epilogue::Norm { weight, .. } => weight.rows * weight.cols,
            _ => 0,
        })
        .sum();
    let mut tables = Vec::new();
    let steps = epilogue
        .iter()
        .map(|s| match s {
            Epilogue::Norm {
                cols,
                eps,
                group,
                weight,
            } => {
                let offset = vector_len as u32;
                vector_len += weight.rows * weight.cols;
                vectors.push(weight);
                [
                    0,
                    cols.start as u32,
                    cols.len as u32,
                    *group as u32,
                    f(*eps),
                    offset,
                    0,
                    0,
                ]
            }
            Epilogue::Rope { cols, rope } => {
                let (start, len) = (cols.start as u32, cols.len as u32);
                let shape = [
                    rope.head_dim as u32,
                    rope.n_rot as u32,
                    rope_mode(rope.mode),
                ];
                let table = (norms_len + tables.len()) as u32;
                tables.extend(rope.inv_freq());
                [
                    1,
                    start,
                    len,
                    shape[0],
                    shape[1],
                    shape[2],
                    table,
                    f(rope.freq_scale),
                ]
            }
            Epilogue::Scale { cols, factor } => [
                2,
                cols.start as u32,
                cols.len as u32,
                f(*factor),
                0,
                0,
                0,
                0,
            ],
            Epilogue::Gated { act } => {
                let act = match act {
                    Activation::Silu => 0,
                    Activation::GeluTanh => 1,
                };
                [3, 0, 0, act, 0, 0, 0, 0]
            }
            Epilogue::Residual => [4, 0, 0, 0, 0, 0, 0, 0],
        })
        .collect();
    (steps, vectors, tables)
}

/// A rotation's pairing as the kernels take it: 0 adjacent values, 1 halves.
pub(super) fn rope_mode(mode: RopeMode) -> u32 {
    match mode {
        RopeMode::Adjacent => 0,
        RopeMode::Halves => 1,
    }
}

/// A cache's `ring` as the kernels take it: the slots of a ring that wraps (slot =
/// position mod slots), 0 for a cache that holds every position — a ring as long as
/// the context never wraps, so it is one.
pub(super) fn ring_slots(cache: &CacheDecl, capacity: usize) -> u32 {
    let slots = cache.positions(capacity);
    if slots < capacity {
        slots as u32
    } else {
        0
    }
}

/// Steps the epilogue kernel's parameters hold.
const MAX_EPILOGUE_STEPS: usize = 6;

/// Where a matmul dispatch's sources hold x in f16 (binding 10, `x_half`).
const HALF_X_BINDING: usize = 8;

/// Columns one workgroup of the epilogue takes: the widest unit a step couples (a
/// norm's group, a rotation's head), or 64 when none does. `None` when a coupled
/// range does not fall on whole chunks, or a coupling step comes before the gated
/// activation (which would couple columns half a row apart).
fn epilogue_chunk(epilogue: &[Epilogue]) -> Option<usize> {
    let coupled: Vec<(Cols, usize)> = epilogue
        .iter()
        .filter_map(|s| match s {
            Epilogue::Norm { cols, group, .. } => Some((*cols, *group)),
            Epilogue::Rope { cols, rope } => Some((*cols, rope.head_dim)),
            _ => None,
        })
        .collect();
    let gated_after_coupling = epilogue
        .iter()
        .skip_while(|s| !matches!(s, Epilogue::Norm { .. } | Epilogue::Rope { .. }))
        .any(|s| matches!(s, Epilogue::Gated { .. }));
    let chunk = coupled.iter().map(|(_, unit)| *unit).max().unwrap_or(64);
    let aligned = coupled
        .iter()
        .all(|(c, _)| c.start % chunk == 0 && c.len % chunk == 0);
    (aligned && !gated_after_coupling).then_some(chunk)
}

/// Lowers every node to dispatches; returns each node's value and the vocabulary size.
pub(super) fn lower(graph: &Graph, l: &mut Loader) -> Result<(Vec<Value>, usize), GpuError> {
    let mut values: Vec<Value> = Vec::with_capacity(graph.len());
    let mut n_vocab = 0;
    for id in graph.schedule() {
        if let Op::Embed { table } = &graph.node(id).op {
            n_vocab = table.rows;
        }
        let value = NodeLowering {
            graph,
            id,
            values: &values,
        }
        .lower(l)?;
        values.push(value);
    }
    Ok((values, n_vocab))
}

/// One node being lowered, with the values of the nodes before it.
struct NodeLowering<'g> {
    graph: &'g Graph,
    id: NodeId,
    values: &'g [Value],
}

impl NodeLowering<'_> {
    fn label(&self) -> &str {
        &self.graph.node(self.id).label
    }

    fn input(&self, i: usize) -> Result<View, GpuError> {
        match &self.values[self.graph.inputs(self.id)[i].index()] {
            Value::Activation(v) => Ok(v.clone()),
            _ => Err(GpuError::Unsupported(format!(
                "`{}` reads input {i} as an activation, which it is not",
                self.label()
            ))),
        }
    }

    /// Input `i` as a whole tensor (copied if it is a view).
    fn whole_input(&self, i: usize, l: &mut Loader) -> Result<ActivationId, GpuError> {
        let view = self.input(i)?;
        l.whole(&format!("{} (input {i})", self.label()), view)
    }

    fn cache_input(&self, i: usize) -> Result<usize, GpuError> {
        match &self.values[self.graph.inputs(self.id)[i].index()] {
            Value::Cache(c) => Ok(*c),
            _ => Err(GpuError::Unsupported(format!(
                "`{}` reads input {i} as a KV cache, which it is not",
                self.label()
            ))),
        }
    }

    fn unsupported(&self, what: &str) -> GpuError {
        GpuError::Unsupported(format!("`{}`: {what}", self.label()))
    }

    fn lower(&self, l: &mut Loader) -> Result<Value, GpuError> {
        let node = self.graph.node(self.id);
        let label = node.label.as_str();
        let rows = node.ty.shape.first().map_or(Rows::Tokens, |d| Rows::of(*d));
        let n = node.ty.row_len().unwrap_or(1) as u32;
        let items = |per_row: u32| Grid::Items {
            per_row,
            rows,
            per_context: false,
        };
        let op = &node.op;
        match op {
            Op::TokenIds => return Ok(Value::TokenIds),
            Op::CacheWrite { cache } => return self.cache_write(*cache, l),
            Op::Columns { cols } => {
                let v = self.input(0)?;
                return Ok(Value::Activation(View {
                    offset: v.offset + cols.start as u32,
                    len: cols.len as u32,
                    runs: None,
                    ..v
                }));
            }
            Op::LastRow => {
                return Ok(Value::Activation(View {
                    rows: Rows::Fixed(1),
                    last_row: true,
                    ..self.input(0)?
                }))
            }
            Op::MatMul { weight } => {
                return self.linear(std::slice::from_ref(weight), None, &[], l)
            }
            Op::Linear {
                weights,
                prologue,
                epilogue,
            } => return self.linear(weights, prologue.as_ref(), epilogue, l),
            Op::Attention { .. } => return self.attention(l),
            _ => {}
        }
        let out = l.activation(label, max_elements(&node.ty, l.options))?;
        let o = Source::Activation(out);
        match op {
            Op::Embed { table } => {
                for part in l.weights(&[table])?.iter() {
                    l.dispatch(
                        label,
                        Module::Embed(table.ty),
                        "embed",
                        Params::new(&[table.cols as u32, part.rows as u32, part.first_row as u32]),
                        items(table.cols as u32 / 8),
                        vec![Source::Buffer(part.buffer.clone()), o.clone()],
                    )?;
                    l.reads(WeightRead::embed(part, table.rows));
                }
            }
            Op::MulWeight { weight } => {
                let (x, w) = (self.whole_input(0, l)?, l.vectors(&[weight], &[])?);
                let len = (weight.rows * weight.cols) as u32;
                let params = Params::new(&[n, rows.param(), 0, len]);
                let sources = vec![Source::Activation(x), Source::Buffer(w), o];
                l.dispatch(label, Module::Elementwise, "mul", params, items(n), sources)?;
            }
            Op::Scale { factor } => {
                let x = self.whole_input(0, l)?;
                let params = Params::new(&[n, rows.param(), f(*factor), 0]);
                let sources = vec![Source::Activation(x), Source::Activation(x), o];
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
                let a = self.whole_input(0, l)?;
                let b = if op.arity() > 1 {
                    self.whole_input(1, l)?
                } else {
                    a
                };
                let entry = match op {
                    Op::Add => "add",
                    Op::Mul => "mul",
                    Op::Silu => "silu",
                    _ => "gelu_tanh",
                };
                let params = Params::new(&[n, rows.param(), 0, u32::MAX]);
                let sources = vec![Source::Activation(a), Source::Activation(b), o];
                l.dispatch(label, Module::Elementwise, entry, params, items(n), sources)?;
            }
            Op::RmsNorm { eps, group } => {
                let x = self.whole_input(0, l)?;
                let groups = n / *group as u32;
                let params = Params::new(&[*group as u32, groups, rows.param(), f(*eps), 0]);
                let grid = Grid::Groups {
                    per_row: groups,
                    rows,
                };
                let sources = vec![
                    Source::Activation(x),
                    Source::Activation(x),
                    Source::Activation(x),
                    o,
                ];
                l.dispatch(label, Module::RmsNorm, "rms_norm", params, grid, sources)?;
            }
            Op::RmsNormMul {
                eps,
                group,
                weight,
                residual,
            } => {
                if weight.rows * weight.cols != *group {
                    return Err(self.unsupported("the norm weight is not one group long"));
                }
                let x = self.whole_input(0, l)?;
                let w = l.vectors(&[weight], &[])?;
                let r = if *residual {
                    self.whole_input(1, l)?
                } else {
                    x
                };
                let groups = n / *group as u32;
                let params = Params::new(&[
                    *group as u32,
                    groups,
                    rows.param(),
                    f(*eps),
                    u32::from(*residual),
                ]);
                let grid = Grid::Groups {
                    per_row: groups,
                    rows,
                };
                let sources = vec![
                    Source::Activation(x),
                    Source::Buffer(w),
                    Source::Activation(r),
                    o,
                ];
                l.dispatch(
                    label,
                    Module::RmsNorm,
                    "rms_norm_mul",
                    params,
                    grid,
                    sources,
                )?;
            }
            Op::Rope(rope) => {
                let x = self.whole_input(0, l)?;
                let params = Params::new(&[
                    n,
                    rope.head_dim as u32,
                    rope.n_rot as u32,
                    rope_mode(rope.mode),
                    f(rope.freq_scale),
                    rows.param(),
                ]);
                let inv_freq = l.vectors(&[], &rope.inv_freq())?;
                let sources = vec![Source::Activation(x), o, Source::Buffer(inv_freq)];
                l.dispatch(label, Module::Rope, "rope", params, items(n), sources)?;
            }
            Op::AttnScores {
                n_head,
                n_head_kv,
                head_dim,
                scale,
            } => {
                let (q, k) = (self.whole_input(0, l)?, self.cache_input(1)?);
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
                let sources = vec![Source::Activation(q), Source::Cache(k), o];
                l.dispatch(
                    label,
                    Module::Attention(l.options.kv_type),
                    "attn_scores",
                    params,
                    grid,
                    sources,
                )?;
            }
            Op::AttnMask { window } => {
                let (x, h) = (self.whole_input(0, l)?, self.attention_heads()?);
                let window = window.unwrap_or(0) as u32;
                let params = Params::new(&[h, 1, 1, 0, window, f(f32::NEG_INFINITY)]);
                let grid = Grid::Items {
                    per_row: h,
                    rows: Rows::Tokens,
                    per_context: true,
                };
                let sources = vec![Source::Activation(x), Source::Activation(x), o];
                l.dispatch(
                    label,
                    Module::Attention(l.options.kv_type),
                    "attn_mask",
                    params,
                    grid,
                    sources,
                )?;
            }
            Op::Softmax => {
                let (x, h) = (self.whole_input(0, l)?, self.attention_heads()?);
                let params = Params::new(&[h, 1, 1, 0, 0, f(f32::NEG_INFINITY)]);
                let grid = Grid::Groups {
                    per_row: h,
                    rows: Rows::Tokens,
                };
                let sources = vec![Source::Activation(x), Source::Activation(x), o];
                l.dispatch(
                    label,
                    Module::Attention(l.options.kv_type),
                    "softmax",
                    params,
                    grid,
                    sources,
                )?;
            }
            Op::AttnMix {
                n_head,
                n_head_kv,
                head_dim,
            } => {
                let (p, v) = (self.whole_input(0, l)?, self.cache_input(1)?);
                let heads = [*n_head as u32, *n_head_kv as u32, *head_dim as u32];
                let params =
                    Params::new(&[heads[0], heads[1], heads[2], 0, 0, f(f32::NEG_INFINITY)]);
                let sources = vec![Source::Activation(p), Source::Cache(v), o];
                let grid = items(heads[0] * heads[2]);
                l.dispatch(
                    label,
                    Module::Attention(l.options.kv_type),
                    "attn_mix",
                    params,
                    grid,
                    sources,
                )?;
            }
            Op::TokenIds
            | Op::CacheWrite { .. }
            | Op::Columns { .. }
            | Op::LastRow
            | Op::MatMul { .. }
            | Op::Linear { .. }
            | Op::Attention { .. } => unreachable!("lowered above"),
        }
        Ok(Value::Activation(View::whole(out, rows, n)))
    }

    fn cache_write(&self, cache: usize, l: &mut Loader) -> Result<Value, GpuError> {
        let x = self.whole_input(0, l)?;
        let row_len = self.graph.caches[cache].row_len as u32;
        if !row_len.is_multiple_of(2) {
            return Err(self.unsupported("odd cache rows"));
        }
        l.dispatch(
            self.label(),
            Module::KvCache(l.options.kv_type),
            "cache_write",
            Params::new(&[row_len]),
            Grid::Items {
                per_row: row_len / 2,
                rows: Rows::Tokens,
                per_context: false,
            },
            vec![Source::Activation(x), Source::Cache(cache)],
        )?;
        Ok(Value::Cache(cache))
    }

    /// Heads of an attention tensor `[H, T, ctx]` (its first dim).
    fn attention_heads(&self) -> Result<u32, GpuError> {
        match self.graph.node(self.id).ty.shape[0] {
            Dim::Fixed(h) => Ok(h as u32),
            _ => {
                Err(self
                    .unsupported("the GPU softmax and mask work on attention scores [H, T, P+T]"))
            }
        }
    }

    /// `linear` (and the canonical `matmul`, a linear of one weight and nothing
    /// else): the prologue's `rms_norm_mul` dispatch, then one matmul dispatch per run
    /// of same-typed weights (per part of its buffer), then the epilogue dispatch,
    /// unless the epilogue is only the residual add, which the matmul does as it stores.
    /// The decode kernel applies the prologue itself, and the epilogue where
    /// [`fold::decode_fold`] says it can; those dispatches then run only in longer steps.
    fn linear(
        &self,
        weights: &[Weight],
        prologue: Option<&NormPrologue>,
        epilogue: &[Epilogue],
        l: &mut Loader,
    ) -> Result<Value, GpuError> {
        let node = self.graph.node(self.id);
        let label = node.label.as_str();
        let rows = Rows::of(node.ty.shape[0]);
        let x = self.input(0)?;
        // x's runs, where its kernel rounded them for this linear's prologue (or none).
        let reader_norm = prologue.map(|p| p.weight.name.as_str());
        let x_runs = x.runs.as_ref().filter(|r| r.norm.as_deref() == reader_norm);
        let x_runs = x_runs.map(|r| r.activation);
        let cols = weights[0].cols;
        if weights.iter().any(|w| w.cols != cols) || x.len as usize != cols {
            return Err(self.unsupported("weights and input disagree on the row length"));
        }
        let raw_len: usize = weights.iter().map(|w| w.rows).sum();
        let out = l.activation(label, max_rows(rows, l.options) * raw_len)?;
        let inline_residual = epilogue == [Epilogue::Residual];
        // With a prologue, the single-row kernel reads the rows before it and applies
        // it itself (`folded`: the rows and the norm weight).
        let (x, folded) = match prologue {
            Some(p) => {
                let (normed, raw, weight) = self.prologue(p, x, l)?;
                (normed, Some((raw, weight, p.eps)))
            }
            // The decode kernel reads x four values a load.
            None if x.offset % 4 != 0 || x.stride % 4 != 0 => {
                let rows = if x.last_row { Rows::Fixed(1) } else { x.rows };
                let len = x.len;
                (
                    View::whole(l.whole(&format!("{label} (x)"), x)?, rows, len),
                    None,
                )
            }
            None => (x, None),
        };
        let (single_row_x, norm_weight, eps) = match folded {
            Some((raw, weight, eps)) => (raw, weight, Some(eps)),
            None => (x.activation, l.unused(), None),
        };
        let residual = if inline_residual {
            Some(self.whole_input(1, l)?)
        } else {
            None
        };
        let bound = |b: &Option<ActivationId>| Source::Activation(b.unwrap_or(x.activation));
        // Every dispatch: its weights' type, buffer part and first output column.
        let mut dispatches = Vec::new();
        let mut first = 0;
        for run in weights.chunk_by(|a, b| a.ty == b.ty) {
            let run_refs: Vec<&Weight> = run.iter().collect();
            let run_parts = l.weights(&run_refs)?;
            for (i, part) in run_parts.iter().enumerate() {
                dispatches.push((run[0].ty, run_parts.clone(), i, first + part.first_row));
            }
            first += run.iter().map(|w| w.rows).sum::<usize>();
        }
        let parts: Vec<(usize, usize)> = dispatches
            .iter()
            .map(|(_, run_parts, i, at)| (*at, run_parts[*i].rows))
            .collect();
        let fold = if epilogue.is_empty() || inline_residual {
            Some(PLAIN)
        } else {
            fold::decode_fold(epilogue, raw_len, &parts)
        };
        let decode_needs_no_epilogue = fold.is_some();
        let decode = fold.unwrap_or(PLAIN);
        let gated = epilogue.iter().any(|s| matches!(s, Epilogue::Gated { .. }));
        let len = if gated { raw_len / 2 } else { raw_len };
        // With x in 8 bits, the kernel also stores its output's runs rounded for the
        // decode matmuls that read it whole, where it makes whole runs of the final
        // values (one dispatch that folds its epilogue or has none but the residual).
        let whole_runs = decode_needs_no_epilogue
            && matches!(decode.fold, fold::FOLD_NONE | fold::FOLD_GATED)
            && parts == [(0, raw_len)];
        let output_runs = if whole_runs {
            self.output_runs(len, true, l)?
        } else {
            None
        };
        let (runs, runs_norm) = match output_runs {
            Some((runs, norm)) => {
                let buffer = match norm {
                    Some(w) => Some(l.norm(w)?),
                    None => None,
                };
                (Some(runs), buffer)
            }
            None => (None, None),
        };
        let rope_table = if decode.rope_table.is_empty() {
            l.unused()
        } else {
            l.vectors(&[], &decode.rope_table)?
        };
        for (ty, run_parts, i, first_row) in dispatches {
            let part = &run_parts[i];
            let mut words = vec![
                part.rows as u32,
                first_row as u32,
                cols as u32,
                raw_len as u32,
                rows.param(),
                x.offset,
                x.stride,
                u32::from(x.last_row),
                u32::from(inline_residual),
                u32::from(eps.is_some()),
                f(eps.unwrap_or(0.0)),
            ];
            words.extend(decode.words);
            let sources = vec![
                Source::Buffer(part.buffer.clone()),
                Source::Activation(x.activation),
                bound(&residual),
                Source::Activation(out),
                Source::Activation(single_row_x),
                Source::Buffer(part.buffer.clone()),
                Source::Buffer(norm_weight.clone()),
                Source::Buffer(rope_table.clone()),
                // x in f16, where the tensor-core kernel runs (`Loader::matmul`).
                Source::Buffer(l.unused_writable()),
                bound(&x_runs),
                match &runs {
                    Some(runs) => Source::Activation(runs.activation),
                    None => Source::Buffer(l.unused_writable()),
                },
                Source::Buffer(runs_norm.clone().unwrap_or_else(|| l.unused())),
            ];
            let matrix = DecodeMatrix {
                rows: part.rows as u32,
                cols: cols as u32,
                ty,
                prologue: eps.is_some(),
                x_rounded: x_runs.is_some(),
                rounds_output: runs.is_some(),
                runs_normed: runs_norm.is_some(),
            };
            let params = Params::new(&words);
            l.matmul(label, params, (matrix, rows), sources, decode.fold)?;
            l.reads(WeightRead::matmul(part));
            l.runs_read += usize::from(matrix.x_rounded);
        }
        if !epilogue.is_empty() && !inline_residual {
            self.epilogue(epilogue, rows, raw_len as u32, out, l)?;
            if decode_needs_no_epilogue {
                // The decode kernel applied it as it stored.
                l.runs_in(Steps::SeveralRows);
            }
        }
        Ok(Value::Activation(View {
            len: len as u32,
            runs,
            ..View::whole(out, rows, raw_len as u32)
        }))
    }

    /// With x in 8 bits, the runs in which the decode kernel making this node's output
    /// (`len` values a row) also stores it rounded for the linears that read it, and
    /// the norm weight they fold, if any (only where `normed`: the kernel can apply
    /// one). `None` where there are no such readers.
    fn output_runs(
        &self,
        len: usize,
        normed: bool,
        l: &mut Loader,
    ) -> Result<Option<(Runs, Option<&Weight>)>, GpuError> {
        let int8 = l.options.decode_input == DecodeInput::Int8 && l.options.round_once;
        let norm = match self.readers_norm() {
            Some(norm) if int8 && len.is_multiple_of(INT8_RUN) && (normed || norm.is_none()) => {
                norm
            }
            _ => return Ok(None),
        };
        let elements = len / INT8_RUN * RUN_RECORD_BYTES / 4;
        let activation = l.activation(&format!("{} (8-bit runs)", self.label()), elements)?;
        let runs = Runs {
            activation,
            norm: norm.map(|w| w.name.clone()),
        };
        Ok(Some((runs, norm)))
    }

    /// The norm weight that every linear reading this node's output as x (through
    /// last-row views) folds in, `None` for linears without a prologue, where they agree
    /// and there is one at least: what the node's kernel rounds its output's runs for.
    fn readers_norm(&self) -> Option<Option<&Weight>> {
        let mut readers = Vec::new();
        let mut pending = vec![self.id];
        while let Some(id) = pending.pop() {
            for reader in self.graph.consumers(id) {
                let as_x = self.graph.inputs(reader)[0] == id;
                match &self.graph.node(reader).op {
                    Op::LastRow => pending.push(reader),
                    Op::Linear { prologue, .. } if as_x => {
                        readers.push(prologue.as_ref().map(|p| &p.weight));
                    }
                    Op::MatMul { .. } if as_x => readers.push(None),
                    _ => {}
                }
            }
        }
        let name = |w: Option<&Weight>| w.map(|w| w.name.clone());
        let first = *readers.first()?;
        readers
            .iter()
            .all(|&r| name(r) == name(first))
            .then_some(first)
    }

    /// A linear's norm prologue over its input `x`: the normalised rows (whole), the
    /// rows before it (whole) and the norm weight. Its dispatch runs only in steps
    /// where the linear's matmul has several rows: the single-row kernel folds it in.
    fn prologue(
        &self,
        p: &NormPrologue,
        x: View,
        l: &mut Loader,
    ) -> Result<(View, ActivationId, wgpu::Buffer), GpuError> {
        let label = format!("{} prologue", self.label());
        let rows = if x.last_row { Rows::Fixed(1) } else { x.rows };
        let len = x.len;
        let src = l.whole(&label, x)?;
        let weight = l.norm(&p.weight)?;
        let normed = l.activation(&label, max_rows(rows, l.options) * len as usize)?;
        l.dispatch(
            &label,
            Module::RmsNorm,
            "rms_norm_mul",
            Params::new(&[len, 1, rows.param(), f(p.eps), 0]),
            Grid::Groups { per_row: 1, rows },
            vec![
                Source::Activation(src),
                Source::Buffer(weight.clone()),
                Source::Activation(src),
                Source::Activation(normed),
            ],
        )?;
        // The matmul's single-row kernel applies the norm itself.
        l.runs_in(Steps::SeveralRows);
        Ok((View::whole(normed, rows, len), src, weight))
    }

    fn epilogue(
        &self,
        epilogue: &[Epilogue],
        rows: Rows,
        row_len: u32,
        out: ActivationId,
        l: &mut Loader,
    ) -> Result<(), GpuError> {
        let (steps, norm_weights, rope_tables) = epilogue_steps(epilogue);
        if steps.len() > MAX_EPILOGUE_STEPS {
            return Err(self.unsupported(&format!(
                "{} epilogue steps; the kernel takes {MAX_EPILOGUE_STEPS}",
                steps.len()
            )));
        }
        let vectors = if norm_weights.is_empty() && rope_tables.is_empty() {
            l.unused()
        } else {
            l.vectors(&norm_weights, &rope_tables)?
        };
        let residual = if epilogue.contains(&Epilogue::Residual) {
            Source::Activation(self.whole_input(1, l)?)
        } else {
            Source::Buffer(l.unused())
        };
        let chunk = epilogue_chunk(epilogue)
            .ok_or_else(|| self.unsupported("epilogue steps that couple columns across heads"))?;
        let out_len = if epilogue.iter().any(|s| matches!(s, Epilogue::Gated { .. })) {
            row_len / 2
        } else {
            row_len
        };
        let chunks = out_len.div_ceil(chunk as u32);
        let mut words = vec![
            row_len,
            rows.param(),
            steps.len() as u32,
            chunk as u32,
            chunks,
        ];
        words.resize(8, 0);
        words.extend(steps.iter().flatten());
        l.dispatch(
            &format!("{} epilogue", self.label()),
            Module::Epilogue,
            "epilogue",
            Params::new(&words),
            Grid::Groups {
                per_row: chunks,
                rows,
            },
            vec![Source::Buffer(vectors), residual, Source::Activation(out)],
        )
    }

    /// The fused `attention`. A step of several tokens: the attention dispatch, which
    /// also stores the step's keys and values into a cache of every position; a ring
    /// cache's store follows as its own dispatch. A decode step: the split dispatch,
    /// which stores the step's row first, then the combine.
    fn attention(&self, l: &mut Loader) -> Result<Value, GpuError> {
        let node = self.graph.node(self.id);
        let Op::Attention {
            n_head,
            n_head_kv,
            head_dim,
            scale,
            window,
            k_cache,
            v_cache,
        } = node.op
        else {
            unreachable!("called for attention nodes")
        };
        if head_dim % 16 != 0 || head_dim > 256 || n_head % n_head_kv != 0 {
            return Err(self.unsupported(
                "the GPU attention takes head sizes of multiples of 16 up to 256 and whole groups of query heads",
            ));
        }
        let (q, k, v) = (self.input(0)?, self.input(1)?, self.input(2)?);
        if [&q, &k, &v].iter().any(|x| x.last_row) {
            return Err(self.unsupported("attention reads every row of q, k and v"));
        }
        let ring = ring_slots(&self.graph.caches[k_cache], l.options.context);
        let out_len = (n_head * head_dim) as u32;
        let out = l.activation(&node.label, l.options.max_tokens * out_len as usize)?;
        // A decode step's runs: a maximum and a sum, then head_dim values, per head and
        // run (`runs` in wgsl/self_attention.wgsl).
        let runs = l.activation(
            &format!("{} runs", node.label),
            n_head * MAX_ATTENTION_RUNS * (2 + head_dim),
        )?;
        let out_runs = self
            .output_runs(out_len as usize, false, l)?
            .map(|(runs, _)| runs);
        let write_runs = out_runs.is_some();
        let params = || {
            Params::new(&[
                n_head as u32,
                n_head_kv as u32,
                head_dim as u32,
                f(scale),
                window.unwrap_or(0) as u32,
                ring,
                q.offset,
                q.stride,
                k.offset,
                k.stride,
                v.offset,
                v.stride,
            ])
        };
        let sources = vec![
            Source::Activation(q.activation),
            Source::Activation(k.activation),
            Source::Activation(v.activation),
            Source::Cache(k_cache),
            Source::Cache(v_cache),
            Source::Activation(out),
            Source::Activation(runs),
            match &out_runs {
                Some(runs) => Source::Activation(runs.activation),
                None => Source::Buffer(l.unused_writable()),
            },
        ];
        let module = Module::SelfAttention(l.options.kv_type);
        let heads = Grid::Groups {
            per_row: n_head as u32,
            rows: Rows::Tokens,
        };
        let query_tiles = Grid::QueryTiles {
            heads: n_head as u32,
            tile: query_tile(head_dim as u32),
        };
        l.dispatch(
            &node.label,
            module,
            "attention",
            params(),
            query_tiles,
            sources.clone(),
        )?;
        l.runs_in(Steps::SeveralRows);
        let runs_grid = Grid::AttentionRuns {
            heads: n_head as u32,
            window: window.unwrap_or(0) as u32,
        };
        let split = format!("{} split", node.label);
        l.dispatch_specialised(
            &split,
            module,
            Specialisation::AttentionSplit {
                head_dim: head_dim as u32,
                ring: ring != 0,
                write_runs,
            },
            params(),
            runs_grid,
            sources.clone(),
        )?;
        l.runs_in(Steps::OneRow);
        let combine = format!("{} combine", node.label);
        l.dispatch_specialised(
            &combine,
            module,
            Specialisation::AttentionCombine { write_runs },
            params(),
            heads,
            sources.clone(),
        )?;
        // With one run, the split writes the output itself.
        l.runs_in(Steps::SeveralRuns {
            window: window.unwrap_or(0) as u32,
        });
        if ring != 0 {
            l.dispatch(
                &format!("{} store", node.label),
                Module::SelfAttention(l.options.kv_type),
                "cache_store",
                params(),
                Grid::Items {
                    per_row: (n_head_kv * head_dim) as u32 / 2,
                    rows: Rows::Tokens,
                    per_context: false,
                },
                sources,
            )?;
            l.runs_in(Steps::SeveralRows);
        }
        Ok(Value::Activation(View {
            runs: out_runs,
            ..View::whole(out, Rows::Tokens, out_len)
        }))
    }
}

fn max_rows(rows: Rows, options: GpuOptions) -> usize {
    match rows {
        Rows::Fixed(n) => n as usize,
        Rows::Tokens => options.max_tokens,
    }
}

/// Elements of a tensor in the largest step.
pub(super) fn max_elements(ty: &TensorType, options: GpuOptions) -> usize {
    ty.shape
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => *n,
            Dim::Tokens => options.max_tokens,
            Dim::Context => options.context,
        })
        .product()
}
