//! The on-disk pipeline cache: written after an executor builds its pipelines, read by
//! the next device, and harmless when damaged. (Its own test binary: it points
//! `RUSTORCH_CACHE_DIR` at a fresh directory before any device opens.)

mod gpu_common;

use gpu_common::{gpu, relative_l2, rng, Tensor, TestFile};
use rustorch::gguf::GgmlType;
use rustorch::graph::{DType, Dim, Graph, Op, TensorType, Weight};
use rustorch::runtime::cpu::CpuInterpreter;
use rustorch::runtime::gpu::{
    AdapterChoice, GpuContext, GpuExecutor, GpuOptions, CACHE_DIR_VARIABLE,
};
use rustorch::runtime::{DecodeInput, KvCache, KvType};

/// Embedding rows through a Q4_K matmul: two modules' pipelines.
fn small_model() -> (Graph, TestFile) {
    let mut rng = rng("pipeline cache");
    let table = Tensor::random("table", GgmlType::F32, 8, 256, &mut rng);
    let matrix = Tensor::random("w", GgmlType::Q4K, 40, 256, &mut rng);
    let weight = |t: &Tensor| Weight {
        name: t.name.clone(),
        ty: t.ty,
        rows: t.rows,
        cols: t.cols,
    };
    let mut graph = Graph::default();
    let ids_ty = TensorType {
        dtype: DType::I32,
        shape: vec![Dim::Tokens],
    };
    let ids = graph.add(Op::TokenIds, ids_ty, "tokens", &[]);
    let rows = |n| TensorType::f32(&[Dim::Tokens, Dim::Fixed(n)]);
    let x = graph.add(
        Op::Embed {
            table: weight(&table),
        },
        rows(256),
        "x",
        &[ids],
    );
    let out = Op::MatMul {
        weight: weight(&matrix),
    };
    graph.output = graph.add(out, rows(40), "out", &[x]);
    (graph, TestFile::new(&[table, matrix]))
}

/// Builds the model's executor on `context` and checks one step against the CPU.
fn build_and_run(context: &GpuContext, graph: &Graph, file: &TestFile) {
    let options = GpuOptions {
        max_tokens: 2,
        context: 4,
        kv_type: KvType::F16,
        decode_input: DecodeInput::F32,
        round_once: true,
    };
    let executor = GpuExecutor::new(graph, &file.gguf, context, options).unwrap();
    let cpu = CpuInterpreter::new(graph, &file.gguf).unwrap();
    let tokens = [3, 5];
    let want = cpu
        .run(&tokens, 0, &mut KvCache::new(graph, 4, KvType::F16))
        .unwrap();
    let got = executor
        .run(&tokens, 0, &mut executor.kv_cache().unwrap())
        .unwrap();
    let err = relative_l2(&got, &want);
    assert!(err < 1e-4, "relative L2 {err:e}");
}

#[test]
fn pipelines_are_cached_on_disk_and_a_damaged_cache_is_ignored() {
    let dir = std::env::temp_dir().join(format!("rustorch-pipelines-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Before any device opens, and the only test in this binary: no thread reads the
    // environment concurrently.
    std::env::set_var(CACHE_DIR_VARIABLE, &dir);
    let Some(first) = gpu() else { return };
    let (graph, file) = small_model();
    build_and_run(first, &graph, &file);

    let cached = first
        .device
        .features()
        .contains(wgpu::Features::PIPELINE_CACHE);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    if !cached {
        assert!(
            files.is_empty(),
            "no cache without PIPELINE_CACHE: {files:?}"
        );
        eprintln!(
            "*** {}: no PIPELINE_CACHE, nothing cached ***",
            first.adapter_description()
        );
        return;
    }
    assert_eq!(files.len(), 1, "one cache file per adapter: {files:?}");
    let written = std::fs::read(&files[0]).unwrap();
    assert!(!written.is_empty());

    // A second device reads the cache and builds working pipelines from it.
    let choice = AdapterChoice::Named(first.adapter_info().name.clone());
    build_and_run(&GpuContext::new(&choice).unwrap(), &graph, &file);

    // A damaged cache: the header check fails, the pipelines compile afresh, and the
    // file is written whole again.
    std::fs::write(&files[0], b"not a pipeline cache").unwrap();
    build_and_run(&GpuContext::new(&choice).unwrap(), &graph, &file);
    assert!(std::fs::read(&files[0]).unwrap().len() > 20);
    std::fs::remove_dir_all(&dir).unwrap();
}
