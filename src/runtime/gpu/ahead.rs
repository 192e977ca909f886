//! The next step, encoded while the device runs this one.
//!
//! Finishing a step's command buffer is the host's longest task: wgpu turns each
//! dispatch into the driver's commands and barriers there, a few µs a dispatch (0.27 –
//! 0.99 ms a decode step of 112 – 178 dispatches on the device's H100 machine), while
//! the device idles, as each decode step waits for the one before. A step's commands depend
//! on its shape alone (tokens, context, cache, what comes back), not on its tokens,
//! which the step buffer holds: so a step that the host waits for first encodes the step
//! most likely to follow it (as many tokens again, after its own, read back the same
//! way), and the next step submits those commands if its shape is the one foreseen.

/// What a step copies out for the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Readout {
    /// Nothing: a prompt's chunk before its last.
    Nothing,
    /// `bytes` of the output from byte `from`, into the executor's read-back buffer.
    Output { from: u64, bytes: u64 },
    /// The first `bytes` of the top-k's candidates, into its read-back buffer.
    Best { bytes: u64 },
    /// The argmax, into the step buffer as the next step's token and into token
    /// read-back buffer `slot` (greedy steps chained on the device, see
    /// [`super::GpuExecutor::submit_greedy`]).
    Chained { slot: usize },
}

/// Everything a step's commands depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StepShape {
    pub tokens: u32,
    /// Positions after the step: the positions before it and its tokens.
    pub context: u32,
    /// The KV cache it reads and extends ([`super::GpuKvCache`]'s id).
    pub cache: u64,
    pub readout: Readout,
}

impl StepShape {
    /// The step most likely to follow this one in a cache of `capacity` positions: as
    /// many tokens, right after, read back alike (each decode step follows one of one
    /// token, each chunk of a perplexity run one of a chunk; chained steps alternate
    /// their read-back buffers). None where nothing is read back (the host does not wait
    /// on such a step, so encoding ahead would delay it) or the cache has no room.
    pub fn next(&self, capacity: usize) -> Option<StepShape> {
        let context = self.context.checked_add(self.tokens)?;
        if self.readout == Readout::Nothing || context as usize > capacity {
            return None;
        }
        let readout = match self.readout {
            Readout::Chained { slot } => Readout::Chained { slot: 1 - slot },
            other => other,
        };
        Some(StepShape {
            context,
            readout,
            ..*self
        })
    }
}

/// A step's commands, finished before the step was asked for.
pub(super) struct Ahead {
    pub shape: StepShape,
    pub commands: wgpu::CommandBuffer,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_step(context: u32, readout: Readout) -> StepShape {
        StepShape {
            tokens: 1,
            context,
            cache: 7,
            readout,
        }
    }

    #[test]
    fn a_step_read_back_foresees_as_many_tokens_right_after_it() {
        let best = Readout::Best { bytes: 4 };
        assert_eq!(decode_step(10, best).next(64), Some(decode_step(11, best)));
        let chunk = StepShape {
            tokens: 512,
            context: 512,
            cache: 3,
            readout: Readout::Output { from: 0, bytes: 8 },
        };
        assert_eq!(
            chunk.next(2048),
            Some(StepShape {
                context: 1024,
                ..chunk
            })
        );
    }

    #[test]
    fn a_chained_step_foresees_the_other_read_back_buffer() {
        let chained = |slot| Readout::Chained { slot };
        assert_eq!(
            decode_step(10, chained(0)).next(64),
            Some(decode_step(11, chained(1)))
        );
        assert_eq!(
            decode_step(11, chained(1)).next(64),
            Some(decode_step(12, chained(0)))
        );
    }

    #[test]
    fn nothing_is_foreseen_past_the_cache_or_after_a_step_read_by_no_one() {
        let best = Readout::Best { bytes: 4 };
        assert_eq!(decode_step(64, best).next(64), None);
        assert_eq!(decode_step(63, best).next(64), Some(decode_step(64, best)));
        assert_eq!(decode_step(10, Readout::Nothing).next(64), None);
        assert_eq!(decode_step(u32::MAX, best).next(usize::MAX), None);
    }
}
