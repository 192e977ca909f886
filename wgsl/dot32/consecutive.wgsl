// Slice g of a row is its weights 32 · g .. 32 · g + 32, in order (as four runs of 8).
fn columns32(g: u32) -> vec4<u32> {
    return vec4<u32>(32u * g) + vec4<u32>(0u, 8u, 16u, 24u);
}
