//! Every GPU kernel beside its CPU twin: small graphs of one op (fed by embedding
//! lookups of random f32 tables) run on the CPU interpreter and on the GPU, on fresh
//! random inputs every run; relative L2 < 1e-4.

mod gpu_common;

use gpu_common::{gpu, gpu_without_subgroups, relative_l2, rng, tensor_core_gpu, Tensor, TestFile};
use rustorch::gguf::GgmlType;
use rustorch::graph::{
    CacheDecl, Cols, DType, Dim, Epilogue, Graph, NodeId, NormPrologue, Op, Rope, TensorType,
    Weight,
};
use rustorch::model::{Activation, RopeMode};
use rustorch::runtime::cpu::{CpuInterpreter, RunError};
use rustorch::runtime::gpu::{
    GpuError, GpuExecutor, GpuOptions, Reduction, LONG_ROWS, TOP_K_MAX, WIDE_GROUPS,
};
use rustorch::runtime::{argmax, top_k, DecodeInput, KvCache, KvType};
use rustorch::synth::SplitMix64;

const TOLERANCE: f64 = 1e-4;
/// With x in 8 bits after a kernel's own arithmetic (a matmul's sums, an activation, a
/// residual add), a value the GPU computes a few ulps from the CPU's may round a step
/// apart: each such value moves these tests' outputs by about 4e-4 (measured: up to
/// 1.1e-3 over 4096 gated values). The faults they guard against move them by 5e-2 or
/// more.
const INT8_CHAIN_TOLERANCE: f64 = 5e-3;
/// x in 8 bits rounded once by the kernel that makes it against the same device
/// rounding it in each reader's workgroups: the same 8-bit values, but a folded norm
/// sums x's squares in another order (a few ulps of its scale).
const ROUNDED_APART_TOLERANCE: f64 = 1e-5;
/// Kernels on tensor cores round W and x to f16 (a relative step of 2^-11).
const F16_TOLERANCE: f64 = 2e-3;
const CONTEXT: usize = 32;

/// The device a check runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Device {
    /// [`gpu`]: the decode matmul sums in subgroups where the adapter has them
    /// (lavapipe, and so CI, has).
    Default,
    /// Opened without subgroups: the decode matmul sums by its tree.
    WithoutSubgroups,
    /// Opened with tensor cores, to f16's tolerance.
    TensorCores,
}

/// The devices the decode matmul's tests run on: both of its reductions.
const BOTH_REDUCTIONS: [Device; 2] = [Device::Default, Device::WithoutSubgroups];

fn rows(n: usize) -> TensorType {
    TensorType::f32(&[Dim::Tokens, Dim::Fixed(n)])
}

/// A graph under construction with the tensors it reads.
struct Net {
    graph: Graph,
    tensors: Vec<Tensor>,
    ids: NodeId,
    /// The KV cache type of both sides.
    kv_type: KvType,
    /// The position of the first step's first token.
    first_position: usize,
    /// Positions the caches hold from there on.
    capacity: usize,
    /// The output's epilogue is folded into the decode matmul: a decode step has one
    /// dispatch fewer than a longer step.
    folded: bool,
    device: Device,
    /// How the decode matmuls read x, on both sides.
    decode_input: DecodeInput,
    /// Matmuls whose one-token kernel loads x as the kernel before it rounded it.
    runs_read: usize,
    /// The relative L2 error allowed (tensor cores: always `F16_TOLERANCE`).
    tolerance: f64,
}

impl Net {
    fn new() -> Net {
        let mut graph = Graph::default();
        let ty = TensorType {
            dtype: DType::I32,
            shape: vec![Dim::Tokens],
        };
        let ids = graph.add(Op::TokenIds, ty, "tokens", &[]);
        Net {
            graph,
            tensors: Vec::new(),
            ids,
            kv_type: KvType::F16,
            first_position: 0,
            capacity: CONTEXT,
            folded: false,
            device: Device::Default,
            decode_input: DecodeInput::F32,
            runs_read: 0,
            tolerance: TOLERANCE,
        }
    }

    /// A model's feed-forward block on `x` of `cols` values: x normed, then gate and up
    /// of `n_ff` rows each as one linear with the gated activation, then the down
    /// projection (without the residual, which would dwarf the differences).
    fn feed_forward(
        &mut self,
        x: NodeId,
        (cols, n_ff): (usize, usize),
        (gate_up_ty, down_ty): (GgmlType, GgmlType),
        rng: &mut SplitMix64,
    ) -> NodeId {
        let norm = self.weight(Tensor::random("norm", GgmlType::F32, 1, cols, rng));
        let gate_up = ["gate", "up"]
            .map(|name| self.weight(Tensor::random(name, gate_up_ty, n_ff, cols, rng)))
            .to_vec();
        let op = Op::Linear {
            weights: gate_up,
            prologue: Some(NormPrologue {
                eps: 1e-5,
                weight: norm,
            }),
            epilogue: vec![Epilogue::Gated {
                act: Activation::Silu,
            }],
        };
        let hidden = self.op(op, rows(n_ff), &[x]);
        let down = self.weight(Tensor::random("down", down_ty, cols, n_ff, rng));
        self.op(Op::MatMul { weight: down }, rows(cols), &[hidden])
    }

    fn weight(&mut self, tensor: Tensor) -> Weight {
        let w = Weight {
            name: tensor.name.clone(),
            ty: tensor.ty,
            rows: tensor.rows,
            cols: tensor.cols,
        };
        self.tensors.push(tensor);
        w
    }

    /// An activation `[T, cols]`: row `id` of a random table for each token id.
    fn input(&mut self, name: &str, cols: usize, rng: &mut SplitMix64) -> NodeId {
        let values: Vec<f32> = (0..CONTEXT * cols).map(|_| rng.signed_unit()).collect();
        let table = self.weight(Tensor::f32(name, CONTEXT, cols, &values));
        let ids = self.ids;
        self.graph
            .add(Op::Embed { table }, rows(cols), name, &[ids])
    }

    fn op(&mut self, op: Op, ty: TensorType, inputs: &[NodeId]) -> NodeId {
        let label = op.name().to_string();
        self.graph.add(op, ty, label, inputs)
    }

    fn same(&mut self, op: Op, inputs: &[NodeId]) -> NodeId {
        let ty = self.graph.node(inputs[0]).ty.clone();
        self.op(op, ty, inputs)
    }

    /// Runs each step on the CPU and the GPU and compares the outputs.
    fn check(self, output: NodeId, steps: &[&[u32]], what: &str) {
        self.check_shifted(output, steps, None, what);
    }

    /// As `check`, with a context shift on both sides, `(before step, keep, n)`: drop
    /// positions keep .. keep + n before that step.
    fn check_shifted(
        mut self,
        output: NodeId,
        steps: &[&[u32]],
        shift: Option<(usize, usize, usize)>,
        what: &str,
    ) {
        let (context, tolerance) = match self.device {
            Device::Default => (gpu(), self.tolerance),
            Device::WithoutSubgroups => (gpu_without_subgroups(), self.tolerance),
            Device::TensorCores => (tensor_core_gpu(), F16_TOLERANCE),
        };
        let Some(context) = context else { return };
        self.graph.output = output;
        let file = TestFile::new(&self.tensors);
        let cpu = CpuInterpreter::new(&self.graph, &file.gguf)
            .unwrap()
            .with_decode_input(self.decode_input);
        let max_tokens = steps.iter().map(|s| s.len()).max().unwrap();
        let capacity = self.first_position + self.capacity;
        let options = GpuOptions {
            max_tokens,
            context: capacity,
            kv_type: self.kv_type,
            decode_input: self.decode_input,
            round_once: true,
        };
        let gpu = GpuExecutor::new(&self.graph, &file.gguf, context, options)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        // Where x in 8 bits is rounded once by its producer, the same device rounding it
        // in every reader's workgroups instead, to a tighter tolerance than the CPU's.
        let mut rounded_apart = (self.runs_read > 0).then(|| {
            let options = GpuOptions {
                round_once: false,
                ..options
            };
            let apart = GpuExecutor::new(&self.graph, &file.gguf, context, options)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(apart.runs_read(), 0, "{what}: runs read, rounding apart");
            let kv = apart.kv_cache().unwrap();
            (apart, kv)
        });
        let mut cpu_kv = KvCache::new(&self.graph, capacity, self.kv_type);
        if self.device == Device::TensorCores {
            assert!(gpu.runs_on_tensor_cores(), "{what}: not on tensor cores");
        }
        assert_eq!(
            gpu.runs_read(),
            self.runs_read,
            "{what}: matmuls reading runs"
        );
        if self.folded {
            assert_eq!(
                gpu.dispatch_count(1, 0) + 1,
                gpu.dispatch_count(2, 0),
                "{what}: the decode step still runs the epilogue's dispatch"
            );
        }
        let mut gpu_kv = gpu.kv_cache().unwrap();
        let mut past = self.first_position;
        for (i, tokens) in steps.iter().enumerate() {
            if let Some((_, keep, n)) = shift.filter(|s| s.0 == i) {
                cpu_kv.discard(keep, n, past);
                gpu.discard(&mut gpu_kv, keep, n, past)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                if let Some((apart, apart_kv)) = &mut rounded_apart {
                    apart
                        .discard(apart_kv, keep, n, past)
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                }
                past -= n;
            }
            let step = format!("{what}, {} tokens after {past}", tokens.len());
            let close = |got: &[f32], want: &[f32], tolerance: f64, against: &str| {
                let err = relative_l2(got, want);
                assert!(
                    err < tolerance,
                    "{step}: relative L2 {err:e} against {against}"
                );
            };
            let want = cpu.run(tokens, past, &mut cpu_kv).unwrap();
            let got = gpu
                .run(tokens, past, &mut gpu_kv)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            close(&got, &want, tolerance, "the CPU");
            if let Some((apart, apart_kv)) = &mut rounded_apart {
                let other = apart
                    .run(tokens, past, apart_kv)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                close(
                    &got,
                    &other,
                    ROUNDED_APART_TOLERANCE,
                    "x rounded in every reader",
                );
            }
            past += tokens.len();
        }
    }
}

const ONE_STEP: &[&[u32]] = &[&[3, 0, 17, 9, 30]];
/// Prefill, then decode, then a short prefill, each over what came before.
const STEPS: &[&[u32]] = &[&[0, 1, 2, 3, 4], &[5], &[6, 7, 8]];

#[test]
fn embedding_of_every_type() {
    let mut rng = rng("embedding_of_every_type");
    for ty in GgmlType::ALL {
        let mut net = Net::new();
        let table = net.weight(Tensor::random("table", ty, CONTEXT, 512, &mut rng));
        let ids = net.ids;
        let out = net.op(Op::Embed { table }, rows(512), &[ids]);
        net.check(out, ONE_STEP, &format!("embed {ty}"));
    }
}

fn matmul_case(ty: GgmlType, steps: &[&[u32]], rng: &mut SplitMix64) {
    let input = (DecodeInput::F32, Device::Default);
    matmul_rows_case(ty, (70, 512), steps, input, rng);
}

fn matmul_rows_case(
    ty: GgmlType,
    (n_rows, cols): (usize, usize),
    steps: &[&[u32]],
    (decode_input, device): (DecodeInput, Device),
    rng: &mut SplitMix64,
) {
    let mut net = Net::new();
    net.decode_input = decode_input;
    net.device = device;
    let x = net.input("x", cols, rng);
    let weight = net.weight(Tensor::random("w", ty, n_rows, cols, rng));
    let out = net.op(Op::MatMul { weight }, rows(n_rows), &[x]);
    net.capacity = 256;
    net.check(
        out,
        steps,
        &format!("matmul {ty} of {n_rows} × {cols}, {decode_input:?}, {device:?}"),
    );
}

/// The decode matmul's tests run both reductions: the default device sums in subgroups
/// where the adapter has them, as lavapipe (and so CI) has, and the device opened
/// without them by the tree.
#[test]
fn decode_matmuls_are_checked_with_both_reductions() {
    let (Some(default), Some(without)) = (gpu(), gpu_without_subgroups()) else {
        return;
    };
    assert_eq!(without.reduction(), Reduction::Tree);
    if default.reduction() != Reduction::Subgroups {
        let message = format!(
            "{} has no subgroups: the subgroup reduction goes untested",
            default.adapter_description()
        );
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!ci, "{message} (CI's lavapipe has them)");
        eprintln!("\n*** {message} ***\n");
    }
}

#[test]
fn matmul_decode_of_every_type() {
    let mut rng = rng("matmul_decode_of_every_type");
    for device in BOTH_REDUCTIONS {
        for decode_input in [DecodeInput::F32, DecodeInput::Int8] {
            for ty in GgmlType::ALL {
                let input = (decode_input, device);
                matmul_rows_case(ty, (70, 512), &[&[4], &[11]], input, &mut rng);
            }
        }
    }
}

/// Rows of `LONG_ROWS` values or more decode with 128 invocations a workgroup with x
/// in 8 bits (and Q4_0 in f32): rows of one slice of 32 an invocation, and rows whose
/// last pass leaves invocations without one (TinyLlama's down projection).
#[test]
fn matmul_decode_of_long_rows() {
    let mut rng = rng("matmul_decode_of_long_rows");
    for device in BOTH_REDUCTIONS {
        for decode_input in [DecodeInput::F32, DecodeInput::Int8] {
            let input = (decode_input, device);
            for ty in GgmlType::ALL {
                let shape = (70, LONG_ROWS as usize);
                matmul_rows_case(ty, shape, &[&[4], &[11]], input, &mut rng);
            }
            for ty in [GgmlType::Q4_0, GgmlType::Q4K, GgmlType::Q6K] {
                matmul_rows_case(ty, (70, 5632), &[&[4]], input, &mut rng);
            }
        }
    }
}

/// Q4_0 and Q4_K matrices with rows enough for `WIDE_GROUPS` workgroups of eight rows
/// (or of sixteen, with x in 8 bits) decode that many rows a workgroup (Q6_K's beside
/// them do not): here
/// with a last workgroup of one group of four (rows past the end included), then gate
/// and up side by side with the gated activation folded, x in f32 and in 8 bits.
#[test]
fn decode_matmuls_of_wide_matrices() {
    let mut rng = rng("decode_matmuls_of_wide_matrices");
    let rows_for = |per_group: usize| per_group * WIDE_GROUPS as usize;
    for device in BOTH_REDUCTIONS {
        for decode_input in [DecodeInput::F32, DecodeInput::Int8] {
            let input = (decode_input, device);
            for n_rows in [rows_for(8) + 4, rows_for(16) + 4] {
                for ty in [GgmlType::Q4_0, GgmlType::Q4K, GgmlType::Q6K] {
                    matmul_rows_case(ty, (n_rows, 512), &[&[4]], input, &mut rng);
                }
            }
            for n_ff in [rows_for(8) / 2 + 2, rows_for(16) / 2 + 2] {
                gated_case(n_ff, input, &mut rng);
            }
        }
    }
}

fn gated_case(n_ff: usize, (decode_input, device): (DecodeInput, Device), rng: &mut SplitMix64) {
    let n_cols = 256;
    let mut net = Net::new();
    net.decode_input = decode_input;
    net.device = device;
    net.folded = true;
    let x = net.input("x", n_cols, rng);
    let weights = ["gate", "up"]
        .map(|name| net.weight(Tensor::random(name, GgmlType::Q4K, n_ff, n_cols, rng)))
        .to_vec();
    let op = Op::Linear {
        weights,
        prologue: None,
        epilogue: vec![Epilogue::Gated {
            act: Activation::Silu,
        }],
    };
    let out = net.op(op, rows(n_ff), &[x]);
    net.check(
        out,
        &[&[3], &[5]],
        &format!("wide gate+up of {n_ff}, {decode_input:?}, {device:?}"),
    );
}

/// With x in 8 bits, a linear adding the residual stores the stream's runs times the
/// norm weight of the linear after it, whose kernel loads them instead of x: as a
/// layer's attention output before its gate+up, and (through a last-row view) as the
/// last layer's down projection before the output norm and projection. Readers that
/// fold different norms get no runs.
#[test]
fn residual_stream_in_8_bits_is_rounded_once_for_the_next_norm() {
    let mut rng = rng("residual_stream_in_8_bits_is_rounded_once_for_the_next_norm");
    let cols = 256;
    // Writers' rows of 512 take teams of 64 invocations, of `LONG_ROWS` teams of 128.
    let long = LONG_ROWS as usize;
    let types = [
        (GgmlType::Q4K, GgmlType::Q4K, 512, false),
        (GgmlType::Q6K, GgmlType::Q4_0, 512, true),
        (GgmlType::Q4_0, GgmlType::Q8_0, long, false),
        (GgmlType::Q4_1, GgmlType::Q6K, 512, true),
        (GgmlType::Q6K, GgmlType::Q4K, long, true),
    ];
    let steps: &[&[u32]] = &[&[3], &[5], &[1, 2], &[9]];
    for (device, (writer_ty, reader_ty, inner, last_row)) in BOTH_REDUCTIONS
        .into_iter()
        .flat_map(|d| types.map(|t| (d, t)))
    {
        let mut net = Net::new();
        net.device = device;
        net.decode_input = DecodeInput::Int8;
        net.runs_read = 1;
        net.tolerance = INT8_CHAIN_TOLERANCE;
        let stream = residual_stream(&mut net, (cols, inner), writer_ty, &mut rng);
        let stream = if last_row {
            let ty = TensorType::f32(&[Dim::Fixed(1), Dim::Fixed(cols)]);
            net.op(Op::LastRow, ty, &[stream])
        } else {
            stream
        };
        let out = normed_linear(&mut net, stream, "next", (reader_ty, 320), &mut rng);
        let what = format!(
            "{writer_ty} of {inner} + residual → normed {reader_ty}, last row {last_row}, {device:?}"
        );
        net.check(out, steps, &what);
    }
    let mut net = Net::new();
    net.decode_input = DecodeInput::Int8;
    net.tolerance = INT8_CHAIN_TOLERANCE;
    let stream = residual_stream(&mut net, (cols, 512), GgmlType::Q4K, &mut rng);
    let ty = (GgmlType::Q4K, 64);
    let left = normed_linear(&mut net, stream, "left", ty, &mut rng);
    let right = normed_linear(&mut net, stream, "right", ty, &mut rng);
    let out = net.same(Op::Add, &[left, right]);
    net.check(out, steps, "residual stream read under two norms");
}

/// A linear of `inner` inputs adding the residual stream of `cols`.
fn residual_stream(
    net: &mut Net,
    (cols, inner): (usize, usize),
    ty: GgmlType,
    rng: &mut SplitMix64,
) -> NodeId {
    let a = net.input("a", inner, rng);
    let x = net.input("x", cols, rng);
    let weight = net.weight(Tensor::random("o", ty, cols, inner, rng));
    let op = Op::Linear {
        weights: vec![weight],
        prologue: None,
        epilogue: vec![Epilogue::Residual],
    };
    net.op(op, rows(cols), &[a, x])
}

/// A linear of `n_rows` rows reading `x` through a norm prologue of its own.
fn normed_linear(
    net: &mut Net,
    x: NodeId,
    name: &str,
    (ty, n_rows): (GgmlType, usize),
    rng: &mut SplitMix64,
) -> NodeId {
    let cols = net.graph.node(x).ty.row_len().unwrap();
    let norm = Tensor::random(&format!("{name}.norm"), GgmlType::F32, 1, cols, rng);
    let norm = net.weight(norm);
    let weight = net.weight(Tensor::random(name, ty, n_rows, cols, rng));
    let op = Op::Linear {
        weights: vec![weight],
        prologue: Some(NormPrologue {
            eps: 1e-5,
            weight: norm,
        }),
        epilogue: Vec::new(),
    };
    let ty = TensorType::f32(&[net.graph.node(x).ty.shape[0], Dim::Fixed(n_rows)]);
    net.op(op, ty, &[x])
}

#[test]
fn matmul_prefill_of_every_type() {
    let mut rng = rng("matmul_prefill_of_every_type");
    let twenty: Vec<u32> = (0..20).collect();
    // Two tiles of 64 tokens, the second partial.
    let hundred: Vec<u32> = (0..100).map(|i| i % CONTEXT as u32).collect();
    for ty in GgmlType::ALL {
        matmul_case(ty, &[&twenty, &hundred, &[1, 2]], &mut rng);
    }
}

/// The prefill matmul on tensor cores (`matmul_prefill_coop`), where the adapter has
/// them: steps of 512 tokens (two whole tiles), 100 (a partial one) and 3, with and
/// without a residual.
#[test]
fn matmul_prefill_on_tensor_cores() {
    let mut rng = rng("matmul_prefill_on_tensor_cores");
    let tokens = |n: u32| -> Vec<u32> { (0..n).map(|i| i % CONTEXT as u32).collect() };
    let (long, short) = (tokens(512), tokens(100));
    // The one-token step runs the single-row kernel with x in f16 bound beside it.
    let steps: &[&[u32]] = &[&long, &short, &[5, 6, 7], &[8]];
    let (n_rows, cols) = (128, 512);
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q8_0,
        GgmlType::Q4K,
        GgmlType::Q6K,
        GgmlType::F16,
    ] {
        let mut net = Net::new();
        net.device = Device::TensorCores;
        net.capacity = 640;
        let x = net.input("x", cols, &mut rng);
        let residual = net.input("residual", n_rows, &mut rng);
        let weight = net.weight(Tensor::random("w", ty, n_rows, cols, &mut rng));
        let op = Op::Linear {
            weights: vec![weight],
            prologue: None,
            epilogue: vec![Epilogue::Residual],
        };
        let out = net.op(op, rows(n_rows), &[x, residual]);
        net.check(
            out,
            steps,
            &format!("linear {ty} + residual on tensor cores"),
        );
    }
    let mut net = Net::new();
    net.device = Device::TensorCores;
    net.capacity = 640;
    let x = net.input("x", cols, &mut rng);
    let weight = net.weight(Tensor::random("w", GgmlType::Q4K, n_rows, cols, &mut rng));
    let out = net.op(Op::MatMul { weight }, rows(n_rows), &[x]);
    net.check(out, steps, "matmul Q4_K on tensor cores");
    // As in a model's feed-forward block: x normed first (the raw rows the decode
    // kernel reads are bound too), then the gated half of gate and up as a view.
    let mut net = Net::new();
    net.device = Device::TensorCores;
    net.capacity = 640;
    let x = net.input("x", cols, &mut rng);
    let q4_k = (GgmlType::Q4K, GgmlType::Q4K);
    let out = net.feed_forward(x, (cols, 256), q4_k, &mut rng);
    net.check(out, steps, "feed-forward block on tensor cores");
}

/// With x in 8 bits, the gated kernel of a feed-forward block rounds its output once,
/// as runs, and the down projection's one-token kernel loads those: gate and up of
/// SmolLM2's, TinyLlama's and Mistral's types (Q4_1 takes four groups a workgroup only
/// for this), down of every type the real files use, and down rows long enough for
/// 128 invocations. Prompt steps beside them read x in f32.
#[test]
fn feed_forward_in_8_bits_rounds_the_gated_activation_once() {
    let mut rng = rng("feed_forward_in_8_bits_rounds_the_gated_activation_once");
    let types = [
        (GgmlType::Q4_1, GgmlType::Q4_1, 512),
        (GgmlType::Q4_0, GgmlType::Q4_0, 512),
        (GgmlType::Q4_0, GgmlType::Q8_0, 512),
        (GgmlType::Q4K, GgmlType::Q4K, 512),
        (GgmlType::Q4K, GgmlType::Q6K, LONG_ROWS as usize),
    ];
    for (device, (gate_up_ty, down_ty, n_ff)) in BOTH_REDUCTIONS
        .into_iter()
        .flat_map(|d| types.map(|t| (d, t)))
    {
        let mut net = Net::new();
        net.device = device;
        net.decode_input = DecodeInput::Int8;
        net.runs_read = 1;
        net.tolerance = INT8_CHAIN_TOLERANCE;
        let x = net.input("x", 256, &mut rng);
        let out = net.feed_forward(x, (256, n_ff), (gate_up_ty, down_ty), &mut rng);
        let what = format!("feed-forward {gate_up_ty} → {down_ty} of {n_ff} in 8 bits, {device:?}");
        net.check(out, &[&[3], &[5], &[1, 2], &[9]], &what);
    }
}

#[test]
fn unary_ops() {
    let mut rng = rng("unary_ops");
    let ops = [
        Op::Scale { factor: 0.37 },
        Op::Silu,
        Op::GeluTanh,
        Op::RmsNorm {
            eps: 1e-6,
            group: 96,
        },
        Op::RmsNorm {
            eps: 1e-5,
            group: 16,
        },
    ];
    for op in ops {
        let mut net = Net::new();
        let x = net.input("x", 96, &mut rng);
        let what = format!("{op:?}");
        let out = net.same(op, &[x]);
        net.check(out, ONE_STEP, &what);
    }
}

#[test]
fn binary_ops_and_norm_weight() {
    let mut rng = rng("binary_ops_and_norm_weight");
    for op in [Op::Add, Op::Mul] {
        let mut net = Net::new();
        let a = net.input("a", 96, &mut rng);
        let b = net.input("b", 96, &mut rng);
        let what = format!("{op:?}");
        let out = net.same(op, &[a, b]);
        net.check(out, ONE_STEP, &what);
    }
    let mut net = Net::new();
    let x = net.input("x", 96, &mut rng);
    let weight = net.weight(Tensor::random("norm", GgmlType::F32, 1, 96, &mut rng));
    let out = net.same(Op::MulWeight { weight }, &[x]);
    net.check(out, ONE_STEP, "mul_weight");
}

#[test]
fn last_row() {
    let mut rng = rng("last_row");
    let mut net = Net::new();
    let x = net.input("x", 64, &mut rng);
    let out = net.op(
        Op::LastRow,
        TensorType::f32(&[Dim::Fixed(1), Dim::Fixed(64)]),
        &[x],
    );
    net.check(out, ONE_STEP, "last_row");
}

/// With x in 8 bits, a matmul of a prompt's last row reads it in f32 (only one-token
/// steps round), on both sides, and a one-token step's is rounded.
#[test]
fn int8_decode_rounds_only_one_token_steps() {
    let mut rng = rng("int8_decode_rounds_only_one_token_steps");
    let mut net = Net::new();
    net.decode_input = DecodeInput::Int8;
    let cols = 256;
    let x = net.input("x", cols, &mut rng);
    let last = net.op(
        Op::LastRow,
        TensorType::f32(&[Dim::Fixed(1), Dim::Fixed(cols)]),
        &[x],
    );
    let weight = net.weight(Tensor::random("w", GgmlType::Q4K, 70, cols, &mut rng));
    let out = net.op(
        Op::MatMul { weight },
        TensorType::f32(&[Dim::Fixed(1), Dim::Fixed(70)]),
        &[last],
    );
    net.check(out, STEPS, "int8 matmul of the last row");
}

#[test]
fn rope_both_modes() {
    let mut rng = rng("rope_both_modes");
    for (mode, n_rot, first_position) in [
        (RopeMode::Adjacent, 32, 0),
        (RopeMode::Halves, 32, 0),
        (RopeMode::Halves, 16, 0),
        // Angles of up to 10^5 radians: sin and cos need a careful range reduction.
        (RopeMode::Adjacent, 32, 100_000),
        (RopeMode::Halves, 32, 100_000),
    ] {
        let mut net = Net::new();
        net.first_position = first_position;
        let x = net.input("x", 4 * 32, &mut rng);
        let rope = Rope {
            mode,
            head_dim: 32,
            n_rot,
            base: 10_000.0,
            freq_scale: 0.5 + rng.unit(),
        };
        let out = net.same(Op::Rope(rope), &[x]);
        let what = format!("rope {mode:?} n_rot {n_rot} from position {first_position}");
        net.check(out, STEPS, &what);
    }
}

/// Which attention op's output a case checks.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
enum Stage {
    Scores,
    Mask,
    Softmax,
    Mix,
}

fn attention_case(stage: Stage, window: Option<usize>, kv_type: KvType, rng: &mut SplitMix64) {
    let (n_head, n_head_kv, head_dim) = (4, 2, 16);
    let mut net = Net::new();
    net.kv_type = kv_type;
    let q = net.input("q", n_head * head_dim, rng);
    let k = net.input("k", n_head_kv * head_dim, rng);
    let v = net.input("v", n_head_kv * head_dim, rng);
    let cache_ty = TensorType::f32(&[Dim::Context, Dim::Fixed(n_head_kv * head_dim)]);
    let mut cached = Vec::new();
    for (i, x) in [k, v].into_iter().enumerate() {
        net.graph.caches.push(CacheDecl {
            name: format!("cache{i}"),
            layer: 0,
            row_len: n_head_kv * head_dim,
            window,
            rotary: None,
            ring: false,
        });
        cached.push(net.op(Op::CacheWrite { cache: i }, cache_ty.clone(), &[x]));
    }
    let scores_ty = TensorType::f32(&[Dim::Fixed(n_head), Dim::Tokens, Dim::Context]);
    let scores = net.op(
        Op::AttnScores {
            n_head,
            n_head_kv,
            head_dim,
            scale: 0.25,
        },
        scores_ty,
        &[q, cached[0]],
    );
    let mut out = scores;
    if stage >= Stage::Mask {
        out = net.same(Op::AttnMask { window }, &[out]);
    }
    if stage >= Stage::Softmax {
        out = net.same(Op::Softmax, &[out]);
    }
    if stage >= Stage::Mix {
        let mix = Op::AttnMix {
            n_head,
            n_head_kv,
            head_dim,
        };
        out = net.op(mix, rows(n_head * head_dim), &[out, cached[1]]);
    }
    net.check(
        out,
        STEPS,
        &format!("attention up to {stage:?}, window {window:?}, {kv_type:?} cache"),
    );
}

#[test]
fn attention_ops_over_both_cache_types() {
    let mut rng = rng("attention_ops_over_both_cache_types");
    for stage in [Stage::Scores, Stage::Mask, Stage::Softmax, Stage::Mix] {
        for window in [None, Some(3)] {
            for kv_type in [KvType::F16, KvType::F32] {
                attention_case(stage, window, kv_type, &mut rng);
            }
        }
    }
}

fn cols(start: usize, len: usize) -> Cols {
    Cols { start, len }
}

fn rope(mode: RopeMode, head_dim: usize, n_rot: usize) -> Rope {
    Rope {
        mode,
        head_dim,
        n_rot,
        base: 10_000.0,
        freq_scale: 1.0,
    }
}

/// Q, K and V as one linear makes them (Gemma's order of steps): weights of two types
/// (two runs, the first two side by side in one buffer), the norm prologue, per-head
/// norms, both rotations and a scale.
#[test]
fn linear_with_prologue_and_head_epilogues() {
    let mut rng = rng("linear_with_prologue_and_head_epilogues");
    // Near the start, and 70,000 positions in (angles of 10^4 radians and more); x in
    // f32 and in 8 bits (rounded after the prologue's norm weight, scaled after).
    for first_position in [0, 70_000] {
        for decode_input in [DecodeInput::F32, DecodeInput::Int8] {
            linear_qkv_case(first_position, decode_input, &mut rng);
        }
    }
}

fn linear_qkv_case(first_position: usize, decode_input: DecodeInput, rng: &mut SplitMix64) {
    let (head, n_cols) = (32, 256);
    let mut net = Net::new();
    net.first_position = first_position;
    net.decode_input = decode_input;
    let x = net.input("x", n_cols, rng);
    let weights = vec![
        net.weight(Tensor::random("q", GgmlType::Q4K, 2 * head, n_cols, rng)),
        net.weight(Tensor::random("k", GgmlType::Q4K, head, n_cols, rng)),
        net.weight(Tensor::random("v", GgmlType::Q6K, head, n_cols, rng)),
    ];
    let norm = net.weight(Tensor::random("norm", GgmlType::F32, 1, n_cols, rng));
    let q_norm = net.weight(Tensor::random("q_norm", GgmlType::F32, 1, head, rng));
    let k_norm = net.weight(Tensor::random("k_norm", GgmlType::F32, 1, head, rng));
    let head_norm = |c: Cols, weight: Weight| Epilogue::Norm {
        cols: c,
        eps: 1e-6,
        group: head,
        weight,
    };
    let epilogue = vec![
        head_norm(cols(0, 2 * head), q_norm),
        Epilogue::Rope {
            cols: cols(0, 2 * head),
            rope: rope(RopeMode::Halves, head, head),
        },
        Epilogue::Scale {
            cols: cols(0, 2 * head),
            factor: 0.3,
        },
        head_norm(cols(2 * head, head), k_norm),
        Epilogue::Rope {
            cols: cols(2 * head, head),
            rope: rope(RopeMode::Adjacent, head, head / 2),
        },
    ];
    let op = Op::Linear {
        weights,
        prologue: Some(NormPrologue {
            eps: 1e-5,
            weight: norm,
        }),
        epilogue,
    };
    let out = net.op(op, rows(4 * head), &[x]);
    net.check(
        out,
        STEPS,
        &format!("linear q+k+v from position {first_position}, {decode_input:?}"),
    );
}

/// Rotations the decode matmul applies as it stores: of Q and K over adjacent pairs
/// (all of a head, or half of it) and over halves, with V beside them in another type.
/// (The gated activation it folds is in `linear_gated_and_residual`.)
#[test]
fn linear_epilogues_folded_into_decode() {
    let mut rng = rng("linear_epilogues_folded_into_decode");
    let head = 32;
    let shapes = [
        (RopeMode::Adjacent, head),
        (RopeMode::Adjacent, head / 2),
        (RopeMode::Halves, head),
    ];
    for (mode, n_rot) in shapes {
        for (first_position, decode_input) in [(0, DecodeInput::F32), (70_000, DecodeInput::Int8)] {
            let mut net = Net::new();
            net.first_position = first_position;
            net.folded = true;
            net.decode_input = decode_input;
            let x = net.input("x", 256, &mut rng);
            let weights = vec![
                net.weight(Tensor::random("q", GgmlType::Q4K, 2 * head, 256, &mut rng)),
                net.weight(Tensor::random("k", GgmlType::Q4K, head, 256, &mut rng)),
                net.weight(Tensor::random("v", GgmlType::Q6K, head, 256, &mut rng)),
            ];
            let epilogue = vec![
                Epilogue::Rope {
                    cols: cols(0, 2 * head),
                    rope: rope(mode, head, n_rot),
                },
                Epilogue::Rope {
                    cols: cols(2 * head, head),
                    rope: rope(mode, head, n_rot),
                },
            ];
            let op = Op::Linear {
                weights,
                prologue: None,
                epilogue,
            };
            let out = net.op(op, rows(4 * head), &[x]);
            net.check(
                out,
                STEPS,
                &format!(
                    "linear q+k+v, {mode:?} rotation of {n_rot}, from {first_position}, {decode_input:?}"
                ),
            );
        }
    }
}

/// Gate and up side by side and the gated activation, alone (which the decode matmul
/// folds) or then the residual add (which it leaves to the epilogue); and a linear
/// whose only epilogue is the residual (which the matmul adds as it stores).
#[test]
fn linear_gated_and_residual() {
    let mut rng = rng("linear_gated_and_residual");
    let (n_cols, n_ff) = (128, 96);
    for act in [Activation::Silu, Activation::GeluTanh] {
        for with_residual in [false, true] {
            let mut net = Net::new();
            net.folded = !with_residual;
            let x = net.input("x", n_cols, &mut rng);
            let residual = net.input("residual", n_ff, &mut rng);
            let weights = ["gate", "up"]
                .map(|name| {
                    net.weight(Tensor::random(name, GgmlType::Q8_0, n_ff, n_cols, &mut rng))
                })
                .to_vec();
            let mut epilogue = vec![Epilogue::Gated { act }];
            let mut inputs = vec![x];
            if with_residual {
                epilogue.push(Epilogue::Residual);
                inputs.push(residual);
            }
            let op = Op::Linear {
                weights,
                prologue: None,
                epilogue,
            };
            let out = net.op(op, rows(n_ff), &inputs);
            net.check(
                out,
                STEPS,
                &format!("linear gated {act:?}, residual {with_residual}"),
            );
        }
    }
    let mut net = Net::new();
    let x = net.input("x", n_cols, &mut rng);
    let residual = net.input("residual", n_ff, &mut rng);
    let down = net.weight(Tensor::random(
        "down",
        GgmlType::Q4_0,
        n_ff,
        n_cols,
        &mut rng,
    ));
    let op = Op::Linear {
        weights: vec![down],
        prologue: None,
        epilogue: vec![Epilogue::Residual],
    };
    let out = net.op(op, rows(n_ff), &[x, residual]);
    net.check(out, STEPS, "linear + residual");
}

/// A linear reads views in place: some columns of a wider row, and the last row.
#[test]
fn linear_over_views() {
    let mut rng = rng("linear_over_views");
    let mut net = Net::new();
    let wide = net.input("wide", 160, &mut rng);
    let x = net.op(Op::Columns { cols: cols(64, 64) }, rows(64), &[wide]);
    let last = net.op(
        Op::LastRow,
        TensorType::f32(&[Dim::Fixed(1), Dim::Fixed(64)]),
        &[x],
    );
    let norm = net.weight(Tensor::random("norm", GgmlType::F32, 1, 64, &mut rng));
    let w = net.weight(Tensor::random("w", GgmlType::Q8_0, 40, 64, &mut rng));
    let op = Op::Linear {
        weights: vec![w],
        prologue: Some(NormPrologue {
            eps: 1e-5,
            weight: norm,
        }),
        epilogue: vec![],
    };
    let out = net.op(
        op,
        TensorType::f32(&[Dim::Fixed(1), Dim::Fixed(40)]),
        &[last],
    );
    net.check(out, STEPS, "linear over the last row of columns");
}

#[test]
fn rms_norm_mul_with_and_without_residual() {
    let mut rng = rng("rms_norm_mul_with_and_without_residual");
    for residual in [false, true] {
        let mut net = Net::new();
        let x = net.input("x", 96, &mut rng);
        let r = net.input("r", 96, &mut rng);
        let weight = net.weight(Tensor::random("norm", GgmlType::F32, 1, 96, &mut rng));
        let op = Op::RmsNormMul {
            eps: 1e-6,
            group: 96,
            weight,
            residual,
        };
        let inputs: &[NodeId] = if residual { &[x, r] } else { &[x] };
        let out = net.same(op, inputs);
        net.check(out, ONE_STEP, &format!("rms_norm_mul residual {residual}"));
    }
}

/// A net of the fused attention, q, k and v being columns of one row as the linear
/// before it makes them; the key cache rotated by `rotary` (which only a context shift
/// reads), and a ring of `window` positions for a sliding window.
/// Self-attention of 4 query heads over 2 kv heads ([`grouped_attention_net`]).
fn attention_net(
    head_dim: usize,
    window: Option<usize>,
    kv_type: KvType,
    rotary: Option<Rope>,
    rng: &mut SplitMix64,
) -> (Net, NodeId) {
    grouped_attention_net((4, 2), head_dim, window, kv_type, rotary, rng)
}

/// Self-attention of `heads` (query, kv) heads over caches of `kv_type`.
fn grouped_attention_net(
    heads: (usize, usize),
    head_dim: usize,
    window: Option<usize>,
    kv_type: KvType,
    rotary: Option<Rope>,
    rng: &mut SplitMix64,
) -> (Net, NodeId) {
    let (n_head, n_head_kv) = heads;
    let (q_len, kv_len) = (n_head * head_dim, n_head_kv * head_dim);
    let mut net = Net::new();
    net.kv_type = kv_type;
    let qkv = net.input("qkv", q_len + 2 * kv_len, rng);
    let mut column = |start, len| {
        let op = Op::Columns {
            cols: cols(start, len),
        };
        net.op(op, rows(len), &[qkv])
    };
    let (q, k, v) = (
        column(0, q_len),
        column(q_len, kv_len),
        column(q_len + kv_len, kv_len),
    );
    for (i, rotary) in [rotary, None].into_iter().enumerate() {
        net.graph.caches.push(CacheDecl {
            name: format!("cache{i}"),
            layer: 0,
            row_len: kv_len,
            window,
            rotary,
            ring: window.is_some(),
        });
    }
    let op = Op::Attention {
        n_head,
        n_head_kv,
        head_dim,
        scale: 0.25,
        window,
        k_cache: 0,
        v_cache: 1,
    };
    let out = net.op(op, rows(q_len), &[q, k, v]);
    (net, out)
}

/// The fused attention over prefill and decode steps; a sliding window's ring, which
/// the later steps wrap around.
#[test]
fn fused_attention_over_steps() {
    let mut rng = rng("fused_attention_over_steps");
    let steps: &[&[u32]] = &[&[0, 1, 2, 3, 4], &[5], &[6, 7, 8], &[9], &[10, 11], &[12]];
    let cases = [
        (16, None, KvType::F16),
        (16, Some(3), KvType::F16),
        (80, None, KvType::F16),
        (80, Some(4), KvType::F16),
        (16, Some(3), KvType::F32),
        (80, None, KvType::F32),
    ];
    for (head_dim, window, kv_type) in cases {
        let (net, out) = attention_net(head_dim, window, kv_type, None, &mut rng);
        net.check(
            out,
            steps,
            &format!("attention d={head_dim} window {window:?}, {kv_type:?} cache"),
        );
    }
    // Groups of query heads that fill four lanes once, partly and twice over.
    for heads in [(4, 1), (6, 2), (8, 1)] {
        let (net, out) = grouped_attention_net(heads, 16, Some(5), KvType::F16, None, &mut rng);
        net.check(out, steps, &format!("attention of {heads:?} heads"));
    }
}

/// A longer step's attention takes up to 32 queries (8 for heads of 256) and up to 16
/// keys at a time: prompts of several query tiles and key tiles, partial ones at both
/// ends, for the head sizes of real models and for ones whose lanes hold fewer than
/// eight pairs of a query's values (80, 144), with and without a window that starts
/// inside a tile.
#[test]
fn prefill_attention_in_query_tiles() {
    let mut rng = rng("prefill_attention_in_query_tiles");
    let first: Vec<u32> = (0..41).map(|i| i % CONTEXT as u32).collect();
    let second: Vec<u32> = (0..19).map(|i| (i * 7) % CONTEXT as u32).collect();
    let steps: &[&[u32]] = &[&first, &[3], &second];
    for (head_dim, window, kv_type) in [
        (64, None, KvType::F16),
        (80, None, KvType::F32),
        (128, Some(23), KvType::F32),
        (144, Some(30), KvType::F16),
        (256, None, KvType::F16),
        (256, Some(37), KvType::F16),
    ] {
        let (mut net, out) = attention_net(head_dim, window, kv_type, None, &mut rng);
        net.capacity = 64;
        net.check(
            out,
            steps,
            &format!("tiled attention d={head_dim} window {window:?}, {kv_type:?} cache"),
        );
    }
}

/// A decode step's attention splits the keys into runs and combines them: after a
/// prefill of 160 tokens (three runs of 64 keys, the last of 33 to 35 keys: the second
/// half of its values taken only past 32), without a window and with one of 140
/// (three runs) or 100 (one run, no combine) over a ring cache; and after 4200
/// positions (17 runs of 256 keys, the block of heads of up to 32; the positions before
/// the steps are zero in both caches, so their runs weigh in with zero scores and zero
/// values).
#[test]
fn split_decode_attention_over_long_contexts() {
    let mut rng = rng("split_decode_attention_over_long_contexts");
    let prefill: Vec<u32> = (0..160).map(|i| i % CONTEXT as u32).collect();
    let long: &[&[u32]] = &[&prefill, &[7], &[8], &[9]];
    for (window, kv_type) in [
        (None, KvType::F16),
        (Some(140), KvType::F32),
        (Some(100), KvType::F16),
    ] {
        let (mut net, out) = attention_net(80, window, kv_type, None, &mut rng);
        net.capacity = 168;
        net.check(out, long, &format!("split attention, window {window:?}"));
    }
    let (mut net, out) = grouped_attention_net((8, 1), 16, None, KvType::F16, None, &mut rng);
    net.capacity = 168;
    net.check(out, long, "split attention, two groups of four query heads");
    // Heads whose value rows take 16 groups of keys (32), four (128: Llama's and
    // Mistral's), and three with invocations left over (144).
    for head_dim in [32, 128, 144] {
        let (mut net, out) = attention_net(head_dim, None, KvType::F16, None, &mut rng);
        net.capacity = 168;
        net.check(out, long, &format!("split attention, heads of {head_dim}"));
    }
    // Heads of 64 (TinyLlama's), whose values take eight groups of keys: after 290
    // tokens, five runs, the last of 35 to 37 keys.
    let prefill: Vec<u32> = (0..290).map(|i| i % CONTEXT as u32).collect();
    let (mut net, out) = attention_net(64, None, KvType::F16, None, &mut rng);
    net.capacity = 300;
    net.check(
        out,
        &[&prefill, &[7], &[8], &[9]],
        "split attention, heads of 64",
    );
    let (mut net, out) = attention_net(16, None, KvType::F16, None, &mut rng);
    net.first_position = 4200;
    net.check(out, STEPS, "split attention after 4200 positions");
}

/// With x in 8 bits, a decode step's attention stores its output's runs for the
/// attention output projection, which loads them: from the split kernel (one run of
/// keys) and from the combine (several), heads of 64, 80 and 256.
#[test]
fn attention_in_8_bits_rounds_its_output_once() {
    let mut rng = rng("attention_in_8_bits_rounds_its_output_once");
    let prefill: Vec<u32> = (0..160).map(|i| i % CONTEXT as u32).collect();
    let long: &[&[u32]] = &[&prefill, &[7], &[8], &[9]];
    let cases = [
        (64, None, GgmlType::Q4K, long),
        (80, Some(100), GgmlType::Q4_0, long),
        (256, None, GgmlType::Q6K, STEPS),
    ];
    for (head_dim, window, ty, steps) in cases {
        let (mut net, attention) = attention_net(head_dim, window, KvType::F16, None, &mut rng);
        net.capacity = 168;
        net.decode_input = DecodeInput::Int8;
        net.runs_read = 1;
        net.tolerance = INT8_CHAIN_TOLERANCE;
        let q_len = 4 * head_dim;
        let weight = net.weight(Tensor::random("output", ty, 64, q_len, &mut rng));
        let out = net.op(Op::MatMul { weight }, rows(64), &[attention]);
        let what = format!("attention d={head_dim} window {window:?} → {ty} in 8 bits");
        net.check(out, steps, &what);
    }
}

/// The context shift: after 9 positions, positions 2 .. 5 are dropped on both sides
/// (rows moved down, keys turned back), then decode and prefill steps go on over the
/// shifted caches; both rotations, rings, both cache types.
#[test]
fn context_shift_moves_rows_and_turns_keys() {
    let mut rng = rng("context_shift_moves_rows_and_turns_keys");
    let steps: &[&[u32]] = &[&[0, 1, 2, 3, 4], &[5], &[6, 7, 8], &[9], &[10, 11], &[12]];
    let cases = [
        (
            16,
            None,
            KvType::F16,
            Some(rope(RopeMode::Adjacent, 16, 16)),
        ),
        (16, None, KvType::F32, Some(rope(RopeMode::Halves, 16, 12))),
        (
            80,
            Some(5),
            KvType::F16,
            Some(rope(RopeMode::Halves, 80, 80)),
        ),
        (
            16,
            Some(4),
            KvType::F32,
            Some(rope(RopeMode::Adjacent, 16, 8)),
        ),
        (16, None, KvType::F16, None),
    ];
    for (head_dim, window, kv_type, rotary) in cases {
        let (net, out) = attention_net(head_dim, window, kv_type, rotary, &mut rng);
        let what = format!("shift, d={head_dim} window {window:?}, {kv_type:?} cache, {rotary:?}");
        net.check_shifted(out, steps, Some((3, 2, 3)), &what);
    }
}

#[test]
fn top_k_reads_back_the_largest_of_the_last_row() {
    let Some(context) = gpu() else { return };
    let mut rng = rng("top_k");
    // Five chunks of the first dispatch, the last one partial.
    let n = 4992;
    // Few distinct values, so that ties within and across chunks are common.
    let mut values: Vec<f32> = (0..CONTEXT * n)
        .map(|_| (rng.signed_unit() * 64.0).round() / 8.0)
        .collect();
    // Row 9 (the last token's) has its maximum twice, in different chunks.
    let best = 1000 + (rng.next_u64() % 3000) as usize;
    values[9 * n + best] = 9.0;
    values[9 * n + best + 1100] = 9.0;
    let mut net = Net::new();
    let table = net.weight(Tensor::f32("logits", CONTEXT, n, &values));
    let ids = net.ids;
    let out = net.op(Op::Embed { table }, rows(n), &[ids]);
    net.graph.output = out;
    let file = TestFile::new(&net.tensors);
    let options = GpuOptions {
        max_tokens: 4,
        context: CONTEXT,
        kv_type: KvType::F16,
        decode_input: DecodeInput::F32,
        round_once: true,
    };
    let gpu = GpuExecutor::new(&net.graph, &file.gguf, context, options).unwrap();
    let mut kv = gpu.kv_cache().unwrap();
    let got = gpu.run_argmax(&[4, 9], 0, &mut kv).unwrap();
    assert_eq!(got as usize, best);
    assert_eq!(argmax(&values[9 * n..10 * n]), best);
    for row in 0..8u32 {
        let r = row as usize;
        let logits = &values[r * n..(r + 1) * n];
        let got = gpu.run_argmax(&[row], 0, &mut kv).unwrap() as usize;
        assert_eq!(got, argmax(logits), "argmax of row {row}");
        for k in [2, 40, TOP_K_MAX] {
            let got = gpu.run_top_k(&[1, row], 0, &mut kv, k).unwrap();
            assert_eq!(got, top_k(logits, k), "top-{k} of row {row}");
        }
    }
    assert!(gpu.run_top_k(&[1], 0, &mut kv, TOP_K_MAX + 1).is_err());
    assert!(gpu.run_top_k(&[1], 0, &mut kv, 0).is_err());
}

#[test]
fn bad_steps_are_errors() {
    let Some(context) = gpu() else { return };
    let mut rng = rng("bad_steps_are_errors");
    let mut net = Net::new();
    let x = net.input("x", 32, &mut rng);
    net.graph.output = net.same(Op::Silu, &[x]);
    let file = TestFile::new(&net.tensors);
    let options = GpuOptions {
        max_tokens: 4,
        context: 8,
        kv_type: KvType::F16,
        decode_input: DecodeInput::F32,
        round_once: true,
    };
    let gpu = GpuExecutor::new(&net.graph, &file.gguf, context, options).unwrap();
    let other = GpuExecutor::new(&net.graph, &file.gguf, context, options).unwrap();
    let mut kv = gpu.kv_cache().unwrap();
    let err = |r: Result<Vec<f32>, GpuError>| r.unwrap_err().to_string();
    assert!(matches!(
        gpu.run(&[], 0, &mut kv),
        Err(GpuError::Run(RunError::NoTokens))
    ));
    assert!(matches!(
        gpu.run(&[CONTEXT as u32], 0, &mut kv),
        Err(GpuError::Run(RunError::TokenOutOfRange { .. }))
    ));
    assert!(err(gpu.run(&[1; 5], 0, &mut kv)).contains("max_tokens"));
    assert!(matches!(
        gpu.run(&[1, 2], 7, &mut kv),
        Err(GpuError::Run(RunError::ContextFull { .. }))
    ));
    assert!(matches!(
        other.run(&[1], 0, &mut kv),
        Err(GpuError::ForeignCache)
    ));
    assert_eq!(gpu.run(&[1], 0, &mut kv).unwrap().len(), 32);
}
