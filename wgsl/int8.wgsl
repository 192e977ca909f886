// x in 8 bits, as the decode matmuls read it (`DecodeInput::Int8`): the rounding of
// runs of 8 values and their integer dot products, shared by the matmul module and by
// the kernels that store their output rounded for the matmul after them (`run_record`).

// The 32 values of x[0, :] a slice of a weight row multiplies (the matmul's `columns32`): four
// runs of 8, a b, c d, e f and g h, the sums of the first two runs and of the last
// two, and (for a folded prologue) the sum of their squares before the norm weight.
// Named vectors, not an array: drivers put dynamically indexed private arrays in slow
// local memory.
struct X32 {
    a: vec4<f32>,
    b: vec4<f32>,
    c: vec4<f32>,
    d: vec4<f32>,
    e: vec4<f32>,
    f: vec4<f32>,
    g: vec4<f32>,
    h: vec4<f32>,
    low_sum: f32,
    high_sum: f32,
    squares: f32,
}

// x's 32 values of a slice rounded to 8 bits, one scale a run of 8 (the runs of X32):
// scale = the least power of two with max |x| ≤ 127 · scale over the run, each value
// round(x / scale), ties to even (`round_to_int8` in src/runtime/decode_input.rs, the
// CPU's twin: a power of two divides exactly, so both round alike). Two words a run,
// runs 0 and 1 in `lo`, 2 and 3 in `hi`; `sums` are each run's Σ round(x / scale),
// for the weight types' offsets and minimums.
struct XQ8 {
    lo: vec4<u32>,
    hi: vec4<u32>,
    scales: vec4<f32>,
    sums: vec4<i32>,
}

fn max4(v: vec4<f32>) -> f32 {
    return max(max(v.x, v.y), max(v.z, v.w));
}

// Adding 1.5 · 2^23 rounds a float under 2^22 in magnitude to a whole number (ties to
// even) and leaves it, two's complement, in the low bits of the sum's mantissa: a
// multiply-add and a byte pack, where `round` and a conversion to an integer (a
// quarter of the issue rate on NVIDIA GPUs) would take three steps a value.
const ROUNDING_BIAS: f32 = 12582912.0;
// Runs of a largest magnitude below 2^-120 round to zeros (their inverse scale would
// not be a float).
const SMALLEST_RUN: f32 = 7.52316385e-37;

fn q8_word(v: vec4<f32>, inv: f32) -> u32 {
    let biased = fma(v, vec4<f32>(inv), vec4<f32>(ROUNDING_BIAS));
    return pack4xU8(bitcast<vec4<u32>>(biased) & vec4<u32>(0xffu));
}

// The power of two 2^e a value's biased exponent `e + 127` gives.
fn power_of_two(biased: vec4<i32>) -> vec4<f32> {
    return bitcast<vec4<f32>>(vec4<u32>(biased) << vec4<u32>(23u));
}

fn rounded_q8(x: X32) -> XQ8 {
    let amax = vec4<f32>(max4(max(abs(x.a), abs(x.b))), max4(max(abs(x.c), abs(x.d))),
        max4(max(abs(x.e), abs(x.f))), max4(max(abs(x.g), abs(x.h))));
    // amax lies in [2^k, 2^(k + 1)), so scale is 2^(k − 6), or 2^(k − 5) past 127 · 2^(k − 6).
    let k = vec4<i32>((bitcast<vec4<u32>>(amax) >> vec4<u32>(23u)) & vec4<u32>(0xffu)) - 127;
    let e = select(k - 5, k - 6, amax <= 127.0 * power_of_two(k - 6 + 127));
    let used = amax >= vec4<f32>(SMALLEST_RUN);
    let inv = select(vec4<f32>(0.0), power_of_two(127 - e), used);
    var q: XQ8;
    q.lo = vec4<u32>(q8_word(x.a, inv.x), q8_word(x.b, inv.x), q8_word(x.c, inv.y), q8_word(x.d, inv.y));
    q.hi = vec4<u32>(q8_word(x.e, inv.z), q8_word(x.f, inv.z), q8_word(x.g, inv.w), q8_word(x.h, inv.w));
    q.scales = select(vec4<f32>(0.0), power_of_two(127 + e), used);
    q.sums = rounded_sums(q);
    return q;
}

// Each run's Σ round(x / scale).
fn rounded_sums(q: XQ8) -> vec4<i32> {
    return run_dots(vec4<u32>(0x01010101u), vec4<u32>(0x01010101u), q);
}

// Each run's Σ w · round(x / scale) for 8 words of weights as signed bytes, in the
// runs' order (two words a run).
fn run_dots(w_lo: vec4<u32>, w_hi: vec4<u32>, x: XQ8) -> vec4<i32> {
    return vec4<i32>(
        dot4I8Packed(w_lo.x, x.lo.x) + dot4I8Packed(w_lo.y, x.lo.y),
        dot4I8Packed(w_lo.z, x.lo.z) + dot4I8Packed(w_lo.w, x.lo.w),
        dot4I8Packed(w_hi.x, x.hi.x) + dot4I8Packed(w_hi.y, x.hi.y),
        dot4I8Packed(w_hi.z, x.hi.z) + dot4I8Packed(w_hi.w, x.hi.w),
    );
}

// The record of one run of 8 values `lo`, `hi` that a kernel stores for the matmul
// reading its output (`RUN_RECORD_BYTES` in src/runtime/gpu/shaders.rs): the two words
// of the run rounded as that matmul's `rounded_q8` would round it, the bits of its
// scale, and the bits of `squares` (the sum of the values' squares before a norm
// weight, for a reader that folds a norm).
fn run_record(lo: vec4<f32>, hi: vec4<f32>, squares: f32) -> vec4<u32> {
    var run: X32;
    run.a = lo;
    run.b = hi;
    let q = rounded_q8(run);
    return vec4<u32>(q.lo.x, q.lo.y, bitcast<u32>(q.scales.x), bitcast<u32>(squares));
}
