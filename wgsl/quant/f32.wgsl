// F32: no blocks; eight weights are read as one "block" of 32 bytes.
const BLOCK_WEIGHTS: u32 = 8u;
const BLOCK_BYTES: u32 = 32u;

fn dequant8(block: u32, part: u32) -> array<f32, 8> {
    var y: array<f32, 8>;
    for (var k = 0u; k < 8u; k++) {
        y[k] = bitcast<f32>(u32_at(block + 4u * k));
    }
    return y;
}
