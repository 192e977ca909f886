//! Several linears reading one input (Q, K and V; gate and up) become one linear
//! whose output row is their outputs side by side; each former output becomes a
//! `columns` view of it. One dispatch reads the input once instead of n times.

use std::collections::BTreeMap;

use super::{fuse_into, ids, sole_input};
use crate::graph::{Cols, Dim, Graph, NodeId, Op, TensorType};

/// The merged node's label: the members' common prefix and their suffixes joined,
/// `blk.0.attn_q`, `blk.0.attn_k`, `blk.0.attn_v` → `blk.0.attn_q+k+v`.
fn merged_label(labels: &[&str]) -> String {
    let first = labels[0];
    let mut prefix = first.len();
    for l in &labels[1..] {
        prefix = first
            .bytes()
            .zip(l.bytes())
            .take(prefix)
            .take_while(|(a, b)| a == b)
            .count();
    }
    while !first.is_char_boundary(prefix) {
        prefix -= 1;
    }
    let suffixes: Vec<&str> = labels.iter().map(|l| &l[prefix..]).collect();
    format!("{}{}", &first[..prefix], suffixes.join("+"))
}

/// A linear that can join a merge: one input, no prologue or epilogue yet.
fn plain_linear(g: &Graph, id: NodeId) -> Option<NodeId> {
    match &g.node(id).op {
        Op::Linear {
            prologue: None,
            epilogue,
            ..
        } if epilogue.is_empty() => sole_input(g, id),
        _ => None,
    }
}

pub fn run(g: &mut Graph) {
    let mut by_input: BTreeMap<NodeId, Vec<NodeId>> = BTreeMap::new();
    for id in ids(g) {
        if let Some(input) = plain_linear(g, id) {
            by_input.entry(input).or_default().push(id);
        }
    }
    for members in by_input.into_values().filter(|m| m.len() > 1) {
        merge(g, &members);
    }
}

fn merge(g: &mut Graph, members: &[NodeId]) {
    let merged = members[0];
    let mut weights = Vec::new();
    let mut views = Vec::new();
    let mut start = 0;
    for &m in members {
        let Op::Linear { weights: w, .. } = &g.node(m).op else {
            unreachable!("members are linears")
        };
        let len: usize = w.iter().map(|w| w.rows).sum();
        weights.extend(w.iter().cloned());
        let node = g.node(m);
        let cols = Cols { start, len };
        start += len;
        let view = g.add(
            Op::Columns { cols },
            node.ty.clone(),
            node.label.clone(),
            &[],
        );
        g.replace_uses(m, view);
        views.push(view);
    }
    let labels: Vec<String> = members.iter().map(|&m| g.node(m).label.clone()).collect();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let op = Op::Linear {
        weights,
        prologue: None,
        epilogue: Vec::new(),
    };
    fuse_into(g, merged, op, members);
    let node = g.node_mut(merged);
    node.label = merged_label(&labels);
    node.ty = with_row_len(&node.ty, start);
    for view in views {
        g.set_inputs(view, &[merged]);
    }
}

/// The type of `ty` with `n` values per row.
pub(super) fn with_row_len(ty: &TensorType, n: usize) -> TensorType {
    let mut ty = ty.clone();
    *ty.shape.last_mut().expect("rows") = Dim::Fixed(n);
    ty
}

#[cfg(test)]
mod tests {
    use super::super::testing::{after, llama_layer, op_names};
    use super::*;

    #[test]
    fn labels_merge_on_their_common_prefix() {
        let labels = ["blk.0.attn_q", "blk.0.attn_k", "blk.0.attn_v"];
        assert_eq!(merged_label(&labels), "blk.0.attn_q+k+v");
        assert_eq!(
            merged_label(&["blk.1.ffn_gate", "blk.1.ffn_up"]),
            "blk.1.ffn_gate+up"
        );
    }

    #[test]
    fn qkv_and_gate_up_become_one_linear_each_with_column_views() {
        let mut g = after(llama_layer(), "attention");
        run(&mut g);
        let g = g.compact();
        assert_eq!(op_names(&g).iter().filter(|n| **n == "linear").count(), 5);
        let qkv = g
            .schedule()
            .find(|&id| g.node(id).label == "blk.0.attn_q+k+v")
            .unwrap();
        assert_eq!(g.node(qkv).ty.row_len(), Some(32));
        let views: Vec<Cols> = g
            .consumers(qkv)
            .iter()
            .map(|&c| match g.node(c).op {
                Op::Columns { cols } => cols,
                _ => panic!("QKV is read through views"),
            })
            .collect();
        assert_eq!(
            views,
            [
                Cols { start: 0, len: 16 },
                Cols { start: 16, len: 8 },
                Cols { start: 24, len: 8 }
            ]
        );
        assert_eq!(
            g.node(qkv).replaces,
            [
                "matmul blk.0.attn_q",
                "matmul blk.0.attn_k",
                "matmul blk.0.attn_v"
            ]
        );
    }
}
