//! Compiled pipelines kept on disk between runs, where the backend can (Vulkan's
//! `PIPELINE_CACHE`), so that a second load skips the driver's shader compiler. One
//! file per adapter (`wgpu::util::pipeline_cache_key`) in `$RUSTORCH_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/rustorch`, else `~/.cache/rustorch`. A cache is only a shortcut:
//! when it cannot be read or written, pipelines are compiled as if there were none.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// The variable naming the directory of pipeline caches.
pub const CACHE_DIR_VARIABLE: &str = "RUSTORCH_CACHE_DIR";

pub(super) struct PipelineCache {
    pub cache: wgpu::PipelineCache,
    file: PathBuf,
}

impl PipelineCache {
    /// The adapter's cache, filled from its file when there is one; `None` where the
    /// device lacks `PIPELINE_CACHE` or no directory is known.
    pub fn open(device: &wgpu::Device, info: &wgpu::AdapterInfo) -> Option<PipelineCache> {
        if !device.features().contains(wgpu::Features::PIPELINE_CACHE) {
            return None;
        }
        let file = directory()?.join(wgpu::util::pipeline_cache_key(info)?);
        let data = std::fs::read(&file).ok();
        // SAFETY: the data is what `get_data` returned for this adapter's key, written
        // whole (through a rename). Data from another driver version or a damaged file
        // fails the header check that wgpu and the Vulkan driver make, and `fallback`
        // then starts an empty cache.
        let cache = unsafe {
            device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                label: Some("rustorch pipelines"),
                data: data.as_deref(),
                fallback: true,
            })
        };
        Some(PipelineCache { cache, file })
    }

    /// Writes the cache's data to its file (through a temporary file and a rename, so
    /// that a reader never sees half of it). Failures are ignored: see the module doc.
    pub fn save(&self) {
        let Some(data) = self.cache.get_data() else {
            return;
        };
        let Some(dir) = self.file.parent() else {
            return;
        };
        // A name no other writer uses, in this process or another.
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        let temporary = self
            .file
            .with_extension(format!("{}-{n}.tmp", std::process::id()));
        let written = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&temporary, &data))
            .and_then(|()| std::fs::rename(&temporary, &self.file));
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
    }
}

fn directory() -> Option<PathBuf> {
    let from = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    from(CACHE_DIR_VARIABLE)
        .or_else(|| from("XDG_CACHE_HOME").map(|d| d.join("rustorch")))
        .or_else(|| from("HOME").map(|d| d.join(".cache").join("rustorch")))
}
