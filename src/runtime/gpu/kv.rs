//! The KV cache on the device: one buffer per cache of the graph, `capacity` positions
//! long, stored as pairs of f16 or f32 values (see `wgsl/kv_cache.wgsl`), held
//! by the bind groups of the dispatches that read or write it.

/// Made by [`super::GpuExecutor::kv_cache`]; used only with the executor that made it.
pub struct GpuKvCache {
    pub(super) owner: u64,
    /// Unique among caches: the shape of a step encoded ahead names its cache.
    pub(super) id: u64,
    pub(super) capacity: usize,
    /// Bytes of its buffers.
    pub(super) bytes: u64,
    /// Per dispatch of the executor: its bind group when it binds a cache buffer.
    pub(super) bind_groups: Vec<Option<wgpu::BindGroup>>,
    /// One per cache of the graph.
    pub(super) buffers: Vec<wgpu::Buffer>,
}

impl GpuKvCache {
    /// Positions each cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes it holds on the device.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}
