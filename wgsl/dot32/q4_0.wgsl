// Q4_0's dot32 (layout in quant/q4_0.wgsl; a padded block is 5 words, the 16 bytes of
// nibbles starting half way into the first): byte j holds weights j and j + 16, so the
// low nibbles are runs 0 and 1 of the slice and the high nibbles runs 2 and 3.
struct Q4_0Slice {
    d: f32,
    // The nibble bytes, four to a word.
    q: vec4<u32>,
}

fn q4_0_slice(row: u32, g: u32) -> Q4_0Slice {
    let b = (row + g * BLOCK_BYTES) / 4u;
    let w0 = weights[b];
    let w1 = weights[b + 1u];
    let w2 = weights[b + 2u];
    let w3 = weights[b + 3u];
    let w4 = weights[b + 4u];
    let q = vec4<u32>((w0 >> 16u) | (w1 << 16u), (w1 >> 16u) | (w2 << 16u), (w2 >> 16u) | (w3 << 16u), (w3 >> 16u) | (w4 << 16u));
    return Q4_0Slice(unpack2x16float(w0).x, q);
}

fn dot32(row: u32, g: u32, x: X32) -> f32 {
    let s = q4_0_slice(row, g);
    return s.d * dot(run_sums(low_nibbles(s.q), high_nibbles(s.q), 8.0, x), vec4<f32>(1.0));
}

fn dot32_q8(row: u32, g: u32, x: XQ8) -> f32 {
    let s = q4_0_slice(row, g);
    let dots = run_dots(low_nibbles(s.q), high_nibbles(s.q), x) - 8 * x.sums;
    return s.d * dot(vec4<f32>(dots), x.scales);
}
