// Q8_0's dot32 (layout in quant/q8_0.wgsl; a padded block is 9 words, the 32 signed
// bytes starting half way into the first).
struct Q8_0Slice {
    d: f32,
    // The signed bytes, four to a word: runs 0 and 1, then 2 and 3.
    lo: vec4<u32>,
    hi: vec4<u32>,
}

fn q8_0_slice(row: u32, g: u32) -> Q8_0Slice {
    let b = (row + g * BLOCK_BYTES) / 4u;
    let w0 = weights[b];
    let w1 = weights[b + 1u];
    let w2 = weights[b + 2u];
    let w3 = weights[b + 3u];
    let w4 = weights[b + 4u];
    let w5 = weights[b + 5u];
    let w6 = weights[b + 6u];
    let w7 = weights[b + 7u];
    let w8 = weights[b + 8u];
    let lo = vec4<u32>((w0 >> 16u) | (w1 << 16u), (w1 >> 16u) | (w2 << 16u), (w2 >> 16u) | (w3 << 16u), (w3 >> 16u) | (w4 << 16u));
    let hi = vec4<u32>((w4 >> 16u) | (w5 << 16u), (w5 >> 16u) | (w6 << 16u), (w6 >> 16u) | (w7 << 16u), (w7 >> 16u) | (w8 << 16u));
    return Q8_0Slice(unpack2x16float(w0).x, lo, hi);
}

fn dot32(row: u32, g: u32, x: X32) -> f32 {
    let s = q8_0_slice(row, g);
    // Flipping each sign bit adds 128 to the byte as two's complement.
    let flip = vec4<u32>(0x80808080u);
    return s.d * dot(run_sums(s.lo ^ flip, s.hi ^ flip, 128.0, x), vec4<f32>(1.0));
}

fn dot32_q8(row: u32, g: u32, x: XQ8) -> f32 {
    let s = q8_0_slice(row, g);
    return s.d * dot(vec4<f32>(run_dots(s.lo, s.hi, x)), x.scales);
}
