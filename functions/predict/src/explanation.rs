//! Explanations as the API answers them: a price taken apart into a base value and one
//! contribution per input field, the field's value as typed beside it, largest first.
//!
//! The numbers come from [`ModelArtifact::explain`](appraise_core::model::ModelArtifact::explain):
//! exact path-dependent TreeSHAP for the trees, exact linear contributions for ridge, summed per
//! input field ([`appraise_core::features::FEATURE_FIELDS`]). Models predict the price itself,
//! so everything is in dollars and `base_value + Σ contribution = predicted_price` (to within
//! `f32` rounding for the boosted trees, which predict in `f32` as XGBoost does).

use appraise_core::model::{Explanation, ModelArtifact, shap::ShapError};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{error::ApiError, request::ListingInput};

/// One input field's share of a price.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldContribution {
    pub field: &'static str,
    /// The field as the request gave it (`null` when absent).
    pub value: Value,
    pub contribution: f64,
}

/// The base value and the fields' contributions, largest in absolute value first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriceExplanation {
    pub base_value: f64,
    pub contributions: Vec<FieldContribution>,
}

/// Listings priced and explained by one model, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Explained {
    pub listings: Vec<ListingInput>,
    pub prices: Vec<f64>,
    pub explanations: Vec<PriceExplanation>,
}

/// Prices and explains `listings` (dated `as_of`) with `artifact`. A model that cannot be
/// explained (saved before node covers were recorded, or with a tree deeper than the
/// explainer handles) is a 409: the request is fine, the model in production is not one that
/// explains.
pub fn explain_all(
    artifact: &ModelArtifact,
    listings: Vec<ListingInput>,
    as_of: time::Date,
) -> Result<Explained, ApiError> {
    let mut prices = Vec::with_capacity(listings.len());
    let mut explanations = Vec::with_capacity(listings.len());
    for listing in &listings {
        let explanation =
            artifact
                .explain(&listing.features(as_of))
                .map_err(|error: ShapError| {
                    ApiError::Conflict(format!(
                        "model {} cannot explain its prices: {error}",
                        artifact.version
                    ))
                })?;
        prices.push(explanation.predicted_price);
        explanations.push(by_field(listing, &explanation));
    }
    Ok(Explained {
        listings,
        prices,
        explanations,
    })
}

fn by_field(listing: &ListingInput, explanation: &Explanation) -> PriceExplanation {
    let mut contributions: Vec<FieldContribution> = explanation
        .per_field
        .iter()
        .map(|&(field, contribution)| FieldContribution {
            field,
            value: field_value(listing, field),
            contribution,
        })
        .collect();
    // Stable: ties keep the input fields' order.
    contributions.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
    PriceExplanation {
        base_value: explanation.base_value,
        contributions,
    }
}

/// The value of an input field ([`appraise_core::features::INPUT_FIELDS`]) as a request gives
/// it.
fn field_value(listing: &ListingInput, field: &str) -> Value {
    match field {
        "bed" => json!(listing.bed),
        "bath" => json!(listing.bath),
        "house_size" => json!(listing.house_size),
        "acre_lot" => json!(listing.acre_lot),
        "prev_sold_date" => json!(listing.prev_sold_date.map(|d| d.to_string())),
        "status" => json!(listing.status.map(|s| s.as_str())),
        "state" => json!(listing.state),
        "city" => json!(listing.city),
        "zip_code" => json!(listing.zip_code.map(|z| z.to_string())),
        "brokered_by" => json!(listing.brokered_by),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use appraise_core::features::{FEATURE_COUNT, INPUT_FIELDS};

    #[test]
    fn every_input_field_has_its_value_and_the_largest_comes_first() {
        let listing = ListingInput {
            brokered_by: Some(101),
            status: Some(appraise_core::listing::Status::Sold),
            bed: 3.0,
            bath: 2.0,
            acre_lot: 0.25,
            house_size: 1800.0,
            city: Some("Austin".into()),
            state: Some("Texas".into()),
            zip_code: appraise_core::listing::ZipCode::new(1234),
            prev_sold_date: appraise_core::listing::parse_date("2015-06-01"),
        };
        let mut per_field = INPUT_FIELDS.map(|field| (field, 1.0));
        per_field[3].1 = -50.0;
        per_field[7].1 = 20.0;
        let explanation = Explanation {
            predicted_price: 100.0,
            base_value: 32.0,
            per_feature: [0.0; FEATURE_COUNT],
            per_field,
        };
        let explained = by_field(&listing, &explanation);
        assert_eq!(explained.base_value, 32.0);
        let fields: Vec<&str> = explained.contributions.iter().map(|c| c.field).collect();
        assert_eq!(&fields[..3], ["acre_lot", "city", "bed"]);
        for contribution in &explained.contributions {
            assert!(!contribution.value.is_null(), "{}", contribution.field);
        }
        let value = |field: &str| {
            explained
                .contributions
                .iter()
                .find(|c| c.field == field)
                .unwrap()
                .value
                .clone()
        };
        assert_eq!(value("zip_code"), "01234");
        assert_eq!(value("prev_sold_date"), "2015-06-01");
        assert_eq!(value("status"), "sold");
        assert_eq!(value("house_size"), 1800.0);
    }
}
