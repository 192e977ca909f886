//! Bytes from the host to device buffers through a few reused staging buffers.
//!
//! A buffer mapped at creation that the host cannot map (a weight's storage buffer)
//! gets a staging buffer of its own size from wgpu: a 7B model's load then allocated
//! 4.4 GB of host-visible memory, written once and freed, and copied it on the first
//! step's submission. The ring instead fills one of a few slots while the device copies
//! the slots filled before it, each slot mapped again once its copy is done.

use std::sync::mpsc::{channel, Receiver};

use wgpu::WriteOnly;

use super::{GpuContext, GpuError};

/// Bytes of a slot: a few tasks for every core of the copy that fills it.
pub(super) const SLOT_BYTES: u64 = 64 << 20;
/// Slots: one filled on the host while the others are copied on the device.
const SLOTS: usize = 4;

type Mapped = Receiver<Result<(), wgpu::BufferAsyncError>>;

struct Slot {
    buffer: wgpu::Buffer,
    /// Its mapping, asked for after its copy was submitted: None while it is mapped.
    remapping: Option<(Mapped, wgpu::SubmissionIndex)>,
}

pub(super) struct StagingRing<'c> {
    context: &'c GpuContext,
    /// Made as first needed, up to [`SLOTS`].
    slots: Vec<Slot>,
    next: usize,
}

impl<'c> StagingRing<'c> {
    pub fn new(context: &'c GpuContext) -> StagingRing<'c> {
        StagingRing {
            context,
            slots: Vec::new(),
            next: 0,
        }
    }

    pub fn device(&self) -> &'c wgpu::Device {
        &self.context.device
    }

    /// Copies `bytes` bytes, which `fill` writes into a slot, to `dest` from byte
    /// `offset`; `bytes` is at most [`SLOT_BYTES`], a multiple of 4, as is `offset`.
    pub fn copy_to(
        &mut self,
        dest: &wgpu::Buffer,
        offset: u64,
        bytes: u64,
        fill: impl FnOnce(WriteOnly<'_, [u8]>),
    ) -> Result<(), GpuError> {
        debug_assert!(bytes <= SLOT_BYTES && bytes.is_multiple_of(4) && offset.is_multiple_of(4));
        if self.next == self.slots.len() {
            let buffer = self.context.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("staging"),
                size: SLOT_BYTES,
                usage: wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: true,
            });
            self.slots.push(Slot {
                buffer,
                remapping: None,
            });
        }
        let slot = &mut self.slots[self.next];
        self.next = (self.next + 1) % SLOTS;
        let failed = |e: String| GpuError::Device(format!("staging weights: {e}"));
        if let Some((mapped, submission)) = slot.remapping.take() {
            self.context
                .wait_for_message(&mapped, Some(submission))?
                .map_err(|e| failed(e.to_string()))?;
        }
        {
            let mut view = slot
                .buffer
                .get_mapped_range_mut(..bytes)
                .map_err(|e| failed(e.to_string()))?;
            fill(view.slice(..));
        }
        slot.buffer.unmap();
        let device = &self.context.device;
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("staging"),
        });
        encoder.copy_buffer_to_buffer(&slot.buffer, 0, dest, offset, bytes);
        let submission = self.context.queue.submit([encoder.finish()]);
        let (sender, mapped) = channel();
        slot.buffer.map_async(wgpu::MapMode::Write, .., move |r| {
            let _ = sender.send(r);
        });
        slot.remapping = Some((mapped, submission));
        Ok(())
    }
}
