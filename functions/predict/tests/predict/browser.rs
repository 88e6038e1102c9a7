//! The predictor's web page in a real headless Chromium, driven over the Chrome DevTools
//! Protocol: a prediction through the form with its waterfall of contributions, the model
//! history, a model's importance and lineage, the RMSE chart, the drift report, the drift in
//! served inputs, and the Runs grid (a failed train cell's error, its re-run and an ingest asked
//! from the page), all from a throw-away world with a real trained and promoted model. Leaves a
//! screenshot of the page in `target/screenshots/predictor.png`.
//!
//! Without a Chromium on PATH the test skips, unless `CI` is set: then it fails and asks for
//! `scripts/setup.sh`, which installs one.

use std::{
    io::{BufRead, BufReader},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};
use appraise_core::{
    keys, outbox,
    runs::{Attempt, Stage},
};
use appraise_testkit::{fixtures, processes::FunctionProcess};
use base64::Engine;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// The whole test, world included, can never take longer than this.
const OVERALL: Duration = Duration::from_secs(240);
/// The browser part: from launching Chromium to the screenshot.
const BROWSER_PHASE: Duration = Duration::from_secs(60);
/// Longest wait for any single answer from Chromium.
const CDP_READ_TIMEOUT: Duration = Duration::from_secs(15);
/// The operator token the page's re-run button sends.
const TOKEN: &str = "browser-operator-token";
/// The error of the failed train attempt the Runs grid shows.
const TRAIN_ERROR: &str = "unavailable: the train Job was evicted <b>not markup</b>";

const SCREENSHOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../target/screenshots/predictor.png"
);
const FAILURE_SCREENSHOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../target/screenshots/predictor-failure.png"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_predicts_and_shows_history_chart_and_drift() {
    let Some(browser) = find_browser() else {
        fixtures::skip_without_tool(
            "no Chromium found on PATH (looked for chromium, chromium-browser, google-chrome): \
             run scripts/setup.sh to install it",
        );
        return;
    };
    let started = Instant::now();
    match tokio::time::timeout(OVERALL, run(browser)).await {
        Ok(Ok(())) => eprintln!("browser test passed in {:.1?}", started.elapsed()),
        Ok(Err(error)) => panic!("{error:#}"),
        Err(_) => panic!("the browser test did not finish within {OVERALL:?}"),
    }
}

/// The first of the usual Chromium binaries on PATH.
fn find_browser() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// What the page must show, known from the world the test built.
struct Expected {
    base_url: String,
    production_version: String,
    worst_feature: Option<String>,
}

async fn run(browser: PathBuf) -> anyhow::Result<()> {
    // The world: a database, an S3 server, a real production model and a drift report.
    let (db_url, db) = fixtures::fresh_database().await?;
    let (s3, objects) = fixtures::s3_server(vec![]).await?;
    let seeding = Instant::now();
    let production_version = crate::support::seed_production_model(&db, &objects)
        .await
        .context("seeding the production model")?;
    eprintln!("seeded {production_version} in {:.1?}", seeding.elapsed());
    // Batch 3 is cleaned and announced to train (as process does), and train's attempt at it
    // failed: recorded as every stage records a failure.
    fixtures::insert_clean_batch(&db, 3, 200, 1.0).await?;
    {
        let client = db.get().await?;
        let key = keys::batch_manifest("clean", 3);
        outbox::enqueue(&**client, &key, &json!({ "batch_number": 3 })).await?;
        outbox::flush(&**client, &objects).await?;
    }
    Attempt::start(Stage::Train)
        .failed(&db, 3, &TRAIN_ERROR)
        .await;

    let logs = tempfile::tempdir()?;
    let log_path = logs.path().join("predict.log");
    let mut env = s3.env(fixtures::BUCKET);
    env.push(("DATABASE_URL".to_owned(), db_url));
    env.push(("PREDICT_RELOAD_TOKEN".to_owned(), TOKEN.to_owned()));
    let predict = FunctionProcess::start(
        "predict",
        env!("CARGO_BIN_EXE_predict").as_ref(),
        &env,
        std::fs::File::create(&log_path)?.into(),
    )
    .await?;
    let result = exercise_page(&browser, &predict.url(), production_version).await;
    predict.stop().await;
    drop(s3);
    result.map_err(|error| {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        error.context(format!("predict's last log lines:\n{}", tail.join("\n")))
    })
}

async fn exercise_page(
    browser: &Path,
    base_url: &str,
    production_version: String,
) -> anyhow::Result<()> {
    // The page predicts with the production model: wait until it is loaded.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = client.get(format!("{base_url}/ready")).send().await;
        if matches!(&ready, Ok(response) if response.status().is_success()) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the predictor was not ready within 60 s (last answer: {ready:?})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drift: Value = client
        .get(format!("{base_url}/api/drift"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let worst_feature = drift["reports"][0]["worst_feature"]
        .as_str()
        .map(str::to_owned);
    anyhow::ensure!(
        drift["reports"].as_array().is_some_and(|r| !r.is_empty()),
        "the seeded world has no drift report: {drift}"
    );

    let expected = Expected {
        base_url: base_url.to_owned(),
        production_version,
        worst_feature,
    };
    let browser = browser.to_owned();
    // The DevTools client is synchronous: it runs on a blocking thread, bounded by the
    // socket's read timeout and the deadlines of its waits.
    let drive = tokio::task::spawn_blocking(move || drive_browser(&browser, &expected));
    match tokio::time::timeout(BROWSER_PHASE + Duration::from_secs(5), drive).await {
        Ok(joined) => joined.context("the browser thread panicked")?,
        Err(_) => bail!("the browser part did not finish within {BROWSER_PHASE:?}"),
    }
}

// ------------------------------------------------------------------------------------- browser

/// A headless Chromium, killed when dropped (whatever happened).
struct Chromium {
    child: Child,
    websocket_url: String,
    stderr_tail: Arc<Mutex<Vec<String>>>,
    _profile: tempfile::TempDir,
}

impl Chromium {
    fn launch(binary: &Path) -> anyhow::Result<Chromium> {
        let profile = tempfile::tempdir()?;
        let mut child = Command::new(binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-port=0",
                "--window-size=1280,1600",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;

        // Chromium prints "DevTools listening on ws://…" on stderr; keep draining it after that
        // (a full pipe would block it), remembering the last lines for error messages.
        let stderr = child.stderr.take().context("chromium's stderr")?;
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        let (found, url) = mpsc::channel();
        let tail = Arc::clone(&stderr_tail);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("DevTools listening on ") {
                    let _ = found.send(
                        line[at + "DevTools listening on ".len()..]
                            .trim()
                            .to_owned(),
                    );
                }
                let mut tail = tail.lock().unwrap();
                tail.push(line);
                if tail.len() > 40 {
                    tail.remove(0);
                }
            }
        });
        let mut chromium = Chromium {
            child,
            websocket_url: String::new(),
            stderr_tail,
            _profile: profile,
        };
        match url.recv_timeout(Duration::from_secs(20)) {
            Ok(websocket_url) => chromium.websocket_url = websocket_url,
            Err(_) => bail!(
                "chromium did not print its DevTools URL within 20 s; its stderr:\n{}",
                chromium.stderr()
            ),
        }
        Ok(chromium)
    }

    fn stderr(&self) -> String {
        self.stderr_tail.lock().unwrap().join("\n")
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // SIGTERM first: Chromium then shuts down in order and reaps its helper processes;
        // SIGKILL if it takes more than a few seconds.
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let patience = Instant::now() + Duration::from_secs(5);
            while Instant::now() < patience {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Launches Chromium and goes through the page; saves a screenshot of what it saw on failure.
fn drive_browser(binary: &Path, expected: &Expected) -> anyhow::Result<()> {
    let deadline = Instant::now() + BROWSER_PHASE;
    let _ = std::fs::remove_file(FAILURE_SCREENSHOT);
    let chromium = Chromium::launch(binary)?;
    let result = (|| {
        let mut cdp = Cdp::connect(&chromium.websocket_url)?;
        cdp.open_page()?;
        let outcome = check_page(&mut cdp, expected, deadline);
        if outcome.is_err() {
            let _ = cdp.screenshot(Path::new(FAILURE_SCREENSHOT));
        }
        outcome
    })();
    result.map_err(|error| {
        error.context(format!(
            "chromium's last stderr lines:\n{}",
            chromium.stderr()
        ))
    })
}

fn check_page(cdp: &mut Cdp, expected: &Expected, deadline: Instant) -> anyhow::Result<()> {
    let navigation = cdp.call(
        "Page.navigate",
        json!({ "url": format!("{}/", expected.base_url) }),
    )?;
    if let Some(error) = navigation.get("errorText") {
        bail!("navigating to the predictor failed: {error}");
    }

    // The model history and the drift reports arrive from the API.
    let models = cdp.wait_for(
        "the model history",
        r#"(() => {
            const rows = document.querySelectorAll('#models tbody tr').length;
            const message = document.getElementById('models-message');
            if (rows > 0) return { rows };
            if (message && message.classList.contains('failed')) return { failed: message.textContent };
            return null;
        })()"#,
        deadline,
    )?;
    if let Some(failed) = models.get("failed") {
        bail!("the page could not load the model history: {failed}");
    }
    let production_row = cdp.evaluate(
        "(() => { const row = document.querySelector('#models tbody tr.production'); \
           return row ? row.querySelector('td').textContent : null; })()",
    )?;
    anyhow::ensure!(
        production_row
            .as_str()
            .is_some_and(|text| text.contains(&expected.production_version)),
        "the production row should be {}, found {production_row}",
        expected.production_version
    );

    let drift = cdp.wait_for(
        "the drift reports",
        r#"(() => {
            const blocks = document.querySelectorAll('#drift-reports .drift-report').length;
            const message = document.getElementById('drift-message');
            if (blocks > 0) return { text: document.getElementById('drift').textContent };
            if (message && message.classList.contains('failed')) return { failed: message.textContent };
            return null;
        })()"#,
        deadline,
    )?;
    if let Some(failed) = drift.get("failed") {
        bail!("the page could not load the drift reports: {failed}");
    }
    let text = drift["text"].as_str().unwrap_or_default();
    for categorical in ["state (PSI)", "status (PSI)", "city_prefix (PSI)"] {
        anyhow::ensure!(
            text.contains(categorical),
            "the drift report should show {categorical}: {text}"
        );
    }
    if let Some(worst) = &expected.worst_feature {
        anyhow::ensure!(
            text.contains(&format!("worst feature: {worst}")),
            "the drift section should name the worst feature {worst}: {text}"
        );
    }

    check_runs(cdp, deadline)?;

    // Drift in served inputs: every field, with its test, against the production model.
    let served = cdp.wait_for(
        "the served-input drift",
        r#"(() => {
            const rows = [...document.querySelectorAll('#input-drift-table tbody tr')];
            const message = document.getElementById('input-drift-message');
            if (rows.length > 0) return { rows: rows.map(r => [r.dataset.field, r.children[1].textContent]),
                                          message: message.textContent };
            if (message && message.classList.contains('failed')) return { failed: message.textContent };
            return null;
        })()"#,
        deadline,
    )?;
    if let Some(failed) = served.get("failed") {
        bail!("the page could not show the served-input drift: {failed}");
    }
    let expected_rows = json!([
        ["bed", "KS"],
        ["bath", "KS"],
        ["acre_lot", "KS"],
        ["house_size", "KS"],
        ["state", "PSI"],
        ["status", "PSI"],
        ["city_prefix", "PSI"]
    ]);
    anyhow::ensure!(
        served["rows"] == expected_rows,
        "the served-input drift should list every field with its test: {served}"
    );
    anyhow::ensure!(
        served["message"]
            .as_str()
            .is_some_and(|m| m.contains(&expected.production_version)),
        "the served-input drift should name the production model: {served}"
    );

    let points = cdp.evaluate("document.querySelectorAll('#rmse-chart circle.point').length")?;
    anyhow::ensure!(
        points.as_u64().is_some_and(|n| n >= 1),
        "the RMSE chart has no point: {points}"
    );

    // A prediction through the form, as a person would make it.
    cdp.evaluate(
        r#"(() => {
            const set = (id, value) => {
                const input = document.getElementById(id);
                input.value = value;
                input.dispatchEvent(new Event('input', { bubbles: true }));
                input.dispatchEvent(new Event('change', { bubbles: true }));
            };
            set('bed', '4');
            set('bath', '3');
            set('house_size', '2400');
            set('acre_lot', '0.3');
            set('status', 'for_sale');
            document.getElementById('predict-submit').click();
            return true;
        })()"#,
    )?;
    let answer = cdp.wait_for(
        "the predicted price",
        r#"(() => {
            const price = document.getElementById('price').textContent;
            const error = document.getElementById('predict-error');
            if (price) return { price, model: document.getElementById('price-model').textContent };
            if (error && !error.hidden) return { error: error.textContent };
            return null;
        })()"#,
        deadline,
    )?;
    if let Some(error) = answer.get("error") {
        bail!("the page shows a prediction error: {error}");
    }
    let price_text = answer["price"].as_str().unwrap_or_default();
    let price: f64 = price_text
        .strip_prefix('$')
        .map(|digits| digits.replace(',', ""))
        .and_then(|digits| digits.parse().ok())
        .with_context(|| format!("the price {price_text:?} is not a dollar amount"))?;
    anyhow::ensure!(price > 0.0, "the price {price_text} is not positive");
    let model = answer["model"].as_str().unwrap_or_default();
    anyhow::ensure!(
        model.contains(&expected.production_version),
        "the price should name the production model {}: {model:?}",
        expected.production_version
    );
    eprintln!("the page predicted {price_text} ({model})");

    // Next to the price, its waterfall: the expected price, one step per input field, the price;
    // the steps add up from the one to the other.
    let waterfall = cdp.wait_for(
        "the waterfall of the prediction",
        r#"(() => {
            const bars = [...document.querySelectorAll('#waterfall rect.wf-bar')];
            if (bars.length === 0 || document.getElementById('waterfall-wrap').hidden) return null;
            return bars.map(bar => ({
                kind: bar.getAttribute('class').replace('wf-bar ', ''),
                field: bar.getAttribute('data-field'),
                value: Number(bar.getAttribute('data-value')),
            }));
        })()"#,
        deadline,
    )?;
    let bars = waterfall.as_array().context("waterfall bars")?;
    anyhow::ensure!(
        bars.len() == 12,
        "base, 10 fields and the price: {waterfall}"
    );
    anyhow::ensure!(
        bars[0]["kind"] == "base" && bars[11]["kind"] == "total",
        "{waterfall}"
    );
    let base = bars[0]["value"].as_f64().unwrap_or(f64::NAN);
    let total = bars[11]["value"].as_f64().unwrap_or(f64::NAN);
    let steps: Vec<f64> = bars[1..11]
        .iter()
        .map(|bar| bar["value"].as_f64().unwrap_or(f64::NAN))
        .collect();
    let sum = base + steps.iter().sum::<f64>();
    anyhow::ensure!(
        (sum - total).abs() <= 1e-6 * total.abs() && (total - price).abs() <= 0.5,
        "the steps add up to {sum}, the waterfall's price is {total}, the page shows {price}"
    );
    anyhow::ensure!(
        steps.windows(2).all(|w| w[0].abs() >= w[1].abs()),
        "largest first: {steps:?}"
    );

    // Per model version, its global importance and its lineage (the production one first).
    let details = cdp.wait_for(
        "the production model's importance and lineage",
        r#"(() => {
            const rows = document.querySelectorAll('#importance .importance-row').length;
            const batches = document.querySelectorAll('#lineage-batches tbody tr').length;
            if (rows === 0 || batches === 0) return null;
            return { rows, batches, version: document.getElementById('detail-version').value,
                     lineage: document.getElementById('lineage').textContent };
        })()"#,
        deadline,
    )?;
    anyhow::ensure!(
        details["rows"] == 10,
        "one importance row per input field: {details}"
    );
    anyhow::ensure!(
        details["version"] == expected.production_version.as_str()
            && details["lineage"]
                .as_str()
                .is_some_and(|text| text.contains("is in production")),
        "the details show the production model: {details}"
    );

    // Let the page settle (fonts, layout) before the picture.
    cdp.evaluate("document.fonts ? document.fonts.ready.then(() => true) : true")?;
    let path = Path::new(SCREENSHOT);
    cdp.screenshot(path)?;
    let png = std::fs::read(path)?;
    anyhow::ensure!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    anyhow::ensure!(
        png.len() > 10 * 1024,
        "{} is only {} bytes: a blank page?",
        path.display(),
        png.len()
    );

    // Nothing went wrong in the page, and it asked nothing of any other origin.
    anyhow::ensure!(
        cdp.exceptions.is_empty(),
        "the page threw: {:#?}",
        cdp.exceptions
    );
    let foreign: Vec<&String> = cdp
        .requests
        .iter()
        .filter(|url| {
            !url.starts_with(&expected.base_url)
                && !url.starts_with("data:")
                && !url.starts_with("about:")
        })
        .collect();
    anyhow::ensure!(
        foreign.is_empty(),
        "the page fetched from elsewhere: {foreign:?}"
    );
    Ok(())
}

/// The Runs grid: three batches by four stages, coloured by state; the failed train cell shows
/// its error as text; the re-run button, with the operator token, asks the predictor to run it
/// again.
fn check_runs(cdp: &mut Cdp, deadline: Instant) -> anyhow::Result<()> {
    let grid = cdp.wait_for(
        "the runs grid",
        r#"(() => {
            const cells = [...document.querySelectorAll('#runs-grid .run-cell')];
            const message = document.getElementById('runs-message');
            if (cells.length > 0) return cells.map(c =>
                [c.dataset.stage, Number(c.dataset.batch), c.dataset.state, getComputedStyle(c).backgroundColor]);
            if (message && message.classList.contains('failed')) return { failed: message.textContent };
            return null;
        })()"#,
        deadline,
    )?;
    if let Some(failed) = grid.get("failed") {
        bail!("the page could not load the runs: {failed}");
    }
    let cells = grid.as_array().context("the grid's cells")?;
    let states: Vec<(String, i64, String)> = cells
        .iter()
        .map(|c| {
            (
                c[0].as_str().unwrap_or_default().to_owned(),
                c[1].as_i64().unwrap_or(-1),
                c[2].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let mut expected = Vec::new();
    for (stage, by_batch) in [
        ("ingest", ["done", "done", "done"]),
        ("process", ["done", "done", "done"]),
        ("train", ["done", "done", "failed"]),
    ] {
        for (batch, state) in (1..=3).zip(by_batch) {
            expected.push((stage.to_owned(), batch, state.to_owned()));
        }
    }
    // Batch 1 was promoted; batch 2's promote decided too (promoted or rejected: done).
    for (batch, state) in [(1, "done"), (2, "done"), (3, "waiting")] {
        expected.push(("promote".to_owned(), batch, state.to_owned()));
    }
    anyhow::ensure!(
        states == expected,
        "the grid should be stages x batches (oldest batch left):\n{expected:?}\nit is\n{states:?}"
    );
    // Each state has its own colour.
    let colour = |state: &str| {
        cells
            .iter()
            .find(|c| c[2] == state)
            .map(|c| c[3].as_str().unwrap_or_default().to_owned())
    };
    let colours = [colour("done"), colour("failed"), colour("waiting")];
    anyhow::ensure!(
        colours.iter().all(Option::is_some)
            && colours[0] != colours[1]
            && colours[1] != colours[2]
            && colours[0] != colours[2],
        "done, failed and waiting should be coloured differently: {colours:?}"
    );

    // The failed cell's detail: its error, as text.
    let detail = cdp.evaluate(
        r#"(() => {
            document.querySelector('#runs-grid .run-cell[data-stage="train"][data-batch="3"]').click();
            const detail = document.getElementById('run-detail');
            const error = detail.querySelector('pre.run-error');
            return { hidden: detail.hidden, text: detail.textContent, error: error ? error.textContent : null,
                     markup: detail.querySelector('b') !== null, button: !!document.getElementById('run-again') };
        })()"#,
    )?;
    anyhow::ensure!(
        detail["hidden"] == false && detail["error"] == TRAIN_ERROR && detail["markup"] == false,
        "the failed cell's detail should show its error as text: {detail}"
    );
    anyhow::ensure!(
        detail["button"] == true,
        "a failed cell offers a re-run: {detail}"
    );

    // A wrong token is refused and said so; the right one asks for the re-run.
    for (token, expect) in [
        ("wrong", "Not run again"),
        (TOKEN, "Asked: clean/batch-000003/manifest.json"),
    ] {
        cdp.evaluate(&format!(
            r#"(() => {{
                document.getElementById('run-again-message').textContent = '';
                document.getElementById('run-token').value = {token};
                document.getElementById('run-again').click();
                return true;
            }})()"#,
            token = serde_json::to_string(token)?
        ))?;
        let outcome = cdp.wait_for(
            "the re-run's outcome",
            r#"(() => {
                const text = document.getElementById('run-again-message').textContent;
                return text && text !== 'Asking…' ? text : null;
            })()"#,
            deadline,
        )?;
        anyhow::ensure!(
            outcome
                .as_str()
                .is_some_and(|text| text.starts_with(expect)),
            "the re-run with token {token:?} should say {expect:?}: {outcome}"
        );
    }

    // Ingest now, with the token: the request object is written.
    cdp.evaluate("(() => { document.getElementById('ingest-now').click(); return true; })()")?;
    let outcome = cdp.wait_for(
        "the ingest request's outcome",
        r#"(() => {
            const text = document.getElementById('ingest-now-message').textContent;
            return text && text !== 'Asking…' ? text : null;
        })()"#,
        deadline,
    )?;
    anyhow::ensure!(
        outcome
            .as_str()
            .is_some_and(|text| text.starts_with("Asked: triggers/ingest/")),
        "Ingest now should say it asked: {outcome}"
    );

    // A done cell's detail has no error and no button.
    let done = cdp.evaluate(
        r#"(() => {
            document.querySelector('#runs-grid .run-cell[data-stage="promote"][data-batch="1"]').click();
            return { text: document.getElementById('run-detail').textContent,
                     button: !!document.getElementById('run-again') };
        })()"#,
    )?;
    let text = done["text"].as_str().unwrap_or_default();
    anyhow::ensure!(
        text.contains("promote · batch 1") && text.contains("attempts") && done["button"] == false,
        "the promote cell of batch 1 should show its detail: {done}"
    );
    Ok(())
}

// ------------------------------------------------------------------------- DevTools protocol

/// A minimal Chrome DevTools Protocol client: one WebSocket to the browser, commands to one page
/// through a flattened session, and the few events the test checks.
struct Cdp {
    socket: WebSocket<TcpStream>,
    next_id: u64,
    session: Option<String>,
    /// Uncaught exceptions in the page (`Runtime.exceptionThrown`).
    exceptions: Vec<Value>,
    /// Every URL the page requested (`Network.requestWillBeSent`).
    requests: Vec<String>,
}

impl Cdp {
    fn connect(websocket_url: &str) -> anyhow::Result<Cdp> {
        let authority = websocket_url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .with_context(|| format!("unexpected DevTools URL {websocket_url}"))?;
        let address = authority
            .parse()
            .with_context(|| format!("DevTools address {authority}"))?;
        let stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(CDP_READ_TIMEOUT))?;
        stream.set_write_timeout(Some(CDP_READ_TIMEOUT))?;
        let (socket, _) = tungstenite::client(websocket_url, stream)
            .map_err(|error| anyhow!("DevTools WebSocket handshake: {error}"))?;
        Ok(Cdp {
            socket,
            next_id: 0,
            session: None,
            exceptions: Vec::new(),
            requests: Vec::new(),
        })
    }

    /// Attaches to the page Chromium opened (or a new one) and turns on the events used.
    fn open_page(&mut self) -> anyhow::Result<()> {
        let targets = self.call("Target.getTargets", json!({}))?;
        let existing = targets["targetInfos"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|target| target["type"] == "page")
            .and_then(|target| target["targetId"].as_str())
            .map(str::to_owned);
        let target = match existing {
            Some(id) => id,
            None => self.call("Target.createTarget", json!({ "url": "about:blank" }))?["targetId"]
                .as_str()
                .context("Target.createTarget gave no targetId")?
                .to_owned(),
        };
        let attached = self.call(
            "Target.attachToTarget",
            json!({ "targetId": target, "flatten": true }),
        )?;
        self.session = Some(
            attached["sessionId"]
                .as_str()
                .context("Target.attachToTarget gave no sessionId")?
                .to_owned(),
        );
        self.call("Page.enable", json!({}))?;
        self.call("Runtime.enable", json!({}))?;
        self.call("Network.enable", json!({}))?;
        Ok(())
    }

    /// Sends a command and waits for its answer, noting the events that arrive meanwhile.
    fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = &self.session
            && !method.starts_with("Target.")
            && !method.starts_with("Browser.")
        {
            command["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(command.to_string()))
            .with_context(|| format!("sending {method}"))?;
        loop {
            let message = self
                .socket
                .read()
                .with_context(|| format!("waiting for the answer to {method}"))?;
            let Message::Text(text) = message else {
                continue;
            };
            let message: Value = serde_json::from_str(text.as_str())?;
            if message["id"] == id {
                if let Some(error) = message.get("error") {
                    bail!("{method} failed: {error}");
                }
                return Ok(message["result"].clone());
            }
            match message["method"].as_str() {
                Some("Runtime.exceptionThrown") => {
                    self.exceptions
                        .push(message["params"]["exceptionDetails"].clone());
                }
                Some("Network.requestWillBeSent") => {
                    if let Some(url) = message["params"]["request"]["url"].as_str() {
                        self.requests.push(url.to_owned());
                    }
                }
                _ => {}
            }
        }
    }

    /// The value of a JavaScript expression in the page (promises awaited).
    fn evaluate(&mut self, expression: &str) -> anyhow::Result<Value> {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        )?;
        if let Some(exception) = result.get("exceptionDetails") {
            bail!("evaluating {expression}: {exception}");
        }
        Ok(result["result"]["value"].clone())
    }

    /// Polls `expression` until it gives something other than null/false.
    fn wait_for(
        &mut self,
        what: &str,
        expression: &str,
        deadline: Instant,
    ) -> anyhow::Result<Value> {
        loop {
            let value = self.evaluate(expression)?;
            if !value.is_null() && value != Value::Bool(false) {
                return Ok(value);
            }
            if Instant::now() > deadline {
                bail!("the page did not show {what} in time");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A PNG of the whole page (not only the window) at `path`.
    fn screenshot(&mut self, path: &Path) -> anyhow::Result<()> {
        let metrics = self.call("Page.getLayoutMetrics", json!({}))?;
        let size = &metrics["cssContentSize"];
        let width = size["width"].as_f64().unwrap_or(1280.0).ceil();
        let height = size["height"].as_f64().unwrap_or(1600.0).ceil().min(8000.0);
        let shot = self.call(
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
            }),
        )?;
        let data = shot["data"]
            .as_str()
            .context("Page.captureScreenshot gave no data")?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .context("decoding the screenshot")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}
