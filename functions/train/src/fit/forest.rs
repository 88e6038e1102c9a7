//! A random forest regressor: bagged CART trees grown on binned features, in parallel.
//!
//! Why not smartcore's: it is single-threaded, defaults to 10 trees and √p features, and
//! predicts large batches slowly (DESIGN.md §10); scikit-learn fits its 100 trees on both
//! cores. This one follows scikit-learn's `RandomForestRegressor` defaults — bootstrap
//! samples, every feature considered at each split (`max_features = 1.0`), squared-error
//! splits, `min_samples_leaf = 1` — with the seed's `max_depth = 10`, and grows trees on
//! features binned into at most 255 ranges (as histogram-based boosters do): a split is
//! searched over bin boundaries instead of every distinct value, which is what makes it fast.
//! Boundaries sit midway between neighbouring distinct training values (where scikit-learn
//! puts its thresholds too); a feature with more distinct values than bins gets boundaries
//! at its quantiles.
//!
//! Bins are stored row by row and a node's histograms for all features are filled in one
//! pass over its rows: a row's bins share a cache line, so on hundreds of thousands of rows
//! this is far faster than column-by-column bins, which win only slightly on small sets, where
//! a column fits in cache (the figures are in bench/README.md).
//!
//! Three things keep a tree's passes few and in order (profiled at 400k and 1M rows; figures in
//! bench/README.md, "Fits at scale"): the bootstrap is a count per row, so only the ~63 %
//! distinct rows are visited; only the smaller child of a split gets a pass, the larger's
//! histogram being its parent's minus the smaller's; and the partition is stable, so a node's
//! rows stay in row order and every pass reads the bins front to back. The trees are the ones
//! the drawn sample gives, up to the rounding of the sums (now added in another order). Every
//! histogram covers all features, so that subtraction works; with `max_features < 1` a pass
//! therefore costs all features, not only the ones tried.
//!
//! Tree `t` is grown from its own seeded generator, so a forest is the same whatever the
//! number of threads. A fitted forest keeps only thresholds in feature units: predicting needs
//! no bins.

use appraise_core::{
    model::{
        Matrix,
        forest::{Forest, ForestParams, Node, Tree},
    },
    rng::SplitMix64,
};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ForestError {
    #[error("no rows to fit on")]
    NoRows,
    #[error("invalid forest parameters: {0}")]
    BadParams(&'static str),
}

/// Features binned row by row: `bins[i * cols + f]` is row `i`'s bin of feature `f` (a row's
/// bins share a cache line, so a node's histograms cost one memory access per row, not one
/// per row and feature), and `edges[f][b]` the upper boundary of bin `b` (the last bin has
/// none).
struct Binned {
    rows: usize,
    cols: usize,
    bins: Vec<u8>,
    edges: Vec<Vec<f64>>,
}

/// One feature binned: its bins' upper edges, and each row's bin.
type BinnedFeature = (Vec<f64>, Vec<u8>);

impl Binned {
    /// Bins every feature of `x`, the features shared out over `threads` threads (sorting a
    /// million values of each is most of the work).
    fn new(x: &Matrix, max_bins: usize, threads: usize) -> Binned {
        let bin_feature = |f: usize| -> BinnedFeature {
            let value = |i: usize| x.data[i * x.cols + f];
            let mut column: Vec<f64> = (0..x.rows).map(value).collect();
            column.sort_unstable_by(f64::total_cmp);
            column.dedup();
            let feature_edges: Vec<f64> = if column.len() <= max_bins {
                column
                    .windows(2)
                    .map(|w| w[0] + (w[1] - w[0]) / 2.0)
                    .collect()
            } else {
                let mut chosen: Vec<f64> = (1..max_bins)
                    .map(|b| {
                        let at = b * (column.len() - 1) / max_bins;
                        column[at] + (column[at + 1] - column[at]) / 2.0
                    })
                    .collect();
                chosen.dedup();
                chosen
            };
            let bins = (0..x.rows)
                .map(|i| {
                    let value = value(i);
                    feature_edges.partition_point(|&edge| edge < value) as u8
                })
                .collect();
            (feature_edges, bins)
        };
        let threads = threads.clamp(1, x.cols.max(1));
        let mut binned_columns: Vec<(usize, BinnedFeature)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|worker| {
                    scope.spawn(move || {
                        (worker..x.cols)
                            .step_by(threads)
                            .map(|f| (f, bin_feature(f)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("a binning thread panicked"))
                .collect()
        });
        binned_columns.sort_by_key(|(f, _)| *f);
        let mut bins = vec![0u8; x.rows * x.cols];
        let mut edges = Vec::with_capacity(x.cols);
        for (f, (feature_edges, column)) in binned_columns {
            for (i, bin) in column.into_iter().enumerate() {
                bins[i * x.cols + f] = bin;
            }
            edges.push(feature_edges);
        }
        Binned {
            rows: x.rows,
            cols: x.cols,
            bins,
            edges,
        }
    }

    fn bin(&self, feature: usize, row: u32) -> usize {
        self.bins[row as usize * self.cols + feature] as usize
    }

    fn row(&self, row: u32) -> &[u8] {
        let start = row as usize * self.cols;
        &self.bins[start..start + self.cols]
    }
}

/// Grows a forest on `x` and `y` (see the module documentation).
pub fn fit_forest(x: &Matrix, y: &[f64], params: ForestParams) -> Result<Forest, ForestError> {
    if x.rows == 0 || y.len() != x.rows || x.cols == 0 {
        return Err(ForestError::NoRows);
    }
    if params.trees == 0 {
        return Err(ForestError::BadParams("trees must be at least 1"));
    }
    if !(params.max_features > 0.0 && params.max_features <= 1.0) {
        return Err(ForestError::BadParams("max_features must be in (0, 1]"));
    }
    if !(2..=256).contains(&params.max_bins) {
        return Err(ForestError::BadParams("max_bins must be in 2..=256"));
    }
    let threads = if params.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        params.threads
    };
    let binned = Binned::new(x, params.max_bins, threads);
    let threads = threads.min(params.trees);
    let mut trees: Vec<(usize, Tree)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|worker| {
                let binned = &binned;
                scope.spawn(move || {
                    (worker..params.trees)
                        .step_by(threads)
                        .map(|t| (t, grow_tree(binned, y, &params, t as u64)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a tree-growing thread panicked"))
            .collect()
    });
    trees.sort_by_key(|(t, _)| *t);
    Ok(Forest {
        params,
        trees: trees.into_iter().map(|(_, tree)| tree).collect(),
    })
}

/// Per (feature, bin) sums of a node's rows: `[Σ weight·y, Σ weight]`, feature `f`'s bins at
/// `offsets[f]..offsets[f + 1]`.
type Histogram = Vec<[f64; 2]>;

/// A node still to split: its distinct rows are `sample[start..end]`, and, when it may be split,
/// its histogram over every feature.
struct Pending {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    histogram: Option<Histogram>,
}

/// What one tree's growing keeps between nodes.
struct Workspace<'a> {
    binned: &'a Binned,
    y: &'a [f64],
    /// How many times the bootstrap drew each row (0 for rows out of the bag).
    weights: Vec<u32>,
    /// Where feature `f`'s bins start in a [`Histogram`].
    offsets: Vec<usize>,
    /// Histograms no node holds any more, for the next ones.
    spare: Vec<Histogram>,
}

impl Workspace<'_> {
    /// The histogram of the rows `rows`: one pass over them fills every feature's bins (a
    /// row's bins share a cache line).
    fn histogram(&mut self, rows: &[u32]) -> Histogram {
        let mut histogram = self
            .spare
            .pop()
            .unwrap_or_else(|| vec![[0.0; 2]; self.offsets[self.binned.cols]]);
        histogram.fill([0.0; 2]);
        let offsets = &self.offsets[..self.binned.cols];
        for &i in rows {
            let weight = f64::from(self.weights[i as usize]);
            let weighted_target = weight * self.y[i as usize];
            for (&offset, &bin) in offsets.iter().zip(self.binned.row(i)) {
                let cell = &mut histogram[offset + usize::from(bin)];
                cell[0] += weighted_target;
                cell[1] += weight;
            }
        }
        histogram
    }

    /// `Σ weight·y` and `Σ weight` of a node, from its histogram's first feature.
    fn sums(&self, histogram: &[[f64; 2]]) -> (f64, f64) {
        histogram[..self.offsets[1]]
            .iter()
            .fold((0.0, 0.0), |(s, n), cell| (s + cell[0], n + cell[1]))
    }
}

/// Grows tree `index` of the forest. The bootstrap is kept as a count per row (how often it was
/// drawn), as scikit-learn does: about 63 % of the rows are distinct, so a node's histogram
/// costs a pass over its distinct rows only, and the tree is the one the drawn sample with its
/// repeats gives. Only the smaller child of a split gets a pass of its own; the larger's
/// histogram is its parent's minus the smaller's. Partitioning is stable, so a node's rows stay
/// in row order and the passes read the bins front to back.
fn grow_tree(binned: &Binned, y: &[f64], params: &ForestParams, index: u64) -> Tree {
    let cols = binned.cols;
    let mut rng = SplitMix64::keyed(params.seed, &[index]);
    let rows = binned.rows;
    let mut weights = vec![0u32; rows];
    for _ in 0..rows {
        weights[rng.below(rows as u64) as usize] += 1;
    }
    let mut sample: Vec<u32> = (0..rows as u32)
        .filter(|&i| weights[i as usize] > 0)
        .collect();
    let mut scratch: Vec<u32> = Vec::with_capacity(sample.len());
    let features_per_split = ((cols as f64 * params.max_features).ceil() as usize).clamp(1, cols);
    let mut features: Vec<usize> = (0..cols).collect();
    let min_leaf = params.min_samples_leaf.max(1) as f64;
    let mut offsets = vec![0];
    for edges in &binned.edges {
        offsets.push(offsets[offsets.len() - 1] + edges.len() + 1);
    }
    let mut work = Workspace {
        binned,
        y,
        weights,
        offsets,
        spare: Vec::new(),
    };

    let mut tree = Tree {
        nodes: Vec::new(),
        covers: Vec::new(),
    };
    let root_histogram = work.histogram(&sample);
    let (root_sum, root_count) = work.sums(&root_histogram);
    let root = tree.push_leaf(root_sum / root_count, root_count);
    let may_split = |depth: usize, count: f64| depth < params.max_depth && count >= 2.0 * min_leaf;
    let mut pending = vec![Pending {
        node: root,
        start: 0,
        end: sample.len(),
        depth: 0,
        histogram: may_split(0, root_count).then_some(root_histogram),
    }];
    while let Some(Pending {
        node,
        start,
        end,
        depth,
        histogram,
    }) = pending.pop()
    {
        let Some(mut histogram) = histogram else {
            continue;
        };
        let (total, count) = work.sums(&histogram);
        let parent_score = total * total / count;
        // Try a random subset of features (all of them by default).
        if features_per_split < cols {
            for k in 0..features_per_split {
                let j = k + rng.below((cols - k) as u64) as usize;
                features.swap(k, j);
            }
        }
        let mut best: Option<(f64, usize, usize)> = None; // (score, feature, bin)
        for &feature in &features[..features_per_split] {
            let bins = &histogram[work.offsets[feature]..work.offsets[feature + 1]];
            let (mut left_n, mut left_sum) = (0.0, 0.0);
            for (b, cell) in bins[..bins.len() - 1].iter().enumerate() {
                left_sum += cell[0];
                left_n += cell[1];
                let right_n = count - left_n;
                if left_n < min_leaf {
                    continue;
                }
                if right_n < min_leaf {
                    break;
                }
                let right_sum = total - left_sum;
                let score = left_sum * left_sum / left_n + right_sum * right_sum / right_n;
                if best.is_none_or(|(s, _, _)| score > s) {
                    best = Some((score, feature, b));
                }
            }
        }
        // No split, or none that reduces the squared error (beyond rounding): stay a leaf.
        let Some((_, feature, split_bin)) =
            best.filter(|&(score, _, _)| score > parent_score * (1.0 + 1e-12))
        else {
            work.spare.push(histogram);
            continue;
        };
        // Partition the node's rows, stably: bin <= split_bin first.
        scratch.clear();
        let mut boundary = start;
        for k in start..end {
            let row = sample[k];
            if binned.bin(feature, row) <= split_bin {
                sample[boundary] = row;
                boundary += 1;
            } else {
                scratch.push(row);
            }
        }
        sample[boundary..end].copy_from_slice(&scratch);
        // The children's sums are in the parent's histogram of the split feature.
        let split_cells = &histogram[work.offsets[feature]..=work.offsets[feature] + split_bin];
        let (left_sum, left_count) = split_cells
            .iter()
            .fold((0.0, 0.0), |(s, n), cell| (s + cell[0], n + cell[1]));
        let (right_sum, right_count) = (total - left_sum, count - left_count);
        // Children side by side: the right one is always `left + 1`.
        let left = tree.push_leaf(left_sum / left_count, left_count);
        let right = tree.push_leaf(right_sum / right_count, right_count);
        tree.nodes[node] = Node {
            threshold: binned.edges[feature][split_bin],
            feature: feature as u32,
            left: left as u32,
        };
        let (split_left, split_right) = (
            may_split(depth + 1, left_count),
            may_split(depth + 1, right_count),
        );
        let (left_histogram, right_histogram) = match (split_left, split_right) {
            (false, false) => {
                work.spare.push(histogram);
                (None, None)
            }
            (true, false) => {
                work.spare.push(histogram);
                (Some(work.histogram(&sample[start..boundary])), None)
            }
            (false, true) => {
                work.spare.push(histogram);
                (None, Some(work.histogram(&sample[boundary..end])))
            }
            (true, true) => {
                // A pass over the side with fewer distinct rows; the other is the difference.
                let left_is_smaller = boundary - start <= end - boundary;
                let smaller = if left_is_smaller {
                    work.histogram(&sample[start..boundary])
                } else {
                    work.histogram(&sample[boundary..end])
                };
                for (cell, small) in histogram.iter_mut().zip(&smaller) {
                    cell[0] -= small[0];
                    cell[1] -= small[1];
                }
                if left_is_smaller {
                    (Some(smaller), Some(histogram))
                } else {
                    (Some(histogram), Some(smaller))
                }
            }
        };
        pending.push(Pending {
            node: left,
            start,
            end: boundary,
            depth: depth + 1,
            histogram: left_histogram,
        });
        pending.push(Pending {
            node: right,
            start: boundary,
            end,
            depth: depth + 1,
            histogram: right_histogram,
        });
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u64) -> (Matrix, Vec<f64>) {
        let mut rng = SplitMix64::new(seed);
        let rows: Vec<[f64; 3]> = (0..n)
            .map(|_| [rng.next_f64() * 10.0, rng.next_f64() * 10.0, rng.next_f64()])
            .collect();
        // A step, an interaction and noise: what trees are for.
        let y = rows
            .iter()
            .map(|r| (if r[0] > 5.0 { 100.0 } else { 0.0 }) + r[1] * r[0] + rng.normal())
            .collect();
        (Matrix::from_rows(&rows).unwrap(), y)
    }

    #[test]
    fn learns_a_nonlinear_function_and_is_the_same_on_any_thread_count() {
        let (x, y) = data(4_000, 1);
        let (test_x, test_y) = data(1_000, 2);
        let params = ForestParams {
            trees: 20,
            ..ForestParams::default()
        };
        let forest = fit_forest(&x, &y, params).unwrap();
        let predictions: Vec<f64> = (0..test_x.rows)
            .map(|i| forest.predict_row(test_x.row(i)))
            .collect();
        let metrics =
            appraise_core::model::metrics::Metrics::compute(&test_y, &predictions).unwrap();
        assert!(metrics.r2 > 0.97, "{metrics:?}");

        let single = fit_forest(
            &x,
            &y,
            ForestParams {
                threads: 1,
                ..params
            },
        )
        .unwrap();
        assert!(
            single.trees == forest.trees,
            "thread count does not change the trees"
        );

        let reloaded: Forest =
            serde_json::from_str(&serde_json::to_string(&forest).unwrap()).unwrap();
        for i in 0..test_x.rows {
            assert_eq!(
                reloaded.predict_row(test_x.row(i)).to_bits(),
                forest.predict_row(test_x.row(i)).to_bits()
            );
        }
    }

    #[test]
    fn respects_depth_and_rejects_bad_parameters() {
        let (x, y) = data(500, 3);
        let stump = fit_forest(
            &x,
            &y,
            ForestParams {
                trees: 1,
                max_depth: 1,
                ..ForestParams::default()
            },
        )
        .unwrap();
        assert_eq!(stump.trees[0].nodes.len(), 3, "one split, two leaves");
        assert_eq!(
            stump.trees[0].nodes[0].feature, 0,
            "the step in feature 0 is the best first split"
        );
        assert!(
            fit_forest(
                &x,
                &y,
                ForestParams {
                    trees: 0,
                    ..ForestParams::default()
                }
            )
            .is_err()
        );
        assert_eq!(
            fit_forest(
                &Matrix {
                    rows: 0,
                    cols: 3,
                    data: vec![]
                },
                &[],
                ForestParams::default()
            ),
            Err(ForestError::NoRows)
        );
    }
}
