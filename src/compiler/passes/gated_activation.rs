//! The gated activation joins the merged gate/up projection's epilogue:
//! `Mul(act(columns gate), columns up)` → `linear[gate | up]` with epilogue
//! `act(gate) · up`, whose output is half as wide. The gate and up values never
//! leave registers.

use super::merge_projections::with_row_len;
use super::{ids, sole_input};
use crate::graph::{Cols, Epilogue, Graph, NodeId, Op};
use crate::model::Activation;

/// The columns a view takes of `linear`, if `id` is a view of it read only by `reader`.
fn view_of(g: &Graph, id: NodeId, reader: NodeId) -> Option<(NodeId, Cols)> {
    let Op::Columns { cols } = g.node(id).op else {
        return None;
    };
    (g.sole_consumer(id) == Some(reader)).then_some((sole_input(g, id)?, cols))
}

pub fn run(g: &mut Graph) {
    for id in ids(g) {
        if g.node(id).op != Op::Mul {
            continue;
        }
        let [act_id, up] = g.inputs(id)[..] else {
            continue;
        };
        let act = match g.node(act_id).op {
            Op::Silu => Activation::Silu,
            Op::GeluTanh => Activation::GeluTanh,
            _ => continue,
        };
        let Some(gate) = sole_input(g, act_id).filter(|_| g.sole_consumer(act_id) == Some(id))
        else {
            continue;
        };
        let (Some((linear, gate_cols)), Some((linear_up, up_cols))) =
            (view_of(g, gate, act_id), view_of(g, up, id))
        else {
            continue;
        };
        let Op::Linear {
            weights, epilogue, ..
        } = &g.node(linear).op
        else {
            continue;
        };
        let halves = weights.len() == 2
            && gate_cols
                == Cols {
                    start: 0,
                    len: weights[0].rows,
                }
            && up_cols
                == Cols {
                    start: weights[0].rows,
                    len: weights[1].rows,
                }
            && weights[0].rows == weights[1].rows;
        if linear != linear_up || !epilogue.is_empty() || !halves {
            continue;
        }
        let (act_node, mul_node) = (g.node(act_id).clone(), g.node(id).clone());
        let half = gate_cols.len;
        let target = g.node_mut(linear);
        target.absorb(&act_node);
        target.absorb(&mul_node);
        target.ty = with_row_len(&target.ty, half);
        if let Op::Linear { epilogue, .. } = &mut target.op {
            epilogue.push(Epilogue::Gated { act });
        }
        g.replace_uses(id, linear);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{after, llama_layer, op_names};
    use super::*;

    #[test]
    fn silu_gate_times_up_becomes_the_gate_up_epilogue() {
        let mut g = after(llama_layer(), "projection-epilogues");
        run(&mut g);
        let g = g.compact();
        let names = op_names(&g);
        assert!(!names.contains(&"silu") && !names.contains(&"mul"));
        let gate_up = g
            .schedule()
            .find(|&id| g.node(id).label == "blk.0.ffn_gate+up")
            .unwrap();
        let node = g.node(gate_up);
        assert_eq!(node.ty.row_len(), Some(32));
        assert!(matches!(
            &node.op,
            Op::Linear { epilogue, .. } if epilogue == &[Epilogue::Gated { act: Activation::Silu }]
        ));
        assert_eq!(
            node.replaces,
            [
                "matmul blk.0.ffn_gate",
                "matmul blk.0.ffn_up",
                "silu blk.0.ffn_act",
                "mul blk.0.ffn_gated"
            ]
        );
        // The down projection reads the gated values directly.
        let down = g.consumers(gate_up);
        assert_eq!(g.node(down[0]).label, "blk.0.ffn_down");
    }
}
