// Q4_K's dot32 (layout in quant/q4_k.wgsl): a block is 9 vec4 words, the header (d,
// dmin, 12 bytes of scales) and then 8 words of nibbles. Slice g is nibble word g % 8
// of block g / 8, so that neighbouring invocations read neighbouring 16 bytes. Its
// low nibbles are 16 weights of sub-block s = 2 · ((g % 8) / 2) and its high nibbles
// the same 16 places of sub-block s + 1, 32 columns further on.
fn columns32(g: u32) -> vec2<u32> {
    let part = g % 8u;
    let first = 256u * (g / 8u) + 64u * (part / 2u) + 16u * (part % 2u);
    return vec2<u32>(first, first + 32u);
}

// Byte i (0..12) of the packed scales: the header's words y, z and w.
fn scale_byte(header: vec4<u32>, i: u32) -> u32 {
    let word = select(select(header.w, header.z, i < 8u), header.y, i < 4u);
    return (word >> (8u * (i % 4u))) & 0xffu;
}

// Scale and min of sub-block s, as `scale_min_k4` reads them from the buffer.
fn header_scale_min(header: vec4<u32>, s: u32) -> vec2<f32> {
    if s < 4u {
        return vec2<f32>(f32(scale_byte(header, s) & 63u), f32(scale_byte(header, s + 4u) & 63u));
    }
    let sc = (scale_byte(header, s + 4u) & 15u) | ((scale_byte(header, s - 4u) >> 6u) << 4u);
    let m = (scale_byte(header, s + 4u) >> 4u) | ((scale_byte(header, s) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(m));
}

// w = d · sc · q − dmin · m, so each half's dot product is d · sc · Σ q·x − dmin · m · Σ x.
fn dot32(row: u32, g: u32, x: X32) -> f32 {
    let block = row / 16u + (g / 8u) * 9u;
    let part = g % 8u;
    let header = weights4[block];
    let q = weights4[block + 1u + part];
    let dm = unpack2x16float(header.x);
    let s = 2u * (part / 2u);
    let low_sm = header_scale_min(header, s);
    let high_sm = header_scale_min(header, s + 1u);
    let m = 0x0f0f0f0fu;
    let low = dot(ubytes4(q.x & m), x.a) + dot(ubytes4(q.y & m), x.b) + dot(ubytes4(q.z & m), x.c)
        + dot(ubytes4(q.w & m), x.d);
    let high = dot(ubytes4((q.x >> 4u) & m), x.e) + dot(ubytes4((q.y >> 4u) & m), x.f)
        + dot(ubytes4((q.z >> 4u) & m), x.g) + dot(ubytes4((q.w >> 4u) & m), x.h);
    return dm.x * (low_sm.x * low + high_sm.x * high)
        - dm.y * (low_sm.y * x.low_sum + high_sm.y * x.high_sum);
}
