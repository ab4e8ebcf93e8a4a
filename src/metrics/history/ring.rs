//! The RAM ring: one series' samples at full resolution, oldest dropped
//! first.
//!
//! Samples are kept in **chunks** of up to [`CHUNK_POINTS`], compressed as
//! they arrive into a stream of bits, as Facebook's Gorilla does (Pelkonen
//! et al., VLDB 2015), lossless. A chunk holds its first time beside the
//! stream; the stream opens with the first value's 64 bits. Each later
//! sample is then its time, then its value:
//!
//! - **time**: the change of its interval from the previous one, `D`
//!   (zigzagged, `Z`): `0` when the interval is the same; `10` and 6 bits
//!   when `Z < 2⁶` (within ±32 ms); `110` and 10 bits (±512 ms); `1110` and
//!   14 bits (±8 s); else `1111` and 33 bits (an interval is at most
//!   `u32::MAX` ms, a longer gap starts a chunk).
//! - **value**: its XOR with the previous value: `0` when the value is the
//!   same; `10` and the XOR's bits inside the **window**, the span of bits
//!   the last written XOR kept, when they hold every bit set and that is
//!   no longer than writing a new window; else `11`, the new window (6 bits
//!   of leading zeros, 6 bits of its length less one) and its bits.
//!
//! A steady series at a steady interval costs two bits a sample; one whose
//! times jitter by a few milliseconds about one byte and a bit; a noisy
//! float gauge six to eight bytes. The ring drops whole chunks, so it holds
//! up to one chunk more than asked.

use std::collections::VecDeque;

use super::bucket::{unzigzag, zigzag};

/// Samples in one chunk.
pub(crate) const CHUNK_POINTS: u32 = 120;

/// A sample: its time in milliseconds since the epoch, and its value.
pub(crate) type Timed = (u64, f64);

/// One series' recent samples. See the [module documentation](self).
#[derive(Debug, Default)]
pub(crate) struct Ring {
    /// Full chunks, oldest first.
    sealed: VecDeque<Chunk>,
    /// The chunk samples are added to; `None` only while the ring is empty.
    open: Option<Open>,
    points: usize,
}

/// A full chunk.
#[derive(Debug)]
struct Chunk {
    first_ms: u64,
    last_ms: u64,
    last_bits: u64,
    count: u32,
    stream: Box<[u8]>,
}

/// The chunk being written, and what its next sample is written against.
#[derive(Debug)]
struct Open {
    first_ms: u64,
    last_ms: u64,
    last_bits: u64,
    last_interval: u64,
    /// The window of the last XOR written: leading zeros, length.
    window: Option<(u32, u32)>,
    count: u32,
    stream: Bits,
}

/// Bits written most significant first; `free` bits of the last byte are
/// not yet used.
#[derive(Debug, Default)]
struct Bits {
    bytes: Vec<u8>,
    free: u32,
}

impl Bits {
    /// Appends the low `n` bits of `value` (`n` at most 64).
    fn put(&mut self, value: u64, n: u32) {
        let mut left = n;
        while left > 0 {
            if self.free == 0 {
                self.bytes.push(0);
                self.free = 8;
            }
            let take = left.min(self.free);
            let part = (value >> (left - take)) & ((1 << take) - 1);
            let last = self.bytes.last_mut().expect("a byte was pushed");
            *last |= (part as u8) << (self.free - take);
            self.free -= take;
            left -= take;
        }
    }
}

/// Reads what [`Bits::put`] wrote.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    /// The next `n` bits (`n` at most 64). The stream was written by
    /// `Open::push`: it is well formed.
    fn get(&mut self, n: u32) -> u64 {
        let mut out = 0u64;
        let mut left = n;
        while left > 0 {
            let byte = self.bytes[self.at / 8];
            let used = (self.at % 8) as u32;
            let take = left.min(8 - used);
            let part = (u64::from(byte) >> (8 - used - take)) & ((1 << take) - 1);
            out = (out << take) | part;
            self.at += take as usize;
            left -= take;
        }
        out
    }

    fn bit(&mut self) -> bool {
        self.get(1) == 1
    }
}

impl Open {
    /// A chunk of `value` at `at_ms`, with room for `bytes` of stream.
    fn start(at_ms: u64, value: f64, bytes: usize) -> Open {
        let mut stream = Bits {
            bytes: Vec::with_capacity(bytes),
            free: 0,
        };
        stream.put(value.to_bits(), 64);
        Open {
            first_ms: at_ms,
            last_ms: at_ms,
            last_bits: value.to_bits(),
            last_interval: 0,
            window: None,
            count: 1,
            stream,
        }
    }

    /// Appends a sample later than the last, at most `u32::MAX` ms after it.
    fn push(&mut self, at_ms: u64, value: f64) {
        let interval = at_ms - self.last_ms;
        let change = zigzag(interval as i64 - self.last_interval as i64);
        let s = &mut self.stream;
        // Prefix, its length, the change's bits: the last takes any change
        // of two intervals of at most `u32::MAX` ms.
        let (prefix, length, bits) = match change {
            0 => (0, 1, 0),
            c if c < 1 << 6 => (0b10, 2, 6),
            c if c < 1 << 10 => (0b110, 3, 10),
            c if c < 1 << 14 => (0b1110, 4, 14),
            _ => (0b1111, 4, 33),
        };
        s.put(prefix, length);
        s.put(change, bits);
        let xor = value.to_bits() ^ self.last_bits;
        if xor == 0 {
            s.put(0, 1);
        } else {
            let leading = xor.leading_zeros();
            let length = 64 - leading - xor.trailing_zeros();
            match self.window {
                // The old window holds every bit set, and costs no more
                // than a new one (12 bits of header and its length).
                Some((w_leading, w_length))
                    if leading >= w_leading
                        && leading + length <= w_leading + w_length
                        && w_length <= 12 + length =>
                {
                    s.put(0b10, 2);
                    s.put(xor >> (64 - w_leading - w_length), w_length);
                }
                _ => {
                    s.put(0b11, 2);
                    s.put(u64::from(leading), 6);
                    s.put(u64::from(length - 1), 6);
                    s.put(xor >> (64 - leading - length), length);
                    self.window = Some((leading, length));
                }
            }
        }
        self.last_ms = at_ms;
        self.last_bits = value.to_bits();
        self.last_interval = interval;
        self.count += 1;
    }

    /// The chunk, its stream trimmed to its length.
    fn seal(self) -> Chunk {
        Chunk {
            first_ms: self.first_ms,
            last_ms: self.last_ms,
            last_bits: self.last_bits,
            count: self.count,
            stream: self.stream.bytes.into_boxed_slice(),
        }
    }
}

/// Calls `each` with every sample of a chunk, oldest first.
fn for_each(first_ms: u64, count: u32, stream: &[u8], mut each: impl FnMut(u64, f64)) {
    let mut r = Reader {
        bytes: stream,
        at: 0,
    };
    let mut bits = r.get(64);
    let mut at_ms = first_ms;
    let mut interval = 0u64;
    let mut window = (0, 64);
    each(at_ms, f64::from_bits(bits));
    for _ in 1..count {
        if r.bit() {
            let bits = if !r.bit() {
                6
            } else if !r.bit() {
                10
            } else if !r.bit() {
                14
            } else {
                33
            };
            interval = interval.wrapping_add_signed(unzigzag(r.get(bits)));
        }
        at_ms += interval;
        if r.bit() {
            if r.bit() {
                let leading = r.get(6) as u32;
                window = (leading, r.get(6) as u32 + 1);
            }
            let (leading, length) = window;
            bits ^= r.get(length) << (64 - leading - length);
        }
        each(at_ms, f64::from_bits(bits));
    }
}

impl Ring {
    /// Appends a sample; refused (false) unless it is later than the last.
    pub fn push(&mut self, at_ms: u64, value: f64) -> bool {
        match &mut self.open {
            Some(open) if at_ms <= open.last_ms => return false,
            Some(open)
                if open.count < CHUNK_POINTS && at_ms - open.last_ms <= u64::from(u32::MAX) =>
            {
                open.push(at_ms, value)
            }
            open => {
                // A series' chunks tend to take the same room: starting with
                // about what the last one took spares growing the stream
                // step by step, and the holes that would leave in the heap.
                let room = open.as_ref().map_or(32, |c| {
                    let last = c.stream.bytes.len();
                    last + last / 16 + 8
                });
                if let Some(full) = open.replace(Open::start(at_ms, value, room)) {
                    self.sealed.push_back(full.seal());
                }
            }
        }
        self.points += 1;
        true
    }

    /// The latest sample's time.
    #[cfg(test)]
    pub fn last_ms(&self) -> Option<u64> {
        self.open.as_ref().map(|c| c.last_ms)
    }

    /// The oldest sample's time.
    #[cfg(test)]
    pub fn first_ms(&self) -> Option<u64> {
        (self.sealed.front().map(|c| c.first_ms)).or(self.open.as_ref().map(|c| c.first_ms))
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.points
    }

    /// Drops the oldest chunks while all their samples are older than
    /// `before_ms`, or while more than `max_points` samples are held.
    pub fn prune(&mut self, before_ms: u64, max_points: usize) {
        while let Some(front) = self.sealed.front() {
            // The open chunk is never empty, so the ring keeps a chunk.
            if front.last_ms >= before_ms && self.points <= max_points {
                break;
            }
            self.points -= front.count as usize;
            self.sealed.pop_front();
        }
        if self.sealed.is_empty() {
            self.sealed = VecDeque::new();
            if self.open.as_ref().is_some_and(|c| c.last_ms < before_ms) {
                self.open = None;
                self.points = 0;
            }
        }
    }

    /// The samples in `[from_ms, to_ms)`, oldest first, and the sample just
    /// before them if the ring holds it (a counter's growth starts there).
    pub fn range(&self, from_ms: u64, to_ms: u64) -> (Option<Timed>, Vec<Timed>) {
        let mut before = None;
        let mut inside = Vec::new();
        let open = self.open.iter().map(|c| {
            (
                c.first_ms,
                c.last_ms,
                c.last_bits,
                c.count,
                &c.stream.bytes[..],
            )
        });
        let chunks = self
            .sealed
            .iter()
            .map(|c| (c.first_ms, c.last_ms, c.last_bits, c.count, &c.stream[..]))
            .chain(open);
        for (first_ms, last_ms, last_bits, count, stream) in chunks {
            if last_ms < from_ms {
                // Only the last chunk before the range can hold `before`.
                before = Some((last_ms, f64::from_bits(last_bits)));
                continue;
            }
            if first_ms >= to_ms {
                break;
            }
            for_each(first_ms, count, stream, |at, v| {
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
        self.sealed.capacity() * std::mem::size_of::<Chunk>()
            + self.sealed.iter().map(|c| c.stream.len()).sum::<usize>()
            + self.open.as_ref().map_or(0, |c| c.stream.bytes.capacity())
    }

    /// Bytes of compressed samples, without what holds them.
    #[cfg(test)]
    fn stream_bytes(&self) -> usize {
        self.sealed.iter().map(|c| c.stream.len()).sum::<usize>()
            + self.open.as_ref().map_or(0, |c| c.stream.bytes.len())
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn all(ring: &Ring) -> Vec<(u64, f64)> {
        ring.range(0, u64::MAX).1
    }

    /// Pushes every sample, reads them back, and checks they are the same
    /// to the bit.
    fn round_trip(samples: &[(u64, f64)]) -> Ring {
        let mut ring = Ring::default();
        for &(at, v) in samples {
            assert!(ring.push(at, v), "{at} refused");
        }
        let back = all(&ring);
        assert_eq!(back.len(), samples.len());
        for (i, ((a, v), (b, w))) in samples.iter().zip(&back).enumerate() {
            assert_eq!((i, a), (i, b), "time of sample {i}");
            assert_eq!(
                (i, v.to_bits()),
                (i, w.to_bits()),
                "value of sample {i}: {v} {w}"
            );
        }
        assert_eq!(ring.len(), samples.len());
        ring
    }

    #[test]
    fn samples_come_back_exactly_in_order() {
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
            expected.push((at, v));
        }
        let ring = round_trip(&expected);
        assert_eq!(ring.first_ms(), Some(expected[0].0));
        assert_eq!(ring.last_ms(), Some(at));
    }

    #[test]
    fn every_size_of_interval_change_comes_back() {
        // Changes at each edge of each bucket, both ways, and the largest
        // gap a chunk takes; a longer one starts a chunk of its own.
        let max = u64::from(u32::MAX);
        let mut samples = vec![(1_000_000u64, 1.0)];
        let mut interval = 10_000i64;
        for change in [
            0, 1, -1, 31, -32, 32, -33, 511, -512, 512, -513, 8191, -8192, 8192, -8193, 0,
        ] {
            interval += change;
            let at = samples.last().unwrap().0 + interval as u64;
            samples.push((at, 1.0));
        }
        let at = samples.last().unwrap().0;
        samples.push((at + 1, 2.0));
        samples.push((at + 1 + max, 2.0));
        samples.push((at + 2 + max, 2.0));
        samples.push((at + 3 + 2 * max, 3.0));
        samples.push((at + 4 + 2 * max, 3.0));
        let ring = round_trip(&samples);
        assert_eq!(
            ring.sealed.len(),
            1,
            "the gap past u32::MAX started a chunk"
        );
    }

    #[test]
    fn every_shape_of_value_change_comes_back() {
        let odd = [
            1.0,
            -1.0,                                   // the sign alone: one bit at the top
            f64::from_bits(0xbff0_0000_0000_0001),  // the lowest bit
            f64::from_bits(!0xbff0_0000_0000_0001), // all 64 bits
            f64::from_bits(0),
            f64::from_bits(1),
            f64::from_bits(1 << 63),
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::MAX,
            -0.0,
            0.0,
            // A wide window, then narrow changes inside it (reused) and
            // outside it (a new one).
            0.1,
            0.3,
            0.300_000_000_000_000_1,
            0.3,
            1e300,
            1e300,
        ];
        let samples: Vec<(u64, f64)> = odd
            .iter()
            .enumerate()
            .map(|(i, &v)| (1000 * (i as u64 + 1), v))
            .collect();
        round_trip(&samples);
        // Many chunks of noise, a counter and a stepping gauge.
        let samples: Vec<(u64, f64)> = (0..1000u64)
            .map(|t| {
                let v = match t % 3 {
                    0 => (t * 1017 + (t * t) % 97) as f64,
                    1 => (100_000_000 + (t / 30 % 50) * 4096) as f64,
                    _ => 0.5 + 0.3 * (t as f64 * 0.01).sin(),
                };
                (t * 1000 + t % 5, v)
            })
            .collect();
        round_trip(&samples);
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
    fn a_steady_series_costs_two_bits_a_sample_and_a_jittered_one_about_ten() {
        let mut ring = Ring::default();
        for i in 0..3600u64 {
            ring.push(i * 1000, 7.0);
        }
        // 30 chunks: 8 bytes for the first value, 18 bits for the first
        // interval (1000 ms after none), then 118 × 2 bits.
        assert_eq!(
            ring.stream_bytes(),
            30 * (8 + (18 + 1 + 118 * 2_usize).div_ceil(8))
        );

        let mut ring = Ring::default();
        for i in 0..3600u64 {
            ring.push(i * 1000 + (i * 7919) % 30, 7.0);
        }
        let bytes = ring.stream_bytes();
        assert!(bytes < 30 * 8 + 3600 * 10 / 8, "{bytes} bytes");
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
        // The last chunk goes once it is old too.
        ring.prune(600_000, usize::MAX);
        assert_eq!(
            (ring.len(), ring.first_ms(), ring.last_ms()),
            (0, None, None)
        );
        assert!(ring.push(1, 1.0), "an empty ring takes any time");
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
