//! Gradient-boosted trees for squared error, grown the way XGBoost's `hist` method grows them,
//! in plain Rust, and written out in XGBoost's JSON model format (which Python's `xgboost`
//! loads; the writer is `appraise_core::model::xgboost_json`, beside its reader). Binning the
//! features and building the per-node histograms is `histogram`; this module grows the trees.
//!
//! Why not the XGBoost library: the boosted trees were first fitted by xgboost-rs, which vendors
//! XGBoost 1.6.2; its rounds were slower than the peer's XGBoost 3.x (bench/README.md has the
//! comparison), its C++ build took minutes of every cold build, and it would have had to be
//! cross-built for Lambda. The algorithm is small:
//!
//! - every feature is cut into at most [`MAX_BINS`] bins at quantiles of its training values
//!   (the cut points are training values themselves, compared as `f32`, so a row's bin decides
//!   exactly the branch that XGBoost's `value < split_condition` takes at serving);
//! - each round starts from the gradients of the squared error (`prediction − label`; the
//!   hessian is 1, so a node's hessian sum is its row count), and grows one tree level by level
//!   to `max_depth` (XGBoost's `depthwise` policy);
//! - a node's split is the bin boundary with the largest gain
//!   `G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)`, with XGBoost's defaults λ = 1,
//!   `min_child_weight` = 1 and γ = 0; a leaf is worth `−η·G/(H+λ)`;
//! - histograms are built only for the smaller child of each split; the larger child's is the
//!   parent's minus the smaller's. Large builds are cut into fixed-size chunks summed in a fixed
//!   order, so the model is the same whatever the number of threads.
//!
//! The starting score is the mean target, as XGBoost ≥ 2.0 estimates it. Missing values (NaN)
//! fall in the lowest bin and every split sends them left, which is what serving does with
//! `default_left`.

use std::sync::Mutex;

use rayon::prelude::*;

use appraise_core::model::{
    Matrix,
    boosted::{BoostedNode, BoostedTree, BoostedTrees, BoostingParams, DEFAULT_LEFT},
    xgboost_json::{XgboostJsonWriter, XgboostNode},
};

use histogram::{Binned, Histogram, node_sums};

mod histogram;

/// At most this many bins per feature (XGBoost's default `max_bin`).
pub const MAX_BINS: usize = 256;
/// The L2 penalty on leaf weights (XGBoost's `lambda`).
const LAMBDA: f64 = 1.0;
/// The smallest hessian sum, i.e. row count, a child may have (XGBoost's `min_child_weight`).
const MIN_CHILD_WEIGHT: f64 = 1.0;
/// The smallest gain worth a split (XGBoost's `kRtEps`).
const MIN_GAIN: f64 = 1e-6;
/// Rows per histogram chunk: the unit of parallel work, and of a fixed summation order.
const CHUNK_ROWS: usize = 8_192;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BoostingError {
    #[error("no rows to fit on")]
    NoRows,
    #[error("invalid boosting parameters: {0}")]
    BadParams(&'static str),
    #[error("could not start the boosting threads: {0}")]
    Threads(String),
}

/// A fitted ensemble with its XGBoost JSON.
pub struct FittedBoosting {
    pub model: BoostedTrees,
    pub xgboost_json: String,
}

/// Fits `params.rounds` rounds of squared-error boosting on every available core.
pub fn fit_boosting(
    x: &Matrix,
    y: &[f64],
    params: BoostingParams,
) -> Result<FittedBoosting, BoostingError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    fit_boosting_on_threads(x, y, params, threads)
}

/// [`fit_boosting`] on `threads` threads (the model does not depend on it).
pub fn fit_boosting_on_threads(
    x: &Matrix,
    y: &[f64],
    params: BoostingParams,
    threads: usize,
) -> Result<FittedBoosting, BoostingError> {
    boost(x, y, params, threads).map(|(fitted, _)| fitted)
}

/// The fit, with the predictions it ended with on the training rows.
fn boost(
    x: &Matrix,
    y: &[f64],
    params: BoostingParams,
    threads: usize,
) -> Result<(FittedBoosting, Vec<f32>), BoostingError> {
    if x.rows == 0 || x.cols == 0 || y.len() != x.rows {
        return Err(BoostingError::NoRows);
    }
    if params.rounds == 0 {
        return Err(BoostingError::BadParams("rounds must be at least 1"));
    }
    if !(params.learning_rate > 0.0 && params.learning_rate <= 1.0) {
        return Err(BoostingError::BadParams("learning_rate must be in (0, 1]"));
    }
    if params.max_depth == 0 || params.max_depth > 30 {
        return Err(BoostingError::BadParams("max_depth must be in 1..=30"));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|error| BoostingError::Threads(error.to_string()))?;
    let binned = Binned::new(x, &pool);
    let labels: Vec<f32> = y.iter().map(|&v| v as f32).collect();
    let base_score = (y.iter().sum::<f64>() / y.len() as f64) as f32;
    let grower = Grower {
        binned: &binned,
        pool,
        params,
        spare: Mutex::new(Vec::new()),
    };
    let mut predictions = vec![base_score; x.rows];
    let mut gradients = vec![0f32; x.rows];
    let mut trees = Vec::with_capacity(params.rounds);
    let mut xgboost_json = XgboostJsonWriter::new(x.cols);
    for _ in 0..params.rounds {
        for ((g, p), l) in gradients.iter_mut().zip(&predictions).zip(&labels) {
            *g = p - l;
        }
        let grown = grower.grow(&gradients);
        for leaf in &grown.leaves {
            for &row in &grown.order[leaf.start..leaf.end] {
                predictions[row as usize] += leaf.value;
            }
        }
        xgboost_json.push_tree(&grown.nodes);
        trees.push(BoostedTree {
            nodes: grown.nodes.iter().map(|n| n.node).collect(),
            covers: grown.nodes.iter().map(|n| n.hessian).collect(),
        });
    }
    let model = BoostedTrees {
        params,
        base_score,
        trees,
    };
    let xgboost_json = xgboost_json.finish(base_score);
    Ok((
        FittedBoosting {
            model,
            xgboost_json,
        },
        predictions,
    ))
}

/// A leaf: its rows are `order[start..end]`.
struct Leaf {
    start: usize,
    end: usize,
    value: f32,
}

/// A grown tree with the row partition it ended with.
struct GrownTree {
    nodes: Vec<XgboostNode>,
    leaves: Vec<Leaf>,
    order: Vec<u32>,
}

/// A node of the level being split.
struct Open {
    node: usize,
    start: usize,
    end: usize,
    histogram: Histogram,
}

struct Split {
    feature: usize,
    bin: usize,
    gain: f64,
}

struct Grower<'a> {
    binned: &'a Binned,
    /// The threads a fit runs on (rayon's own pool per fit, so that tests can pick the count).
    pool: rayon::ThreadPool,
    params: BoostingParams,
    /// Histograms no node holds any more, kept for the next ones (a round needs ~60).
    spare: Mutex<Vec<Histogram>>,
}

impl Grower<'_> {
    /// `work(0..tasks)`, on the grower's thread pool when the tasks cover enough `rows` to be
    /// worth it; results in task order.
    fn run<T: Send>(&self, tasks: usize, rows: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
        if tasks <= 1 || rows < CHUNK_ROWS {
            return (0..tasks).map(work).collect();
        }
        self.pool
            .install(|| (0..tasks).into_par_iter().map(&work).collect())
    }

    /// Partitions the rows `order[start..end]` of each `(start, end, feature, bin)` by
    /// `bin(feature) <= bin`, left side first; returns where each right side starts.
    ///
    /// Each node's rows are cut into fixed chunks, partitioned in parallel into `scratch`, then
    /// gathered: the chunks' left rows in chunk order, then their right rows.
    fn partition_all(
        &self,
        order: &mut [u32],
        scratch: &mut [u32],
        cuts: &[(usize, usize, usize, usize)],
    ) -> Vec<usize> {
        let binned = self.binned;
        let chunks: Vec<(usize, usize, usize)> = cuts
            .iter()
            .enumerate()
            .flat_map(|(cut, &(start, end, _, _))| {
                (start..end)
                    .step_by(CHUNK_ROWS)
                    .map(move |from| (cut, from, (from + CHUNK_ROWS).min(end)))
            })
            .collect();
        // Every chunk writes only its own stretch of `scratch`.
        let mut stretches = Vec::with_capacity(chunks.len());
        let mut rest = &mut scratch[..];
        let mut at = 0;
        for &(_, from, to) in &chunks {
            let (_, tail) = std::mem::take(&mut rest).split_at_mut(from - at);
            let (stretch, tail) = tail.split_at_mut(to - from);
            stretches.push(Mutex::new(stretch));
            rest = tail;
            at = to;
        }
        let rows = cuts.iter().map(|&(start, end, _, _)| end - start).sum();
        let order_ref = &*order;
        let lefts = self.run(chunks.len(), rows, |index| {
            let (cut, from, to) = chunks[index];
            let (_, _, feature, bin) = cuts[cut];
            let column = &binned.columns[feature * binned.rows..][..binned.rows];
            let mut stretch = stretches[index].lock().expect("one task per chunk");
            partition(&order_ref[from..to], &mut stretch, column, bin)
        });
        drop(stretches);
        let mut middles = Vec::with_capacity(cuts.len());
        let mut chunk = 0;
        for (cut, &(start, end, _, _)) in cuts.iter().enumerate() {
            let first = chunk;
            while chunk < chunks.len() && chunks[chunk].0 == cut {
                chunk += 1;
            }
            let mut write = start;
            for (index, &(_, from, _)) in chunks.iter().enumerate().take(chunk).skip(first) {
                let left = &scratch[from..from + lefts[index]];
                order[write..write + left.len()].copy_from_slice(left);
                write += left.len();
            }
            middles.push(write);
            for (index, &(_, from, to)) in chunks.iter().enumerate().take(chunk).skip(first) {
                let right = &scratch[from + lefts[index]..to];
                order[write..write + right.len()].copy_from_slice(right);
                write += right.len();
            }
            debug_assert_eq!(write, end);
        }
        middles
    }

    fn grow(&self, gradients: &[f32]) -> GrownTree {
        let binned = self.binned;
        let eta = self.params.learning_rate;
        let mut order: Vec<u32> = (0..binned.rows as u32).collect();
        let mut scratch: Vec<u32> = vec![0; binned.rows];
        let mut nodes: Vec<XgboostNode> = Vec::new();
        let mut leaves = Vec::new();
        let root_histogram = self
            .histograms(gradients, &order, &[(0, binned.rows)])
            .pop()
            .expect("one histogram per range");
        let (total, count) = node_sums(&root_histogram, binned);
        nodes.push(leaf_node(-1, total, count, eta));
        let mut level = vec![Open {
            node: 0,
            start: 0,
            end: binned.rows,
            histogram: root_histogram,
        }];
        for depth in 0..=self.params.max_depth {
            let mut splitting = Vec::new();
            // Every node's best split, in parallel (none at the last level: leaves only).
            let splits: Vec<Option<Split>> = if depth < self.params.max_depth {
                let rows = level.iter().map(|open| open.end - open.start).sum();
                self.run(level.len(), rows, |index| {
                    let open = &level[index];
                    let (total, count) = node_sums(&open.histogram, binned);
                    best_split(&open.histogram, binned, total, count)
                })
            } else {
                level.iter().map(|_| None).collect()
            };
            // Rows in bins up to a split's go left: every splitting node's rows, partitioned in
            // parallel chunks.
            let cuts: Vec<(usize, usize, usize, usize)> = level
                .iter()
                .zip(&splits)
                .filter_map(|(open, split)| {
                    split
                        .as_ref()
                        .map(|s| (open.start, open.end, s.feature, s.bin))
                })
                .collect();
            let middles = self.partition_all(&mut order, &mut scratch, &cuts);
            let mut middles = middles.into_iter();
            for (open, split) in level.drain(..).zip(splits) {
                let (total, count) = node_sums(&open.histogram, binned);
                let Some(split) = split else {
                    leaves.push(Leaf {
                        start: open.start,
                        end: open.end,
                        value: nodes[open.node].weight,
                    });
                    self.give_back(open.histogram);
                    continue;
                };
                let middle = middles.next().expect("one middle per split");
                let left = nodes.len();
                let parent = &mut nodes[open.node];
                parent.node = BoostedNode {
                    condition: binned.cuts[split.feature][split.bin],
                    feature: split.feature as u32 | DEFAULT_LEFT,
                    left: left as i32,
                    right: left as i32 + 1,
                };
                parent.gain = split.gain as f32;
                if depth + 1 == self.params.max_depth {
                    // The children are leaves: their sums are in the parent's histogram of the
                    // split feature, no histogram of their own is needed.
                    let offset = binned.offsets[split.feature];
                    let (left_total, left_count) = open.histogram[offset..=offset + split.bin]
                        .iter()
                        .fold((0.0, 0.0), |(g, n), cell| (g + cell[0], n + cell[1]));
                    for (start, end, child_total, child_count) in [
                        (open.start, middle, left_total, left_count),
                        (middle, open.end, total - left_total, count - left_count),
                    ] {
                        let child = leaf_node(open.node as i32, child_total, child_count, eta);
                        leaves.push(Leaf {
                            start,
                            end,
                            value: child.weight,
                        });
                        nodes.push(child);
                    }
                    self.give_back(open.histogram);
                    continue;
                }
                splitting.push((open, middle));
                // The children's weights come from the sums their histograms will give; the
                // placeholders are replaced below.
                nodes.push(leaf_node(-1, 0.0, 0.0, eta));
                nodes.push(leaf_node(-1, 0.0, 0.0, eta));
            }
            if splitting.is_empty() {
                break;
            }
            // Build the smaller child of each split; the larger is the parent's minus it.
            let smaller: Vec<(usize, usize)> = splitting
                .iter()
                .map(|(open, middle)| {
                    if middle - open.start <= open.end - middle {
                        (open.start, *middle)
                    } else {
                        (*middle, open.end)
                    }
                })
                .collect();
            let built = self.histograms(gradients, &order, &smaller);
            for ((open, middle), small) in splitting.into_iter().zip(built) {
                let left = nodes[open.node].node.left as usize;
                let parent = open.node as i32;
                let mut large = open.histogram;
                for (l, s) in large.iter_mut().zip(&small) {
                    l[0] -= s[0];
                    l[1] -= s[1];
                }
                let (left_histogram, right_histogram) = if middle - open.start <= open.end - middle
                {
                    (small, large)
                } else {
                    (large, small)
                };
                for (child, (start, end, histogram)) in [
                    (left, (open.start, middle, left_histogram)),
                    (left + 1, (middle, open.end, right_histogram)),
                ] {
                    let (total, count) = node_sums(&histogram, binned);
                    nodes[child] = leaf_node(parent, total, count, eta);
                    level.push(Open {
                        node: child,
                        start,
                        end,
                        histogram,
                    });
                }
            }
        }
        GrownTree {
            nodes,
            leaves,
            order,
        }
    }
}

/// Writes `rows` into `out` (of the same length): those whose bin in `column` is at most
/// `bin` first, the others after them (in reverse order); returns how many went first.
/// Branch-free: which side a row takes is as good as random, and mispredicted branches would
/// cost more than the loop's work.
fn partition(rows: &[u32], out: &mut [u32], column: &[u8], bin: usize) -> usize {
    let (mut left, mut right) = (0, rows.len());
    for &row in rows {
        let goes_left = usize::from(column[row as usize]) <= bin;
        let at = if goes_left { left } else { right - 1 };
        out[at] = row;
        left += usize::from(goes_left);
        right -= usize::from(!goes_left);
    }
    left
}

fn leaf_node(parent: i32, total: f64, count: f64, eta: f64) -> XgboostNode {
    let weight = (-eta * total / (count + LAMBDA)) as f32;
    XgboostNode {
        node: BoostedNode {
            condition: weight,
            feature: 0,
            left: -1,
            right: -1,
        },
        parent,
        weight,
        gain: 0.0,
        hessian: count as f32,
    }
}

/// The bin boundary of largest gain over every feature, if any gains anything.
fn best_split(histogram: &[[f64; 2]], binned: &Binned, total: f64, count: f64) -> Option<Split> {
    let score = |g: f64, n: f64| g * g / (n + LAMBDA);
    let parent = score(total, count);
    let mut best: Option<Split> = None;
    for feature in 0..binned.cols {
        let bins = &histogram[binned.offsets[feature]..binned.offsets[feature + 1]];
        let (mut left_g, mut left_n) = (0.0, 0.0);
        for (bin, cell) in bins[..bins.len() - 1].iter().enumerate() {
            if cell[1] == 0.0 {
                // An empty bin moves no row across: the previous boundary's gain again.
                continue;
            }
            left_g += cell[0];
            left_n += cell[1];
            let right_n = count - left_n;
            if left_n < MIN_CHILD_WEIGHT {
                continue;
            }
            if right_n < MIN_CHILD_WEIGHT {
                break;
            }
            let gain = score(left_g, left_n) + score(total - left_g, right_n) - parent;
            if gain > MIN_GAIN && best.as_ref().is_none_or(|b| gain > b.gain) {
                best = Some(Split { feature, bin, gain });
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use appraise_core::rng::SplitMix64;

    fn synthetic(rows: usize, seed: u64) -> (Matrix, Vec<f64>) {
        let mut rng = SplitMix64::new(seed);
        let features: Vec<[f64; 3]> = (0..rows)
            .map(|_| [rng.next_f64() * 10.0, rng.below(5) as f64, rng.next_f64()])
            .collect();
        let y = features
            .iter()
            .map(|r| 1e5 + if r[0] > 5.0 { 5e4 } else { 0.0 } + 1e4 * r[1] + 1e3 * rng.normal())
            .collect();
        (Matrix::from_rows(&features).unwrap(), y)
    }

    #[test]
    fn learns_the_signal_and_evaluates_as_it_trained() {
        let (x, y) = synthetic(20_000, 7);
        let (fitted, trained) = boost(&x, &y, BoostingParams::default(), 2).unwrap();
        assert_eq!(fitted.model.trees.len(), 100);
        // Serving walks the trees to the very leaves training put each row in.
        for (i, &at_training) in trained.iter().enumerate() {
            assert_eq!(
                fitted.model.predict_row(x.row(i)),
                f64::from(at_training),
                "row {i}"
            );
        }
        let rmse = |predict: &dyn Fn(&[f64]) -> f64| {
            let sum: f64 = (0..x.rows)
                .map(|i| (predict(x.row(i)) - y[i]).powi(2))
                .sum();
            (sum / x.rows as f64).sqrt()
        };
        let mean = y.iter().sum::<f64>() / y.len() as f64;
        let baseline = rmse(&|_| mean);
        let fitted_rmse = rmse(&|row| fitted.model.predict_row(row));
        // The noise is 1,000; the signal's spread is ~30,000.
        assert!(baseline > 20_000.0, "baseline {baseline}");
        assert!(fitted_rmse < 1_500.0, "rmse {fitted_rmse}");
        // A depth-1 step: the first split is on feature 0 or 1, where the signal is.
        let root = fitted.model.trees[0].nodes[0];
        assert!((root.feature & !DEFAULT_LEFT) < 2, "{root:?}");
    }

    #[test]
    fn the_xgboost_json_reads_back_into_the_same_model() {
        let (x, y) = synthetic(5_000, 3);
        let params = BoostingParams {
            rounds: 20,
            ..BoostingParams::default()
        };
        let fitted = fit_boosting(&x, &y, params).unwrap();
        let read = BoostedTrees::from_xgboost_json(&fitted.xgboost_json, params, x.cols).unwrap();
        assert_eq!(read, fitted.model);
    }

    #[test]
    fn the_model_does_not_depend_on_the_thread_count() {
        let (x, y) = synthetic(3 * CHUNK_ROWS + 17, 11);
        let params = BoostingParams {
            rounds: 10,
            ..BoostingParams::default()
        };
        let one = fit_boosting_on_threads(&x, &y, params, 1).unwrap();
        let three = fit_boosting_on_threads(&x, &y, params, 3).unwrap();
        assert_eq!(one.model, three.model);
    }

    #[test]
    fn missing_values_go_left_at_training_and_at_serving() {
        let (mut x, y) = synthetic(4_000, 5);
        for i in (0..x.rows).step_by(7) {
            x.data[i * x.cols] = f64::NAN;
        }
        let params = BoostingParams {
            rounds: 5,
            ..BoostingParams::default()
        };
        let fitted = fit_boosting(&x, &y, params).unwrap();
        let probe = [f64::NAN, 2.0, 0.5];
        let lowest = [-1e9, 2.0, 0.5];
        assert_eq!(
            fitted.model.predict_row(&probe),
            fitted.model.predict_row(&lowest)
        );
    }

    #[test]
    fn refuses_bad_parameters_and_empty_input() {
        let (x, y) = synthetic(100, 1);
        let bad = |params| fit_boosting(&x, &y, params).err();
        let base = BoostingParams::default();
        assert!(matches!(
            bad(BoostingParams { rounds: 0, ..base }),
            Some(BoostingError::BadParams(_))
        ));
        assert!(matches!(
            bad(BoostingParams {
                learning_rate: 0.0,
                ..base
            }),
            Some(BoostingError::BadParams(_))
        ));
        assert!(matches!(
            bad(BoostingParams {
                max_depth: 0,
                ..base
            }),
            Some(BoostingError::BadParams(_))
        ));
        assert_eq!(
            fit_boosting(&x, &y[..10], base).err(),
            Some(BoostingError::NoRows)
        );
    }
}
