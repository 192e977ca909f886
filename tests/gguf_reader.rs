//! The GGUF reader against files written by our writer, and against hand-made
//! hostile files: every malformation is an `Err` naming what and where, never a panic.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use rustorch::gguf::{
    Array, GgmlType, GgufError, GgufHeader, GgufWriter, TensorSpec, Value, MAX_ARRAY_DEPTH,
};

/// A file with one value of every metadata type and three tensors.
fn sample_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.set("t.u8", Value::U8(200))
        .set("t.i8", Value::I8(-100))
        .set("t.u16", Value::U16(60000))
        .set("t.i16", Value::I16(-30000))
        .set("t.u32", Value::U32(4_000_000_000))
        .set("t.i32", Value::I32(-2_000_000_000))
        .set("t.f32", Value::F32(1.5))
        .set("t.bool", Value::Bool(true))
        .set("t.string", Value::String("héllo ▁world".into()))
        .set("t.u64", Value::U64(u64::MAX))
        .set("t.i64", Value::I64(i64::MIN))
        .set("t.f64", Value::F64(-0.25))
        .set(
            "t.strs",
            Value::Array(Array::String(vec!["a".into(), "".into(), "ü".into()])),
        )
        .set("t.f32s", Value::Array(Array::F32(vec![0.5, -1.0])))
        .set("t.bools", Value::Array(Array::Bool(vec![true, false])))
        .set(
            "t.nested",
            Value::Array(Array::Array(vec![
                Array::I32(vec![1, 2]),
                Array::String(vec!["x".into()]),
            ])),
        );
    w.add_tensor(TensorSpec::new("a", &[64, 2], GgmlType::Q4_0))
        .unwrap();
    w.add_tensor(TensorSpec::new("b", &[3], GgmlType::F32))
        .unwrap();
    w.add_tensor(TensorSpec::new("c", &[256], GgmlType::Q6K))
        .unwrap();
    let mut bytes = Vec::new();
    w.write(&mut bytes, |i, spec, sink| {
        sink.write_all(&vec![i as u8 + 1; spec.n_bytes().unwrap() as usize])
    })
    .unwrap();
    bytes
}

#[test]
fn every_value_type_round_trips_through_writer_and_reader() {
    let bytes = sample_file();
    let h = GgufHeader::parse(&bytes).unwrap();
    let m = &h.metadata;
    assert_eq!(h.version, 3);
    assert_eq!(m.get("t.u8"), Some(&Value::U8(200)));
    assert_eq!(m.get("t.i8"), Some(&Value::I8(-100)));
    assert_eq!(m.get("t.u16"), Some(&Value::U16(60000)));
    assert_eq!(m.get("t.i16"), Some(&Value::I16(-30000)));
    assert_eq!(m.get_u32("t.u32"), Ok(4_000_000_000));
    assert_eq!(m.get_i64("t.i32"), Ok(-2_000_000_000));
    assert_eq!(m.get_f32("t.f32"), Ok(1.5));
    assert_eq!(m.get_bool("t.bool"), Ok(true));
    assert_eq!(m.get_str("t.string"), Ok("héllo ▁world"));
    assert_eq!(m.get_u64("t.u64"), Ok(u64::MAX));
    assert_eq!(m.get_i64("t.i64"), Ok(i64::MIN));
    assert_eq!(m.get("t.f64"), Some(&Value::F64(-0.25)));
    assert_eq!(m.get_str_array("t.strs").unwrap(), ["a", "", "ü"]);
    assert_eq!(m.get_f32_array("t.f32s").unwrap(), [0.5, -1.0]);
    assert_eq!(
        m.get_array("t.bools").unwrap(),
        &Array::Bool(vec![true, false])
    );
    assert_eq!(
        m.get_array("t.nested").unwrap(),
        &Array::Array(vec![
            Array::I32(vec![1, 2]),
            Array::String(vec!["x".into()])
        ])
    );

    let names: Vec<_> = h.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    let a = h.tensor("a").unwrap();
    assert_eq!(
        (a.ty, a.n_bytes, a.offset, a.shape()),
        (GgmlType::Q4_0, 72, 0, vec![2, 64])
    );
    let b = h.tensor("b").unwrap();
    assert_eq!((b.offset, b.n_bytes), (96, 12));
    let c = h.tensor("c").unwrap();
    assert_eq!((c.offset, c.n_bytes), (128, 210));
    assert_eq!(h.data_offset % 32, 0);
    let data = &bytes[(h.data_offset + c.offset) as usize..][..210];
    assert!(data.iter().all(|&x| x == 3));
}

#[test]
fn a_custom_alignment_is_written_and_honoured() {
    let mut w = GgufWriter::new();
    w.set_alignment(64).unwrap();
    assert!(w.set_alignment(48).is_err());
    w.add_tensor(TensorSpec::new("x", &[1], GgmlType::F32))
        .unwrap();
    w.add_tensor(TensorSpec::new("y", &[1], GgmlType::F32))
        .unwrap();
    let mut bytes = Vec::new();
    w.write(&mut bytes, |_, _, s| s.write_all(&[0; 4])).unwrap();
    let h = GgufHeader::parse(&bytes).unwrap();
    assert_eq!(h.alignment, 64);
    assert_eq!(h.data_offset % 64, 0);
    assert_eq!(h.tensor("y").unwrap().offset, 64);
}

#[test]
fn the_writer_rejects_a_fill_of_the_wrong_size() {
    let mut w = GgufWriter::new();
    w.add_tensor(TensorSpec::new("x", &[4], GgmlType::F32))
        .unwrap();
    let err = w
        .write(Vec::new(), |_, _, s| s.write_all(&[0; 3]))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("`x`: 3 bytes written, 16 expected"),
        "{err}"
    );
    assert!(w
        .add_tensor(TensorSpec::new("x", &[4], GgmlType::F32))
        .is_err());
    assert!(w
        .add_tensor(TensorSpec::new("q", &[33], GgmlType::Q8_0))
        .is_err());
}

/// Raw GGUF bytes, field by field, so that tests can write what the writer refuses to.
#[derive(Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut r = Raw::default();
        r.bytes(b"GGUF").u32(version).u64(n_tensors).u64(n_kv);
        r
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    /// A metadata pair `key: u32 = v`.
    fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key).u32(4).u32(v)
    }
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for d in dims {
            self.u64(*d);
        }
        self.u32(ty).u64(offset)
    }
    /// Pads to 32 and appends `n` data bytes.
    fn data(&mut self, n: usize) -> &mut Self {
        let pad = self.0.len().next_multiple_of(32) - self.0.len();
        self.bytes(&vec![0; pad + n])
    }
}

/// Parses and returns the error message, checking that it came quickly.
fn error_of(bytes: &[u8]) -> String {
    let start = Instant::now();
    let result = GgufHeader::parse(bytes);
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "took {:?}",
        start.elapsed()
    );
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn assert_error(bytes: &[u8], needles: &[&str]) {
    let msg = error_of(bytes);
    for n in needles {
        assert!(msg.contains(n), "error {msg:?} should mention {n:?}");
    }
}

#[test]
fn a_truncation_at_every_byte_is_an_error() {
    let bytes = sample_file();
    let h = GgufHeader::parse(&bytes).unwrap();
    let last_tensor_end = h
        .tensors
        .iter()
        .map(|t| h.data_offset + t.offset + t.n_bytes)
        .max();
    for cut in 0..last_tensor_end.unwrap() as usize {
        let msg = error_of(&bytes[..cut]);
        assert!(
            msg.contains("byte") || msg.contains("tensor"),
            "cut at {cut}: {msg}"
        );
    }
}

#[test]
fn wrong_magic() {
    assert_error(b"GGML\x03\0\0\0", &["not a GGUF file", "47, 47, 4d, 4c"]);
    assert_error(b"", &["byte 0", "magic"]);
}

#[test]
fn unsupported_versions() {
    assert_error(&Raw::header(1, 0, 0).0, &["version 1 is not supported"]);
    assert_error(&Raw::header(4, 0, 0).0, &["version 4"]);
    assert_error(&Raw::header(3u32.swap_bytes(), 0, 0).0, &["big-endian"]);
}

#[test]
fn counts_larger_than_the_file() {
    assert_error(
        &Raw::header(3, u64::MAX, 0).0,
        &["byte 8", "tensor count is 18446744073709551615"],
    );
    assert_error(
        &Raw::header(3, 0, 1 << 40).0,
        &["byte 16", "metadata count"],
    );
    let mut r = Raw::header(3, 0, 1);
    r.str("arr").u32(9).u32(6).u64(1 << 50);
    assert_error(&r.0, &["length of array `arr`", "byte 43"]);
}

#[test]
fn string_lengths_larger_than_the_file() {
    let mut r = Raw::header(3, 0, 1);
    r.u64(u64::MAX).bytes(&[b'k'; 16]);
    assert_error(
        &r.0,
        &["byte 24", "metadata key claims 18446744073709551615 bytes"],
    );
    let mut r = Raw::header(3, 0, 1);
    r.str("k").u32(8).u64(1000).bytes(b"short");
    assert_error(&r.0, &["value of `k` claims 1000 bytes"]);
    let mut r = Raw::header(3, 0, 1);
    r.str("k")
        .u32(9)
        .u32(8)
        .u64(2)
        .u64(1)
        .bytes(b"x")
        .u64(1 << 33);
    assert_error(&r.0, &["value of `k` claims 8589934592 bytes"]);
}

#[test]
fn nested_array_bombs() {
    // Deeper than the limit.
    let mut r = Raw::header(3, 0, 1);
    r.str("deep").u32(9);
    for _ in 0..MAX_ARRAY_DEPTH + 4 {
        r.u32(9).u64(1);
    }
    r.u32(0).u64(0);
    assert_error(&r.0, &["`deep` nests arrays deeper than"]);
    // Wide: a billion empty arrays claimed by a few bytes.
    let mut r = Raw::header(3, 0, 1);
    r.str("wide").u32(9).u32(9).u64(1 << 30).u32(0).u64(0);
    assert_error(&r.0, &["length of array `wide` is 1073741824"]);
}

#[test]
fn unknown_value_and_tensor_types() {
    let mut r = Raw::header(3, 0, 1);
    r.str("odd").u32(13).u32(0);
    assert_error(&r.0, &["`odd` has unknown value type 13", "byte 35"]);
    let mut r = Raw::header(3, 0, 1);
    r.str("odd").u32(9).u32(77).u64(0);
    assert_error(&r.0, &["`odd` has unknown value type 77"]);
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[32], 99, 0).data(64);
    assert_error(&r.0, &["`w` has unknown ggml type 99"]);
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[256], 16, 0).data(512);
    assert_error(
        &r.0,
        &["`w` has type IQ2_XXS (ggml type 16), which rustorch does not support"],
    );
}

#[test]
fn tensor_extents_past_the_end() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[8], 0, 0).data(31);
    assert_error(
        &r.0,
        &["tensor `w`", "32 bytes at data offset 0", "past the end"],
    );
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[8], 0, u64::MAX - 31).data(64);
    assert_error(&r.0, &["tensor `w`", "past the end"]);
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[8], 0, 64).data(64);
    assert_error(&r.0, &["tensor `w`", "data offset 64"]);
}

#[test]
fn offsets_not_aligned() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[8], 0, 4).data(64);
    assert_error(
        &r.0,
        &[
            "tensor `w`",
            "offset 4 is not a multiple of the alignment 32",
        ],
    );
}

#[test]
fn bad_alignments() {
    for (a, needle) in [(0, "is 0"), (48, "is 48")] {
        let mut r = Raw::header(3, 0, 1);
        r.kv_u32("general.alignment", a);
        assert_error(&r.0, &["general.alignment", needle, "power of two"]);
    }
    let mut r = Raw::header(3, 0, 1);
    r.str("general.alignment").u32(8).str("32");
    assert_error(&r.0, &["general.alignment", "found string \"32\""]);
}

#[test]
fn duplicates() {
    let mut r = Raw::header(3, 0, 2);
    r.kv_u32("k", 1).kv_u32("k", 2);
    assert_error(&r.0, &["duplicate metadata key `k`", "byte 41"]);
    let mut r = Raw::header(3, 2, 0);
    r.tensor("w", &[8], 0, 0).tensor("w", &[8], 0, 32).data(64);
    assert_error(&r.0, &["duplicate tensor name `w`"]);
}

#[test]
fn bad_dimensions() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[1 << 32, 1 << 32, 4], 0, 0).data(32);
    assert_error(&r.0, &["tensor `w`", "overflow"]);
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[33, 2], 8, 0).data(128);
    assert_error(
        &r.0,
        &[
            "tensor `w`",
            "row length 33 is not a multiple of Q8_0's block size 32",
        ],
    );
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[1, 1, 1, 1, 1], 0, 0).data(32);
    assert_error(&r.0, &["`w` has 5 dimensions"]);
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[4, 0], 0, 0).data(32);
    assert_error(&r.0, &["tensor `w`", "zero dimension"]);
}

#[test]
fn bools_other_than_zero_and_one_and_bad_utf8() {
    let mut r = Raw::header(3, 0, 1);
    r.str("b").u32(7).bytes(&[2]);
    assert_error(&r.0, &["`b` is a bool stored as 2"]);
    let mut r = Raw::header(3, 0, 1);
    r.u64(2).bytes(&[0xff, 0xfe]).u32(4).u32(0);
    assert_error(&r.0, &["metadata key is not valid UTF-8"]);
}

#[test]
fn the_error_type_tells_the_kinds_apart() {
    assert!(matches!(
        GgufHeader::parse(b"XXXX"),
        Err(GgufError::BadMagic { .. })
    ));
    assert!(matches!(
        GgufHeader::parse(&Raw::header(9, 0, 0).0),
        Err(GgufError::UnsupportedVersion(9))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Random byte flips, insertions and truncations of a valid file: parsing either
    /// succeeds or fails cleanly, and always quickly.
    #[test]
    fn random_mutations_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = sample_file();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        let start = Instant::now();
        let _ = GgufHeader::parse(&bytes);
        prop_assert!(start.elapsed() < Duration::from_millis(500));
    }
}
