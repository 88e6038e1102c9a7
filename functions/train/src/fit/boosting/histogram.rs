//! The boosted trees' histograms: every feature cut into at most [`MAX_BINS`] bins at quantiles
//! of its training values, and per node the gradient sum and row count of each bin, built in
//! fixed-size chunks summed in a fixed order (so the sums do not depend on the thread count).
//! The tree growing that reads them is the parent module.

use appraise_core::model::Matrix;

use super::{CHUNK_ROWS, Grower, MAX_BINS};

/// Features cut into bins, row by row: `bins[i * cols + f]` is row `i`'s bin of feature `f`
/// (one row's bins share a cache line, for filling histograms), and again column by column in
/// `columns[f * rows + i]` (one feature's bins fit in cache, for partitioning a node's rows).
/// The bins of feature `f` sit at `offsets[f]..offsets[f + 1]` in a histogram.
pub(super) struct Binned {
    pub(super) rows: usize,
    pub(super) cols: usize,
    bins: Vec<u8>,
    pub(super) columns: Vec<u8>,
    /// `cuts[f][b]`: values of feature `f` below it are in bins `..=b`.
    pub(super) cuts: Vec<Vec<f32>>,
    pub(super) offsets: Vec<usize>,
}

impl Binned {
    /// Bins every feature of `x`, the features in parallel on `pool` (sorting a million values
    /// of each is most of the work).
    pub(super) fn new(x: &Matrix, pool: &rayon::ThreadPool) -> Binned {
        use rayon::prelude::*;

        let binned_columns: Vec<(Vec<f32>, Vec<u8>)> = pool.install(|| {
            (0..x.cols)
                .into_par_iter()
                .map(|f| {
                    let value = |i: usize| x.data[i * x.cols + f] as f32;
                    let mut sorted: Vec<f32> =
                        (0..x.rows).map(value).filter(|v| !v.is_nan()).collect();
                    sorted.sort_unstable_by(f32::total_cmp);
                    let feature_cuts = quantile_cuts(&sorted);
                    // NaN compares false: bin 0, which every split sends left.
                    let column = (0..x.rows)
                        .map(|i| {
                            let value = value(i);
                            feature_cuts.partition_point(|&cut| cut <= value) as u8
                        })
                        .collect();
                    (feature_cuts, column)
                })
                .collect()
        });
        let mut bins = vec![0u8; x.rows * x.cols];
        let mut columns = Vec::with_capacity(x.rows * x.cols);
        let mut cuts = Vec::with_capacity(x.cols);
        let mut offsets = vec![0];
        for (f, (feature_cuts, column)) in binned_columns.into_iter().enumerate() {
            for (i, &bin) in column.iter().enumerate() {
                bins[i * x.cols + f] = bin;
            }
            columns.extend_from_slice(&column);
            offsets.push(offsets[f] + feature_cuts.len() + 1);
            cuts.push(feature_cuts);
        }
        Binned {
            rows: x.rows,
            cols: x.cols,
            bins,
            columns,
            cuts,
            offsets,
        }
    }

    fn histogram_len(&self) -> usize {
        self.offsets[self.cols]
    }
}

/// Cut points for a sorted column: training values at its quantiles, distinct, above the
/// smallest value (nothing is below that), at most `MAX_BINS - 1` of them.
fn quantile_cuts(sorted: &[f32]) -> Vec<f32> {
    let n = sorted.len();
    let Some(&lowest) = sorted.first() else {
        return Vec::new();
    };
    let mut cuts: Vec<f32> = (1..MAX_BINS)
        .map(|b| sorted[b * n / MAX_BINS])
        .filter(|&cut| cut > lowest)
        .collect();
    cuts.dedup();
    // Few distinct values: every one of them is a cut (quantiles may have skipped some).
    let mut distinct: Vec<f32> = Vec::with_capacity(MAX_BINS + 1);
    for &value in sorted {
        if distinct.last() != Some(&value) {
            distinct.push(value);
            if distinct.len() > MAX_BINS {
                break;
            }
        }
    }
    if distinct.len() <= MAX_BINS {
        cuts = distinct[1..].to_vec();
    }
    cuts
}

/// Per-bin sums of a node's rows: `[gradient sum, row count]`.
pub(super) type Histogram = Vec<[f64; 2]>;

impl Grower<'_> {
    /// An empty histogram.
    fn histogram(&self) -> Histogram {
        match self
            .spare
            .lock()
            .expect("no thread panics holding it")
            .pop()
        {
            Some(mut histogram) => {
                histogram.fill([0.0; 2]);
                histogram
            }
            None => vec![[0.0; 2]; self.binned.histogram_len()],
        }
    }

    pub(super) fn give_back(&self, histogram: Histogram) {
        self.spare
            .lock()
            .expect("no thread panics holding it")
            .push(histogram);
    }

    /// The histograms of the rows `order[start..end]` of each range, in parallel.
    pub(super) fn histograms(
        &self,
        gradients: &[f32],
        order: &[u32],
        ranges: &[(usize, usize)],
    ) -> Vec<Histogram> {
        let binned = self.binned;
        // Fixed-size chunks, so that sums do not depend on the number of threads.
        let chunks: Vec<(usize, usize, usize)> = ranges
            .iter()
            .enumerate()
            .flat_map(|(range, &(start, end))| {
                (start..end.max(start + 1))
                    .step_by(CHUNK_ROWS)
                    .map(move |from| (range, from, (from + CHUNK_ROWS).min(end)))
            })
            .collect();
        let fill = |&(_, from, to): &(usize, usize, usize)| {
            let mut histogram = self.histogram();
            fill_histogram(&mut histogram, binned, gradients, &order[from..to]);
            histogram
        };
        let rows: usize = ranges.iter().map(|(start, end)| end - start).sum();
        let mut partials = self.run(chunks.len(), rows, |index| fill(&chunks[index]));
        // Sum each range's chunks in chunk order.
        let mut histograms: Vec<Histogram> = Vec::with_capacity(ranges.len());
        for (chunk, partial) in chunks.iter().zip(partials.drain(..)) {
            if histograms.len() == chunk.0 {
                histograms.push(partial);
            } else {
                let sum = histograms
                    .last_mut()
                    .expect("a range's first chunk came first");
                for (s, p) in sum.iter_mut().zip(&partial) {
                    s[0] += p[0];
                    s[1] += p[1];
                }
                self.give_back(partial);
            }
        }
        histograms
    }
}

/// Adds the rows' gradients and counts to their bins, one pass over each row's bins.
fn fill_histogram(histogram: &mut [[f64; 2]], binned: &Binned, gradients: &[f32], rows: &[u32]) {
    let cols = binned.cols;
    let offsets = &binned.offsets[..cols];
    for (at, &row) in rows.iter().enumerate() {
        // Rows are scattered once a node is split: ask for a row's bins and gradient well before
        // its turn.
        if let Some(&ahead) = rows.get(at + PREFETCH_DISTANCE) {
            prefetch(&binned.bins[ahead as usize * cols]);
            prefetch(&gradients[ahead as usize]);
        }
        let row = row as usize;
        let gradient = f64::from(gradients[row]);
        let bins = &binned.bins[row * cols..(row + 1) * cols];
        for (&offset, &bin) in offsets.iter().zip(bins) {
            let cell = &mut histogram[offset + usize::from(bin)];
            cell[0] += gradient;
            cell[1] += 1.0;
        }
    }
}

/// How many rows ahead [`fill_histogram`] prefetches.
const PREFETCH_DISTANCE: usize = 16;

/// Starts loading `value`'s cache line (a hint: it never faults and changes nothing).
#[inline(always)]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: SSE is part of every x86_64 target, and a prefetch only reads (and may
        // ignore) the address of a live reference.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// A node's gradient sum and row count, read from its first feature's bins.
pub(super) fn node_sums(histogram: &[[f64; 2]], binned: &Binned) -> (f64, f64) {
    histogram[..binned.offsets[1]]
        .iter()
        .fold((0.0, 0.0), |(g, n), cell| (g + cell[0], n + cell[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_are_training_values_and_few_values_get_one_bin_each() {
        assert_eq!(quantile_cuts(&[1.0, 1.0, 2.0, 3.0]), vec![2.0, 3.0]);
        assert!(quantile_cuts(&[4.0; 10]).is_empty());
        let many: Vec<f32> = (0..10_000).map(|i| i as f32).collect();
        let cuts = quantile_cuts(&many);
        assert_eq!(cuts.len(), MAX_BINS - 1);
        assert!(cuts.windows(2).all(|w| w[0] < w[1]));
        assert!(cuts.iter().all(|c| many.contains(c)));
    }
}
