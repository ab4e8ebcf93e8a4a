//! The RAM ring: one series' samples at full resolution, oldest dropped
//! first.
//!
//! Samples are kept in **chunks** of up to [`CHUNK_POINTS`], compressed as
//! they arrive. A chunk holds its first time and first value as they are;
//! each later sample is one head byte, then the change of its interval (a
//! zigzag varint, only when the interval changed), then the bytes of its
//! value's XOR with the previous value that are not zero (only when the
//! value changed). A steady series at a steady interval costs one byte a
//! sample; a noisy gauge a few more. The ring drops whole chunks, so it
//! holds up to one chunk more than asked.

use std::collections::VecDeque;

use super::bucket::{get_varint, put_varint, unzigzag, zigzag};

/// Samples in one chunk.
pub(crate) const CHUNK_POINTS: u32 = 120;

/// Head bit: the value changed; its XOR with the previous one follows.
const CHANGED: u8 = 0x80;
/// Head bit: the interval changed; the change follows as a varint.
const RETIMED: u8 = 0x40;

/// A sample: its time in milliseconds since the epoch, and its value.
pub(crate) type Timed = (u64, f64);

/// One series' recent samples. See the [module documentation](self).
#[derive(Debug, Default)]
pub(crate) struct Ring {
    chunks: VecDeque<Chunk>,
    points: usize,
}

#[derive(Debug)]
struct Chunk {
    first_ms: u64,
    last_ms: u64,
    last_bits: u64,
    last_interval: i64,
    count: u32,
    bytes: Vec<u8>,
}

impl Chunk {
    fn start(at_ms: u64, value: f64) -> Chunk {
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(&value.to_bits().to_le_bytes());
        Chunk {
            first_ms: at_ms,
            last_ms: at_ms,
            last_bits: value.to_bits(),
            last_interval: 0,
            count: 1,
            bytes,
        }
    }

    fn push(&mut self, at_ms: u64, value: f64) {
        let interval = (at_ms - self.last_ms) as i64;
        let change = interval - self.last_interval;
        let xor = value.to_bits() ^ self.last_bits;
        let mut head = 0u8;
        let (mut leading, mut trailing) = (0, 0);
        if change != 0 {
            head |= RETIMED;
        }
        if xor != 0 {
            leading = (xor.leading_zeros() / 8) as u8;
            trailing = (xor.trailing_zeros() / 8) as u8;
            head |= CHANGED | (leading << 3) | trailing;
        }
        self.bytes.push(head);
        if change != 0 {
            put_varint(&mut self.bytes, zigzag(change));
        }
        if xor != 0 {
            let significant = 8 - leading - trailing;
            let shifted = xor >> (8 * u32::from(trailing));
            self.bytes
                .extend_from_slice(&shifted.to_le_bytes()[..usize::from(significant)]);
        }
        self.last_ms = at_ms;
        self.last_bits = value.to_bits();
        self.last_interval = interval;
        self.count += 1;
    }

    /// Calls `each` with every sample, oldest first.
    fn for_each(&self, mut each: impl FnMut(u64, f64)) {
        let bytes = &self.bytes;
        let mut bits = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        let mut at_ms = self.first_ms;
        let mut interval = 0i64;
        each(at_ms, f64::from_bits(bits));
        let mut at = 8;
        // The chunk was written by `push`: it is well formed.
        while at < bytes.len() {
            let head = bytes[at];
            at += 1;
            if head & RETIMED != 0 {
                let change = get_varint(bytes, &mut at).expect("a chunk written by push");
                interval += unzigzag(change);
            }
            at_ms = at_ms.wrapping_add_signed(interval);
            if head & CHANGED != 0 {
                let leading = (head >> 3) & 7;
                let trailing = head & 7;
                let significant = usize::from(8 - leading - trailing);
                let mut raw = [0u8; 8];
                raw[..significant].copy_from_slice(&bytes[at..at + significant]);
                at += significant;
                bits ^= u64::from_le_bytes(raw) << (8 * u32::from(trailing));
            }
            each(at_ms, f64::from_bits(bits));
        }
    }
}

impl Ring {
    /// Appends a sample; refused (false) unless it is later than the last.
    pub fn push(&mut self, at_ms: u64, value: f64) -> bool {
        match self.chunks.back_mut() {
            Some(last) if at_ms <= last.last_ms => return false,
            Some(last)
                if last.count < CHUNK_POINTS && at_ms - last.last_ms <= u64::from(u32::MAX) =>
            {
                last.push(at_ms, value)
            }
            other => {
                if let Some(full) = other {
                    full.bytes.shrink_to_fit();
                }
                self.chunks.push_back(Chunk::start(at_ms, value));
            }
        }
        self.points += 1;
        true
    }

    /// The latest sample's time.
    #[cfg(test)]
    pub fn last_ms(&self) -> Option<u64> {
        self.chunks.back().map(|c| c.last_ms)
    }

    /// The oldest sample's time.
    #[cfg(test)]
    pub fn first_ms(&self) -> Option<u64> {
        self.chunks.front().map(|c| c.first_ms)
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.points
    }

    /// Drops the oldest chunks while all their samples are older than
    /// `before_ms`, or while more than `max_points` samples are held.
    pub fn prune(&mut self, before_ms: u64, max_points: usize) {
        while let Some(front) = self.chunks.front() {
            let old = front.last_ms < before_ms;
            let over = self.points > max_points && self.chunks.len() > 1;
            if !old && !over {
                break;
            }
            self.points -= front.count as usize;
            self.chunks.pop_front();
        }
        if self.chunks.is_empty() {
            self.chunks = VecDeque::new();
        }
    }

    /// The samples in `[from_ms, to_ms)`, oldest first, and the sample just
    /// before them if the ring holds it (a counter's growth starts there).
    pub fn range(&self, from_ms: u64, to_ms: u64) -> (Option<Timed>, Vec<Timed>) {
        let mut before = None;
        let mut inside = Vec::new();
        for chunk in &self.chunks {
            if chunk.last_ms < from_ms {
                // Only the last chunk before the range can hold `before`.
                before = Some((chunk.last_ms, f64::from_bits(chunk.last_bits)));
                continue;
            }
            if chunk.first_ms >= to_ms {
                break;
            }
            chunk.for_each(|at, v| {
                if at < from_ms {
                    before = Some((at, v));
                } else if at < to_ms {
                    inside.push((at, v));
                }
            });
        }
        (before, inside)
    }

    /// Heap bytes the ring uses.
    pub fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Chunk>()
            + self
                .chunks
                .iter()
                .map(|c| c.bytes.capacity())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(ring: &Ring) -> Vec<(u64, f64)> {
        ring.range(0, u64::MAX).1
    }

    #[test]
    fn samples_come_back_exactly_in_order() {
        let mut ring = Ring::default();
        let mut expected = Vec::new();
        let mut at = 1_700_000_000_000u64;
        for i in 0..1000u64 {
            // Jittered intervals, steady and changing values, odd floats.
            at += 1000 + (i % 7) * 3 + if i % 100 == 0 { 3_600_000 } else { 0 };
            let v = match i % 5 {
                0 => 42.0,
                1 => (i as f64).sin(),
                2 => f64::NAN,
                3 => -0.0,
                _ => 1e12 + i as f64,
            };
            assert!(ring.push(at, v));
            expected.push((at, v));
        }
        let back = all(&ring);
        assert_eq!(back.len(), expected.len());
        for ((a, v), (b, w)) in expected.iter().zip(&back) {
            assert_eq!(a, b);
            assert_eq!(v.to_bits(), w.to_bits());
        }
        assert_eq!(ring.len(), 1000);
        assert_eq!(ring.first_ms(), Some(expected[0].0));
        assert_eq!(ring.last_ms(), Some(at));
    }

    #[test]
    fn a_sample_not_after_the_last_is_refused() {
        let mut ring = Ring::default();
        assert!(ring.push(10, 1.0));
        assert!(!ring.push(10, 2.0));
        assert!(!ring.push(9, 2.0));
        assert_eq!(all(&ring), [(10, 1.0)]);
    }

    #[test]
    fn a_steady_series_costs_about_a_byte_a_sample() {
        let mut ring = Ring::default();
        for i in 0..3600u64 {
            ring.push(i * 1000, 7.0);
        }
        let bytes: usize = ring.chunks.iter().map(|c| c.bytes.len()).sum();
        assert!(bytes < 3600 + 30 * 16, "{bytes} bytes");
    }

    #[test]
    fn pruning_drops_whole_old_chunks_and_bounds_the_count() {
        let mut ring = Ring::default();
        for i in 0..600u64 {
            ring.push(i * 1000, i as f64);
        }
        // Chunks hold 120 samples: [0,120) s, [120,240) s, …
        ring.prune(250_000, usize::MAX);
        assert_eq!(ring.first_ms(), Some(240_000));
        assert_eq!(ring.len(), 360);
        ring.prune(0, 130);
        assert_eq!(ring.len(), 120);
        assert_eq!(ring.first_ms(), Some(480_000));
    }

    #[test]
    fn a_range_gives_the_sample_before_it() {
        let mut ring = Ring::default();
        for i in 0..300u64 {
            ring.push(i * 1000, i as f64);
        }
        let (before, inside) = ring.range(150_000, 153_000);
        assert_eq!(before, Some((149_000, 149.0)));
        assert_eq!(
            inside,
            [(150_000, 150.0), (151_000, 151.0), (152_000, 152.0)]
        );
        // The sample before may end an earlier chunk.
        let (before, _) = ring.range(120_000, 121_000);
        assert_eq!(before, Some((119_000, 119.0)));
        assert_eq!(ring.range(0, 1).0, None);
    }
}
