//! Metrics as CloudWatch embedded metric format (EMF): JSON lines that CloudWatch Logs turns
//! into CloudWatch metrics, which is how a Lambda function publishes metrics without a scraper
//! or an API call.
//!
//! [`EmfRecorder`] is a `metrics` recorder that keeps what was recorded since the last flush;
//! [`telemetry`](crate::telemetry) installs it beside the Prometheus recorder on Lambda, so
//! the same `counter!`/`gauge!`/`histogram!` calls feed both. [`EmfHandle::render`] turns the
//! interval into documents:
//!
//! - a counter becomes its increase since the previous flush (CloudWatch sums them), and is
//!   left out when it did not move;
//! - a gauge becomes its current value;
//! - a histogram becomes the array of its observations since the previous flush (CloudWatch
//!   computes averages and percentiles from them), at most [`MAX_VALUES`] per document, as the
//!   format allows, so a long interval takes several documents;
//! - the labels become dimensions, next to `service`; series sharing a label set share a
//!   document, since a document has one value per dimension.
//!
//! Units come from the metric name's suffix (`_seconds`, `_bytes`, `_total`), the Prometheus
//! naming convention the functions follow.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use serde_json::{Map, Value, json};

/// Values one metric may carry in one document (the format's limit).
pub const MAX_VALUES: usize = 100;
/// Observations a histogram keeps between flushes; later ones are not kept (a flush per
/// invocation never comes near it).
const MAX_BUFFERED: usize = 100_000;
/// Metrics one document may declare (the format's limit).
const MAX_METRICS: usize = 100;

/// Label names and values, sorted by name.
type Labels = Vec<(String, String)>;
/// One series: a metric name and its labels.
type SeriesKey = (String, Labels);

#[derive(Default)]
struct Registry {
    series: Mutex<BTreeMap<SeriesKey, Series>>,
}

#[derive(Clone)]
enum Series {
    Counter(Arc<CounterCell>),
    Gauge(Arc<GaugeCell>),
    Histogram(Arc<HistogramCell>),
}

/// A cumulative count and the part of it already flushed.
#[derive(Default)]
struct CounterCell {
    total: AtomicU64,
    flushed: AtomicU64,
}

impl CounterFn for CounterCell {
    fn increment(&self, value: u64) {
        self.total.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.total.fetch_max(value, Ordering::Relaxed);
    }
}

/// An `f64` kept as its bits.
#[derive(Default)]
struct GaugeCell(AtomicU64);

impl GaugeCell {
    fn update(&self, change: impl Fn(f64) -> f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some(change(f64::from_bits(bits)).to_bits())
            });
    }

    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

impl GaugeFn for GaugeCell {
    fn increment(&self, value: f64) {
        self.update(|current| current + value);
    }

    fn decrement(&self, value: f64) {
        self.update(|current| current - value);
    }

    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

/// Observations since the last flush.
#[derive(Default)]
struct HistogramCell(Mutex<Vec<f64>>);

impl HistogramFn for HistogramCell {
    fn record(&self, value: f64) {
        let mut values = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if values.len() < MAX_BUFFERED && value.is_finite() {
            values.push(value);
        }
    }
}

impl Registry {
    fn get_or_insert(&self, key: &Key, make: impl FnOnce() -> Series) -> Series {
        let mut labels: Labels = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.sort();
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series
            .entry((key.name().to_owned(), labels))
            .or_insert_with(make)
            .clone()
    }
}

/// The `metrics` recorder that buffers for EMF. Build it with [`EmfRecorder::new`], keep its
/// [`EmfHandle`], and install the recorder (alone, or in a fanout).
pub struct EmfRecorder {
    registry: Arc<Registry>,
}

/// Renders what the recorder holds; cheap to clone.
#[derive(Clone)]
pub struct EmfHandle {
    registry: Arc<Registry>,
    namespace: String,
    service: String,
}

impl EmfRecorder {
    /// A recorder whose documents go to CloudWatch `namespace`, with the dimension
    /// `service` = `service` on every metric.
    pub fn new(namespace: &str, service: &str) -> (EmfRecorder, EmfHandle) {
        let registry = Arc::new(Registry::default());
        let handle = EmfHandle {
            registry: registry.clone(),
            namespace: namespace.to_owned(),
            service: service.to_owned(),
        };
        (EmfRecorder { registry }, handle)
    }
}

impl Recorder for EmfRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        match self
            .registry
            .get_or_insert(key, || Series::Counter(Arc::default()))
        {
            Series::Counter(cell) => Counter::from_arc(cell),
            // The name is already a metric of another kind: this one is not exported.
            _ => Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        match self
            .registry
            .get_or_insert(key, || Series::Gauge(Arc::default()))
        {
            Series::Gauge(cell) => Gauge::from_arc(cell),
            _ => Gauge::noop(),
        }
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        match self
            .registry
            .get_or_insert(key, || Series::Histogram(Arc::default()))
        {
            Series::Histogram(cell) => Histogram::from_arc(cell),
            _ => Histogram::noop(),
        }
    }
}

/// What one series contributes to a flush.
enum Sample {
    One(f64),
    Many(Vec<f64>),
}

impl EmfHandle {
    /// The documents for everything recorded since the previous call, one JSON object per
    /// string, stamped `timestamp_ms` (milliseconds since the Unix epoch). Empty when nothing
    /// changed and there are no gauges.
    pub fn render(&self, timestamp_ms: u64) -> Vec<String> {
        // Take the interval's samples under the lock, then build documents without it.
        let mut groups: BTreeMap<Labels, Vec<(String, Sample)>> = BTreeMap::new();
        {
            let series = self
                .registry
                .series
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for ((name, labels), series) in series.iter() {
                let sample = match series {
                    Series::Counter(cell) => {
                        let total = cell.total.load(Ordering::Relaxed);
                        let flushed = cell.flushed.swap(total, Ordering::Relaxed);
                        if total <= flushed {
                            continue;
                        }
                        Sample::One((total - flushed) as f64)
                    }
                    Series::Gauge(cell) => Sample::One(cell.get()),
                    Series::Histogram(cell) => {
                        let values =
                            std::mem::take(&mut *cell.0.lock().unwrap_or_else(|p| p.into_inner()));
                        if values.is_empty() {
                            continue;
                        }
                        Sample::Many(values)
                    }
                };
                groups
                    .entry(labels.clone())
                    .or_default()
                    .push((name.clone(), sample));
            }
        }
        let mut documents = Vec::new();
        for (labels, samples) in groups {
            let (single, arrays): (Vec<_>, Vec<_>) = samples
                .into_iter()
                .partition(|(_, sample)| matches!(sample, Sample::One(_)));
            for chunk in single.chunks(MAX_METRICS) {
                let values = chunk.iter().filter_map(|(name, sample)| match sample {
                    Sample::One(value) => Some((name.as_str(), json!(value))),
                    Sample::Many(_) => None,
                });
                documents.push(self.document(timestamp_ms, &labels, values));
            }
            for (name, sample) in &arrays {
                if let Sample::Many(values) = sample {
                    for chunk in values.chunks(MAX_VALUES) {
                        let value = json!(chunk);
                        documents.push(self.document(
                            timestamp_ms,
                            &labels,
                            std::iter::once((name.as_str(), value)),
                        ));
                    }
                }
            }
        }
        documents
    }

    /// Writes [`render`](Self::render)'s documents to stdout, one per line, at once.
    pub fn flush_to_stdout(&self) {
        use std::io::Write;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let documents = self.render(now_ms);
        if documents.is_empty() {
            return;
        }
        let mut text = documents.join("\n");
        text.push('\n');
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }

    fn document<'a>(
        &self,
        timestamp_ms: u64,
        labels: &[(String, String)],
        values: impl Iterator<Item = (&'a str, Value)>,
    ) -> String {
        let mut root = Map::new();
        let mut dimensions = vec![Value::from("service")];
        root.insert("service".into(), Value::from(self.service.as_str()));
        for (key, value) in labels {
            if key != "service" {
                dimensions.push(Value::from(key.as_str()));
            }
            root.insert(key.clone(), Value::from(value.as_str()));
        }
        let mut metrics = Vec::new();
        for (name, value) in values {
            metrics.push(json!({ "Name": name, "Unit": unit(name) }));
            root.insert(name.to_owned(), value);
        }
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [dimensions],
                    "Metrics": metrics,
                }],
            }),
        );
        Value::Object(root).to_string()
    }
}

/// The CloudWatch unit a metric's name implies.
fn unit(name: &str) -> &'static str {
    if name.ends_with("_seconds") {
        "Seconds"
    } else if name.ends_with("_bytes") {
        "Bytes"
    } else if name.ends_with("_total") {
        "Count"
    } else {
        "None"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(documents: &[String]) -> Vec<Value> {
        documents
            .iter()
            .map(|d| {
                assert!(!d.contains('\n'), "one line per document: {d}");
                serde_json::from_str(d).unwrap()
            })
            .collect()
    }

    /// The document holding `metric`, checked against the format: every dimension and
    /// every declared metric is a member of the root.
    fn find<'a>(documents: &'a [Value], metric: &str) -> &'a Value {
        let document = documents
            .iter()
            .find(|d| d.get(metric).is_some())
            .unwrap_or_else(|| panic!("no document has {metric}: {documents:#?}"));
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        for dimension in directive["Dimensions"][0].as_array().unwrap() {
            assert!(
                document[dimension.as_str().unwrap()].is_string(),
                "{document}"
            );
        }
        for declared in directive["Metrics"].as_array().unwrap() {
            assert!(
                document.get(declared["Name"].as_str().unwrap()).is_some(),
                "{document}"
            );
        }
        document
    }

    #[test]
    fn counters_gauges_and_histograms_become_cloudwatch_metrics() {
        let (recorder, handle) = EmfRecorder::new("appraise", "predict");
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("stage_invocations_total", "trigger" => "schedule", "outcome" => "ok")
                .increment(2);
            metrics::gauge!("model_rmse").set(150_000.5);
            let latency = metrics::histogram!("prediction_latency_seconds");
            latency.record(0.25);
            latency.record(0.5);
        });
        let documents = parse(&handle.render(1_700_000_000_000));

        let counter = find(&documents, "stage_invocations_total");
        let directive = &counter["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(counter["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert_eq!(directive["Namespace"], "appraise");
        assert_eq!(
            directive["Dimensions"],
            json!([["service", "outcome", "trigger"]])
        );
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "stage_invocations_total", "Unit": "Count"}])
        );
        assert_eq!(counter["service"], "predict");
        assert_eq!(counter["trigger"], "schedule");
        assert_eq!(counter["outcome"], "ok");
        assert_eq!(counter["stage_invocations_total"], 2.0);

        let gauge = find(&documents, "model_rmse");
        assert_eq!(gauge["model_rmse"], 150_000.5);
        assert_eq!(
            gauge["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["service"]])
        );

        let histogram = find(&documents, "prediction_latency_seconds");
        assert_eq!(histogram["prediction_latency_seconds"], json!([0.25, 0.5]));
        assert_eq!(
            histogram["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Seconds"
        );
    }

    #[test]
    fn each_flush_carries_only_what_happened_since_the_last() {
        let (recorder, handle) = EmfRecorder::new("appraise", "ingest");
        let (counter, histogram) = metrics::with_local_recorder(&recorder, || {
            (
                metrics::counter!("ingest_firings_total"),
                metrics::histogram!("stage_duration_seconds"),
            )
        });
        counter.increment(3);
        histogram.record(1.0);
        let first = parse(&handle.render(1));
        assert_eq!(
            find(&first, "ingest_firings_total")["ingest_firings_total"],
            3.0
        );

        // Nothing happened: no document (a counter that did not move is left out).
        assert!(handle.render(2).is_empty());

        counter.increment(1);
        let second = parse(&handle.render(3));
        assert_eq!(
            find(&second, "ingest_firings_total")["ingest_firings_total"],
            1.0
        );
        assert!(
            second
                .iter()
                .all(|d| d.get("stage_duration_seconds").is_none()),
            "the histogram's observation was flushed already: {second:?}"
        );
    }

    #[test]
    fn a_long_interval_is_split_into_documents_of_at_most_100_values() {
        let (recorder, handle) = EmfRecorder::new("appraise", "predict");
        metrics::with_local_recorder(&recorder, || {
            let latency = metrics::histogram!("prediction_latency_seconds", "route" => "batch");
            for i in 0..250 {
                latency.record(f64::from(i));
            }
        });
        let documents = parse(&handle.render(1));
        let sizes: Vec<usize> = documents
            .iter()
            .map(|d| d["prediction_latency_seconds"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        assert!(documents.iter().all(|d| d["route"] == "batch"));
    }
}
