//! The WGSL modules the executor builds, assembled from `wgsl/`: the prelude, then for
//! kernels that read weights `weights.wgsl` and the weight type's `quant/*.wgsl`, then
//! the kernel family's file. Every module is complete (each override has a default),
//! so each can be validated and translated on its own.
//!
//! `rustorch-compile --emit-wgsl DIR` writes a model's modules as `DIR/NAME.wgsl`; with
//! `RUSTORCH_WGSL_DIR=DIR` set, the executor builds each module from its file there
//! when there is one, so that a kernel can be edited and timed without a rebuild.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::gguf::GgmlType;
use crate::graph::{Graph, Op};
use crate::runtime::{DecodeInput, KvType};

use super::fold::FOLD_GATED;

/// The variable naming a directory of module files that replace the built-in ones.
pub const WGSL_DIR_VARIABLE: &str = "RUSTORCH_WGSL_DIR";

macro_rules! wgsl {
    ($name:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/wgsl/", $name))
    };
}

const PRELUDE: &str = wgsl!("prelude.wgsl");
const WEIGHTS: &str = wgsl!("weights.wgsl");
const ACTIVATIONS: &str = wgsl!("activations.wgsl");
const ROTARY: &str = wgsl!("rotary.wgsl");
const INT8: &str = wgsl!("int8.wgsl");

/// How the decode matmul sums its invocations' values over the workgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// By a tree in workgroup memory, a barrier a halving, on any adapter
    /// (wgsl/reduce/tree.wgsl).
    Tree,
    /// In each subgroup's registers first, then over the subgroups (one barrier), where
    /// the device has subgroups of 4 or more (wgsl/reduce/subgroups.wgsl).
    Subgroups,
}

/// A kernel family, specialised by weight type where it reads weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Module {
    Embed(GgmlType),
    Matmul(GgmlType),
    Epilogue,
    Elementwise,
    RmsNorm,
    Rope,
    KvCache(KvType),
    /// The context shift: moves a cache's rows and turns its keys back.
    KvShift(KvType),
    Attention(KvType),
    SelfAttention(KvType),
    /// The k largest logits of the last row (greedy decoding's argmax is k = 1).
    TopK,
    /// The bandwidth probe of `rustorch-exec bench`.
    Copy,
}

/// How a kernel sees a storage buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
}

use Access::{Read, ReadWrite};

/// The decode matmul's entry point, specialised by [`DecodeKernel`].
pub const DECODE_MATMUL: &str = "matmul_decode";

/// A specialisation of the decode matmul: the values of its override constants in
/// wgsl/matmul.wgsl.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecodeKernel {
    /// The epilogue folded into its stores (`FOLD_*` there, [`super::fold`] here).
    pub fold: u32,
    /// Groups of four rows a workgroup: 1, 2 or 4, as [`DecodeKernel::new`] says.
    pub quads: u32,
    /// x rounded to 8 bits before the dot products ([`DecodeInput::Int8`]).
    pub round_x: bool,
    /// Invocations a workgroup: 64, or 128 as [`DecodeKernel::new`] says, times the
    /// groups with `teams` (256 at most).
    pub threads: u32,
    /// Each group of rows computed by a team of the invocations (`TEAMS`).
    pub teams: bool,
    /// x's runs loaded as its producer rounded them (`READ_RUNS`).
    pub read_runs: bool,
    /// The output's runs stored rounded for the next kernel (`WRITE_RUNS`), times the
    /// reader's norm weight (`RUNS_NORMED`).
    pub write_runs: bool,
    pub runs_normed: bool,
}

/// The matrix a decode matmul multiplies x by, as far as its specialisation depends
/// on it.
#[derive(Debug, Clone, Copy)]
pub struct DecodeMatrix {
    pub rows: u32,
    pub cols: u32,
    pub ty: GgmlType,
    /// Whether the kernel applies the linear's norm prologue itself.
    pub prologue: bool,
    /// x in 8 bits comes rounded by the kernel that made it ([`RUN_RECORD_BYTES`]).
    pub x_rounded: bool,
    /// The output is read whole by decode matmuls: with x in 8 bits the kernel rounds
    /// and stores each run of 8 outputs once for them.
    pub rounds_output: bool,
    /// Those readers fold a norm prologue: the stored runs are the outputs times its
    /// weight.
    pub runs_normed: bool,
}

/// Where x in 8 bits is rounded once, by the kernel that makes it, rather than in
/// every workgroup of every matmul that reads it: a record of 16 bytes a run of 8
/// outputs (wgsl/matmul.wgsl's `out_runs`), which the kernel's workgroup makes whole
/// (a gated one of four groups of rows, another of two groups a run), read by the
/// matmuls after it (`x_runs`). The records lie beside the f32 output, which longer
/// steps and other kernels read.
pub const RUN_RECORD_BYTES: usize = 16;

/// Workgroups a decode matmul of Q4_0 or Q4_K weights keeps when it takes more than
/// four rows a workgroup: eight rows where the grid still has this many, and sixteen
/// with x in 8 bits (whose dot products need fewer registers), so that x's loads (and
/// rounding) serve more rows. Measured on an H100 (BENCHMARKS.md, session 7): gate+up
/// of 11264 and 28672 rows gain; Q+K+V of 6144 rows and the output projections of 4096
/// lose with eight, every Q6_K matrix (whose dot product loads nine words a row) too,
/// and Mistral's gate+up in f32 with sixteen (61 → 81 µs; 48 → 44 with x in 8 bits).
pub const WIDE_GROUPS: u32 = 1024;

/// Row length from which a decode matmul of four rows a workgroup without a folded
/// prologue takes 128 invocations, with x in 8 bits or Q4_0 weights: each invocation
/// then still has slices of 32 to load, and twice as many loads are in flight.
/// Measured on an H100 (BENCHMARKS.md, session 8), with x in 8 bits: Mistral's down
/// projections (14336 values a row) 36.7 → 33.1 µs (Q6_K) and 33.4 → 28.4 (Q4_K), its
/// attention output (4096) 16.4 → 14.3, TinyLlama's down (5632, Q4_0) 14.4 → 13.7; in
/// f32 TinyLlama's down 18.9 → 16.9, but Mistral's lost (40.2 → 43.3, 37.9 → 40.3,
/// 20.0 → 21.4). With 128 invocations the kernels that fold a prologue or take more
/// rows mostly lost (Mistral's Q+K+V 20.6 → 24.2, TinyLlama's vocabulary projection
/// 38.0 → 45.6, gate+up 18.7 → 23.6), and TinyLlama's attention output (2048) was level.
pub const LONG_ROWS: u32 = 4096;

impl DecodeKernel {
    /// The decode matmul of `matrix`.
    pub fn new(fold: u32, matrix: DecodeMatrix, input: DecodeInput) -> DecodeKernel {
        let round_x = input == DecodeInput::Int8;
        let write_runs = round_x && matrix.rounds_output;
        let compact = matches!(matrix.ty, GgmlType::Q4_0 | GgmlType::Q4K);
        let most = if round_x { 4 } else { 2 };
        // A workgroup storing runs makes whole ones: 8 gated outputs take four groups.
        let least = match (write_runs, fold) {
            (false, _) => 1,
            (true, FOLD_GATED) => 4,
            (true, _) => 2,
        };
        let wide = [4, 2]
            .into_iter()
            .find(|&q| compact && q <= most && matrix.rows / (4 * q) >= WIDE_GROUPS)
            .unwrap_or(1);
        let quads = wide.max(least);
        // Groups taken only to make whole runs get a team of invocations each, as many
        // as one group alone would. Measured on an H100: with all invocations on every
        // group, Mistral-7B's down projections took 25.9 → 30.3 µs and TinyLlama's
        // gate+up 16.8 (teams: 14.8). Mistral's gate+up, whose own dispatch is level
        // either way (37.8, 37.9 µs), makes its decode step 2.4% shorter as teams (one
        // pass: 2765 → 2719 µs, BENCHMARKS.md, session 12): a gated kernel making whole
        // runs takes its four groups as teams also where they fit the grid anyway.
        let teams = quads > wide || (write_runs && fold == FOLD_GATED);
        let long = (quads == 1 || teams)
            && !matrix.prologue
            && matrix.cols >= LONG_ROWS
            && (round_x || matrix.ty == GgmlType::Q4_0);
        let per_group = if long { 128 } else { 64 };
        DecodeKernel {
            fold,
            quads,
            round_x,
            threads: if teams {
                (quads * per_group).min(256)
            } else {
                per_group
            },
            teams,
            read_runs: round_x && matrix.x_rounded,
            write_runs,
            runs_normed: write_runs && matrix.runs_normed,
        }
    }

    pub fn rows_per_group(self) -> u32 {
        4 * self.quads
    }

    pub fn constants(self) -> [(&'static str, f64); 8] {
        let flag = |on: bool| f64::from(u8::from(on));
        [
            ("FOLD", f64::from(self.fold)),
            ("QUADS", f64::from(self.quads)),
            ("ROUND_X", flag(self.round_x)),
            ("THREADS", f64::from(self.threads)),
            ("READ_RUNS", flag(self.read_runs)),
            ("WRITE_RUNS", flag(self.write_runs)),
            ("RUNS_NORMED", flag(self.runs_normed)),
            ("TEAMS", flag(self.teams)),
        ]
    }
}

/// A decode step's attention, specialised to the model's head length (`HEAD_DIM` in
/// wgsl/self_attention.wgsl).
pub const ATTENTION_SPLIT: &str = "attention_split";

/// A decode step's sum of the split's runs of keys, where it has several.
pub const ATTENTION_COMBINE: &str = "attention_combine";

/// An entry point the executor builds only with its override constants set, the first
/// time a dispatch needs that specialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Specialisation {
    /// The decode matmul ([`DECODE_MATMUL`]).
    Decode(DecodeKernel),
    /// A decode step's attention ([`ATTENTION_SPLIT`]) over heads of `head_dim` values,
    /// its caches rings or not, its output stored also as runs in 8 bits (`WRITE_RUNS`,
    /// where the step has one run of keys) or not.
    AttentionSplit {
        head_dim: u32,
        ring: bool,
        write_runs: bool,
    },
    /// The sum of a decode step's runs of keys ([`ATTENTION_COMBINE`]), its output
    /// stored also as runs in 8 bits or not.
    AttentionCombine { write_runs: bool },
}

impl Specialisation {
    /// The entry points built only specialised.
    pub const ENTRIES: [&'static str; 3] = [DECODE_MATMUL, ATTENTION_SPLIT, ATTENTION_COMBINE];

    pub fn entry(self) -> &'static str {
        match self {
            Specialisation::Decode(_) => DECODE_MATMUL,
            Specialisation::AttentionSplit { .. } => ATTENTION_SPLIT,
            Specialisation::AttentionCombine { .. } => ATTENTION_COMBINE,
        }
    }

    pub fn constants(self) -> Vec<(&'static str, f64)> {
        let flag = |on: bool| f64::from(u8::from(on));
        match self {
            Specialisation::Decode(kernel) => kernel.constants().to_vec(),
            Specialisation::AttentionSplit {
                head_dim,
                ring,
                write_runs,
            } => vec![
                ("HEAD_DIM", f64::from(head_dim)),
                ("RING", flag(ring)),
                ("WRITE_RUNS", flag(write_runs)),
            ],
            Specialisation::AttentionCombine { write_runs } => {
                vec![("WRITE_RUNS", flag(write_runs))]
            }
        }
    }
}

impl Module {
    /// Every module the executor can build.
    pub fn all() -> Vec<Module> {
        let mut all = vec![
            Module::Elementwise,
            Module::RmsNorm,
            Module::Rope,
            Module::Epilogue,
            Module::TopK,
            Module::Copy,
        ];
        for kv in [KvType::F16, KvType::F32] {
            all.extend([
                Module::KvCache(kv),
                Module::KvShift(kv),
                Module::Attention(kv),
                Module::SelfAttention(kv),
            ]);
        }
        for ty in GgmlType::ALL {
            all.push(Module::Embed(ty));
            all.push(Module::Matmul(ty));
        }
        all
    }

    /// The modules a graph's dispatches may use: those of its weights' types, and every
    /// module without a weight type (both cache types: the cache type is chosen when a
    /// session opens), the bandwidth probe aside.
    pub fn used_by(graph: &Graph) -> Vec<Module> {
        let mut used: BTreeSet<Module> = Module::all()
            .into_iter()
            .filter(|m| !matches!(m, Module::Embed(_) | Module::Matmul(_) | Module::Copy))
            .collect();
        for id in graph.schedule() {
            match &graph.node(id).op {
                Op::Embed { table } => {
                    used.insert(Module::Embed(table.ty));
                }
                Op::MatMul { weight } => {
                    used.insert(Module::Matmul(weight.ty));
                }
                Op::Linear { weights, .. } => {
                    used.extend(weights.iter().map(|w| Module::Matmul(w.ty)));
                }
                _ => {}
            }
        }
        used.into_iter().collect()
    }

    /// The source the executor builds, its workgroup sums made as `reduction` says: the
    /// module's file in `$RUSTORCH_WGSL_DIR` when there is one (with a notice on
    /// stderr), else the built-in source.
    pub fn source_to_build(self, reduction: Reduction) -> std::io::Result<String> {
        Ok(replacement(&self.file_name(reduction))?.unwrap_or_else(|| self.source_with(reduction)))
    }

    /// The reductions the module has a source for: the decode matmul's sums over its
    /// workgroup in subgroups too (the other kernels' reductions are the tree's).
    pub fn reductions(self) -> &'static [Reduction] {
        match self {
            Module::Matmul(_) => &[Reduction::Tree, Reduction::Subgroups],
            _ => &[Reduction::Tree],
        }
    }

    /// The name of the module's file (`--emit-wgsl`, `$RUSTORCH_WGSL_DIR`) without `.wgsl`.
    pub fn file_name(self, reduction: Reduction) -> String {
        match reduction {
            Reduction::Subgroups if self.reductions().contains(&reduction) => {
                format!("{}_subgroups", self.name())
            }
            _ => self.name(),
        }
    }

    pub fn name(self) -> String {
        match self {
            Module::Embed(ty) => format!("embed_{}", ty.name().to_lowercase()),
            Module::Matmul(ty) => format!("matmul_{}", ty.name().to_lowercase()),
            Module::Epilogue => "epilogue".into(),
            Module::Elementwise => "elementwise".into(),
            Module::RmsNorm => "rms_norm".into(),
            Module::Rope => "rope".into(),
            Module::KvCache(kv) => format!("kv_cache_{}", kv.name()),
            Module::KvShift(kv) => format!("kv_shift_{}", kv.name()),
            Module::Attention(kv) => format!("attention_{}", kv.name()),
            Module::SelfAttention(kv) => format!("self_attention_{}", kv.name()),
            Module::TopK => "top_k".into(),
            Module::Copy => "copy".into(),
        }
    }

    pub fn entry_points(self) -> &'static [&'static str] {
        match self {
            Module::Embed(_) => &["embed"],
            Module::Matmul(_) => &[DECODE_MATMUL, "matmul_prefill"],
            Module::Epilogue => &["epilogue"],
            Module::Elementwise => &["scale", "mul", "add", "silu", "gelu_tanh", "copy_view"],
            Module::RmsNorm => &["rms_norm", "rms_norm_mul"],
            Module::Rope => &["rope"],
            Module::KvCache(_) => &["cache_write"],
            Module::KvShift(_) => &["cache_shift"],
            Module::Attention(_) => &["attn_scores", "attn_mask", "softmax", "attn_mix"],
            Module::SelfAttention(_) => &[
                "attention",
                ATTENTION_SPLIT,
                ATTENTION_COMBINE,
                "cache_store",
            ],
            Module::TopK => &["top_k_chunks", "top_k_merge"],
            Module::Copy => &["copy"],
        }
    }

    /// The storage buffers at bindings 2, 3, …; binding 0 is the step (read-only
    /// storage) and binding 1 the dispatch's parameters (uniform) in every module.
    pub fn storage(self) -> &'static [Access] {
        match self {
            Module::Embed(_) => &[Read, ReadWrite],
            // weights, x, residual, out, x as vec4, weights as vec4, norm weight as vec4,
            // a folded rotation's inverse frequencies, x rounded to f16 (the tensor-core
            // kernels'), x's and the output's runs in 8 bits (`RUN_RECORD_BYTES`) and
            // the norm weight of the output's readers
            Module::Matmul(_) => &[
                Read, Read, Read, ReadWrite, Read, Read, Read, Read, ReadWrite, Read, ReadWrite,
                Read,
            ],
            // norm weights, residual, rows
            Module::Epilogue | Module::Elementwise | Module::Attention(_) => {
                &[Read, Read, ReadWrite]
            }
            // x, weight, residual, out
            Module::RmsNorm => &[Read, Read, Read, ReadWrite],
            // q, k, v, k cache, v cache, out, a decode step's runs, the output's runs in
            // 8 bits (`RUN_RECORD_BYTES`)
            Module::SelfAttention(_) => &[
                Read, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite,
            ],
            // in, out, the rotation's inverse frequencies
            Module::Rope | Module::KvShift(_) => &[Read, ReadWrite, Read],
            // logits, each chunk's best, the best
            Module::TopK => &[Read, ReadWrite, ReadWrite],
            Module::KvCache(_) | Module::Copy => &[Read, ReadWrite],
        }
    }

    /// The module's complete WGSL source, for any adapter.
    pub fn source(self) -> String {
        self.source_with(Reduction::Tree)
    }

    /// The module's complete WGSL source with the reduction given, where it has that
    /// one (see [`Module::reductions`]).
    pub fn source_with(self, reduction: Reduction) -> String {
        let parts: Vec<&str> = match self {
            Module::Embed(ty) => [&[PRELUDE, WEIGHTS], quant(ty), &[wgsl!("embed.wgsl")]].concat(),
            Module::Matmul(ty) => {
                // (naga 30 takes subgroup operations without WGSL's `enable subgroups;`,
                // which it rejects, where the device has the feature.)
                let reduce = match reduction {
                    Reduction::Tree => wgsl!("reduce/tree.wgsl"),
                    Reduction::Subgroups => wgsl!("reduce/subgroups.wgsl"),
                };
                [
                    &[PRELUDE, WEIGHTS, ACTIVATIONS, ROTARY, INT8],
                    quant(ty),
                    dot32(ty),
                    &[wgsl!("matmul.wgsl"), reduce],
                ]
                .concat()
            }
            Module::Epilogue => vec![PRELUDE, ACTIVATIONS, ROTARY, wgsl!("epilogue.wgsl")],
            Module::Elementwise => vec![PRELUDE, ACTIVATIONS, wgsl!("elementwise.wgsl")],
            Module::RmsNorm => vec![PRELUDE, wgsl!("rms_norm.wgsl")],
            Module::Rope => vec![PRELUDE, ROTARY, wgsl!("rope.wgsl")],
            Module::KvCache(kv) => vec![PRELUDE, cache_pairs(kv), wgsl!("kv_cache.wgsl")],
            Module::KvShift(kv) => {
                vec![PRELUDE, cache_pairs(kv), ROTARY, wgsl!("kv_shift.wgsl")]
            }
            Module::Attention(kv) => vec![PRELUDE, cache_pairs(kv), wgsl!("attention.wgsl")],
            Module::SelfAttention(kv) => {
                vec![PRELUDE, cache_pairs(kv), INT8, wgsl!("self_attention.wgsl")]
            }
            Module::TopK => vec![PRELUDE, wgsl!("top_k.wgsl")],
            Module::Copy => vec![PRELUDE, wgsl!("copy.wgsl")],
        };
        parts.join("\n")
    }
}

/// The source that defines a cache type's `CachePair` and its conversions.
fn cache_pairs(kv: KvType) -> &'static str {
    match kv {
        KvType::F16 => wgsl!("kv/f16.wgsl"),
        KvType::F32 => wgsl!("kv/f32.wgsl"),
    }
}

/// The sources that define the decode matmul's `columns32` and `dot32` for one weight
/// type: word-wise for the types that models mostly use, else by `dequant8`.
fn dot32(ty: GgmlType) -> &'static [&'static str] {
    const CONSECUTIVE: &str = wgsl!("dot32/consecutive.wgsl");
    match ty {
        GgmlType::Q4_0 => &[CONSECUTIVE, wgsl!("dot32/q4_0.wgsl")],
        GgmlType::Q8_0 => &[CONSECUTIVE, wgsl!("dot32/q8_0.wgsl")],
        GgmlType::Q4K => &[wgsl!("dot32/q4_k.wgsl")],
        GgmlType::Q6K => &[wgsl!("dot32/q6_k.wgsl")],
        _ => &[CONSECUTIVE, wgsl!("dot32/generic.wgsl")],
    }
}

/// The sources that define `dequant8` for one weight type.
fn quant(ty: GgmlType) -> &'static [&'static str] {
    const K_SCALES: &str = wgsl!("quant/k_scales.wgsl");
    const IQ4_LEVELS: &str = wgsl!("quant/iq4_levels.wgsl");
    match ty {
        GgmlType::F32 => &[wgsl!("quant/f32.wgsl")],
        GgmlType::F16 => &[wgsl!("quant/f16.wgsl")],
        GgmlType::BF16 => &[wgsl!("quant/bf16.wgsl")],
        GgmlType::Q4_0 => &[wgsl!("quant/q4_0.wgsl")],
        GgmlType::Q4_1 => &[wgsl!("quant/q4_1.wgsl")],
        GgmlType::Q5_0 => &[wgsl!("quant/q5_0.wgsl")],
        GgmlType::Q5_1 => &[wgsl!("quant/q5_1.wgsl")],
        GgmlType::Q8_0 => &[wgsl!("quant/q8_0.wgsl")],
        GgmlType::Q2K => &[wgsl!("quant/q2_k.wgsl")],
        GgmlType::Q3K => &[wgsl!("quant/q3_k.wgsl")],
        GgmlType::Q4K => &[K_SCALES, wgsl!("quant/q4_k.wgsl")],
        GgmlType::Q5K => &[K_SCALES, wgsl!("quant/q5_k.wgsl")],
        GgmlType::Q6K => &[wgsl!("quant/q6_k.wgsl")],
        GgmlType::IQ4NL => &[IQ4_LEVELS, wgsl!("quant/iq4_nl.wgsl")],
        GgmlType::IQ4XS => &[IQ4_LEVELS, wgsl!("quant/iq4_xs.wgsl")],
    }
}

/// The entry point of the prefill matmul on cooperative matrices (wgsl/matmul_coop.wgsl).
pub const COOP_PREFILL: &str = "matmul_prefill_coop";

/// The entry point that rounds a tensor-core matmul's x to f16 before it.
pub const COOP_X_HALF: &str = "matmul_x_half";

/// Tokens of its output tile (`COOP_TOKENS` there); its rows are whole tiles of 64.
pub const COOP_TOKENS: u32 = 256;

const COOP_MATMUL: &str = wgsl!("matmul_coop.wgsl");

/// The tensor-core matmul module: a matmul module's `source` with the prefill kernel on
/// cooperative matrices after it, and the `enable` directives it needs before it.
pub fn coop_matmul_source(source: &str) -> String {
    with_coop(source, COOP_MATMUL)
}

/// As [`coop_matmul_source`], with the tensor-core part from `matmul_coop.wgsl` in
/// `$RUSTORCH_WGSL_DIR` when there is one.
pub fn coop_matmul_source_to_build(source: &str) -> std::io::Result<String> {
    let coop = replacement("matmul_coop")?;
    Ok(with_coop(source, coop.as_deref().unwrap_or(COOP_MATMUL)))
}

fn with_coop(source: &str, coop: &str) -> String {
    [
        "enable f16;\nenable wgpu_cooperative_matrix;\n",
        source,
        coop,
    ]
    .join("\n")
}

/// The file `NAME.wgsl` in `$RUSTORCH_WGSL_DIR`, where the variable is set and the file
/// is there (with a notice on stderr).
fn replacement(name: &str) -> std::io::Result<Option<String>> {
    let Some(dir) = std::env::var_os(WGSL_DIR_VARIABLE) else {
        return Ok(None);
    };
    let file = PathBuf::from(dir).join(format!("{name}.wgsl"));
    if !file.exists() {
        return Ok(None);
    }
    eprintln!("rustorch: module {name} from {}", file.display());
    std::fs::read_to_string(file).map(Some)
}

/// Row lengths the weight kernels accept: multiples of the prefill matmul's chunk of 32
/// columns (every quantised row is one, its blocks being 32 or 256 weights).
pub const COLS_MULTIPLE: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::gpu::{executor, fold, top_k};

    /// The value of WGSL constant `name` in `module`'s source, as naga folds it.
    fn wgsl_const(source: &str, name: &str) -> u32 {
        let module = naga::front::wgsl::parse_str(source).expect("the module parses");
        let (_, constant) = module
            .constants
            .iter()
            .find(|(_, c)| c.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no constant {name}"));
        match module.global_expressions[constant.init] {
            naga::Expression::Literal(naga::Literal::U32(v)) => v,
            ref other => panic!("{name} is {other:?}"),
        }
    }

    /// Eight rows a workgroup (sixteen with x in 8 bits) only for Q4_0 and Q4_K, and
    /// only where the grid keeps `WIDE_GROUPS` workgroups; 128 invocations only for rows
    /// of `LONG_ROWS` or more without a folded prologue, with x in 8 bits or Q4_0.
    #[test]
    fn decode_kernels_take_more_rows_and_invocations_only_where_measured_to_gain() {
        let matrix = |rows, cols, ty, prologue| DecodeMatrix {
            rows,
            cols,
            ty,
            prologue,
            x_rounded: false,
            rounds_output: false,
            runs_normed: false,
        };
        let kernel = |m, input| DecodeKernel::new(0, m, input);
        let quads = |rows, ty, input| kernel(matrix(rows, 4096, ty, true), input).quads;
        let threads = |rows, cols, ty, prologue, input| {
            kernel(matrix(rows, cols, ty, prologue), input).threads
        };
        let (f32, int8) = (DecodeInput::F32, DecodeInput::Int8);
        // Mistral-7B's gate+up, TinyLlama's, Q+K+V, and an output projection.
        assert_eq!(quads(28672, GgmlType::Q4K, f32), 2);
        assert_eq!(quads(28672, GgmlType::Q4K, int8), 4);
        assert_eq!(quads(11264, GgmlType::Q4_0, int8), 2);
        assert_eq!(quads(6144, GgmlType::Q4K, int8), 1);
        assert_eq!(quads(32000, GgmlType::Q6K, int8), 1);
        assert_eq!(quads(32000, GgmlType::Q8_0, f32), 1);
        // Mistral-7B's down and attention output projections, TinyLlama's; Q+K+V.
        assert_eq!(threads(4096, 14336, GgmlType::Q6K, false, int8), 128);
        assert_eq!(threads(4096, 14336, GgmlType::Q6K, false, f32), 64);
        assert_eq!(threads(4096, 4096, GgmlType::Q4K, false, int8), 128);
        assert_eq!(threads(2048, 5632, GgmlType::Q4_0, false, f32), 128);
        assert_eq!(threads(2048, 2048, GgmlType::Q4_0, false, int8), 64);
        assert_eq!(threads(6144, 4096, GgmlType::Q4K, true, int8), 64);
        let wide = kernel(matrix(16384, 4096, GgmlType::Q4_0, false), int8);
        assert_eq!(wide.rows_per_group(), 16);
        assert_eq!(
            DecodeKernel { fold: 2, ..wide }.constants(),
            [
                ("FOLD", 2.0),
                ("QUADS", 4.0),
                ("ROUND_X", 1.0),
                ("THREADS", 64.0),
                ("READ_RUNS", 0.0),
                ("WRITE_RUNS", 0.0),
                ("RUNS_NORMED", 0.0),
                ("TEAMS", 0.0),
            ]
        );
    }

    /// A gated kernel that stores its output's runs takes four groups (8 outputs, one
    /// run) whatever its type and rows, as teams, another two groups at least; groups
    /// taken for that alone get a team of as many invocations as one group would. Only
    /// with x in 8 bits, as the kernel that loads them.
    #[test]
    fn only_decode_kernels_in_8_bits_exchange_rounded_runs() {
        let gated = DecodeMatrix {
            rows: 3072,
            cols: 576,
            ty: GgmlType::Q4_1,
            prologue: true,
            x_rounded: false,
            rounds_output: true,
            runs_normed: false,
        };
        let int8 = DecodeKernel::new(FOLD_GATED, gated, DecodeInput::Int8);
        assert!(int8.write_runs && !int8.read_runs && !int8.runs_normed && int8.teams);
        assert_eq!((int8.rows_per_group(), int8.threads), (16, 256));
        // Mistral-7B's gate+up, four groups wide anyway, as teams too.
        let mistral = DecodeMatrix {
            rows: 28672,
            cols: 4096,
            ty: GgmlType::Q4K,
            ..gated
        };
        let int8 = DecodeKernel::new(FOLD_GATED, mistral, DecodeInput::Int8);
        assert!(int8.write_runs && int8.teams);
        assert_eq!((int8.rows_per_group(), int8.threads), (16, 256));
        let f32 = DecodeKernel::new(FOLD_GATED, gated, DecodeInput::F32);
        assert!(!f32.write_runs);
        assert_eq!(f32.rows_per_group(), 4);
        // Mistral-7B's down projection: it reads the gated runs and stores the residual
        // stream's for the next layer's normed Q+K+V.
        let down = DecodeMatrix {
            rows: 4096,
            cols: 14336,
            ty: GgmlType::Q6K,
            prologue: false,
            x_rounded: true,
            rounds_output: true,
            runs_normed: true,
        };
        let int8 = DecodeKernel::new(0, down, DecodeInput::Int8);
        assert!(int8.read_runs && int8.write_runs && int8.runs_normed && int8.teams);
        assert_eq!((int8.rows_per_group(), int8.threads), (8, 256));
        let short = DecodeMatrix { cols: 2048, ..down };
        let int8 = DecodeKernel::new(0, short, DecodeInput::Int8);
        assert_eq!((int8.rows_per_group(), int8.threads), (8, 128));
        let f32 = DecodeKernel::new(0, down, DecodeInput::F32);
        assert!(!f32.read_runs && !f32.write_runs && !f32.runs_normed);
        assert_eq!(f32.rows_per_group(), 4);
    }

    /// Each constant that a kernel and the executor both need has one value on both sides.
    #[test]
    fn the_wgsl_and_rust_copies_of_a_constant_agree() {
        let attention = Module::SelfAttention(KvType::F16).source();
        assert_eq!(
            wgsl_const(&attention, "MAX_RUNS"),
            executor::MAX_ATTENTION_RUNS as u32
        );
        assert_eq!(
            wgsl_const(&attention, "ONE_RUN_BLOCKS"),
            executor::ONE_RUN_BLOCKS
        );
        let top_k = Module::TopK.source();
        assert_eq!(wgsl_const(&top_k, "TOP_K_MAX"), top_k::TOP_K_MAX as u32);
        assert_eq!(wgsl_const(&top_k, "CHUNK"), top_k::CHUNK);
        let coop = coop_matmul_source(&Module::Matmul(GgmlType::Q4K).source());
        assert_eq!(wgsl_const(&coop, "COOP_TOKENS"), COOP_TOKENS);
        assert_eq!(wgsl_const(&coop, "TILE"), executor::MATMUL_TILE);
        let matmul = Module::Matmul(GgmlType::Q4K).source();
        assert_eq!(wgsl_const(&matmul, "FOLD_NONE"), fold::FOLD_NONE);
        assert_eq!(wgsl_const(&matmul, "FOLD_ROPE"), fold::FOLD_ROPE);
        assert_eq!(wgsl_const(&matmul, "FOLD_GATED"), fold::FOLD_GATED);
    }
}
