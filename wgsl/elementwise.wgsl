// Element-wise ops over `[rows, n]` activations, one invocation per output value:
// out = a · factor, a · b (b repeated every `b_len` values: the weight of a norm; or
// 0xffffffff: a whole tensor), a + b, silu(a), gelu_tanh(a), and the last row of a.

struct Params {
    n: u32,
    // Rows of the output: 0 means T.
    fixed_rows: u32,
    factor: f32,
    b_len: u32,
}

@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

fn count() -> u32 {
    return row_count(p.fixed_rows) * p.n;
}

@compute @workgroup_size(256)
fn scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = item_index(wid, nwg, lid);
    if i < count() {
        out[i] = a[i] * p.factor;
    }
}

@compute @workgroup_size(256)
fn mul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = item_index(wid, nwg, lid);
    if i < count() {
        out[i] = a[i] * b[i % p.b_len];
    }
}

@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = item_index(wid, nwg, lid);
    if i < count() {
        out[i] = a[i] + b[i];
    }
}

@compute @workgroup_size(256)
fn silu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = item_index(wid, nwg, lid);
    if i < count() {
        let v = a[i];
        out[i] = v / (1.0 + exp(-v));
    }
}

@compute @workgroup_size(256)
fn gelu_tanh(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = item_index(wid, nwg, lid);
    if i < count() {
        let v = a[i];
        let inner = 0.7978846 * (v + 0.044715 * v * v * v);
        // tanh through exp, stable for large |inner| (tanh itself may overflow on some drivers).
        let e = exp(-2.0 * abs(inner));
        let t = sign(inner) * (1.0 - e) / (1.0 + e);
        out[i] = 0.5 * v * (1.0 + t);
    }
}

// a is [T, n]; the output is its last row.
@compute @workgroup_size(256)
fn last_row(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = item_index(wid, nwg, lid);
    if i < p.n {
        out[i] = a[(step.tokens - 1u) * p.n + i];
    }
}
