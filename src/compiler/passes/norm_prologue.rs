//! A row norm read only by linears becomes their prologue: each linear normalises
//! the rows it reads (a sum of squares over a row it loads anyway), so the norm's
//! dispatch and its output buffer disappear. It pays only when every reader is a
//! linear, so a norm with any other reader is left alone.

use super::ids;
use crate::graph::{Graph, NodeId, NormPrologue, Op};

/// Whether `reader` is a linear without a prologue that reads `norm` as its
/// (first and only) row input.
fn takes_prologue(g: &Graph, reader: NodeId, norm: NodeId) -> bool {
    let inputs = g.inputs(reader);
    matches!(&g.node(reader).op, Op::Linear { prologue: None, .. })
        && inputs[0] == norm
        && !inputs[1..].contains(&norm)
}

pub fn run(g: &mut Graph) {
    for id in ids(g) {
        let Op::RmsNormMul {
            eps,
            group,
            weight,
            residual: false,
        } = &g.node(id).op
        else {
            continue;
        };
        let readers = g.consumers(id);
        let whole_rows = g.node(id).ty.row_len() == Some(*group);
        if !whole_rows
            || id == g.output
            || readers.is_empty()
            || !readers.iter().all(|&r| takes_prologue(g, r, id))
        {
            continue;
        }
        let prologue = NormPrologue {
            eps: *eps,
            weight: weight.clone(),
        };
        let input = g.inputs(id)[0];
        let norm = g.node(id).clone();
        for reader in readers {
            let mut replaces = norm.origin();
            replaces.extend(g.node(reader).origin());
            let node = g.node_mut(reader);
            node.replaces = replaces;
            if let Op::Linear { prologue: p, .. } = &mut node.op {
                *p = Some(prologue.clone());
            }
            let mut inputs = g.inputs(reader);
            inputs[0] = input;
            g.set_inputs(reader, &inputs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{after, llama_layer, op_names};
    use super::*;

    #[test]
    fn norms_fold_into_the_linears_that_read_them() {
        let mut g = after(llama_layer(), "residual");
        run(&mut g);
        let g = g.compact();
        assert_eq!(
            op_names(&g),
            [
                "token_ids",
                "embed",
                "linear",
                "columns",
                "columns",
                "columns",
                "attention",
                "linear",
                "linear",
                "linear",
                "linear"
            ]
        );
        let qkv = g.node(g.schedule().nth(2).unwrap());
        assert!(
            matches!(&qkv.op, Op::Linear { prologue: Some(p), .. } if p.weight.name == "blk.0.attn_norm.weight")
        );
        assert_eq!(
            qkv.replaces[..2],
            ["rms_norm blk.0.attn_norm.rms", "mul_weight blk.0.attn_norm"]
        );
    }
}
