// BF16: the top half of an f32; eight weights are read as one "block" of 16 bytes.
const BLOCK_WEIGHTS: u32 = 8u;
const BLOCK_BYTES: u32 = 16u;

fn dequant8(block: u32, part: u32) -> array<f32, 8> {
    var y: array<f32, 8>;
    for (var k = 0u; k < 4u; k++) {
        let pair = u32_at(block + 4u * k);
        y[2u * k] = bitcast<f32>(pair << 16u);
        y[2u * k + 1u] = bitcast<f32>(pair & 0xffff0000u);
    }
    return y;
}
