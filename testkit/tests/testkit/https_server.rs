//! The test HTTPS server keeps serving while a client stalls in its TLS handshake: a
//! connection that never sends its ClientHello does not hold up the requests after it.

use appraise_testkit::tls::{TestCa, serve_https};

#[tokio::test]
async fn a_client_stalled_in_its_handshake_does_not_block_later_requests() {
    let ca = TestCa::new("stalled-handshake test CA").unwrap();
    let certificate = ca.server_certificate(&["127.0.0.1"]).unwrap();
    let router = axum::Router::new().route("/", axum::routing::get(|| async { "served" }));
    let url = serve_https(router, &certificate).await.unwrap();

    // Connects, then says nothing: its handshake never completes.
    let stalled = tokio::net::TcpStream::connect(url.trim_start_matches("https://"))
        .await
        .unwrap();

    let root = reqwest::Certificate::from_pem(ca.certificate_pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let body = client
        .get(&url)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "served");

    // The stalled connection is still open (not dropped to let the request through).
    let mut buffer = [0_u8; 1];
    let still_open = matches!(
        stalled.try_read(&mut buffer),
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock
    );
    assert!(
        still_open,
        "the stalled connection was closed before the request was served"
    );
}
