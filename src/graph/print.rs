//! Printers: text (one line per node), Graphviz DOT, and JSON.
//!
//! JSON schema:
//! ```text
//! { "nodes":  [ { "id": 3, "label": "blk.0.attn_q", "inputs": [2],
//!                 "op": { "op": "mat_mul", "weight": { "name", "ty", "rows", "cols" } },
//!                 "type": { "dtype": "F32", "shape": ["Tokens", { "Fixed": 576 }] } } ],
//!   "caches": [ { "name", "layer", "row_len", "window" } ],
//!   "output": 812 }
//! ```
//! `op` carries the op's name under `"op"` and its attributes beside it; shapes use
//! `"Tokens"` for T, `"Context"` for P+T and `{"Fixed": n}` otherwise.

use std::fmt::Write;

use serde_json::json;

use super::ir::{DType, Dim, Op, Rope, TensorType};
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

/// The op's attributes, for the text dump: `blk.0.attn_q Q4_1 576x576`, `eps=1e-5`, …
pub fn attrs(op: &Op) -> String {
    match op {
        Op::Embed { table: w } | Op::MulWeight { weight: w } | Op::MatMul { weight: w } => {
            if w.rows == 1 {
                format!("{} {}[{}]", w.name, w.ty, w.cols)
            } else {
                format!("{} {}[{}x{}]", w.name, w.ty, w.rows, w.cols)
            }
        }
        Op::Scale { factor } => format!("x{factor}"),
        Op::RmsNorm { eps, group } => format!("eps={eps} group={group}"),
        Op::Rope(Rope {
            mode,
            head_dim,
            n_rot,
            base,
            freq_scale,
        }) => {
            let scale = if *freq_scale == 1.0 {
                String::new()
            } else {
                format!(" scale={freq_scale}")
            };
            format!("{mode:?} head={head_dim} rot={n_rot} base={base}{scale}")
        }
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

impl Graph {
    /// One line per node: `%12 = matmul(%11) blk.0.attn_q Q4_1[576x576] : f32[T, 576]  # blk.0.attn_q`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for id in self.schedule() {
            let n = self.node(id);
            let call = format!("{}({})", n.op.name(), inputs_str(self, id));
            let _ = writeln!(
                out,
                "%{:<4} = {:<22} {:<44} : {:<20} # {}",
                id.index(),
                call,
                attrs(&n.op),
                type_str(&n.ty),
                n.label
            );
        }
        let _ = writeln!(out, "output = %{}", self.output.index());
        out
    }

    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph model {\n  node [shape=box, fontname=monospace];\n");
        for id in self.schedule() {
            let n = self.node(id);
            let label = format!("{}\\n{}\\n{}", n.label, n.op.name(), type_str(&n.ty));
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
                json!({ "id": id.index(), "label": n.label, "inputs": inputs, "op": n.op, "type": n.ty })
            })
            .collect();
        json!({ "nodes": nodes, "caches": self.caches, "output": self.output.index() })
    }
}
