// The gate activations (the CPU's `kernels::silu` and `kernels::gelu_tanh`).

fn silu_of(v: f32) -> f32 {
    return v / (1.0 + exp(-v));
}

// 0.5·v·(1 + tanh(√(2/π)·(v + 0.044715·v³))), tanh through exp: stable for large
// arguments (tanh itself may overflow on some drivers).
fn gelu_tanh_of(v: f32) -> f32 {
    let inner = 0.7978846 * (v + 0.044715 * v * v * v);
    let e = exp(-2.0 * abs(inner));
    let t = sign(inner) * (1.0 - e) / (1.0 + e);
    return 0.5 * v * (1.0 + t);
}
