// Σ w · x over weights 32·g .. 32·g + 32 of the row starting at byte `row`: for types
// without a word-wise version, by `dequant8`.
fn dot32(row: u32, g: u32, x: X32) -> f32 {
    let w0 = row_part(row, 4u * g);
    let w1 = row_part(row, 4u * g + 1u);
    let w2 = row_part(row, 4u * g + 2u);
    let w3 = row_part(row, 4u * g + 3u);
    return dot(vec4<f32>(w0[0], w0[1], w0[2], w0[3]), x.a) + dot(vec4<f32>(w0[4], w0[5], w0[6], w0[7]), x.b)
        + dot(vec4<f32>(w1[0], w1[1], w1[2], w1[3]), x.c) + dot(vec4<f32>(w1[4], w1[5], w1[6], w1[7]), x.d)
        + dot(vec4<f32>(w2[0], w2[1], w2[2], w2[3]), x.e) + dot(vec4<f32>(w2[4], w2[5], w2[6], w2[7]), x.f)
        + dot(vec4<f32>(w3[0], w3[1], w3[2], w3[3]), x.g) + dot(vec4<f32>(w3[4], w3[5], w3[6], w3[7]), x.h);
}

// The values x was rounded to, of one word.
fn q8_values(word: u32, scale: f32) -> vec4<f32> {
    return vec4<f32>(unpack4xI8(word)) * scale;
}

fn dot32_q8(row: u32, g: u32, q: XQ8) -> f32 {
    var x: X32;
    x.a = q8_values(q.lo.x, q.scales.x);
    x.b = q8_values(q.lo.y, q.scales.x);
    x.c = q8_values(q.lo.z, q.scales.y);
    x.d = q8_values(q.lo.w, q.scales.y);
    x.e = q8_values(q.hi.x, q.scales.z);
    x.f = q8_values(q.hi.y, q.scales.z);
    x.g = q8_values(q.hi.z, q.scales.w);
    x.h = q8_values(q.hi.w, q.scales.w);
    return dot32(row, g, x);
}
