// Shared by every module (the executor prepends it): the per-step values, the
// workgroup index of a 2-D grid, and workgroup reductions.

// The step: `tokens` (T), `past` (P), `context` (P + T), the candidates the
// sampler asks of the top-k kernels, and the T token ids, written once per step
// with one buffer write.
struct Step {
    tokens: u32,
    past: u32,
    context: u32,
    top_k: u32,
    ids: array<u32>,
}

@group(0) @binding(0) var<storage, read> step: Step;

// Rows of an activation whose first dim is `fixed` (0 means T, the step's tokens).
fn row_count(fixed: u32) -> u32 {
    return select(fixed, step.tokens, fixed == 0u);
}

// Grids wider than 65535 workgroups are laid out in rows of `nwg.x`.
fn workgroup_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// One invocation per item, 256 per workgroup, on a 2-D grid.
const ITEMS_PER_GROUP: u32 = 256u;

fn item_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return workgroup_index(wid, nwg) * ITEMS_PER_GROUP + lid;
}

// Workgroup reductions: `workgroup_sum` and `workgroup_max` for the 64-invocation
// kernels (norms, softmax, attention), `workgroup_sum_of` for any power-of-two width
// up to 256.
const REDUCE_WIDTH: u32 = 64u;
var<workgroup> reduce_scratch: array<f32, 256>;

fn workgroup_sum_of(value: f32, lid: u32, width: u32) -> f32 {
    reduce_scratch[lid] = value;
    workgroupBarrier();
    for (var stride = width / 2u; stride > 0u; stride = stride / 2u) {
        if lid < stride {
            reduce_scratch[lid] = reduce_scratch[lid] + reduce_scratch[lid + stride];
        }
        workgroupBarrier();
    }
    let total = reduce_scratch[0];
    workgroupBarrier();
    return total;
}

fn workgroup_sum(value: f32, lid: u32) -> f32 {
    return workgroup_sum_of(value, lid, REDUCE_WIDTH);
}

fn workgroup_max(value: f32, lid: u32) -> f32 {
    reduce_scratch[lid] = value;
    workgroupBarrier();
    for (var stride = REDUCE_WIDTH / 2u; stride > 0u; stride = stride / 2u) {
        if lid < stride {
            reduce_scratch[lid] = max(reduce_scratch[lid], reduce_scratch[lid + stride]);
        }
        workgroupBarrier();
    }
    let total = reduce_scratch[0];
    workgroupBarrier();
    return total;
}
