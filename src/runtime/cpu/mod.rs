//! The CPU interpreter: runs any graph, node by node in schedule order, with f32
//! activations. Quantised weights stay in the memory map and are dequantised a row
//! at a time inside the matmul.

mod fused;
pub mod kernels;
mod vec_dot;

use std::collections::HashMap;

use fused::{AttentionOp, Weights};
use kernels::Heads;

use super::{DecodeInput, KvCache};
use crate::gguf::GgufFile;
use crate::graph::{Graph, NodeId, Op, Step};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RunError {
    #[error("token id {id} is outside the vocabulary of {n_vocab}")]
    TokenOutOfRange { id: u32, n_vocab: usize },
    #[error("{needed} positions do not fit the context of {capacity}")]
    ContextFull { needed: usize, capacity: usize },
    #[error("no tokens to run")]
    NoTokens,
    #[error("{0}")]
    Device(String),
    #[error("weight `{0}` is not in the model file")]
    MissingWeight(String),
    #[error("weight `{name}` is {found} in the model file, but the graph expects {expected}")]
    WeightMismatch {
        name: String,
        found: String,
        expected: String,
    },
}

/// A graph bound to the weights of one GGUF file.
pub struct CpuInterpreter<'a> {
    graph: &'a Graph,
    gguf: &'a GgufFile,
    /// Norm weights, small enough to keep as f32.
    vectors: HashMap<String, Vec<f32>>,
    decode_input: DecodeInput,
}

impl<'a> CpuInterpreter<'a> {
    pub fn new(graph: &'a Graph, gguf: &'a GgufFile) -> Result<CpuInterpreter<'a>, RunError> {
        let mut vectors = HashMap::new();
        for id in graph.schedule() {
            let op = &graph.node(id).op;
            for w in op.weights() {
                let (info, _) = gguf
                    .tensor_data(&w.name)
                    .ok_or_else(|| RunError::MissingWeight(w.name.clone()))?;
                let shape = |ty, rows: u64, cols: u64| format!("{ty} [{rows} x {cols}]");
                let cols = info.dims[0];
                let rows = info.n_elements() / cols.max(1);
                if (info.ty, rows, cols) != (w.ty, w.rows as u64, w.cols as u64) {
                    return Err(RunError::WeightMismatch {
                        name: w.name.clone(),
                        found: shape(info.ty, rows, cols),
                        expected: shape(w.ty, w.rows as u64, w.cols as u64),
                    });
                }
            }
            for weight in op.vectors() {
                let bytes = gguf.tensor_data(&weight.name).expect("checked above").1;
                let mut v = vec![0f32; weight.rows * weight.cols];
                kernels::dequantize_row(weight.ty, bytes, &mut v);
                vectors.insert(weight.name.clone(), v);
            }
        }
        Ok(CpuInterpreter {
            graph,
            gguf,
            vectors,
            decode_input: DecodeInput::F32,
        })
    }

    /// Reads a decode step's x in its matmuls as `input` says (f32 unless asked).
    pub fn with_decode_input(self, input: DecodeInput) -> CpuInterpreter<'a> {
        CpuInterpreter {
            decode_input: input,
            ..self
        }
    }

    fn bytes(&self, name: &str) -> &'a [u8] {
        self.gguf.tensor_data(name).expect("checked in new()").1
    }
}

impl Weights for CpuInterpreter<'_> {
    fn bytes(&self, name: &str) -> &[u8] {
        CpuInterpreter::bytes(self, name)
    }

    fn vector(&self, name: &str) -> &[f32] {
        &self.vectors[name]
    }

    fn decode_input(&self) -> DecodeInput {
        self.decode_input
    }
}

impl<'a> CpuInterpreter<'a> {
    /// Runs one step over `tokens` at positions `past ..`, reading and extending `kv`.
    /// Returns the output node's value (the logits, row-major).
    pub fn run(&self, tokens: &[u32], past: usize, kv: &mut KvCache) -> Result<Vec<f32>, RunError> {
        if tokens.is_empty() {
            return Err(RunError::NoTokens);
        }
        let step = Step {
            past,
            tokens: tokens.len(),
        };
        if past + tokens.len() > kv.capacity() {
            return Err(RunError::ContextFull {
                needed: past + tokens.len(),
                capacity: kv.capacity(),
            });
        }
        let g = self.graph;
        let mut values: Vec<Option<Vec<f32>>> = vec![None; g.len()];
        let mut readers_left: Vec<usize> = g.schedule().map(|id| g.consumer_count(id)).collect();
        for id in g.schedule() {
            let inputs = g.inputs(id);
            let value = self.eval(id, &inputs, &values, tokens, step, kv)?;
            values[id.index()] = Some(value);
            for input in inputs {
                readers_left[input.index()] -= 1;
                if readers_left[input.index()] == 0 && input != g.output {
                    values[input.index()] = None;
                }
            }
        }
        Ok(values[g.output.index()]
            .take()
            .expect("the output was computed"))
    }

    fn eval(
        &self,
        id: NodeId,
        inputs: &[NodeId],
        values: &[Option<Vec<f32>>],
        tokens: &[u32],
        step: Step,
        kv: &mut KvCache,
    ) -> Result<Vec<f32>, RunError> {
        let node = self.graph.node(id);
        let input = |i: usize| -> &Vec<f32> {
            values[inputs[i].index()]
                .as_ref()
                .expect("inputs run first")
        };
        // Most ops update a copy of their first input.
        let first = || input(0).clone();
        let mut out = match &node.op {
            Op::TokenIds => tokens.iter().map(|&t| t as f32).collect(),
            Op::Embed { table } => {
                let ids = tokens
                    .iter()
                    .map(|&t| {
                        let id = t as usize;
                        if id < table.rows {
                            Ok(id)
                        } else {
                            Err(RunError::TokenOutOfRange {
                                id: t,
                                n_vocab: table.rows,
                            })
                        }
                    })
                    .collect::<Result<Vec<usize>, _>>()?;
                let mut out = vec![0f32; ids.len() * table.cols];
                kernels::embed(
                    self.bytes(&table.name),
                    table.ty,
                    table.cols,
                    &ids,
                    &mut out,
                );
                out
            }
            Op::Scale { factor } => {
                let mut x = first();
                kernels::scale(&mut x, *factor);
                x
            }
            Op::RmsNorm { eps, group } => {
                let mut x = first();
                kernels::rms_norm(&mut x, *group, *eps);
                x
            }
            Op::MulWeight { weight } => {
                let mut x = first();
                kernels::mul_weight(&mut x, &self.vectors[&weight.name]);
                x
            }
            Op::MatMul { weight } => {
                let x = input(0);
                let mut out = vec![0f32; x.len() / weight.cols * weight.rows];
                kernels::matmul(
                    x,
                    (self.bytes(&weight.name), weight.ty),
                    (weight.rows, weight.cols),
                    self.decode_input.in_step(step.tokens),
                    &mut out,
                );
                out
            }
            Op::Rope(rope) => {
                let mut x = first();
                let row_len = x.len() / step.tokens;
                kernels::rope(&mut x, row_len, step.past as i64, rope);
                x
            }
            Op::CacheWrite { cache } => {
                kv.write(*cache, step.past, input(0));
                kv.read(*cache, step.past + step.tokens)
            }
            Op::AttnScores {
                n_head,
                n_head_kv,
                head_dim,
                scale,
            } => {
                let heads = Heads {
                    n_head: *n_head,
                    n_head_kv: *n_head_kv,
                    head_dim: *head_dim,
                };
                let ctx = step.past + step.tokens;
                let mut out = vec![0f32; n_head * step.tokens * ctx];
                kernels::attn_scores(input(0), input(1), heads, *scale, &mut out);
                out
            }
            Op::AttnMask { window } => {
                let mut x = first();
                kernels::attn_mask(&mut x, step.tokens, step.past, *window);
                x
            }
            Op::Softmax => {
                let mut x = first();
                kernels::softmax(&mut x, step.past + step.tokens);
                x
            }
            Op::AttnMix {
                n_head,
                n_head_kv,
                head_dim,
            } => {
                let heads = Heads {
                    n_head: *n_head,
                    n_head_kv: *n_head_kv,
                    head_dim: *head_dim,
                };
                let mut out = vec![0f32; step.tokens * n_head * head_dim];
                kernels::attn_mix(input(0), input(1), heads, &mut out);
                out
            }
            Op::Add => {
                let mut x = first();
                kernels::add(&mut x, input(1));
                x
            }
            Op::Mul => {
                let mut x = first();
                kernels::mul(&mut x, input(1));
                x
            }
            Op::Silu => {
                let mut x = first();
                kernels::silu(&mut x);
                x
            }
            Op::GeluTanh => {
                let mut x = first();
                kernels::gelu_tanh(&mut x);
                x
            }
            Op::LastRow => {
                let x = input(0);
                let row_len = x.len() / step.tokens;
                x[x.len() - row_len..].to_vec()
            }
            Op::RmsNormMul {
                eps,
                group,
                weight,
                residual,
            } => fused::rms_norm_mul(
                input(0),
                *group,
                *eps,
                &self.vectors[&weight.name],
                residual.then(|| input(1).as_slice()),
            ),
            Op::Linear {
                weights,
                prologue,
                epilogue,
            } => fused::linear(
                input(0),
                (inputs.len() > 1).then(|| input(1).as_slice()),
                weights,
                prologue.as_ref(),
                epilogue,
                step,
                self,
            ),
            Op::Columns { cols } => {
                let x = input(0);
                kernels::columns(x, x.len() / step.tokens, *cols)
            }
            Op::Attention {
                n_head,
                n_head_kv,
                head_dim,
                scale,
                window,
                k_cache,
                v_cache,
            } => {
                let op = AttentionOp {
                    heads: Heads {
                        n_head: *n_head,
                        n_head_kv: *n_head_kv,
                        head_dim: *head_dim,
                    },
                    scale: *scale,
                    window: *window,
                    k_cache: *k_cache,
                    v_cache: *v_cache,
                };
                fused::attention(input(0), input(1), input(2), &op, step, kv)
            }
        };
        debug_assert_eq!(out.len(), node.ty.elements(step), "{}", node.label);
        out.shrink_to_fit();
        Ok(out)
    }
}
