//! The throw-away cluster keeps every commit that returned through a crash of the server:
//! `pg_ctl stop -m immediate` right after a run of small commits, a restart on the same data
//! directory and port, and every committed row is there (and the uncommitted one is not).

use appraise_testkit::postgres::Postgres;
use tokio::task::block_in_place;

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_rows_survive_an_immediate_stop_and_restart() {
    let mut cluster = block_in_place(Postgres::start).unwrap();
    let url = cluster.create_database("durable").await.unwrap();
    let client = connect(&url).await;
    client
        .batch_execute("CREATE TABLE rows (id integer PRIMARY KEY, payload text NOT NULL)")
        .await
        .unwrap();
    let started: String = client
        .query_one("SELECT pg_postmaster_start_time()::text", &[])
        .await
        .unwrap()
        .get(0);

    // Many small commits, each one returned before the next; the crash follows the last at
    // once, well inside the ~0.6 s an asynchronous commit may wait for the WAL writer.
    const COMMITS: i32 = 300;
    let insert = client
        .prepare("INSERT INTO rows (id, payload) VALUES ($1, $2)")
        .await
        .unwrap();
    for id in 0..COMMITS {
        client
            .execute(&insert, &[&id, &format!("row {id}")])
            .await
            .unwrap();
    }
    // And one transaction that never commits.
    let mut open = connect(&url).await;
    let transaction = open.transaction().await.unwrap();
    transaction
        .execute(
            "INSERT INTO rows (id, payload) VALUES (-1, 'never committed')",
            &[],
        )
        .await
        .unwrap();

    block_in_place(|| cluster.crash()).unwrap();
    assert!(
        client.query_one("SELECT 1", &[]).await.is_err(),
        "the server is down"
    );
    drop(transaction);
    block_in_place(|| cluster.restart()).unwrap();

    let log = cluster.server_log();
    assert!(
        log.contains("not properly shut down; automatic recovery in progress"),
        "the restart recovered from a crash:\n{log}"
    );
    let client = connect(&url).await;
    let restarted: String = client
        .query_one("SELECT pg_postmaster_start_time()::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(started, restarted, "the same port serves a new server");
    let row = client
        .query_one(
            "SELECT count(*), min(id), max(id), count(*) FILTER (WHERE payload = 'row ' || id) FROM rows",
            &[],
        )
        .await
        .unwrap();
    let (count, min, max, intact): (i64, i32, i32, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(
        (count, min, max, intact),
        (i64::from(COMMITS), 0, COMMITS - 1, i64::from(COMMITS)),
        "every committed row, and nothing else"
    );

    // The restarted cluster takes writes, and still cleans up after itself.
    client
        .execute(
            "INSERT INTO rows (id, payload) VALUES ($1, 'after')",
            &[&COMMITS],
        )
        .await
        .unwrap();
    drop(client);
    let port = cluster.port();
    block_in_place(|| cluster.stop());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
