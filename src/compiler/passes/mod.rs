//! The pass pipeline: the canonical graph in, the fused graph out. Each pass is a
//! function over the graph with its own tests on small hand-built graphs; the list
//! below is the only place their order is written. After each pass the graph is
//! compacted (dead nodes dropped, schedule renumbered), so it can be dumped.

mod attention;
mod dequant_matmul;
mod gated_activation;
mod merge_projections;
mod norm_prologue;
mod norm_weight;
mod projection_epilogues;
mod residual;

#[cfg(test)]
pub(crate) mod testing;

use crate::graph::{Graph, NodeId, Op};

/// One named pass.
pub struct Pass {
    pub name: &'static str,
    /// One line: what the pass fuses.
    pub about: &'static str,
    pub run: fn(&mut Graph),
}

/// The passes, in the order they run.
pub const PIPELINE: &[Pass] = &[
    Pass {
        name: "norm-weight",
        about: "RmsNorm then MulWeight → rms_norm_mul",
        run: norm_weight::run,
    },
    Pass {
        name: "dequant-matmul",
        about: "MatMul → linear, reading the quantised weight directly",
        run: dequant_matmul::run,
    },
    Pass {
        name: "attention",
        about: "cache writes, scores, mask, softmax and mix → attention",
        run: attention::run,
    },
    Pass {
        name: "merge-projections",
        about: "linears of one input (Q/K/V, gate/up) → one linear and column views",
        run: merge_projections::run,
    },
    Pass {
        name: "projection-epilogues",
        about: "per-head norm, RoPE and scale of a projection's columns → its epilogue",
        run: projection_epilogues::run,
    },
    Pass {
        name: "gated-activation",
        about: "act(gate) · up of a merged gate/up linear → its epilogue",
        run: gated_activation::run,
    },
    Pass {
        name: "residual",
        about: "residual Add → epilogue of the linear or norm feeding it",
        run: residual::run,
    },
    Pass {
        name: "norm-prologue",
        about: "a row norm read only by linears → their prologue",
        run: norm_prologue::run,
    },
];

/// Looks a pass up by name.
pub fn find(name: &str) -> Option<&'static Pass> {
    PIPELINE.iter().find(|p| p.name == name)
}

/// Runs the passes in order; `after` sees the graph after each (for `--dump-after`).
pub fn run_pipeline(mut graph: Graph, mut after: impl FnMut(&Pass, &Graph)) -> Graph {
    for pass in PIPELINE {
        (pass.run)(&mut graph);
        graph = graph.compact();
        after(pass, &graph);
    }
    graph
}

/// Turns node `id` into `op`, recording that it now does the work of `parts`
/// (which may include `id` itself) in schedule order.
fn fuse_into(g: &mut Graph, id: NodeId, op: Op, parts: &[NodeId]) {
    let mut parts = parts.to_vec();
    parts.sort_unstable();
    let replaces: Vec<String> = parts.iter().flat_map(|&p| g.node(p).origin()).collect();
    let node = g.node_mut(id);
    node.op = op;
    node.replaces = replaces;
}

/// The single input of `id`, when it has exactly one.
fn sole_input(g: &Graph, id: NodeId) -> Option<NodeId> {
    match g.inputs(id).as_slice() {
        [x] => Some(*x),
        _ => None,
    }
}

/// `g`'s node ids in schedule order, collected so the graph can change meanwhile.
fn ids(g: &Graph) -> Vec<NodeId> {
    g.schedule().collect()
}
