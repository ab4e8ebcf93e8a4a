//! Buckets and frames.
//!
//! A **bucket** summarises one series over one interval (a minute, an hour,
//! a query's step): how many samples, their min, max, sum and last value,
//! and for a counter how much it grew. Buckets of adjacent intervals merge
//! into the bucket of the whole.
//!
//! A **frame** is the buckets of every series for one interval, encoded as
//! one blob: the history file keeps one frame per minute and one per hour.
//! It opens with an **index**: its length in bytes, then for each record,
//! sorted by series id, the id's difference from the previous record's and
//! the record's length. The records follow in the same order, so a query
//! finds the few series it wants in the index and decodes only those. The
//! lengths cost about a byte a record (ids were written before too).
//!
//! A record is the count, a tag, then the values: last, min, max, sum, and
//! a counter's increase. The tag says how each value is written. Last and
//! increase: zero (no bytes), a whole number (a zigzag varint), an `f32`
//! that holds it exactly (4 bytes) or an `f64` (8 bytes). Min and max are
//! written against last, and the sum against count × last: equal (no
//! bytes), a whole difference (a varint, when both are whole), or as they
//! are. When min, max and last are equal and the sum is that value times
//! the count, only last is written. The encoding is lossless.
//!
//! Files of schema version 1 hold frames without the index (each record
//! led by its id's difference); [`decode_frame_v1`] reads them once, when
//! the file is migrated.

use std::ops::Range;

/// The summary of one series over one interval. See the [module documentation](self).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bucket {
    /// Samples summarised; at least 1.
    pub count: u32,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// The sum of the values; the mean is `sum / count`.
    pub sum: f64,
    /// The latest value.
    pub last: f64,
    /// For a counter, its growth over the interval: the sum of the
    /// differences between consecutive samples, where a sample lower than
    /// the one before (a reset) counts as growth from zero. `None` for a gauge.
    pub increase: Option<f64>,
}

impl Bucket {
    /// A bucket of one sample.
    pub fn of(value: f64, increase: Option<f64>) -> Bucket {
        Bucket {
            count: 1,
            min: value,
            max: value,
            sum: value,
            last: value,
            increase,
        }
    }

    /// Adds a sample later than every sample in the bucket.
    pub fn add(&mut self, value: f64, increase: Option<f64>) {
        self.merge(&Bucket::of(value, increase));
    }

    /// Merges the bucket of a later interval (its `last` wins).
    pub fn merge(&mut self, later: &Bucket) {
        self.count = self.count.saturating_add(later.count);
        self.min = self.min.min(later.min);
        self.max = self.max.max(later.max);
        self.sum += later.sum;
        self.last = later.last;
        self.increase = match (self.increase, later.increase) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
    }

    /// The mean of the values.
    pub fn mean(&self) -> f64 {
        self.sum / f64::from(self.count.max(1))
    }
}

/// The growth of a counter from `previous` to `value`: the difference, or
/// `value` itself when the counter went down (it restarted from zero).
pub(crate) fn counter_increase(previous: f64, value: f64) -> f64 {
    if value >= previous {
        value - previous
    } else {
        value
    }
}

/// A frame that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a stored frame is malformed at byte {0}")]
pub(crate) struct Malformed(pub usize);

const SAME: u32 = 1;
const COUNTER: u32 = 2;
/// Last and increase: zero. Min, max and sum: equal to their reference.
const CODE_ZERO: u32 = 0;
/// A whole number (min, max, sum: a whole difference from the reference).
const CODE_WHOLE: u32 = 1;
const CODE_F32: u32 = 2;
const CODE_F64: u32 = 3;
/// Whole numbers up to this magnitude are written as varints.
const WHOLE_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53

/// One value of a record and what it is written against, if anything.
type Value = (f64, Option<f64>);

/// The values a record writes, in order: last, then min, max and sum
/// unless they are implied, then a counter's increase.
fn values(b: &Bucket, same: bool) -> impl Iterator<Item = Value> {
    let sum_reference = b.last * f64::from(b.count);
    let spread = [
        (b.min, Some(b.last)),
        (b.max, Some(b.last)),
        (b.sum, Some(sum_reference)),
    ];
    std::iter::once((b.last, None))
        .chain(spread.into_iter().filter(move |_| !same))
        .chain(b.increase.map(|i| (i, None)))
}

/// Encodes `records`, which must be sorted by series id, ids unique.
pub(crate) fn encode_frame(records: &[(u32, Bucket)]) -> Vec<u8> {
    let mut index = Vec::with_capacity(records.len() * 2);
    let mut body = Vec::with_capacity(records.len() * 16);
    let mut previous_id = 0u32;
    for (i, (id, b)) in records.iter().enumerate() {
        debug_assert!(i == 0 || *id > previous_id, "records sorted by id");
        put_varint(
            &mut index,
            u64::from(id - if i == 0 { 0 } else { previous_id }),
        );
        previous_id = *id;
        let start = body.len();
        put_record(&mut body, b);
        put_varint(&mut index, (body.len() - start) as u64);
    }
    let mut out = Vec::with_capacity(index.len() + body.len() + 3);
    put_varint(&mut out, index.len() as u64);
    out.extend_from_slice(&index);
    out.extend_from_slice(&body);
    out
}

/// Calls `each` with every record of a frame, in id order.
pub(crate) fn decode_frame(
    bytes: &[u8],
    mut each: impl FnMut(u32, Bucket),
) -> Result<(), Malformed> {
    let mut index = Index::of(bytes)?;
    while let Some((id, record)) = index.next_record()? {
        each(id, get_record(bytes, record)?);
    }
    index.finish()
}

/// Calls `each` with the position in `ids` (sorted, unique), the id and the
/// record of every series of `ids` the frame holds, in id order. The other
/// records are skipped, not decoded, and so are not checked.
pub(crate) fn decode_selected(
    bytes: &[u8],
    ids: &[u32],
    mut each: impl FnMut(usize, u32, Bucket),
) -> Result<(), Malformed> {
    let mut index = Index::of(bytes)?;
    let mut wanted = 0;
    while wanted < ids.len()
        && let Some((id, record)) = index.next_record()?
    {
        while ids.get(wanted).is_some_and(|&w| w < id) {
            wanted += 1;
        }
        if ids.get(wanted) == Some(&id) {
            each(wanted, id, get_record(bytes, record)?);
            wanted += 1;
        }
    }
    Ok(())
}

/// Calls `each` with the id of every record of a frame, in order, decoding
/// none of them.
pub(crate) fn frame_ids(bytes: &[u8], mut each: impl FnMut(u32)) -> Result<(), Malformed> {
    let mut index = Index::of(bytes)?;
    while let Some((id, _)) = index.next_record()? {
        each(id);
    }
    index.finish()
}

/// Encodes `records` as schema version 1 did (tests of the migration).
#[cfg(test)]
pub(crate) fn encode_frame_v1(records: &[(u32, Bucket)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut previous_id = 0u32;
    for (i, (id, b)) in records.iter().enumerate() {
        put_varint(
            &mut out,
            u64::from(id - if i == 0 { 0 } else { previous_id }),
        );
        previous_id = *id;
        put_record(&mut out, b);
    }
    out
}

/// Calls `each` with every record of a frame of schema version 1 (without
/// an index), in id order.
pub(crate) fn decode_frame_v1(
    bytes: &[u8],
    mut each: impl FnMut(u32, Bucket),
) -> Result<(), Malformed> {
    let mut at = 0usize;
    let mut id = 0u32;
    let mut first = true;
    while at < bytes.len() {
        let delta = get_varint(bytes, &mut at)?;
        id = next_id(id, delta, first).ok_or(Malformed(at))?;
        first = false;
        each(id, read_record(bytes, &mut at)?);
    }
    Ok(())
}

/// The id after `previous` in a frame: the first is given as it is, each
/// later one as a difference of at least 1.
fn next_id(previous: u32, delta: u64, first: bool) -> Option<u32> {
    let delta = u32::try_from(delta).ok()?;
    if first {
        Some(delta)
    } else {
        previous.checked_add(delta).filter(|_| delta > 0)
    }
}

/// A walk through a frame's index: each record's id and where it lies.
struct Index<'a> {
    bytes: &'a [u8],
    /// The next entry of the index.
    at: usize,
    /// Where the index ends and the records begin.
    end: usize,
    /// Where the next record begins.
    record: usize,
    id: u32,
    first: bool,
}

impl<'a> Index<'a> {
    fn of(bytes: &'a [u8]) -> Result<Index<'a>, Malformed> {
        let mut at = 0;
        let len = get_varint(bytes, &mut at)?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| at.checked_add(len))
            .filter(|&end| end <= bytes.len())
            .ok_or(Malformed(at))?;
        Ok(Index {
            bytes,
            at,
            end,
            record: end,
            id: 0,
            first: true,
        })
    }

    /// The next record's id and byte range, or `None` past the last.
    fn next_record(&mut self) -> Result<Option<(u32, Range<usize>)>, Malformed> {
        if self.at >= self.end {
            return Ok(None);
        }
        let index = &self.bytes[..self.end];
        let delta = get_varint(index, &mut self.at)?;
        self.id = next_id(self.id, delta, self.first).ok_or(Malformed(self.at))?;
        self.first = false;
        let len = get_varint(index, &mut self.at)?;
        let start = self.record;
        self.record = usize::try_from(len)
            .ok()
            .and_then(|len| start.checked_add(len))
            .filter(|&end| end <= self.bytes.len())
            .ok_or(Malformed(self.at))?;
        Ok(Some((self.id, start..self.record)))
    }

    /// Checks that the records fill the rest of the frame, once every
    /// entry has been read.
    fn finish(self) -> Result<(), Malformed> {
        if self.record == self.bytes.len() {
            Ok(())
        } else {
            Err(Malformed(self.record))
        }
    }
}

fn put_record(out: &mut Vec<u8>, b: &Bucket) {
    put_varint(out, u64::from(b.count));
    let same = b.min.to_bits() == b.max.to_bits()
        && b.min.to_bits() == b.last.to_bits()
        && (b.min * f64::from(b.count)).to_bits() == b.sum.to_bits();
    let mut tag = 0u32;
    if same {
        tag |= SAME;
    }
    if b.increase.is_some() {
        tag |= COUNTER;
    }
    for (k, (v, reference)) in values(b, same).enumerate() {
        tag |= code_of(v, reference) << (2 + 2 * k);
    }
    put_varint(out, u64::from(tag));
    for (v, reference) in values(b, same) {
        put_value(out, v, reference);
    }
}

/// Decodes the record that fills `range` of a frame.
fn get_record(bytes: &[u8], range: Range<usize>) -> Result<Bucket, Malformed> {
    let mut at = range.start;
    let bucket = read_record(&bytes[..range.end], &mut at)?;
    if at == range.end {
        Ok(bucket)
    } else {
        Err(Malformed(at))
    }
}

/// Decodes the record at `*at` and moves past it.
fn read_record(bytes: &[u8], at: &mut usize) -> Result<Bucket, Malformed> {
    let count = u32::try_from(get_varint(bytes, at)?).map_err(|_| Malformed(*at))?;
    let tag = u32::try_from(get_varint(bytes, at)?).map_err(|_| Malformed(*at))?;
    let mut shift = 2;
    let mut next = |at: &mut usize, reference: Option<f64>| {
        let code = (tag >> shift) & 3;
        shift += 2;
        get_value(bytes, at, code, reference)
    };
    let last = next(at, None)?;
    let mut bucket = Bucket {
        count,
        min: last,
        max: last,
        sum: last * f64::from(count),
        last,
        increase: None,
    };
    if tag & SAME == 0 {
        bucket.min = next(at, Some(last))?;
        bucket.max = next(at, Some(last))?;
        bucket.sum = next(at, Some(last * f64::from(count)))?;
    }
    if tag & COUNTER != 0 {
        bucket.increase = Some(next(at, None)?);
    }
    Ok(bucket)
}

/// Merges `later` into `earlier`, both sorted by id: the buckets of the
/// same series merge (`later`'s last wins), the others are kept.
pub(crate) fn merge_records(
    earlier: &[(u32, Bucket)],
    later: &[(u32, Bucket)],
) -> Vec<(u32, Bucket)> {
    let mut out = Vec::with_capacity(earlier.len().max(later.len()));
    let (mut i, mut j) = (0, 0);
    while i < earlier.len() || j < later.len() {
        match (earlier.get(i), later.get(j)) {
            (Some(a), Some(b)) if a.0 == b.0 => {
                let mut m = a.1;
                m.merge(&b.1);
                out.push((a.0, m));
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a.0 < b.0 => {
                out.push(*a);
                i += 1;
            }
            (Some(a), None) => {
                out.push(*a);
                i += 1;
            }
            (_, Some(b)) => {
                out.push(*b);
                j += 1;
            }
            (None, None) => unreachable!("the loop stops when both are done"),
        }
    }
    out
}

fn whole(v: f64) -> bool {
    v.fract() == 0.0 && v.abs() <= WHOLE_LIMIT && v.to_bits() != (-0.0f64).to_bits()
}

fn code_of(v: f64, reference: Option<f64>) -> u32 {
    match reference {
        Some(r) if v.to_bits() == r.to_bits() => CODE_ZERO,
        // Both whole and the difference within 2^53: the difference, and
        // the sum back, are exact.
        Some(r) if whole(v) && whole(r) && whole(v - r) => CODE_WHOLE,
        None if v.to_bits() == 0 => CODE_ZERO,
        None if whole(v) => CODE_WHOLE,
        _ if f64::from(v as f32).to_bits() == v.to_bits() => CODE_F32,
        _ => CODE_F64,
    }
}

fn put_value(out: &mut Vec<u8>, v: f64, reference: Option<f64>) {
    match code_of(v, reference) {
        CODE_ZERO => {}
        CODE_WHOLE => put_varint(out, zigzag((v - reference.unwrap_or(0.0)) as i64)),
        CODE_F32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
        _ => out.extend_from_slice(&v.to_le_bytes()),
    }
}

fn get_value(
    bytes: &[u8],
    at: &mut usize,
    code: u32,
    reference: Option<f64>,
) -> Result<f64, Malformed> {
    match code {
        CODE_ZERO => Ok(reference.unwrap_or(0.0)),
        CODE_WHOLE => Ok(reference.unwrap_or(0.0) + unzigzag(get_varint(bytes, at)?) as f64),
        CODE_F32 => {
            let raw = bytes.get(*at..*at + 4).ok_or(Malformed(*at))?;
            *at += 4;
            Ok(f64::from(f32::from_le_bytes(
                raw.try_into().expect("4 bytes"),
            )))
        }
        _ => {
            let raw = bytes.get(*at..*at + 8).ok_or(Malformed(*at))?;
            *at += 8;
            Ok(f64::from_le_bytes(raw.try_into().expect("8 bytes")))
        }
    }
}

/// Appends `n` as a LEB128 varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads a LEB128 varint at `*at` and moves past it.
pub(crate) fn get_varint(bytes: &[u8], at: &mut usize) -> Result<u64, Malformed> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).ok_or(Malformed(*at))?;
        *at += 1;
        n |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err(Malformed(*at))
}

/// Maps signed to unsigned so that small magnitudes give small numbers.
pub(crate) fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

/// The inverse of [`zigzag`].
pub(crate) fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge(values: &[f64]) -> Bucket {
        let mut b = Bucket::of(values[0], None);
        for v in &values[1..] {
            b.add(*v, None);
        }
        b
    }

    #[test]
    fn a_bucket_summarises_its_samples() {
        let b = gauge(&[3.0, 1.0, 4.0, 1.5]);
        assert_eq!(b.count, 4);
        assert_eq!((b.min, b.max, b.last), (1.0, 4.0, 1.5));
        assert_eq!(b.mean(), 9.5 / 4.0);
        assert_eq!(b.increase, None);
    }

    #[test]
    fn a_counter_that_goes_down_grew_from_zero() {
        assert_eq!(counter_increase(10.0, 15.0), 5.0);
        assert_eq!(counter_increase(15.0, 4.0), 4.0);
        assert_eq!(counter_increase(4.0, 4.0), 0.0);
    }

    #[test]
    fn frames_keep_every_value_exactly() {
        let records = vec![
            (0, gauge(&[0.0])),
            (1, gauge(&[7.0, 7.0, 7.0])),
            (2, gauge(&[0.1, 0.2, 0.30000000000000004])),
            (3, gauge(&[45.5, 46.0])),
            (7, gauge(&[-3.0, 1e300, f64::MIN_POSITIVE])),
            (
                300,
                Bucket {
                    increase: Some(1_234_567.0),
                    ..gauge(&[9e15, 9.000000001234567e15])
                },
            ),
            (
                301,
                Bucket {
                    increase: Some(0.0),
                    ..gauge(&[5.0])
                },
            ),
            (302, gauge(&[-0.0, -0.0])),
            (303, gauge(&[9e15, -9e15, 1.0])),
            (304, gauge(&[f64::MAX, f64::MIN, 0.0])),
            (u32::MAX, gauge(&[1.0 / 3.0])),
        ];
        let bytes = encode_frame(&records);
        let mut back = Vec::new();
        decode_frame(&bytes, |id, b| back.push((id, b))).unwrap();
        assert_eq!(back.len(), records.len());
        for ((id, b), (id2, b2)) in records.iter().zip(&back) {
            assert_eq!(id, id2);
            assert_eq!(b.count, b2.count);
            for (x, y) in [
                (b.min, b2.min),
                (b.max, b2.max),
                (b.sum, b2.sum),
                (b.last, b2.last),
            ] {
                assert_eq!(
                    x.to_bits(),
                    y.to_bits(),
                    "series {id}: {b:?} came back {b2:?}"
                );
            }
            assert_eq!(b.increase, b2.increase);
        }
        // A steady gauge costs a few bytes: the index's length, its entry
        // (id, length), then count, tag, one varint.
        assert_eq!(encode_frame(&[(0, gauge(&[7.0; 6]))]).len(), 6);
        // A counter near 4e9 moving by 1000 a sample: max is last, min and
        // sum small differences.
        let mut counter = Bucket::of(4e9, Some(0.0));
        for i in 1..6 {
            counter.add(4e9 + 1000.0 * f64::from(i), Some(1000.0));
        }
        let bytes = encode_frame(&[(0, counter)]);
        assert!(bytes.len() <= 18, "{} bytes", bytes.len());
        let mut back = None;
        decode_frame(&bytes, |_, b| back = Some(b)).unwrap();
        assert_eq!(back, Some(counter));
    }

    #[test]
    fn a_frame_gives_the_series_asked_for_without_decoding_the_rest() {
        let records: Vec<(u32, Bucket)> = (0..300u32)
            .filter(|id| id % 7 != 3)
            .map(|id| (id, gauge(&[f64::from(id) * 0.1, f64::from(id) + 0.5])))
            .collect();
        let bytes = encode_frame(&records);
        let ids = [0, 3, 4, 151, 298, 299, 400];
        let mut picked = Vec::new();
        decode_selected(&bytes, &ids, |at, id, b| picked.push((at, id, b))).unwrap();
        let expected: Vec<(usize, u32, Bucket)> = ids
            .iter()
            .enumerate()
            .filter_map(|(at, id)| records.iter().find(|r| r.0 == *id).map(|r| (at, r.0, r.1)))
            .collect();
        assert_eq!(picked, expected);
        assert_eq!(picked.len(), 5, "3 and 400 are not in the frame");
        let mut ids_seen = Vec::new();
        frame_ids(&bytes, |id| ids_seen.push(id)).unwrap();
        assert_eq!(ids_seen, records.iter().map(|r| r.0).collect::<Vec<_>>());
        // A record whose bytes are damaged is found when it is asked for.
        let mut damaged = bytes.clone();
        let last = damaged.len() - 1;
        damaged.truncate(last);
        assert!(decode_selected(&damaged, &[299], |_, _, _| {}).is_err());
        assert!(decode_selected(&damaged, &[0], |_, _, _| {}).is_ok());
    }

    #[test]
    fn a_version_1_frame_reads_back_the_same() {
        let records = vec![
            (2, gauge(&[1.0, 2.5])),
            (
                9,
                Bucket {
                    increase: Some(12.0),
                    ..gauge(&[100.0, 112.0])
                },
            ),
        ];
        let mut back = Vec::new();
        decode_frame_v1(&encode_frame_v1(&records), |id, b| back.push((id, b))).unwrap();
        assert_eq!(back, records);
    }

    #[test]
    fn a_truncated_frame_is_malformed_not_misread() {
        let bytes = encode_frame(&[(5, gauge(&[0.1, 0.2]))]);
        for cut in 1..bytes.len() {
            assert!(
                decode_frame(&bytes[..cut], |_, _| {}).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn merged_records_combine_the_same_series() {
        let a = vec![(1, gauge(&[1.0, 2.0])), (3, gauge(&[5.0]))];
        let b = vec![(2, gauge(&[9.0])), (3, gauge(&[4.0, 6.0]))];
        let m = merge_records(&a, &b);
        assert_eq!(m.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(m[2].1, gauge(&[5.0, 4.0, 6.0]));
    }

    #[test]
    fn zigzag_round_trips() {
        for n in [0i64, 1, -1, 63, -64, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(n)), n);
        }
        assert_eq!(zigzag(-1), 1);
    }
}
