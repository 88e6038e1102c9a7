//! Exact per-feature contributions (SHAP values) of one regression tree: path-dependent
//! TreeSHAP, Algorithm 2 of Lundberg, Erion & Lee (2018), "Consistent individualized feature
//! attribution for tree ensembles" — the values XGBoost's `pred_contribs` and shap's
//! `TreeExplainer(feature_perturbation="tree_path_dependent")` compute.
//!
//! The value of a set `S` of known features is the tree's expected output when the features in
//! `S` take the row's values and the others are unknown: at a split on a known feature the row
//! goes its way; at a split on an unknown one both children count, weighted by the share of
//! the training rows (the *cover*) each received. A feature's contribution is its Shapley value
//! under that set function; the contributions add up to the prediction minus the value of the
//! empty set, the tree's [`expected_value`] (the base value).
//!
//! Enumerating subsets costs 2^M evaluations; TreeSHAP gets the same numbers in
//! O(leaves · depth²) by carrying, down each root-to-leaf path, the weights of every subset
//! size at once (`Path`): extending the path by a split multiplies in its zero fraction (the
//! child's cover share, the feature unknown) and its one fraction (1 if the row goes that way,
//! the feature known, else 0); a feature met twice on a path is first unwound and then extended
//! again with the product of its fractions.
//!
//! The tests check it against that enumeration on random trees.

/// A tree as TreeSHAP reads it. Node 0 is the root; nodes are numbered so that a child comes
/// after its parent (every model's `validate` checks it).
pub trait ExplainableTree {
    /// How many nodes the tree has.
    fn node_count(&self) -> usize;
    /// The split at `node` as `(feature, left, right)`, or `None` at a leaf.
    fn split(&self, node: usize) -> Option<(usize, usize, usize)>;
    /// Whether row `x` goes to the left child of the inner node `node` (the model's own rule,
    /// missing values included).
    fn goes_left(&self, node: usize, x: &[f64]) -> bool;
    /// The value of the leaf `node`.
    fn leaf_value(&self, node: usize) -> f64;
    /// The training weight that reached `node` (row count, or hessian sum); positive.
    fn cover(&self, node: usize) -> f64;
}

/// Deeper trees are not explained (the recursion and its path buffer grow with the depth; the
/// trees appraise grows are at most 30 deep).
pub const MAX_DEPTH: usize = 64;

/// Why a tree cannot be explained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShapError {
    #[error(
        "the model was saved without node covers (training weights), which explanations \
         need: retrain it with this version"
    )]
    NoCovers,
    #[error("a tree is deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Checks a tree's stored covers: none (a model saved before they were recorded), or one
/// positive finite number per node.
pub(crate) fn validate_covers<C: Copy + Into<f64>>(
    covers: &[C],
    nodes: usize,
) -> Result<(), &'static str> {
    if covers.is_empty() {
        return Ok(());
    }
    if covers.len() != nodes {
        return Err("node covers do not match the nodes");
    }
    if covers.iter().any(|&c| {
        let c: f64 = c.into();
        !(c.is_finite() && c > 0.0)
    }) {
        return Err("a node cover is not a positive number");
    }
    Ok(())
}

/// The tree's expected output under its covers: the value of the empty feature set, which
/// with [`add_contributions`]'s values adds up to the prediction.
pub fn expected_value<T: ExplainableTree>(tree: &T, scratch: &mut Scratch) -> f64 {
    // Children come after their parents: one pass from the last node up fills every mean.
    let means = &mut scratch.means;
    means.clear();
    means.resize(tree.node_count(), 0.0);
    for node in (0..tree.node_count()).rev() {
        means[node] = match tree.split(node) {
            None => tree.leaf_value(node),
            Some((_, left, right)) => {
                (tree.cover(left) * means[left] + tree.cover(right) * means[right])
                    / tree.cover(node)
            }
        };
    }
    means.first().copied().unwrap_or(0.0)
}

/// One feature on the current root-to-node path, with the fractions of the training weight
/// the path keeps when the feature is unknown (`zero`) or known (`one`), and the weight of the
/// subsets of one size (`weight` of element `i`: subsets of `i` features).
#[derive(Debug, Clone, Copy, Default)]
struct PathElement {
    feature: usize,
    zero: f64,
    one: f64,
    weight: f64,
}

/// The root's stand-in feature, never split on.
const NO_FEATURE: usize = usize::MAX;

/// Reusable buffer for [`add_contributions`]: explaining many rows allocates once.
#[derive(Debug, Default)]
pub struct Scratch {
    paths: Vec<PathElement>,
    means: Vec<f64>,
}

/// Adds `scale` times each feature's contribution to the prediction of `x` into `phi`
/// (indexed by feature).
pub fn add_contributions<T: ExplainableTree>(
    tree: &T,
    x: &[f64],
    scale: f64,
    phi: &mut [f64],
    scratch: &mut Scratch,
) -> Result<(), ShapError> {
    let mut walk = Walk {
        tree,
        x,
        scale,
        phi,
        paths: &mut scratch.paths,
    };
    walk.visit(0, 0, 0, 1.0, 1.0, NO_FEATURE, 0)
}

struct Walk<'a, T> {
    tree: &'a T,
    x: &'a [f64],
    scale: f64,
    phi: &'a mut [f64],
    /// Every level's path, one after the other: a child copies its parent's and extends it.
    paths: &'a mut Vec<PathElement>,
}

impl<T: ExplainableTree> Walk<'_, T> {
    /// Visits `node`, whose parent's path is `paths[at..at + len]`, reached through a split on
    /// `feature` with the fractions `zero` and `one`.
    #[allow(clippy::too_many_arguments)]
    fn visit(
        &mut self,
        node: usize,
        at: usize,
        len: usize,
        zero: f64,
        one: f64,
        feature: usize,
        depth: usize,
    ) -> Result<(), ShapError> {
        if depth > MAX_DEPTH {
            return Err(ShapError::TooDeep);
        }
        let here = at + len;
        if self.paths.len() < here + len + 1 {
            self.paths.resize(here + len + 1, PathElement::default());
        }
        self.paths.copy_within(at..here, here);
        let path = &mut self.paths[here..here + len + 1];
        extend(path, len, zero, one, feature);
        let Some((split_feature, left, right)) = self.tree.split(node) else {
            let value = self.tree.leaf_value(node) * self.scale;
            for i in 1..=len {
                let weight = unwound_sum(path, len, i);
                let element = path[i];
                self.phi[element.feature] += weight * (element.one - element.zero) * value;
            }
            return Ok(());
        };
        let (hot, cold) = if self.tree.goes_left(node, self.x) {
            (left, right)
        } else {
            (right, left)
        };
        let cover = self.tree.cover(node);
        let (hot_zero, cold_zero) = (self.tree.cover(hot) / cover, self.tree.cover(cold) / cover);
        // A feature split on again: take it off the path, and carry its fractions down.
        let (mut incoming_zero, mut incoming_one, mut len) = (1.0, 1.0, len);
        if let Some(k) = path.iter().position(|e| e.feature == split_feature) {
            incoming_zero = path[k].zero;
            incoming_one = path[k].one;
            unwind(path, len, k);
            len -= 1;
        }
        self.visit(
            hot,
            here,
            len + 1,
            hot_zero * incoming_zero,
            incoming_one,
            split_feature,
            depth + 1,
        )?;
        self.visit(
            cold,
            here,
            len + 1,
            cold_zero * incoming_zero,
            0.0,
            split_feature,
            depth + 1,
        )
    }
}

/// Appends `feature` to the path `path[..len]` (into `path[len]`) and updates the subset
/// weights: each subset size either leaves the feature out (times `zero`) or takes it in
/// (times `one`), with the Shapley weights' ratios.
fn extend(path: &mut [PathElement], len: usize, zero: f64, one: f64, feature: usize) {
    path[len] = PathElement {
        feature,
        zero,
        one,
        weight: if len == 0 { 1.0 } else { 0.0 },
    };
    let per_total = RECIPROCALS[len + 1];
    for i in (0..len).rev() {
        path[i + 1].weight += one * path[i].weight * (i + 1) as f64 * per_total;
        path[i].weight = zero * path[i].weight * (len - i) as f64 * per_total;
    }
}

/// Undoes [`extend`] for the element `k` of the path `path[..=len]`, which then holds `len`
/// elements.
fn unwind(path: &mut [PathElement], len: usize, k: usize) {
    let (one, zero) = (path[k].one, path[k].zero);
    let total = (len + 1) as f64;
    let mut next = path[len].weight;
    for i in (0..len).rev() {
        if one != 0.0 {
            let kept = path[i].weight;
            path[i].weight = next * total * RECIPROCALS[i + 1] / one;
            next = kept - path[i].weight * zero * (len - i) as f64 / total;
        } else {
            path[i].weight = path[i].weight * total * RECIPROCALS[len - i] / zero;
        }
    }
    for i in k..len {
        path[i].feature = path[i + 1].feature;
        path[i].zero = path[i + 1].zero;
        path[i].one = path[i + 1].one;
    }
}

/// The total subset weight the path `path[..=len]` would have without element `k` (what
/// [`unwind`] would leave), without changing the path. The hot loop of TreeSHAP (once per
/// leaf and path element): divisions are taken out of it.
fn unwound_sum(path: &[PathElement], len: usize, k: usize) -> f64 {
    let (one, zero) = (path[k].one, path[k].zero);
    let total = (len + 1) as f64;
    let mut next = path[len].weight;
    let mut sum = 0.0;
    if one != 0.0 {
        let total_per_one = total / one;
        let zero_per_total = zero / total;
        for i in (0..len).rev() {
            let weight = next * total_per_one * RECIPROCALS[i + 1];
            sum += weight;
            next = path[i].weight - weight * zero_per_total * (len - i) as f64;
        }
    } else {
        let total_per_zero = total / zero;
        for i in (0..len).rev() {
            sum += path[i].weight * total_per_zero * RECIPROCALS[len - i];
        }
    }
    sum
}

/// `1 / k` for every path length `k` (at most [`MAX_DEPTH`] + 2 elements).
const RECIPROCALS: [f64; MAX_DEPTH + 3] = {
    let mut table = [0.0; MAX_DEPTH + 3];
    let mut k = 1;
    while k < table.len() {
        table[k] = 1.0 / k as f64;
        k += 1;
    }
    table
};

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// A plain tree for the tests: `x[feature] < threshold` goes left.
    #[derive(Debug, Clone)]
    pub(crate) struct TestTree {
        /// `(feature, threshold, left, right)` of inner nodes; leaves have `None`.
        pub splits: Vec<Option<(usize, f64, usize, usize)>>,
        pub values: Vec<f64>,
        pub covers: Vec<f64>,
    }

    impl ExplainableTree for TestTree {
        fn node_count(&self) -> usize {
            self.splits.len()
        }
        fn split(&self, node: usize) -> Option<(usize, usize, usize)> {
            self.splits[node].map(|(f, _, l, r)| (f, l, r))
        }
        fn goes_left(&self, node: usize, x: &[f64]) -> bool {
            let (feature, threshold, _, _) = self.splits[node].expect("an inner node");
            x[feature] < threshold
        }
        fn leaf_value(&self, node: usize) -> f64 {
            self.values[node]
        }
        fn cover(&self, node: usize) -> f64 {
            self.covers[node]
        }
    }

    impl TestTree {
        fn predict(&self, x: &[f64]) -> f64 {
            let mut node = 0;
            while let Some((_, l, r)) = self.split(node) {
                node = if self.goes_left(node, x) { l } else { r };
            }
            self.values[node]
        }
    }

    /// A random tree over `features` features, up to `depth` deep, with features repeated along
    /// paths and covers that are row counts of a random split of `rows` rows.
    pub(crate) fn random_tree(rng: &mut SplitMix64, features: usize, depth: usize) -> TestTree {
        let mut tree = TestTree {
            splits: vec![None],
            values: vec![0.0],
            covers: vec![1_000.0],
        };
        let mut open = vec![(0usize, 0usize)];
        while let Some((node, level)) = open.pop() {
            let cover = tree.covers[node];
            if level == depth || cover < 2.0 || rng.below(5) == 0 {
                tree.values[node] = rng.normal() * 100.0;
                continue;
            }
            let left_cover = 1.0 + rng.below(cover as u64 - 1) as f64;
            let (left, right) = (tree.splits.len(), tree.splits.len() + 1);
            tree.splits[node] = Some((
                rng.below(features as u64) as usize,
                rng.next_f64(),
                left,
                right,
            ));
            for child_cover in [left_cover, cover - left_cover] {
                tree.splits.push(None);
                tree.values.push(0.0);
                tree.covers.push(child_cover);
            }
            open.push((left, level + 1));
            open.push((right, level + 1));
        }
        tree
    }

    /// The expected output when the features in the bit set `known` take `x`'s values.
    fn conditional_expectation(tree: &TestTree, x: &[f64], known: u32, node: usize) -> f64 {
        match tree.split(node) {
            None => tree.values[node],
            Some((feature, left, right)) => {
                if known & (1 << feature) != 0 {
                    let next = if tree.goes_left(node, x) { left } else { right };
                    conditional_expectation(tree, x, known, next)
                } else {
                    (tree.covers[left] * conditional_expectation(tree, x, known, left)
                        + tree.covers[right] * conditional_expectation(tree, x, known, right))
                        / tree.covers[node]
                }
            }
        }
    }

    /// Shapley values by their definition: every subset of the other features.
    fn brute_force_shapley(tree: &TestTree, x: &[f64], features: usize) -> Vec<f64> {
        let factorial = |n: usize| (1..=n).map(|k| k as f64).product::<f64>();
        let m = features;
        (0..m)
            .map(|i| {
                (0u32..1 << m)
                    .filter(|subset| subset & (1 << i) == 0)
                    .map(|subset| {
                        let size = subset.count_ones() as usize;
                        let weight = factorial(size) * factorial(m - size - 1) / factorial(m);
                        weight
                            * (conditional_expectation(tree, x, subset | (1 << i), 0)
                                - conditional_expectation(tree, x, subset, 0))
                    })
                    .sum()
            })
            .collect()
    }

    /// Whether some root-to-leaf path splits twice on one feature (which TreeSHAP unwinds).
    fn repeats_a_feature(tree: &TestTree) -> bool {
        fn walk(tree: &TestTree, node: usize, seen: u32) -> bool {
            match tree.split(node) {
                None => false,
                Some((feature, left, right)) => {
                    seen & (1 << feature) != 0
                        || walk(tree, left, seen | (1 << feature))
                        || walk(tree, right, seen | (1 << feature))
                }
            }
        }
        walk(tree, 0, 0)
    }

    #[test]
    fn tree_shap_equals_the_shapley_values_by_enumeration() {
        let mut rng = SplitMix64::new(2018);
        let mut scratch = Scratch::default();
        let mut checked_repeats = 0;
        for round in 0..200 {
            let features = 1 + round % 6;
            let tree = random_tree(&mut rng, features, 1 + round % 7);
            let repeats = repeats_a_feature(&tree);
            checked_repeats += usize::from(repeats);
            for _ in 0..5 {
                let x: Vec<f64> = (0..features).map(|_| rng.next_f64()).collect();
                let mut phi = vec![0.0; features];
                add_contributions(&tree, &x, 1.0, &mut phi, &mut scratch).unwrap();
                let exact = brute_force_shapley(&tree, &x, features);
                for (f, (ours, exact)) in phi.iter().zip(&exact).enumerate() {
                    assert!(
                        (ours - exact).abs() <= 1e-9 * (1.0 + exact.abs()),
                        "round {round}, feature {f}: TreeSHAP {ours}, enumeration {exact}"
                    );
                }
                let base = expected_value(&tree, &mut scratch);
                assert!(
                    (conditional_expectation(&tree, &x, 0, 0) - base).abs() < 1e-9,
                    "the base value is the empty set's value"
                );
                let total = base + phi.iter().sum::<f64>();
                assert!(
                    (total - tree.predict(&x)).abs() < 1e-9,
                    "round {round}: base + contributions {total}, prediction {}",
                    tree.predict(&x)
                );
            }
        }
        assert!(
            checked_repeats > 20,
            "only {checked_repeats} trees repeat a feature"
        );
    }

    #[test]
    fn a_tree_deeper_than_the_limit_is_refused() {
        // A chain: every node's left child is a leaf, its right child the next split.
        let depth = MAX_DEPTH + 2;
        let mut tree = TestTree {
            splits: Vec::new(),
            values: Vec::new(),
            covers: Vec::new(),
        };
        for level in 0..depth {
            let node = tree.splits.len();
            tree.splits
                .push(Some((0, level as f64, node + 1, node + 2)));
            tree.values.push(0.0);
            tree.covers.push((depth - level + 1) as f64);
            tree.splits.push(None);
            tree.values.push(level as f64);
            tree.covers.push(1.0);
        }
        // The last right child: a leaf.
        tree.splits.push(None);
        tree.values.push(-1.0);
        tree.covers.push(1.0);
        let mut phi = [0.0];
        let result = add_contributions(&tree, &[1e9], 1.0, &mut phi, &mut Scratch::default());
        assert_eq!(result, Err(ShapError::TooDeep));
    }
}
