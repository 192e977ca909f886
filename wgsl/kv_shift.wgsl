// The context shift of one KV cache (layout in kv_cache.wgsl): after dropping `n`
// positions from `first` on, positions first .. new_past take the rows `n` later,
// read from `moved` (a copy of the cache made before this dispatch), and a rotary
// cache's keys turn by −n so that they sit where their new positions put them, as the
// CPU's `KvCache::discard` does. One invocation per value pair of each moved row.

struct Params {
    row_len: u32,
    head_dim: u32,
    n_rot: u32,
    // 0: pairs adjacent values, 1: pairs halves (as rope.wgsl); 2: no rotation.
    mode: u32,
    freq_scale: f32,
    n: u32,
    first: u32,
    new_past: u32,
    // Positions of a ring cache; 0: the cache holds every position.
    ring: u32,
}

@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> moved: array<CachePair>;
@group(0) @binding(3) var<storage, read_write> cache: array<CachePair>;
// The rotation's inverse frequencies (rotary.wgsl).
@group(0) @binding(4) var<storage, read> inv_freq: array<f32>;

const ADJACENT: u32 = 0u;
const HALVES: u32 = 1u;

// The pair index where position `pos`'s row starts.
fn row_start(pos: u32) -> u32 {
    return select(pos, pos % p.ring, p.ring != 0u) * p.row_len / 2u;
}

// Values (x0, x1) turned by −n at angle pair i.
fn turned(x0: f32, x1: f32, i: u32) -> vec2<f32> {
    return turn(x0, x1, -f32(p.n) * p.freq_scale * inv_freq[i]);
}

@compute @workgroup_size(256)
fn cache_shift(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = item_index(wid, nwg, lid);
    let pairs = p.row_len / 2u;
    let q = p.first + idx / pairs;
    if q >= p.new_past {
        return;
    }
    let pair = idx % pairs;
    let moved_row = row_start(q + p.n);
    let row = row_start(q);
    // Pair `local` of its head; the head's first pair.
    let local = pair % (p.head_dim / 2u);
    let head = pair - local;
    if p.mode == ADJACENT && 2u * local < p.n_rot {
        let x = cache_pair(moved[moved_row + pair]);
        cache[row + pair] = stored_pair(turned(x.x, x.y, local));
    } else if p.mode == HALVES && 2u * local < p.n_rot {
        // Values 2·local, 2·local + 1 turn with their partners half a rotation on:
        // the invocation of the first quarter's pairs moves both pairs.
        let quarter = p.n_rot / 4u;
        if local < quarter {
            let a = cache_pair(moved[moved_row + head + local]);
            let b = cache_pair(moved[moved_row + head + local + quarter]);
            let first = turned(a.x, b.x, 2u * local);
            let second = turned(a.y, b.y, 2u * local + 1u);
            cache[row + head + local] = stored_pair(vec2<f32>(first.x, second.x));
            cache[row + head + local + quarter] = stored_pair(vec2<f32>(first.y, second.y));
        }
    } else {
        cache[row + pair] = moved[moved_row + pair];
    }
}
