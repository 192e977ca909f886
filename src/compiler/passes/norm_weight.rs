//! RMSNorm and its weight multiply in one node: `MulWeight(RmsNorm(x))` → `rms_norm_mul`.

use super::{fuse_into, ids, sole_input};
use crate::graph::{Graph, Op};

pub fn run(g: &mut Graph) {
    for id in ids(g) {
        let Op::MulWeight { weight } = &g.node(id).op else {
            continue;
        };
        let Some(x) = sole_input(g, id) else { continue };
        let Op::RmsNorm { eps, group } = g.node(x).op else {
            continue;
        };
        if g.sole_consumer(x) != Some(id) {
            continue;
        }
        let op = Op::RmsNormMul {
            eps,
            group,
            weight: weight.clone(),
            residual: false,
        };
        let input = g.inputs(x);
        fuse_into(g, id, op, &[x, id]);
        g.set_inputs(id, &input);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{llama_layer, op_names};
    use super::*;

    #[test]
    fn each_norm_and_its_weight_become_one_node() {
        let mut g = llama_layer();
        run(&mut g);
        let g = g.compact();
        let names = op_names(&g);
        assert_eq!(names.iter().filter(|n| **n == "rms_norm_mul").count(), 3);
        assert!(!names.contains(&"rms_norm") && !names.contains(&"mul_weight"));
        let fused = g
            .schedule()
            .find(|&id| g.node(id).label == "blk.0.attn_norm")
            .unwrap();
        assert_eq!(
            g.node(fused).replaces,
            ["rms_norm blk.0.attn_norm.rms", "mul_weight blk.0.attn_norm"]
        );
        assert_eq!(g.node(g.inputs(fused)[0]).op.name(), "embed");
    }
}
