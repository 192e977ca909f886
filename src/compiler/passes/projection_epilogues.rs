//! Row-local ops on a projection's columns move into the projection's epilogue:
//! Gemma's per-head Q/K norm, RoPE on Q and K, and the scale of Q. The op becomes
//! a view of the projection; the rotation happens while the values are in registers.

use super::{ids, sole_input};
use crate::graph::{Cols, Epilogue, Graph, NodeId, Op};

/// The epilogue step standing for `op` applied to columns `cols`, if it can be one.
fn as_step(op: &Op, cols: Cols) -> Option<Epilogue> {
    match op {
        Op::Rope(rope) if cols.len.is_multiple_of(rope.head_dim) => {
            Some(Epilogue::Rope { cols, rope: *rope })
        }
        Op::Scale { factor } => Some(Epilogue::Scale {
            cols,
            factor: *factor,
        }),
        Op::RmsNormMul {
            eps,
            group,
            weight,
            residual: false,
        } if cols.len.is_multiple_of(*group) => Some(Epilogue::Norm {
            cols,
            eps: *eps,
            group: *group,
            weight: weight.clone(),
        }),
        _ => None,
    }
}

/// `linear → columns → op` where the view is read only by `op` and the linear's
/// epilogue so far works column-wise: returns the linear and the step.
fn absorbable(g: &Graph, id: NodeId) -> Option<(NodeId, Epilogue)> {
    let view = sole_input(g, id)?;
    let Op::Columns { cols } = g.node(view).op else {
        return None;
    };
    let linear = sole_input(g, view)?;
    let Op::Linear { epilogue, .. } = &g.node(linear).op else {
        return None;
    };
    let column_wise = epilogue.iter().all(|s| {
        matches!(
            s,
            Epilogue::Rope { .. } | Epilogue::Scale { .. } | Epilogue::Norm { .. }
        )
    });
    if g.sole_consumer(view) != Some(id) || !column_wise {
        return None;
    }
    Some((linear, as_step(&g.node(id).op, cols)?))
}

pub fn run(g: &mut Graph) {
    for id in ids(g) {
        let Some((linear, step)) = absorbable(g, id) else {
            continue;
        };
        let view = sole_input(g, id).expect("checked");
        let absorbed = g.node(id).clone();
        let target = g.node_mut(linear);
        target.absorb(&absorbed);
        if let Op::Linear { epilogue, .. } = &mut target.op {
            epilogue.push(step);
        }
        let cols = match g.node(view).op {
            Op::Columns { cols } => cols,
            _ => unreachable!("checked"),
        };
        // The op's node becomes the view of the now-transformed columns.
        let node = g.node_mut(id);
        node.op = Op::Columns { cols };
        node.replaces.clear();
        g.set_inputs(id, &[linear]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{after, llama_layer, op_names};
    use super::*;

    #[test]
    fn rope_of_q_and_k_moves_into_the_qkv_epilogue() {
        let mut g = after(llama_layer(), "merge-projections");
        run(&mut g);
        let g = g.compact();
        assert!(!op_names(&g).contains(&"rope"));
        let qkv = g
            .schedule()
            .find(|&id| g.node(id).label == "blk.0.attn_q+k+v")
            .unwrap();
        let Op::Linear { epilogue, .. } = &g.node(qkv).op else {
            panic!()
        };
        let ropes: Vec<Cols> = epilogue
            .iter()
            .map(|s| match s {
                Epilogue::Rope { cols, .. } => *cols,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            ropes,
            [Cols { start: 0, len: 16 }, Cols { start: 16, len: 8 }]
        );
        assert!(g
            .node(qkv)
            .replaces
            .contains(&"rope blk.0.attn_k.rope".to_string()));
        // Attention reads three views of the one projection.
        let att = g
            .schedule()
            .find(|&id| g.node(id).op.name() == "attention")
            .unwrap();
        for input in g.inputs(att) {
            assert_eq!(g.inputs(input), [qkv]);
        }
    }
}
