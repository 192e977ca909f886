//! Printers: text (one line per node), Graphviz DOT, and JSON.
//!
//! JSON schema:
//! ```text
//! { "nodes":  [ { "id": 3, "label": "blk.0.attn_q", "inputs": [2],
//!                 "op": { "op": "mat_mul", "weight": { "name", "ty", "rows", "cols" } },
//!                 "type": { "dtype": "F32", "shape": ["Tokens", { "Fixed": 576 }] },
//!                 "replaces": ["rms_norm blk.0.attn_norm.rms", …] } ],
//!   "caches": [ { "name", "layer", "row_len", "window", "rotary", "ring" } ],
//!   "output": 812 }
//! ```
//! `op` carries the op's name under `"op"` and its attributes beside it; shapes use
//! `"Tokens"` for T, `"Context"` for P+T and `{"Fixed": n}` otherwise. `replaces` lists
//! the canonical nodes (`op label`) a fused node stands for; it is empty for canonical nodes.

use std::fmt::Write;

use serde_json::json;

use super::ir::{Cols, DType, Dim, Epilogue, Op, Rope, TensorType, Weight};
use super::{Graph, NodeId};

fn dim(d: &Dim) -> String {
    match d {
        Dim::Fixed(n) => n.to_string(),
        Dim::Tokens => "T".into(),
        Dim::Context => "P+T".into(),
    }
}

/// `f32[T, 576]`.
pub fn type_str(ty: &TensorType) -> String {
    let dtype = match ty.dtype {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::I32 => "i32",
    };
    let dims: Vec<String> = ty.shape.iter().map(dim).collect();
    format!("{dtype}[{}]", dims.join(", "))
}

/// `blk.0.attn_q.weight Q4_1[576x576]`.
fn weight_str(w: &Weight) -> String {
    if w.rows == 1 {
        format!("{} {}[{}]", w.name, w.ty, w.cols)
    } else {
        format!("{} {}[{}x{}]", w.name, w.ty, w.rows, w.cols)
    }
}

fn rope_str(rope: &Rope) -> String {
    let Rope {
        mode,
        head_dim,
        n_rot,
        base,
        freq_scale,
    } = rope;
    let scale = if *freq_scale == 1.0 {
        String::new()
    } else {
        format!(" scale={freq_scale}")
    };
    format!("{mode:?} head={head_dim} rot={n_rot} base={base}{scale}")
}

fn cols_str(c: &Cols) -> String {
    format!("[{}..{}]", c.start, c.end())
}

/// One epilogue step: `rope[0..576] Adjacent head=64 …`.
fn epilogue_str(step: &Epilogue) -> String {
    match step {
        Epilogue::Norm {
            cols,
            eps,
            group,
            weight,
        } => format!(
            "rms_norm_mul{} eps={eps} group={group} {}",
            cols_str(cols),
            weight_str(weight)
        ),
        Epilogue::Rope { cols, rope } => format!("rope{} {}", cols_str(cols), rope_str(rope)),
        Epilogue::Scale { cols, factor } => format!("scale{} x{factor}", cols_str(cols)),
        Epilogue::Gated { act } => format!("{act:?}(gate) * up"),
        Epilogue::Residual => "+ residual".into(),
    }
}

/// The op's attributes, for the text dump: `blk.0.attn_q Q4_1 576x576`, `eps=1e-5`, …
pub fn attrs(op: &Op) -> String {
    match op {
        Op::Embed { table: w } | Op::MulWeight { weight: w } | Op::MatMul { weight: w } => {
            weight_str(w)
        }
        Op::RmsNormMul {
            eps,
            group,
            weight,
            residual,
        } => {
            let add = if *residual { " + residual" } else { "" };
            format!("eps={eps} group={group} {}{add}", weight_str(weight))
        }
        Op::Linear { weights, .. } => match weights.as_slice() {
            [w] => weight_str(w),
            ws => format!("{} weights side by side", ws.len()),
        },
        Op::Columns { cols } => cols_str(cols),
        Op::Attention {
            n_head,
            n_head_kv,
            head_dim,
            scale,
            window,
            k_cache,
            v_cache,
        } => {
            let mask = match window {
                Some(w) => format!("causal window={w}"),
                None => "causal".into(),
            };
            format!("heads={n_head}/{n_head_kv} d={head_dim} scale={scale} {mask} caches #{k_cache},#{v_cache}")
        }
        Op::Scale { factor } => format!("x{factor}"),
        Op::RmsNorm { eps, group } => format!("eps={eps} group={group}"),
        Op::Rope(rope) => rope_str(rope),
        Op::CacheWrite { cache } => format!("cache #{cache}"),
        Op::AttnScores {
            n_head,
            n_head_kv,
            head_dim,
            scale,
        } => format!("heads={n_head}/{n_head_kv} d={head_dim} scale={scale}"),
        Op::AttnMask { window: Some(w) } => format!("causal window={w}"),
        Op::AttnMask { window: None } => "causal".into(),
        Op::AttnMix {
            n_head,
            n_head_kv,
            head_dim,
        } => format!("heads={n_head}/{n_head_kv} d={head_dim}"),
        Op::TokenIds | Op::Softmax | Op::Add | Op::Mul | Op::Silu | Op::GeluTanh | Op::LastRow => {
            String::new()
        }
    }
}

fn inputs_str(g: &Graph, id: NodeId) -> String {
    let ins: Vec<String> = g
        .inputs(id)
        .iter()
        .map(|i| format!("%{}", i.index()))
        .collect();
    ins.join(", ")
}

/// The indented lines under a fused node: its prologue, epilogue and what it replaced.
fn fused_details(op: &Op, replaces: &[String]) -> Vec<String> {
    let mut lines = Vec::new();
    if let Op::Linear {
        weights,
        prologue,
        epilogue,
    } = op
    {
        if weights.len() > 1 {
            let mut start = 0;
            for w in weights {
                let cols = Cols { start, len: w.rows };
                lines.push(format!("weight    {} → {}", weight_str(w), cols_str(&cols)));
                start += w.rows;
            }
        }
        if let Some(p) = prologue {
            lines.push(format!(
                "prologue  rms_norm_mul eps={} {}",
                p.eps,
                weight_str(&p.weight)
            ));
        }
        for step in epilogue {
            lines.push(format!("epilogue  {}", epilogue_str(step)));
        }
    }
    if !replaces.is_empty() {
        lines.push(format!("replaces  {}", replaces.join(", ")));
    }
    lines
}

impl Graph {
    /// One line per node: `%12 = matmul(%11) blk.0.attn_q Q4_1[576x576] : f32[T, 576]  # blk.0.attn_q`.
    pub fn to_text(&self) -> String {
        self.to_text_with(|_| None)
    }

    /// The text dump with a note after each node's type (the compiler passes each
    /// node's buffer slot). Fused nodes get indented lines: prologue, epilogue
    /// steps, and the canonical nodes they replaced.
    pub fn to_text_with(&self, note: impl Fn(NodeId) -> Option<String>) -> String {
        let mut out = String::from(
            "# %id = op(inputs)  attributes  : output type  [buffer]  # place in the model\n\
             # T = tokens this step, P+T = positions a query sees; under a fused node, the\n\
             # work it does besides its matmul and the canonical nodes it replaced.\n",
        );
        for id in self.schedule() {
            let n = self.node(id);
            let call = format!("{}({})", n.op.name(), inputs_str(self, id));
            let note = note(id).map(|s| format!("{s}  ")).unwrap_or_default();
            let line = format!(
                "%{:<4} = {:<22} {:<44} : {:<20} {note}# {}",
                id.index(),
                call,
                attrs(&n.op),
                type_str(&n.ty),
                n.label
            );
            let _ = writeln!(out, "{}", line.trim_end());
            for detail in fused_details(&n.op, &n.replaces) {
                let _ = writeln!(out, "{:9}{detail}", "");
            }
        }
        let _ = writeln!(out, "output = %{}", self.output.index());
        out
    }

    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph model {\n  node [shape=box, fontname=monospace];\n");
        for id in self.schedule() {
            let n = self.node(id);
            let mut label = format!("{}\\n{}\\n{}", n.label, n.op.name(), type_str(&n.ty));
            for detail in fused_details(&n.op, &[]) {
                label.push_str(&format!("\\n{detail}"));
            }
            let _ = writeln!(
                out,
                "  n{} [label=\"{}\"];",
                id.index(),
                label.replace('"', "'")
            );
            for input in self.inputs(id) {
                let _ = writeln!(out, "  n{} -> n{};", input.index(), id.index());
            }
        }
        out.push_str("}\n");
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        let nodes: Vec<serde_json::Value> = self
            .schedule()
            .map(|id| {
                let n = self.node(id);
                let inputs: Vec<usize> = self.inputs(id).iter().map(|i| i.index()).collect();
                json!({ "id": id.index(), "label": n.label, "inputs": inputs, "op": n.op, "type": n.ty, "replaces": n.replaces })
            })
            .collect();
        json!({ "nodes": nodes, "caches": self.caches, "output": self.output.index() })
    }
}
