//! The plan: what `rustorch-compile` writes and `rustorch-exec` loads instead of
//! rebuilding anything — and the `.rtc` file that holds it.
//!
//! # The `.rtc` format (version 1)
//!
//! ```text
//! offset  size  field
//! 0       8     magic "RTCPLAN\0"
//! 8       4     format version, u32 little-endian (FORMAT_VERSION)
//! 12      8     payload length in bytes, u64 little-endian
//! 20      8     XXH3-64 of the payload, u64 little-endian
//! 28      n     payload: the Plan as JSON (UTF-8)
//! ```
//!
//! The payload's fields are those of [`Plan`]: `model` (the GGUF's path and
//! fingerprint), `config` (the hyper-parameters), `options` (what it was compiled
//! with), `canonical` (node and dispatch counts before fusion), `graph_all` and
//! `graph_last` (the fused graphs as node lists — see `graph::print` for a node's
//! JSON; `inputs` are indices of earlier nodes), `schedules` (per schedule: which
//! graph, `T`, and the arena plan: one slot per node, an arena offset and size or
//! the node a view reads), `weights` (each weight's device layout: block padding
//! and row ranges), and `kv` (one region per cache: positions kept, offset, bytes).
//!
//! The fingerprint is the GGUF's size plus XXH3-64 of its bytes before the data
//! section (header, metadata and tensor table), so a plan refuses another or a
//! re-written model. A version other than this build's, a wrong length or hash, or
//! a payload that does not parse is an error, never a panic.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use super::buffers::{plan_arena, ArenaPlan};
use super::kv::{plan_kv, KvPlan};
use super::layout::{plan_weights, LayoutError, Target, WeightLayout};
use super::passes::{run_pipeline, Pass};
use super::stats::{dispatches, dispatches_per_layer};
use crate::gguf::{GgufError, GgufFile, GgufHeader};
use crate::graph::{DType, Graph, LogitRows, Step};
use crate::model::{ConfigError, ModelConfig};

pub const MAGIC: &[u8; 8] = b"RTCPLAN\0";
pub const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 28;

/// 128 MiB: the storage-buffer binding limit of many devices, lavapipe included.
pub const DEFAULT_MAX_BINDING: u64 = 128 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("{0}")]
    BadOptions(String),
    #[error("{path} is not a rustorch plan (no RTCPLAN magic)")]
    NotAPlan { path: String },
    #[error("{path} is a plan of format version {found}; this build reads version {FORMAT_VERSION}: recompile it with rustorch-compile")]
    UnsupportedVersion { path: String, found: u32 },
    #[error("{path} is corrupted: {reason}")]
    Corrupted { path: String, reason: String },
    #[error("the plan {plan} was compiled from {gguf} ({expected}), but that file is now {found}: recompile the plan")]
    StaleModel {
        plan: String,
        gguf: String,
        expected: Fingerprint,
        found: Fingerprint,
    },
}

/// What identifies a GGUF file: its size and a hash of everything before its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub file_bytes: u64,
    /// XXH3-64 of bytes `[0, data_offset)`.
    pub header_hash: u64,
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes, header hash {:016x}",
            self.file_bytes, self.header_hash
        )
    }
}

impl Fingerprint {
    /// Reads the header bytes of the GGUF at `path` (never its tensor data).
    pub fn of(path: &Path, header: &GgufHeader) -> Result<Fingerprint, PlanError> {
        let io = |source| PlanError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let file_bytes = file.metadata().map_err(io)?.len();
        let mut head = vec![0u8; header.data_offset.min(file_bytes) as usize];
        file.read_exact(&mut head).map_err(io)?;
        Ok(Fingerprint {
            file_bytes,
            header_hash: xxh3_64(&head),
        })
    }
}

/// The GGUF a plan was compiled from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    /// Absolute path at compile time.
    pub path: PathBuf,
    pub fingerprint: Fingerprint,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompileOptions {
    /// Context length the KV cache and arenas are planned for (`None`: the model's own).
    pub context: Option<usize>,
    pub target: Target,
    /// Largest storage buffer one binding may hold; larger weights are split.
    pub max_binding_bytes: u64,
    /// Alignment of every arena and KV offset.
    pub alignment: u64,
    /// `T` of the prefill schedule.
    pub prefill_chunk: usize,
    pub kv_dtype: DType,
}

impl Default for CompileOptions {
    fn default() -> CompileOptions {
        CompileOptions {
            context: None,
            target: Target::Gpu,
            max_binding_bytes: DEFAULT_MAX_BINDING,
            alignment: 256,
            prefill_chunk: 512,
            kv_dtype: DType::F16,
        }
    }
}

/// Size of the canonical (unfused) decode graph, kept for the compiler's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanonicalCounts {
    pub nodes: usize,
    pub dispatches: usize,
    pub dispatches_per_layer: usize,
}

/// Which graph a schedule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Logits {
    /// `graph_last`: logits of the last position (generation).
    Last,
    /// `graph_all`: logits of every position (perplexity, tests).
    All,
}

/// One schedule: a graph run at one step size, with its arena.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub name: String,
    pub logits: Logits,
    pub arena: ArenaPlan,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub model: ModelRef,
    pub config: ModelConfig,
    pub options: CompileOptions,
    /// The context the plan is sized for.
    pub context: usize,
    pub canonical: CanonicalCounts,
    pub graph_all: Graph,
    pub graph_last: Graph,
    /// `decode` (T = 1), `prefill` (T = chunk) and `all_logits` (T = chunk).
    pub schedules: Vec<Schedule>,
    pub weights: Vec<WeightLayout>,
    pub kv: KvPlan,
}

/// The fused graph of a model: the canonical graph through every pass.
pub fn fused_graph(config: &ModelConfig, header: &GgufHeader, logits: LogitRows) -> Graph {
    run_pipeline(Graph::build(config, header, logits), |_, _| {})
}

/// Compiles the GGUF at `path` (already opened as `gguf`): metadata only.
/// `after` sees the decode graph after each pass.
pub fn compile(
    gguf: &GgufFile,
    options: &CompileOptions,
    after: impl FnMut(&Pass, &Graph),
) -> Result<Plan, PlanError> {
    let header = gguf.header();
    let config = ModelConfig::from_gguf(header)?;
    let context = options.context.unwrap_or(config.context_length);
    let chunk = options.prefill_chunk.min(context);
    if context == 0 || chunk == 0 || !options.alignment.is_power_of_two() {
        return Err(PlanError::BadOptions(format!(
            "context ({context}) and prefill chunk ({chunk}) must be positive and the alignment ({}) a power of two",
            options.alignment
        )));
    }
    let path = std::path::absolute(gguf.path()).map_err(|source| PlanError::Io {
        path: gguf.path().display().to_string(),
        source,
    })?;
    let fingerprint = Fingerprint::of(&path, header)?;

    let canonical_last = Graph::build(&config, header, LogitRows::Last);
    let canonical = CanonicalCounts {
        nodes: canonical_last.len(),
        dispatches: dispatches(&canonical_last),
        dispatches_per_layer: dispatches_per_layer(&canonical_last, config.n_layer),
    };
    let graph_last = run_pipeline(canonical_last, after);
    let graph_all = fused_graph(&config, header, LogitRows::All);

    let align = options.alignment;
    let decode = Step {
        past: context - 1,
        tokens: 1,
    };
    let prefill = Step {
        past: context - chunk,
        tokens: chunk,
    };
    let schedules = vec![
        Schedule {
            name: "decode".into(),
            logits: Logits::Last,
            arena: plan_arena(&graph_last, decode, align),
        },
        Schedule {
            name: "prefill".into(),
            logits: Logits::Last,
            arena: plan_arena(&graph_last, prefill, align),
        },
        Schedule {
            name: "all_logits".into(),
            logits: Logits::All,
            arena: plan_arena(&graph_all, prefill, align),
        },
    ];
    let weights = plan_weights(
        &[&graph_last, &graph_all],
        options.target,
        options.max_binding_bytes,
    )?;
    let kv = plan_kv(&graph_last, context, options.kv_dtype, align);
    Ok(Plan {
        model: ModelRef { path, fingerprint },
        config,
        options: options.clone(),
        context,
        canonical,
        graph_all,
        graph_last,
        schedules,
        weights,
        kv,
    })
}

impl Plan {
    pub fn schedule(&self, name: &str) -> Option<&Schedule> {
        self.schedules.iter().find(|s| s.name == name)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let payload = serde_json::to_vec(self).expect("a plan always serialises");
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&xxh3_64(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// Parses a plan file's bytes; `path` only names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &str) -> Result<Plan, PlanError> {
        let corrupted = |reason: String| PlanError::Corrupted {
            path: path.to_string(),
            reason,
        };
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(PlanError::NotAPlan {
                path: path.to_string(),
            });
        }
        if bytes.len() < HEADER_LEN {
            return Err(corrupted(format!(
                "{} bytes is shorter than the {HEADER_LEN}-byte header",
                bytes.len()
            )));
        }
        let word = |at: usize, n: usize| {
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(&bytes[at..at + n]);
            u64::from_le_bytes(b)
        };
        let version = word(8, 4) as u32;
        if version != FORMAT_VERSION {
            return Err(PlanError::UnsupportedVersion {
                path: path.to_string(),
                found: version,
            });
        }
        let (len, hash) = (word(12, 8), word(20, 8));
        let payload = &bytes[HEADER_LEN..];
        if payload.len() as u64 != len {
            return Err(corrupted(format!(
                "the header promises {len} payload bytes, the file has {}",
                payload.len()
            )));
        }
        if xxh3_64(payload) != hash {
            return Err(corrupted(
                "the payload's hash does not match the header".into(),
            ));
        }
        serde_json::from_slice(payload).map_err(|e| corrupted(format!("payload: {e}")))
    }

    pub fn save(&self, path: &Path) -> Result<(), PlanError> {
        std::fs::write(path, self.to_bytes()).map_err(|source| PlanError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        let bytes = std::fs::read(path).map_err(|source| PlanError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Plan::from_bytes(&bytes, &path.display().to_string())
    }

    /// Whether the file at `path` starts with the plan magic.
    pub fn is_plan_file(path: &Path) -> Result<bool, PlanError> {
        let mut magic = [0u8; 8];
        let mut file = File::open(path).map_err(|source| PlanError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let n = file.read(&mut magic).map_err(|source| PlanError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(n == magic.len() && &magic == MAGIC)
    }

    /// Opens the GGUF the plan was compiled from, refusing a file whose fingerprint
    /// differs. `plan_path` names the plan in errors.
    pub fn open_model(&self, plan_path: &Path) -> Result<GgufFile, PlanError> {
        let gguf = GgufFile::open(&self.model.path)?;
        let found = Fingerprint::of(&self.model.path, gguf.header())?;
        if found != self.model.fingerprint {
            return Err(PlanError::StaleModel {
                plan: plan_path.display().to_string(),
                gguf: self.model.path.display().to_string(),
                expected: self.model.fingerprint,
                found,
            });
        }
        Ok(gguf)
    }
}
