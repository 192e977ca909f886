//! Attention as one node: the K and V cache writes, scores, mask (causal and
//! sliding window), softmax and the mix with V → `attention(q, k, v)`.
//!
//! The fused op reads past keys only as far back as its window, so its caches
//! become rings of `window` positions (`CacheDecl::ring`).

use super::{fuse_into, ids, sole_input};
use crate::graph::{Graph, NodeId, Op};

/// The nodes of one canonical attention, found from its `AttnMix`.
struct Chain {
    q: NodeId,
    k: NodeId,
    v: NodeId,
    k_cache: usize,
    v_cache: usize,
    scale: f32,
    window: Option<usize>,
    /// Every node the fused op replaces except the mix itself.
    inner: [NodeId; 5],
}

/// `AttnMix(Softmax(AttnMask(AttnScores(q, CacheWrite k))), CacheWrite v)`, each
/// intermediate read only by the next.
fn find_chain(g: &Graph, mix: NodeId) -> Option<Chain> {
    let [probs, values] = g.inputs(mix)[..] else {
        return None;
    };
    let only_into = |x: NodeId, next: NodeId| g.sole_consumer(x) == Some(next);
    let masked = sole_input(g, probs).filter(|_| only_into(probs, mix))?;
    let scores = sole_input(g, masked).filter(|_| only_into(masked, probs))?;
    let (Op::Softmax, Op::AttnMask { window }) = (&g.node(probs).op, &g.node(masked).op) else {
        return None;
    };
    let Op::AttnScores { scale, .. } = g.node(scores).op else {
        return None;
    };
    let [q, keys] = g.inputs(scores)[..] else {
        return None;
    };
    let (Op::CacheWrite { cache: k_cache }, Op::CacheWrite { cache: v_cache }) =
        (&g.node(keys).op, &g.node(values).op)
    else {
        return None;
    };
    if !only_into(keys, scores) || !only_into(values, mix) || !only_into(scores, masked) {
        return None;
    }
    Some(Chain {
        q,
        k: sole_input(g, keys)?,
        v: sole_input(g, values)?,
        k_cache: *k_cache,
        v_cache: *v_cache,
        scale,
        window: *window,
        inner: [keys, values, scores, masked, probs],
    })
}

pub fn run(g: &mut Graph) {
    for id in ids(g) {
        let Op::AttnMix {
            n_head,
            n_head_kv,
            head_dim,
        } = g.node(id).op
        else {
            continue;
        };
        let Some(chain) = find_chain(g, id) else {
            continue;
        };
        let op = Op::Attention {
            n_head,
            n_head_kv,
            head_dim,
            scale: chain.scale,
            window: chain.window,
            k_cache: chain.k_cache,
            v_cache: chain.v_cache,
        };
        let mut parts = chain.inner.to_vec();
        parts.push(id);
        fuse_into(g, id, op, &parts);
        let node = g.node_mut(id);
        // `blk.0.attn.mix` → `blk.0.attn`: the node is the whole attention now.
        if let Some(prefix) = node.label.strip_suffix(".mix") {
            node.label = prefix.to_string();
        }
        g.set_inputs(id, &[chain.q, chain.k, chain.v]);
        g.caches[chain.k_cache].ring = true;
        g.caches[chain.v_cache].ring = true;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{attention, embedded, linear, op_names};
    use super::*;

    #[test]
    fn the_attention_chain_becomes_one_node_over_ring_caches() {
        let mut g = Graph::default();
        let x = embedded(&mut g, 16);
        let q = linear(&mut g, x, "q", 16, 16);
        let k = linear(&mut g, x, "k", 8, 16);
        let v = linear(&mut g, x, "v", 8, 16);
        g.output = attention(&mut g, q, k, v, Some(4));
        run(&mut g);
        let g = g.compact();
        assert_eq!(
            op_names(&g),
            [
                "token_ids",
                "embed",
                "matmul",
                "matmul",
                "matmul",
                "attention"
            ]
        );
        let att = g.output;
        assert_eq!(g.inputs(att).len(), 3);
        assert!(matches!(
            g.node(att).op,
            Op::Attention {
                window: Some(4),
                k_cache: 0,
                v_cache: 1,
                ..
            }
        ));
        assert_eq!(g.node(att).replaces.len(), 6);
        assert!(g.caches.iter().all(|c| c.ring));
        assert_eq!(g.caches[0].positions(100), 4);
    }
}
