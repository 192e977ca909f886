//! Dequantisation of every supported type, and the Q8_0/Q4_0 quantisers, against
//! fixtures from an independent implementation (the `gguf` Python package; see
//! scripts/gen_quant_fixtures.py). Results must be bit-identical, and a missing
//! fixture is a failure.

use std::path::{Path, PathBuf};

use rustorch::gguf::dequant::dequantize;
use rustorch::gguf::quantize::quantize;
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

/// Checks a quantiser the `gguf` package also implements (as ggml's reference
/// one): the same input must give the same bytes.
fn check_quantiser(ty: GgmlType) -> Result<(), String> {
    let input = f32s(&read_fixture(&format!("{}.quant_in.f32", ty.name()))?);
    let expected = read_fixture(&format!("{}.quant_out.blocks", ty.name()))?;
    let mut got = Vec::new();
    quantize(ty, &input, &mut got).map_err(|e| format!("{ty}: {e}"))?;
    if got.len() != expected.len() {
        return Err(format!(
            "{ty}: {} bytes, expected {}",
            got.len(),
            expected.len()
        ));
    }
    match got.iter().zip(&expected).position(|(g, e)| g != e) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{ty}: first differing byte {i} (block {}): got {:#04x}, expected {:#04x}",
            i / ty.block_bytes(),
            got[i],
            expected[i]
        )),
    }
}

#[test]
fn q8_0_and_q4_0_quantisers_match_the_gguf_package_byte_for_byte() {
    let failures: Vec<String> = [GgmlType::Q8_0, GgmlType::Q4_0]
        .into_iter()
        .filter_map(|ty| check_quantiser(ty).err())
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
