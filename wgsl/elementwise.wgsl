// Element-wise ops over `[rows, n]` activations, one invocation per output value:
// out = a · factor, a · b (b repeated every `b_len` values: the weight of a norm; or
// 0xffffffff: a whole tensor), a + b, silu(a), gelu_tanh(a), and a copy of a view of a.

struct Params {
    n: u32,
    // Rows of the output: 0 means T.
    fixed_rows: u32,
    factor: f32,
    b_len: u32,
    // copy_view's view of a.
    offset: u32,
    stride: u32,
    last_row: u32,
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
        out[i] = silu_of(a[i]);
    }
}

@compute @workgroup_size(256)
fn gelu_tanh(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = item_index(wid, nwg, lid);
    if i < count() {
        out[i] = gelu_tanh_of(a[i]);
    }
}

// a seen through a view (graph views: a row's columns, the last row), copied for
// kernels that read only whole tensors: value i of output row t is
// a[row(t) · stride + offset + i], with row(t) = T − 1 for the last row.
@compute @workgroup_size(256)
fn copy_view(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = item_index(wid, nwg, lid);
    if i < count() {
        let row = select(i / p.n, step.tokens - 1u, p.last_row == 1u);
        out[i] = a[row * p.stride + p.offset + i % p.n];
    }
}
