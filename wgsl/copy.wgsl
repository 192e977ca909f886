// The bandwidth probe: `copied` = `original`, 16 bytes an invocation. (A buffer-to-buffer
// copy command is no measure of what kernels reach: on an H100 it ran at a third of this.)

@group(0) @binding(2) var<storage, read> original: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> copied: array<vec4<f32>>;

@compute @workgroup_size(256)
fn copy(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = item_index(wid, nwg, lid);
    if i < arrayLength(&copied) {
        copied[i] = original[i];
    }
}
