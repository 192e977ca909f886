//! The residual add joins the node that computes the branch: `Add(x, linear(…))`
//! → the linear with a `+ residual` epilogue and `x` as its second input (the
//! attention output and FFN down projections), and `Add(x, rms_norm_mul(…))` → the
//! norm with `residual` set (Gemma's post-norms).

use super::ids;
use crate::graph::{Epilogue, Graph, NodeId, Op};

/// Whether `branch` can take the add into itself: read only by `add`, one input,
/// and no residual yet.
fn can_take(g: &Graph, branch: NodeId, add: NodeId) -> bool {
    let one_input = g.inputs(branch).len() == 1;
    let free = match &g.node(branch).op {
        Op::Linear { epilogue, .. } => !epilogue.contains(&Epilogue::Residual),
        Op::RmsNormMul { residual, .. } => !residual,
        _ => false,
    };
    one_input && free && g.sole_consumer(branch) == Some(add)
}

pub fn run(g: &mut Graph) {
    for id in ids(g) {
        if g.node(id).op != Op::Add {
            continue;
        }
        let [a, b] = g.inputs(id)[..] else { continue };
        let Some((stream, branch)) = [(a, b), (b, a)]
            .into_iter()
            .find(|&(_, branch)| can_take(g, branch, id))
        else {
            continue;
        };
        let add = g.node(id).clone();
        let target = g.node_mut(branch);
        target.absorb(&add);
        match &mut target.op {
            Op::Linear { epilogue, .. } => epilogue.push(Epilogue::Residual),
            Op::RmsNormMul { residual, .. } => *residual = true,
            _ => unreachable!("checked by can_take"),
        }
        let input = g.inputs(branch)[0];
        g.set_inputs(branch, &[input, stream]);
        g.replace_uses(id, branch);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{after, embedded, llama_layer, norm};
    use super::*;

    #[test]
    fn both_residual_adds_join_their_projections() {
        let mut g = after(llama_layer(), "gated-activation");
        run(&mut g);
        let g = g.compact();
        for label in ["blk.0.attn_output", "blk.0.ffn_down"] {
            let id = g.schedule().find(|&id| g.node(id).label == label).unwrap();
            let node = g.node(id);
            assert!(
                matches!(&node.op, Op::Linear { epilogue, .. } if epilogue.ends_with(&[Epilogue::Residual]))
            );
            assert_eq!(g.inputs(id).len(), 2);
            assert!(node.replaces.last().unwrap().starts_with("add "));
        }
        assert!(g.schedule().all(|id| g.node(id).op != Op::Add));
    }

    #[test]
    fn a_post_norm_takes_the_add() {
        let mut g = Graph::default();
        let x = embedded(&mut g, 16);
        let n = norm(&mut g, x, "post_norm", 16);
        g.output = g.add(Op::Add, g.node(x).ty.clone(), "residual", &[x, n]);
        let mut g = after(g, "norm-weight");
        run(&mut g);
        let g = g.compact();
        assert!(matches!(
            g.node(g.output).op,
            Op::RmsNormMul { residual: true, .. }
        ));
        assert_eq!(g.inputs(g.output), [x, x]);
    }
}
