//! Dequantisation of every supported type against fixtures from an independent
//! implementation (the `gguf` Python package; see scripts/gen_quant_fixtures.py).
//! Results must be bit-identical.

use std::path::{Path, PathBuf};

use rustorch::gguf::dequant::dequantize;
use rustorch::gguf::GgmlType;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/quant")
        .join(name)
}

fn read_fixture(name: &str) -> Result<Vec<u8>, String> {
    let path = fixture(name);
    std::fs::read(&path).map_err(|e| {
        format!(
            "missing fixture {} ({e}); run scripts/gen_quant_fixtures.py",
            path.display()
        )
    })
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    assert_eq!(bytes.len() % 4, 0);
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Checks one type; `Err` describes the first problem.
fn check(ty: GgmlType) -> Result<(), String> {
    let blocks = read_fixture(&format!("{}.blocks", ty.name()))?;
    let expected = f32s(&read_fixture(&format!("{}.f32", ty.name()))?);
    if blocks.is_empty() {
        return Err(format!("{ty}: empty fixture"));
    }
    let mut got = vec![f32::NAN; expected.len()];
    dequantize(ty, &blocks, &mut got).map_err(|e| format!("{ty}: {e}"))?;
    match got
        .iter()
        .zip(&expected)
        .position(|(g, e)| g.to_bits() != e.to_bits())
    {
        None => Ok(()),
        Some(i) => Err(format!(
            "{ty}: first mismatch at index {i} (block {}): got {:e} ({:#010x}), expected {:e} ({:#010x})",
            i / ty.block_size(),
            got[i],
            got[i].to_bits(),
            expected[i],
            expected[i].to_bits()
        )),
    }
}

#[test]
fn every_type_matches_its_fixture_bit_for_bit() {
    let failures: Vec<String> = GgmlType::ALL
        .into_iter()
        .filter_map(|ty| check(ty).err())
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
