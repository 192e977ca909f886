//! The building blocks the architecture builders compose: each method adds the
//! canonical ops of one familiar step (a norm, a projection, attention, …).

use super::ir::{CacheDecl, Dim, Op, Rope, TensorType, Weight};
use super::{Graph, NodeId};
use crate::gguf::GgufHeader;
use crate::model::{Activation, ModelConfig};

/// Which rows of the final hidden state become logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitRows {
    /// Every position (perplexity, logit tests).
    All,
    /// Only the last position (generation).
    Last,
}

pub(super) struct Builder<'a> {
    pub graph: Graph,
    pub config: &'a ModelConfig,
    header: &'a GgufHeader,
}

fn rows(n: usize) -> TensorType {
    TensorType::f32(&[Dim::Tokens, Dim::Fixed(n)])
}

impl<'a> Builder<'a> {
    pub fn new(config: &'a ModelConfig, header: &'a GgufHeader) -> Builder<'a> {
        Builder {
            graph: Graph::default(),
            config,
            header,
        }
    }

    /// A weight by GGUF name; `ModelConfig::from_gguf` has checked that it exists.
    fn weight(&self, name: &str) -> Weight {
        let info = self
            .header
            .tensor(name)
            .unwrap_or_else(|| panic!("ModelConfig checked that `{name}` exists"));
        let cols = info.dims[0] as usize;
        Weight {
            name: name.to_string(),
            ty: info.ty,
            rows: (info.n_elements() as usize) / cols,
            cols,
        }
    }

    fn width(&self, x: NodeId) -> usize {
        self.graph
            .node(x)
            .ty
            .row_len()
            .expect("activations have a fixed row length")
    }

    /// Token ids → embedding rows (scaled, for Gemma).
    pub fn embed(&mut self) -> NodeId {
        let ids = self.graph.add(
            Op::TokenIds,
            TensorType {
                dtype: super::DType::I32,
                shape: vec![Dim::Tokens],
            },
            "tokens",
            &[],
        );
        let table = self.weight("token_embd.weight");
        let x = self.graph.add(
            Op::Embed { table },
            rows(self.config.n_embd),
            "token_embd",
            &[ids],
        );
        match self.config.embedding_scale {
            Some(factor) => self.unary(Op::Scale { factor }, x, "token_embd.scaled"),
            None => x,
        }
    }

    /// An op whose output has its input's type.
    pub fn unary(&mut self, op: Op, x: NodeId, label: &str) -> NodeId {
        let ty = self.graph.node(x).ty.clone();
        self.graph.add(op, ty, label, &[x])
    }

    pub fn binary(&mut self, op: Op, a: NodeId, b: NodeId, label: &str) -> NodeId {
        let ty = self.graph.node(a).ty.clone();
        self.graph.add(op, ty, label, &[a, b])
    }

    /// RMSNorm over groups of `group` values, then the weight `<name>.weight`.
    pub fn rms_norm_grouped(&mut self, x: NodeId, name: &str, group: usize) -> NodeId {
        let eps = self.config.rms_eps;
        let normed = self.unary(Op::RmsNorm { eps, group }, x, &format!("{name}.rms"));
        let weight = self.weight(&format!("{name}.weight"));
        self.unary(Op::MulWeight { weight }, normed, name)
    }

    pub fn rms_norm(&mut self, x: NodeId, name: &str) -> NodeId {
        let group = self.width(x);
        self.rms_norm_grouped(x, name, group)
    }

    /// `x · Wᵀ` with the weight `<name>.weight`.
    pub fn linear(&mut self, x: NodeId, name: &str) -> NodeId {
        let weight = self.weight(&format!("{name}.weight"));
        let out = rows(weight.rows);
        self.graph.add(Op::MatMul { weight }, out, name, &[x])
    }

    fn rope_of(&self, layer: usize) -> Rope {
        let c = self.config;
        Rope {
            mode: c.rope_mode,
            head_dim: c.head_dim,
            n_rot: c.n_rot,
            base: c.layers[layer].rope_base,
            freq_scale: c.rope_freq_scale,
        }
    }

    pub fn rope(&mut self, x: NodeId, layer: usize, label: &str) -> NodeId {
        let op = Op::Rope(self.rope_of(layer));
        self.unary(op, x, label)
    }

    /// Stores `x` in a new cache of layer `layer`; returns the node yielding all cached rows.
    fn cache(&mut self, x: NodeId, layer: usize, kind: &str, rotary: Option<Rope>) -> NodeId {
        let c = self.config;
        let name = format!("blk.{layer}.cache_{kind}");
        self.graph.caches.push(CacheDecl {
            name: name.clone(),
            layer,
            row_len: c.kv_dim(),
            window: c.layers[layer].window,
            rotary,
            ring: false,
        });
        let cache = self.graph.caches.len() - 1;
        let ty = TensorType::f32(&[Dim::Context, Dim::Fixed(c.kv_dim())]);
        self.graph.add(Op::CacheWrite { cache }, ty, name, &[x])
    }

    /// Causal self-attention of `q` over the cached `k` and `v` (both written here).
    pub fn attention(
        &mut self,
        layer: usize,
        q: NodeId,
        k: NodeId,
        v: NodeId,
        scale: f32,
    ) -> NodeId {
        let c = self.config;
        let (n_head, n_head_kv, head_dim) = (c.n_head, c.n_head_kv, c.head_dim);
        let keys = self.cache(k, layer, "k", Some(self.rope_of(layer)));
        let values = self.cache(v, layer, "v", None);
        let p = format!("blk.{layer}.attn");
        let scores_ty = TensorType::f32(&[Dim::Fixed(n_head), Dim::Tokens, Dim::Context]);
        let scores = self.graph.add(
            Op::AttnScores {
                n_head,
                n_head_kv,
                head_dim,
                scale,
            },
            scores_ty,
            format!("{p}.scores"),
            &[q, keys],
        );
        let window = c.layers[layer].window;
        let masked = self.unary(Op::AttnMask { window }, scores, &format!("{p}.mask"));
        let probs = self.unary(Op::Softmax, masked, &format!("{p}.softmax"));
        self.graph.add(
            Op::AttnMix {
                n_head,
                n_head_kv,
                head_dim,
            },
            rows(c.q_dim()),
            format!("{p}.mix"),
            &[probs, values],
        )
    }

    /// The gated feed-forward block: `down(act(gate(x)) · up(x))`.
    pub fn gated_ffn(&mut self, x: NodeId, layer: usize) -> NodeId {
        let p = format!("blk.{layer}");
        let gate = self.linear(x, &format!("{p}.ffn_gate"));
        let up = self.linear(x, &format!("{p}.ffn_up"));
        let act = match self.config.activation {
            Activation::Silu => Op::Silu,
            Activation::GeluTanh => Op::GeluTanh,
        };
        let act = self.unary(act, gate, &format!("{p}.ffn_act"));
        let gated = self.binary(Op::Mul, act, up, &format!("{p}.ffn_gated"));
        self.linear(gated, &format!("{p}.ffn_down"))
    }

    /// Final norm and LM head; sets the graph's output.
    pub fn logits(mut self, x: NodeId, which: LogitRows) -> Graph {
        let x = match which {
            LogitRows::All => x,
            LogitRows::Last => {
                let ty = TensorType::f32(&[Dim::Fixed(1), Dim::Fixed(self.width(x))]);
                self.graph.add(Op::LastRow, ty, "last_row", &[x])
            }
        };
        let normed = self.rms_norm(x, "output_norm");
        let head = self.weight(&self.config.output_weight);
        let mut ty = self.graph.node(normed).ty.clone();
        *ty.shape.last_mut().expect("2-D") = Dim::Fixed(head.rows);
        self.graph.output = self
            .graph
            .add(Op::MatMul { weight: head }, ty, "output", &[normed]);
        self.graph
    }
}
