//! Every `MatMul` becomes a `linear`: one dispatch that reads the quantised weight
//! directly (dequantising in registers) and can take a prologue and epilogues.

use super::{fuse_into, ids};
use crate::graph::{Graph, Op};

pub fn run(g: &mut Graph) {
    for id in ids(g) {
        if let Op::MatMul { weight } = &g.node(id).op {
            let op = Op::Linear {
                weights: vec![weight.clone()],
                prologue: None,
                epilogue: Vec::new(),
            };
            fuse_into(g, id, op, &[id]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{llama_layer, op_names};
    use super::*;

    #[test]
    fn matmuls_become_linears_with_their_weight() {
        let mut g = llama_layer();
        run(&mut g);
        assert!(!op_names(&g).contains(&"matmul"));
        assert_eq!(op_names(&g).iter().filter(|n| **n == "linear").count(), 8);
        let Op::Linear { weights, .. } = &g.node(g.output).op else {
            panic!("the LM head is a linear")
        };
        assert_eq!(weights[0].name, "output.weight");
        assert_eq!(g.node(g.output).replaces, ["matmul output"]);
    }
}
