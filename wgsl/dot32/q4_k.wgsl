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

// w = d · sc · q − dmin · m, so each half's dot product is d · sc · Σ q·x − dmin · m · Σ x.
fn dot32(row: u32, g: u32, x: X32) -> f32 {
    let block = row / 16u + (g / 8u) * 9u;
    let part = g % 8u;
    let header = weights4[block];
    let q = weights4[block + 1u + part];
    let dm = unpack2x16float(header.x);
    let sm = scales_mins(header, 2u * (part / 2u));
    let m = 0x0f0f0f0fu;
    let low = dot(bytes4(q.x & m, 0.0), x.a) + dot(bytes4(q.y & m, 0.0), x.b) + dot(bytes4(q.z & m, 0.0), x.c)
        + dot(bytes4(q.w & m, 0.0), x.d);
    let high = dot(bytes4((q.x >> 4u) & m, 0.0), x.e) + dot(bytes4((q.y >> 4u) & m, 0.0), x.f)
        + dot(bytes4((q.z >> 4u) & m, 0.0), x.g) + dot(bytes4((q.w >> 4u) & m, 0.0), x.h);
    return dm.x * (sm.x * low + sm.y * high) - dm.y * (sm.z * x.low_sum + sm.w * x.high_sum);
}

fn dot32_q8(row: u32, g: u32, x: XQ8) -> f32 {
    let block = row / 16u + (g / 8u) * 9u;
    let part = g % 8u;
    let header = weights4[block];
    let q = weights4[block + 1u + part];
    let dm = unpack2x16float(header.x);
    let sm = scales_mins(header, 2u * (part / 2u));
    let m = vec4<u32>(0x0f0f0f0fu);
    let dots = vec4<f32>(run_dots(q & m, (q >> vec4<u32>(4u)) & m, x)) * x.scales;
    let sums = vec4<f32>(x.sums) * x.scales;
    return dm.x * dot(dots, sm.xxyy) - dm.y * dot(sums, sm.zzww);
}
