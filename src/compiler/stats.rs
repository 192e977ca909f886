//! What the compiler earned, in numbers: nodes and dispatches before and after
//! fusion, arena bytes against the sum of all intermediates, KV bytes against a
//! full-context cache, weight bytes.

use serde::Serialize;

use super::plan::Plan;
use crate::graph::Graph;

/// Kernel launches one step of `g` makes.
pub fn dispatches(g: &Graph) -> usize {
    g.schedule()
        .filter(|&id| g.node(id).op.is_dispatch())
        .count()
}

/// The most kernel launches any one layer makes (nodes labelled `blk.<layer>.…`).
pub fn dispatches_per_layer(g: &Graph, n_layer: usize) -> usize {
    let mut per_layer = vec![0; n_layer];
    for id in g.schedule() {
        let node = g.node(id);
        let layer = node
            .label
            .strip_prefix("blk.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|l| l.parse::<usize>().ok());
        if let Some(l) = layer.filter(|&l| l < n_layer) {
            per_layer[l] += usize::from(node.op.is_dispatch());
        }
    }
    per_layer.into_iter().max().unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub nodes_before: usize,
    pub nodes_after: usize,
    pub dispatches_per_token_before: usize,
    pub dispatches_per_token: usize,
    pub dispatches_per_layer_before: usize,
    pub dispatches_per_layer: usize,
    /// The prefill schedule runs the decode graph at `T = chunk`: as many launches.
    pub dispatches_per_prefill_chunk: usize,
    pub prefill_chunk: usize,
    /// Decode arena (T = 1) and the sum of the decode graph's intermediates.
    pub arena_bytes: u64,
    pub naive_intermediate_bytes: u64,
    pub prefill_arena_bytes: u64,
    pub prefill_naive_intermediate_bytes: u64,
    pub context: usize,
    pub kv_bytes: u64,
    pub kv_bytes_naive: u64,
    /// Weights on the device (blocks padded) and in the GGUF.
    pub weight_bytes: u64,
    pub weight_file_bytes: u64,
    pub repacked_weights: usize,
    pub split_weights: usize,
}

impl Stats {
    pub fn of(plan: &Plan) -> Stats {
        let g = &plan.graph_last;
        let arena = |name: &str| {
            plan.schedule(name)
                .map(|s| (s.arena.bytes, s.arena.naive_bytes))
                .unwrap_or_default()
        };
        let (arena_bytes, naive_intermediate_bytes) = arena("decode");
        let (prefill_arena_bytes, prefill_naive_intermediate_bytes) = arena("prefill");
        let dispatches_per_token = dispatches(g);
        Stats {
            nodes_before: plan.canonical.nodes,
            nodes_after: g.len(),
            dispatches_per_token_before: plan.canonical.dispatches,
            dispatches_per_token,
            dispatches_per_layer_before: plan.canonical.dispatches_per_layer,
            dispatches_per_layer: dispatches_per_layer(g, plan.config.n_layer),
            dispatches_per_prefill_chunk: dispatches_per_token,
            prefill_chunk: plan.options.prefill_chunk.min(plan.context),
            arena_bytes,
            naive_intermediate_bytes,
            prefill_arena_bytes,
            prefill_naive_intermediate_bytes,
            context: plan.context,
            kv_bytes: plan.kv.bytes,
            kv_bytes_naive: plan.kv.naive_bytes,
            weight_bytes: plan.weights.iter().map(|w| w.device_bytes()).sum(),
            weight_file_bytes: plan.weights.iter().map(|w| w.file_bytes()).sum(),
            repacked_weights: plan.weights.iter().filter(|w| w.is_repacked()).count(),
            split_weights: plan.weights.iter().filter(|w| w.parts.len() > 1).count(),
        }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::gguf::summary::human_bytes;
        let pct = |a: u64, b: u64| 100.0 * a as f64 / b.max(1) as f64;
        writeln!(
            f,
            "nodes                {} → {}",
            self.nodes_before, self.nodes_after
        )?;
        writeln!(
            f,
            "dispatches / token   {} → {} ({} → {} per layer)",
            self.dispatches_per_token_before,
            self.dispatches_per_token,
            self.dispatches_per_layer_before,
            self.dispatches_per_layer
        )?;
        writeln!(
            f,
            "dispatches / prefill chunk of {}: {}",
            self.prefill_chunk, self.dispatches_per_prefill_chunk
        )?;
        writeln!(
            f,
            "decode arena         {} of {} intermediates ({:.1}%)",
            human_bytes(self.arena_bytes),
            human_bytes(self.naive_intermediate_bytes),
            pct(self.arena_bytes, self.naive_intermediate_bytes)
        )?;
        writeln!(
            f,
            "prefill arena        {} of {} intermediates ({:.1}%)",
            human_bytes(self.prefill_arena_bytes),
            human_bytes(self.prefill_naive_intermediate_bytes),
            pct(
                self.prefill_arena_bytes,
                self.prefill_naive_intermediate_bytes
            )
        )?;
        writeln!(
            f,
            "KV cache             {} for {} positions; a full-context cache: {} ({:.1}%)",
            human_bytes(self.kv_bytes),
            self.context,
            human_bytes(self.kv_bytes_naive),
            pct(self.kv_bytes, self.kv_bytes_naive)
        )?;
        write!(
            f,
            "weights              {} on the device ({} in the file; {} repacked, {} split)",
            human_bytes(self.weight_bytes),
            human_bytes(self.weight_file_bytes),
            self.repacked_weights,
            self.split_weights
        )
    }
}
