//! Shared by the GPU tests: the device (fail under `CI=true` when there is none, skip
//! loudly elsewhere), small GGUF files of random tensors, and result comparison.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use rustorch::gguf::{GgmlType, GgufFile, GgufWriter, TensorSpec};
use rustorch::runtime::gpu::{AdapterChoice, DeviceFeatures, GpuContext};
use rustorch::synth::{fill_random, SplitMix64};

/// The device every GPU test shares, or `None` (after a loud message) when there is
/// no adapter outside CI. Under `CI=true` a missing adapter fails the test.
pub fn gpu() -> Option<&'static GpuContext> {
    static CONTEXT: OnceLock<Result<GpuContext, String>> = OnceLock::new();
    shared(&CONTEXT, DeviceFeatures::default())
}

/// As [`gpu`], opened without subgroups: the decode matmul sums by its tree, as on
/// adapters that have none.
pub fn gpu_without_subgroups() -> Option<&'static GpuContext> {
    static CONTEXT: OnceLock<Result<GpuContext, String>> = OnceLock::new();
    let features = DeviceFeatures {
        subgroups: false,
        ..DeviceFeatures::default()
    };
    shared(&CONTEXT, features)
}

fn shared(
    context: &'static OnceLock<Result<GpuContext, String>>,
    features: DeviceFeatures,
) -> Option<&'static GpuContext> {
    let context = context.get_or_init(|| {
        let choice = std::env::var("RUSTORCH_ADAPTER")
            .map(|s| s.parse().expect("infallible"))
            .unwrap_or(AdapterChoice::Auto);
        GpuContext::open(&choice, features).map_err(|e| e.to_string())
    });
    match context {
        Ok(context) => Some(context),
        Err(message) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{message}");
            }
            eprintln!("\n*** SKIPPED: {message} ***\n");
            None
        }
    }
}

/// A device opened with tensor cores for the prefill matmul, or `None` (after a loud
/// message) where the adapter has none: lavapipe, and so CI, has none; the project's
/// device machine (an NVIDIA H100) runs these checks.
pub fn tensor_core_gpu() -> Option<&'static GpuContext> {
    static CONTEXT: OnceLock<Result<GpuContext, String>> = OnceLock::new();
    let context = CONTEXT.get_or_init(|| {
        let features = DeviceFeatures {
            tensor_cores: true,
            ..DeviceFeatures::default()
        };
        GpuContext::open(&AdapterChoice::Auto, features).map_err(|e| e.to_string())
    });
    match context {
        Ok(context) if context.has_tensor_cores() => Some(context),
        Ok(context) => {
            eprintln!(
                "\n*** SKIPPED: {} has no tensor cores wgpu can use ***\n",
                context.adapter_description()
            );
            None
        }
        Err(message) => {
            eprintln!("\n*** SKIPPED: {message} ***\n");
            None
        }
    }
}

/// A fresh seed every run, printed so that a failure can be replayed (`RUSTORCH_SEED`).
pub fn rng(test: &str) -> SplitMix64 {
    let seed = std::env::var("RUSTORCH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("{test}: RUSTORCH_SEED={seed}");
    SplitMix64::new(seed)
}

/// A tensor of a test model: `rows` rows of `cols` values of type `ty`.
pub struct Tensor {
    pub name: String,
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub bytes: Vec<u8>,
}

impl Tensor {
    /// Random weights of sane magnitude in any type.
    pub fn random(
        name: &str,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        rng: &mut SplitMix64,
    ) -> Tensor {
        let n_bytes = rows * cols / ty.block_size() * ty.block_bytes();
        let mut bytes = vec![0u8; n_bytes];
        fill_random(ty, &mut bytes, rng);
        Tensor {
            name: name.into(),
            ty,
            rows,
            cols,
            bytes,
        }
    }

    /// F32 values.
    pub fn f32(name: &str, rows: usize, cols: usize, values: &[f32]) -> Tensor {
        assert_eq!(values.len(), rows * cols);
        Tensor {
            name: name.into(),
            ty: GgmlType::F32,
            rows,
            cols,
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

/// A GGUF file of tensors in the temporary directory, removed on drop.
pub struct TestFile {
    path: PathBuf,
    pub gguf: GgufFile,
}

impl TestFile {
    pub fn new(tensors: &[Tensor]) -> TestFile {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "rustorch-gpu-{}-{}.gguf",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let mut writer = GgufWriter::new();
        for t in tensors {
            let spec = TensorSpec::new(&t.name, &[t.cols as u64, t.rows as u64], t.ty);
            writer.add_tensor(spec).unwrap();
        }
        let file = std::fs::File::create(&path).unwrap();
        writer
            .write(std::io::BufWriter::new(file), |i, _, sink| {
                sink.write_all(&tensors[i].bytes)
            })
            .unwrap();
        let gguf = GgufFile::open(&path).unwrap();
        TestFile { path, gguf }
    }
}

impl Drop for TestFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// ‖a − b‖ / ‖b‖, after checking that both have their infinities and NaNs in the same
/// places (they are left out of the norms).
pub fn relative_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths");
    let (mut diff, mut norm) = (0f64, 0f64);
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        if !y.is_finite() || !x.is_finite() {
            assert!(
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                "value {i}: {x} vs {y}"
            );
            continue;
        }
        diff += (x as f64 - y as f64).powi(2);
        norm += (y as f64).powi(2);
    }
    if norm == 0.0 {
        return diff.sqrt();
    }
    (diff / norm).sqrt()
}
