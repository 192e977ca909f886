// Q4_K's dot32 (layout in quant/q4_k.wgsl): a block is 9 vec4 words, the header (d,
// dmin, 12 bytes of scales) and then 8 words of nibbles. Slice g is nibble word g % 8
// of block g / 8, so that neighbouring invocations read neighbouring 16 bytes. Its
// low nibbles are 16 weights of sub-block s = 2 · ((g % 8) / 2) and its high nibbles
// the same 16 places of sub-block s + 1, 32 columns further on.
fn columns32(g: u32) -> vec4<u32> {
    let part = g % 8u;
    let first = 256u * (g / 8u) + 64u * (part / 2u) + 16u * (part % 2u);
    return vec4<u32>(first) + vec4<u32>(0u, 8u, 32u, 40u);
}

struct Q4KSlice {
    // d and dmin.
    dm: vec2<f32>,
    // The scales and mins of sub-blocks s and s + 1 (`scales_mins`).
    sm: vec4<f32>,
    q: vec4<u32>,
}

fn q4_k_slice(row: u32, g: u32) -> Q4KSlice {
    let block = row / 16u + (g / 8u) * 9u;
    let part = g % 8u;
    let header = weights4[block];
    let q = weights4[block + 1u + part];
    return Q4KSlice(unpack2x16float(header.x), scales_mins(header, 2u * (part / 2u)), q);
}

// w = d · sc · q − dmin · m, so each run's dot product is d · sc · Σ q·x − dmin · m · Σ x.
fn dot32(row: u32, g: u32, x: X32) -> f32 {
    let s = q4_k_slice(row, g);
    let sums = run_sums(low_nibbles(s.q), high_nibbles(s.q), 0.0, x);
    return s.dm.x * dot(sums, s.sm.xxyy) - s.dm.y * (s.sm.z * x.low_sum + s.sm.w * x.high_sum);
}

fn dot32_q8(row: u32, g: u32, x: XQ8) -> f32 {
    let s = q4_k_slice(row, g);
    let dots = vec4<f32>(run_dots(low_nibbles(s.q), high_nibbles(s.q), x)) * x.scales;
    let sums = vec4<f32>(x.sums) * x.scales;
    return s.dm.x * dot(dots, s.sm.xxyy) - s.dm.y * dot(sums, s.sm.zzww);
}
