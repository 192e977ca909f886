// Reading GGUF blocks as they are in the file from `weights: array<u32>` (declared by
// the module that includes this): blocks need not be 4-byte aligned, so values are
// assembled from bytes, except in types whose blocks are whole words (Q4_K, Q5_K and
// Q6_K as padded on the device), which read words. Each quant type (quant/*.wgsl, included after this) defines
// BLOCK_WEIGHTS, BLOCK_BYTES and `dequant8(block, part)`: weights 8·part .. 8·part + 8
// of the block starting at byte `block`.

fn byte_at(at: u32) -> u32 {
    return (weights[at >> 2u] >> ((at & 3u) * 8u)) & 0xffu;
}

fn u16_at(at: u32) -> u32 {
    return byte_at(at) | (byte_at(at + 1u) << 8u);
}

fn u32_at(at: u32) -> u32 {
    if (at & 3u) == 0u {
        return weights[at >> 2u];
    }
    return u16_at(at) | (u16_at(at + 2u) << 16u);
}

fn f16_at(at: u32) -> f32 {
    return unpack2x16float(u16_at(at)).x;
}

// Bytes at .. at + 8 packed little-endian in two words: two loads when `at` is
// 4-byte aligned, three (and funnel shifts) otherwise, instead of eight.
fn bytes8_at(at: u32) -> vec2<u32> {
    let word = at >> 2u;
    let shift = (at & 3u) * 8u;
    if shift == 0u {
        return vec2<u32>(weights[word], weights[word + 1u]);
    }
    let w0 = weights[word];
    let w1 = weights[word + 1u];
    let w2 = weights[word + 2u];
    return vec2<u32>((w0 >> shift) | (w1 << (32u - shift)), (w1 >> shift) | (w2 << (32u - shift)));
}

// Byte k (0..8) of what `bytes8_at` read.
fn byte_of(bytes: vec2<u32>, k: u32) -> u32 {
    return (bytes[k >> 2u] >> ((k & 3u) * 8u)) & 0xffu;
}

// Byte k of what `bytes8_at` read, as a signed byte.
fn i8_of(bytes: vec2<u32>, k: u32) -> i32 {
    return (i32(byte_of(bytes, k)) << 24u) >> 24u;
}

// Bytes of one row of `cols` weights.
fn row_bytes(cols: u32) -> u32 {
    return cols / BLOCK_WEIGHTS * BLOCK_BYTES;
}

// Weights 8·g .. 8·g + 8 of the row starting at byte `row_start`.
fn row_part(row_start: u32, g: u32) -> array<f32, 8> {
    let parts = BLOCK_WEIGHTS / 8u;
    return dequant8(row_start + (g / parts) * BLOCK_BYTES, g % parts);
}

// The four bytes of a word as values, less `bias`. Each byte becomes the low mantissa
// bits of 2^23 (an OR), and 2^23 + bias comes off (an add): exact, and both issue at
// the full rate, where the integer-to-float conversion they replace issues at a
// quarter of it on NVIDIA GPUs, and decoding converts every weight.
fn bytes4(q: u32, bias: f32) -> vec4<f32> {
    let bytes = vec4<u32>(q & 0xffu, (q >> 8u) & 0xffu, (q >> 16u) & 0xffu, q >> 24u);
    return bitcast<vec4<f32>>(bytes | vec4<u32>(0x4b000000u)) - (8388608.0 + bias);
}
