//! A loaded model and a session over it: the KV cache, the position, and steps that
//! turn tokens into logits.

use std::path::Path;

use super::cpu::{CpuInterpreter, RunError};
use super::gpu::{
    GpuContext, GpuError, GpuExecutor, GpuKvCache, GpuOptions, PendingToken, StepInput, TOP_K_MAX,
};
use super::{argmax, top_k, Candidate, DecodeInput, KvCache, KvType};
use crate::compiler::plan::fused_graph;
use crate::compiler::{Plan, PlanError};
use crate::gguf::{GgufError, GgufFile};
use crate::graph::{Dim, Graph, LogitRows};
use crate::model::{ConfigError, ModelConfig};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("{path}: {source}")]
    Config { path: String, source: ConfigError },
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Plan(#[from] PlanError),
}

/// A GGUF model with its configuration and graphs (one yielding logits for every
/// position, one for the last position only; both share one cache layout). The
/// graphs are the compiler's fused ones unless loaded with [`Model::load_unfused`].
pub struct Model {
    pub gguf: GgufFile,
    pub config: ModelConfig,
    pub graph_all: Graph,
    pub graph_last: Graph,
    /// The unfused graph (every position's logits), for the GPU executor.
    pub graph_canonical: Graph,
}

impl Model {
    /// Loads a `.gguf` (fusing its graph in memory) or a `.rtc` plan (running the
    /// graphs it holds, over the GGUF it names, which must be the one it was
    /// compiled from). The two are told apart by their magic bytes.
    pub fn load(path: impl AsRef<Path>) -> Result<Model, LoadError> {
        let path = path.as_ref();
        if Plan::is_plan_file(path)? {
            return Model::from_plan(path);
        }
        Model::from_gguf(path, |config, gguf, rows| {
            fused_graph(config, gguf.header(), rows)
        })
    }

    /// Loads a `.gguf` with its canonical, unfused graphs (the reference the fused
    /// graphs are tested against).
    pub fn load_unfused(path: impl AsRef<Path>) -> Result<Model, LoadError> {
        Model::from_gguf(path.as_ref(), |config, gguf, rows| {
            Graph::build(config, gguf.header(), rows)
        })
    }

    fn from_gguf(
        path: &Path,
        build: impl Fn(&ModelConfig, &GgufFile, LogitRows) -> Graph,
    ) -> Result<Model, LoadError> {
        let gguf = GgufFile::open(path)?;
        let config = ModelConfig::from_gguf(gguf.header()).map_err(|source| LoadError::Config {
            path: path.display().to_string(),
            source,
        })?;
        let graph_all = build(&config, &gguf, LogitRows::All);
        let graph_last = build(&config, &gguf, LogitRows::Last);
        let graph_canonical = Graph::build(&config, gguf.header(), LogitRows::All);
        Ok(Model {
            gguf,
            config,
            graph_all,
            graph_last,
            graph_canonical,
        })
    }

    fn from_plan(path: &Path) -> Result<Model, LoadError> {
        let plan = Plan::load(path)?;
        let gguf = plan.open_model(path)?;
        let graph_canonical = Graph::build(&plan.config, gguf.header(), LogitRows::All);
        Ok(Model {
            gguf,
            config: plan.config,
            graph_canonical,
            graph_all: plan.graph_all,
            graph_last: plan.graph_last,
        })
    }

    /// A session on the CPU interpreter with a cache of `context` positions (the
    /// model's own length when `None`).
    pub fn session(
        &self,
        context: Option<usize>,
        kv_type: KvType,
        decode_input: DecodeInput,
    ) -> Result<Session<'_>, RunError> {
        let capacity = context.unwrap_or(self.config.context_length);
        Ok(Session {
            model: self,
            engine: Engine::Cpu {
                all: CpuInterpreter::new(&self.graph_all, &self.gguf)?
                    .with_decode_input(decode_input),
                last: CpuInterpreter::new(&self.graph_last, &self.gguf)?
                    .with_decode_input(decode_input),
                kv: KvCache::new(&self.graph_all, capacity, kv_type),
            },
            past: 0,
        })
    }

    /// A session on a GPU with a cache of `context` positions: the fused graph
    /// (every row's logits), in steps of at most [`GPU_STEP_TOKENS`] tokens, fewer where
    /// a step's largest activation would not fit one storage binding of the device
    /// (Gemma 3's 262,144 logits a token on lavapipe's 128 MiB).
    pub fn gpu_session<'m>(
        &'m self,
        gpu: &'m GpuContext,
        context: Option<usize>,
        kv_type: KvType,
        decode_input: DecodeInput,
    ) -> Result<Session<'m>, GpuError> {
        let capacity = context.unwrap_or(self.config.context_length);
        let row_bytes = largest_token_row(&self.graph_all, capacity) as u64;
        let fitting = gpu.limits().max_storage_buffer_binding_size / row_bytes.max(1);
        let options = GpuOptions {
            max_tokens: GPU_STEP_TOKENS.min(capacity).min(fitting.max(1) as usize),
            context: capacity,
            kv_type,
            decode_input,
            round_once: true,
        };
        let executor = GpuExecutor::new(&self.graph_all, &self.gguf, gpu, options)?;
        let kv = executor.kv_cache()?;
        Ok(Session {
            model: self,
            engine: Engine::Gpu {
                executor: Box::new(executor),
                kv,
                capacity,
                step: options.max_tokens,
            },
            past: 0,
        })
    }
}

/// One conversation's state: what is in the KV cache and where the next token goes.
pub struct Session<'m> {
    model: &'m Model,
    engine: Engine<'m>,
    past: usize,
}

/// Most tokens one GPU step runs; longer prompts run in chunks.
pub const GPU_STEP_TOKENS: usize = 512;

/// Where a session's steps run, with that backend's KV cache.
enum Engine<'m> {
    Cpu {
        all: CpuInterpreter<'m>,
        last: CpuInterpreter<'m>,
        kv: KvCache,
    },
    Gpu {
        // Boxed: an executor is several times the size of the CPU's state.
        executor: Box<GpuExecutor<'m>>,
        kv: GpuKvCache,
        capacity: usize,
        /// Most tokens a step runs.
        step: usize,
    },
}

/// Bytes of the graph's largest activation per token of a step (with `capacity`
/// positions where a dim is the context).
fn largest_token_row(graph: &Graph, capacity: usize) -> usize {
    graph
        .schedule()
        .map(|id| &graph.node(id).ty.shape)
        .filter(|shape| shape.contains(&Dim::Tokens))
        .map(|shape| {
            let per_token: usize = shape
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => *n,
                    Dim::Tokens => 1,
                    Dim::Context => capacity,
                })
                .product();
            per_token * 4
        })
        .max()
        .unwrap_or(4)
}

fn gpu_failure(e: GpuError) -> RunError {
    match e {
        GpuError::Run(e) => e,
        other => RunError::Device(other.to_string()),
    }
}

/// Runs `tokens` in chunks of `step` from position `*past` (which it advances past each
/// chunk that ran, so that a failure leaves the position after the last that did),
/// `run` running each; returns what `run` returned for each chunk.
fn in_chunks<T>(
    tokens: &[u32],
    step: usize,
    past: &mut usize,
    mut run: impl FnMut(&[u32], usize) -> Result<T, GpuError>,
) -> Result<Vec<T>, RunError> {
    let mut results = Vec::new();
    for chunk in tokens.chunks(step) {
        results.push(run(chunk, *past).map_err(gpu_failure)?);
        *past += chunk.len();
    }
    Ok(results)
}

/// Runs `tokens` as [`in_chunks`] does, every chunk but the last reading nothing back;
/// returns what `run_last` returned for the last chunk.
fn last_in_chunks<T>(
    executor: &GpuExecutor,
    kv: &mut GpuKvCache,
    tokens: &[u32],
    step: usize,
    past: &mut usize,
    run_last: impl FnOnce(&GpuExecutor, &mut GpuKvCache, &[u32], usize) -> Result<T, GpuError>,
) -> Result<T, RunError> {
    let last_start = match tokens.len() {
        0 => return Err(RunError::NoTokens),
        n => (n - 1) / step * step,
    };
    let (before, last) = tokens.split_at(last_start);
    in_chunks(before, step, past, |chunk, at| {
        executor.advance(chunk, at, kv)
    })?;
    let result = run_last(executor, kv, last, *past).map_err(gpu_failure)?;
    *past += last.len();
    Ok(result)
}

impl<'m> Session<'m> {
    pub fn model(&self) -> &Model {
        self.model
    }

    /// Tokens already in the cache.
    pub fn position(&self) -> usize {
        self.past
    }

    pub fn context(&self) -> usize {
        match &self.engine {
            Engine::Cpu { kv, .. } => kv.capacity(),
            Engine::Gpu { capacity, .. } => *capacity,
        }
    }

    /// True when the steps run on a GPU.
    pub fn on_gpu(&self) -> bool {
        matches!(self.engine, Engine::Gpu { .. })
    }

    /// The GPU executor and its KV cache, when the steps run on a GPU: for profiling and
    /// device figures. Steps run through them leave the session's position alone.
    pub fn gpu_parts(&mut self) -> Option<(&GpuExecutor<'m>, &mut GpuKvCache)> {
        match &mut self.engine {
            Engine::Gpu { executor, kv, .. } => Some((&*executor, kv)),
            Engine::Cpu { .. } => None,
        }
    }

    /// Forgets everything: the next step starts at position 0.
    pub fn reset(&mut self) {
        self.past = 0;
    }

    /// Keeps only the first `n` cached positions (later steps overwrite the rest).
    pub fn truncate(&mut self, n: usize) {
        self.past = self.past.min(n);
    }

    /// Forgets `n` cached positions after the first `keep` (see [`KvCache::discard`]).
    pub fn discard(&mut self, keep: usize, n: usize) -> Result<(), RunError> {
        match &mut self.engine {
            Engine::Cpu { kv, .. } => kv.discard(keep, n, self.past),
            Engine::Gpu { executor, kv, .. } => executor
                .discard(kv, keep, n, self.past)
                .map_err(gpu_failure)?,
        }
        self.past -= n;
        Ok(())
    }

    /// Runs `tokens` and returns the logits of every one (`tokens.len() × n_vocab`).
    pub fn logits_all(&mut self, tokens: &[u32]) -> Result<Vec<f32>, RunError> {
        match &mut self.engine {
            Engine::Cpu { all, kv, .. } => {
                let logits = all.run(tokens, self.past, kv)?;
                self.past += tokens.len();
                Ok(logits)
            }
            Engine::Gpu {
                executor, kv, step, ..
            } => Ok(in_chunks(tokens, *step, &mut self.past, |chunk, past| {
                executor.run(chunk, past, kv)
            })?
            .concat()),
        }
    }

    /// Runs `tokens` and returns the index of the last one's largest logit; a GPU takes
    /// the argmax on the device and reads back 4 bytes.
    pub fn argmax_last(&mut self, tokens: &[u32]) -> Result<u32, RunError> {
        let Engine::Gpu {
            executor, kv, step, ..
        } = &mut self.engine
        else {
            let logits = self.logits_last(tokens)?;
            return Ok(argmax(&logits) as u32);
        };
        last_in_chunks(
            executor,
            kv,
            tokens,
            *step,
            &mut self.past,
            |e, kv, last, past| e.run_argmax(last, past, kv),
        )
    }

    /// Runs `tokens` and returns the last one's `k` largest logits with their tokens,
    /// in the sampler's order; a GPU takes up to [`TOP_K_MAX`] of them on the device
    /// and reads back `k` pairs.
    pub fn top_k_last(&mut self, tokens: &[u32], k: usize) -> Result<Vec<Candidate>, RunError> {
        let Engine::Gpu {
            executor, kv, step, ..
        } = &mut self.engine
        else {
            return Ok(top_k(&self.logits_last(tokens)?, k));
        };
        let k = k.min(executor.output_row_len());
        if k > TOP_K_MAX {
            return Ok(top_k(&self.logits_last(tokens)?, k));
        }
        last_in_chunks(
            executor,
            kv,
            tokens,
            *step,
            &mut self.past,
            |e, kv, last, past| e.run_top_k(last, past, kv, k),
        )
    }

    /// Submits a greedy step on the GPU and returns before it runs (None on the CPU):
    /// over `Some(tokens)`, or over the argmax of the greedy step before for None, which
    /// never left the device. The position moves past the step's tokens at once; the
    /// token comes from [`Self::read_token`]. See [`GpuExecutor::submit_greedy`].
    pub(super) fn submit_greedy(
        &mut self,
        tokens: Option<&[u32]>,
    ) -> Result<Option<PendingToken>, RunError> {
        let Engine::Gpu {
            executor, kv, step, ..
        } = &mut self.engine
        else {
            return Ok(None);
        };
        let pending = match tokens {
            Some(tokens) => last_in_chunks(
                executor,
                kv,
                tokens,
                *step,
                &mut self.past,
                |e, kv, last, past| e.submit_greedy(StepInput::Host(last), past, kv),
            )?,
            None => {
                let pending = executor
                    .submit_greedy(StepInput::Device, self.past, kv)
                    .map_err(gpu_failure)?;
                self.past += 1;
                pending
            }
        };
        Ok(Some(pending))
    }

    /// Waits for a greedy step of [`Self::submit_greedy`] and returns its argmax.
    pub(super) fn read_token(&self, pending: PendingToken) -> Result<u32, RunError> {
        match &self.engine {
            Engine::Gpu { executor, .. } => executor.read_token(pending).map_err(gpu_failure),
            Engine::Cpu { .. } => Err(RunError::Device(
                "a CPU session has no greedy step on a device to read".into(),
            )),
        }
    }

    /// Runs `tokens` and returns the logits of the last one (`n_vocab`).
    pub fn logits_last(&mut self, tokens: &[u32]) -> Result<Vec<f32>, RunError> {
        match &mut self.engine {
            Engine::Cpu { last, kv, .. } => {
                let logits = last.run(tokens, self.past, kv)?;
                self.past += tokens.len();
                Ok(logits)
            }
            Engine::Gpu {
                executor, kv, step, ..
            } => last_in_chunks(
                executor,
                kv,
                tokens,
                *step,
                &mut self.past,
                |e, kv, last, past| e.run_last_row(last, past, kv),
            ),
        }
    }
}
