//! Does the generator look like the real data? Computes the same marginals for
//! `data/realtor-sample.csv` (12,885 real rows) and for the default plan's batch 5 at scale 0.1
//! (36,146 rows of the whole for-sale market, seed 42), prints them side by side
//! (`cargo test -p appraise-source --test source marginals -- --nocapture`), and checks each generated
//! figure lies in a band around the real one. The bands are wider where the real slice is
//! narrow: it covers only New England, New York and Puerto Rico.

use std::{
    collections::{HashMap, HashSet},
    num::NonZeroUsize,
    path::PathBuf,
};

use appraise_core::listing::Listing;
use appraise_source::{
    csv_source::CsvListings,
    generator::SyntheticListings,
    plan::{BatchPlan, Scale},
};

/// A numeric field and how to read it.
type NumericField = (&'static str, fn(&Listing) -> Option<f64>);

const NUMERIC_FIELDS: [NumericField; 5] = [
    ("price", |r| r.price),
    ("house_size", |r| r.house_size),
    ("acre_lot", |r| r.acre_lot),
    ("bed", |r| r.bed),
    ("bath", |r| r.bath),
];

const QUANTILES: [f64; 6] = [0.01, 0.10, 0.50, 0.90, 0.99, 1.0];

/// The marginals compared.
#[derive(Debug)]
struct Marginals {
    rows: usize,
    /// Per field, the share of rows where it is null.
    null_share: Vec<(&'static str, f64)>,
    /// Per numeric field, its values at [`QUANTILES`] (the last is the maximum).
    quantiles: Vec<(&'static str, [f64; 6])>,
    states: usize,
    for_sale_share: f64,
    size_effect: SizeEffect,
}

/// How price follows house size within a city: the slope and R² of
/// `ln price ~ city + ln house_size` over rows with a size, bedrooms and bathrooms.
#[derive(Debug)]
struct SizeEffect {
    /// The price elasticity of house size within a city.
    slope: f64,
    /// Share of the variance of `ln price` explained by the city and the size together.
    r_squared: f64,
}

fn size_effect(rows: &[Listing]) -> SizeEffect {
    // Demean ln price and ln size within each city, then fit one slope through the origin.
    // (state, city) → [(ln size, ln price)]
    type Place<'a> = (Option<&'a str>, Option<&'a str>);
    let mut cities: HashMap<Place, Vec<(f64, f64)>> = HashMap::new();
    for row in rows {
        if let (Some(price), Some(size), Some(_), Some(_)) =
            (row.price, row.house_size, row.bed, row.bath)
        {
            cities
                .entry((row.state.as_deref(), row.city.as_deref()))
                .or_default()
                .push((size.ln(), price.ln()));
        }
    }
    let all: Vec<f64> = cities.values().flatten().map(|&(_, y)| y).collect();
    let mean_all = all.iter().sum::<f64>() / all.len() as f64;
    let total: f64 = all.iter().map(|y| (y - mean_all).powi(2)).sum();
    let mut demeaned = Vec::new();
    for points in cities.values() {
        let n = points.len() as f64;
        let (mean_x, mean_y) = points
            .iter()
            .fold((0.0, 0.0), |(x, y), &(px, py)| (x + px / n, y + py / n));
        demeaned.extend(points.iter().map(|&(x, y)| (x - mean_x, y - mean_y)));
    }
    let slope = demeaned.iter().map(|(x, y)| x * y).sum::<f64>()
        / demeaned.iter().map(|(x, _)| x * x).sum::<f64>();
    let residual: f64 = demeaned.iter().map(|(x, y)| (y - slope * x).powi(2)).sum();
    SizeEffect {
        slope,
        r_squared: 1.0 - residual / total,
    }
}

fn marginals(rows: &[Listing]) -> Marginals {
    let share = |is_null: &dyn Fn(&Listing) -> bool| {
        rows.iter().filter(|row| is_null(row)).count() as f64 / rows.len() as f64
    };
    let null_share = vec![
        ("brokered_by", share(&|r| r.brokered_by.is_none())),
        ("price", share(&|r| r.price.is_none())),
        ("bed", share(&|r| r.bed.is_none())),
        ("bath", share(&|r| r.bath.is_none())),
        ("acre_lot", share(&|r| r.acre_lot.is_none())),
        ("street", share(&|r| r.street.is_none())),
        ("city", share(&|r| r.city.is_none())),
        ("zip_code", share(&|r| r.zip_code.is_none())),
        ("house_size", share(&|r| r.house_size.is_none())),
        ("prev_sold_date", share(&|r| r.prev_sold_date.is_none())),
    ];
    let quantiles = NUMERIC_FIELDS
        .iter()
        .map(|(name, read)| {
            let mut values: Vec<f64> = rows.iter().filter_map(read).collect();
            values.sort_by(f64::total_cmp);
            let at = |q: f64| values[((q * values.len() as f64) as usize).min(values.len() - 1)];
            (*name, QUANTILES.map(at))
        })
        .collect();
    Marginals {
        rows: rows.len(),
        null_share,
        quantiles,
        states: rows
            .iter()
            .filter_map(|r| r.state.as_deref())
            .collect::<HashSet<_>>()
            .len(),
        for_sale_share: share(&|r| r.status.as_deref() == Some("for_sale")),
        size_effect: size_effect(rows),
    }
}

fn print_table(real: &Marginals, generated: &Marginals) {
    println!(
        "| statistic | real sample ({} rows) | generator ({} rows) |",
        real.rows, generated.rows
    );
    println!("|---|---:|---:|");
    for ((field, real_share), (_, generated_share)) in
        real.null_share.iter().zip(&generated.null_share)
    {
        println!(
            "| `{field}` null | {:.2}% | {:.2}% |",
            real_share * 100.0,
            generated_share * 100.0
        );
    }
    for ((field, real_values), (_, generated_values)) in
        real.quantiles.iter().zip(&generated.quantiles)
    {
        let show = |values: &[f64; 6]| {
            values
                .iter()
                .map(|v| format!("{v}"))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        println!(
            "| `{field}` p1/p10/p50/p90/p99/max | {} | {} |",
            show(real_values),
            show(generated_values)
        );
    }
    println!("| states | {} | {} |", real.states, generated.states);
    println!(
        "| within-city elasticity of price to size | {:.2} | {:.2} |",
        real.size_effect.slope, generated.size_effect.slope
    );
    println!(
        "| R² of ln price ~ city + ln size | {:.2} | {:.2} |",
        real.size_effect.r_squared, generated.size_effect.r_squared
    );
}

fn sample_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/realtor-sample.csv")
}

fn quantile(marginals: &Marginals, field: &str, q: f64) -> f64 {
    let (_, values) = marginals
        .quantiles
        .iter()
        .find(|(name, _)| *name == field)
        .expect("a compared field");
    values[QUANTILES
        .iter()
        .position(|&x| x == q)
        .expect("a compared quantile")]
}

#[test]
fn generated_listings_resemble_the_real_sample() {
    let (sample, _) = CsvListings::open(&sample_path(), NonZeroUsize::new(2_000).unwrap())
        .expect("the sample loads");
    let real = marginals(sample.rows());

    let listings =
        SyntheticListings::new(42, &BatchPlan::course(), Scale::new(0.1).unwrap()).unwrap();
    let whole_market = listings.batch(5).expect("the plan has six batches, 0 to 5");
    let rows: Vec<Listing> = (0..whole_market.rows())
        .map(|row| whole_market.listing(row))
        .collect();
    let generated = marginals(&rows);
    print_table(&real, &generated);

    // Nulls: within a few points of the real shares (relatively, for the rare ones).
    for ((field, real_share), (_, generated_share)) in
        real.null_share.iter().zip(&generated.null_share)
    {
        let tolerance = (real_share * 0.6).clamp(0.002, 0.04);
        assert!(
            (real_share - generated_share).abs() <= tolerance,
            "{field} null: real {real_share:.4}, generated {generated_share:.4}"
        );
    }
    // Distributions: each quantile within a factor of the real one. Prices are held closest;
    // extremes (p99, max) are single rare values and get more room.
    for (field, q, factor) in [
        ("price", 0.01, 1.5),
        ("price", 0.10, 1.3),
        ("price", 0.50, 1.2),
        ("price", 0.90, 1.3),
        ("price", 0.99, 1.6),
        ("price", 1.0, 10.0),
        ("house_size", 0.10, 1.3),
        ("house_size", 0.50, 1.2),
        ("house_size", 0.90, 1.3),
        ("house_size", 0.99, 2.0),
        ("acre_lot", 0.10, 1.5),
        ("acre_lot", 0.50, 1.5),
        ("acre_lot", 0.90, 1.6),
        ("acre_lot", 0.99, 2.5),
        ("bed", 0.50, 1.0),
        ("bed", 0.99, 1.5),
        ("bath", 0.50, 1.0),
        ("bath", 0.99, 1.5),
    ] {
        let (real_value, generated_value) =
            (quantile(&real, field, q), quantile(&generated, field, q));
        let ratio = generated_value / real_value;
        assert!(
            ratio <= factor && ratio >= 1.0 / factor,
            "{field} p{}: real {real_value}, generated {generated_value}",
            q * 100.0
        );
    }
    // The warts the real file has: mansions of 80 bedrooms, typo'd sizes, ranches.
    let max = |field| quantile(&generated, field, 1.0);
    assert!(
        (20.0..=100.0).contains(&max("bed")),
        "max bed {}",
        max("bed")
    );
    assert!(
        max("house_size") > 50_000.0,
        "max size {}",
        max("house_size")
    );
    assert!(max("acre_lot") > 1_000.0, "max lot {}", max("acre_lot"));
    assert!(generated.states >= 50, "only {} states", generated.states);
    assert_eq!(generated.for_sale_share, 1.0);
    // Price follows size about as strongly as in the real data, so a model has as much to learn.
    let (real_fit, generated_fit) = (&real.size_effect, &generated.size_effect);
    assert!(
        (real_fit.slope - generated_fit.slope).abs() < 0.25,
        "elasticity: real {:.2}, generated {:.2}",
        real_fit.slope,
        generated_fit.slope
    );
    assert!(
        (real_fit.r_squared - generated_fit.r_squared).abs() < 0.15,
        "R²: real {:.2}, generated {:.2}",
        real_fit.r_squared,
        generated_fit.r_squared
    );
    assert!(
        real.for_sale_share > 0.99,
        "the sample is the for-sale market"
    );
}
