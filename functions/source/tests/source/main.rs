//! The batch source's tests, one binary: the API contract (`api_contract`), the real CSV slice (`csv_sample`), the dataset's CSV variants (`csv_variants`), and the generator's marginals against the real data (`marginals`).

mod api_contract;
mod csv_sample;
mod csv_variants;
mod marginals;
