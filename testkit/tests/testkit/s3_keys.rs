//! The embedded S3 server keeps every object inside its bucket's directory: a key with a `..`
//! or `.` segment, a leading `/`, an empty segment or a backslash is refused with 400 before
//! s3s-fs sees it, for every operation that takes a key, whether the real AWS SDK sends it or
//! a raw request hides the `../` behind percent-encoding. Nothing lands outside the bucket.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use appraise_testkit::{
    fixtures,
    s3_server::{ACCESS_KEY, S3Server, SECRET_KEY},
};
use aws_sdk_s3::{
    Client,
    config::{Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation},
    error::{DisplayErrorContext, ProvideErrorMetadata},
    presigning::PresigningConfig,
    primitives::ByteStream,
    types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The other bucket, which a key escaping `appraise` would reach.
const VICTIM: &str = "victim";
const SECRET: &[u8] = b"the victim's secret";

/// An SDK client for `server`, configured as the functions' own (path-style, signed).
fn client(server: &S3Server) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .endpoint_url(server.endpoint())
        .build();
    Client::from_conf(config)
}

/// Asserts that an SDK call failed with HTTP 400 and, where the answer has a body (not HEAD),
/// the given S3 error code.
macro_rules! assert_refused {
    ($result:expr, $code:expr, $what:expr) => {{
        let what = $what;
        let error = match $result {
            Ok(_) => panic!("{what}: accepted"),
            Err(error) => error,
        };
        let status = error.raw_response().map(|r| r.status().as_u16());
        assert_eq!(status, Some(400), "{what}: {}", DisplayErrorContext(&error));
        let code: Option<&str> = $code;
        if code.is_some() {
            assert_eq!(
                error.code(),
                code,
                "{what}: {}",
                DisplayErrorContext(&error)
            );
        }
    }};
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// Sends one HTTP/1.1 request as bytes (no client to normalise its path); returns the answer.
async fn raw_request(server: &S3Server, head: &str, body: &[u8]) -> String {
    let address = server.endpoint().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// A presigned PUT of `key` sent raw, its path rewritten by `rewrite` (the signature covers the
/// decoded path, so `..%2F` for `../` still verifies).
async fn presigned_put(
    server: &S3Server,
    client: &Client,
    key: &str,
    rewrite: impl Fn(&str) -> String,
) -> String {
    let presigned = client
        .put_object()
        .bucket(fixtures::BUCKET)
        .key(key)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let uri: http::Uri = presigned.uri().parse().unwrap();
    let path_and_query = uri.path_and_query().unwrap().as_str();
    let target = rewrite(path_and_query);
    let body = b"written through a presigned URL";
    let mut head = format!(
        "PUT {target} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        uri.authority().unwrap(),
        body.len()
    );
    for (name, value) in presigned.headers() {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    raw_request(server, &head, body).await
}

#[tokio::test]
async fn keys_that_would_leave_the_bucket_are_refused_for_every_operation() {
    let (server, _objects) = fixtures::s3_server(Vec::new()).await.unwrap();
    let s3 = client(&server);
    let root = server.root().clone();
    let outside = format!("evil-outside-{}.txt", appraise_testkit::unique_suffix());

    s3.create_bucket().bucket(VICTIM).send().await.unwrap();
    s3.put_object()
        .bucket(VICTIM)
        .key("secret.txt")
        .body(ByteStream::from_static(SECRET))
        .send()
        .await
        .unwrap();
    // Ordinary keys still work, a `..` inside a name included.
    for key in [
        "docs/readme.txt",
        "models/t 1+é/model..v2.json",
        "a.b/.c/d..",
    ] {
        s3.put_object()
            .bucket(fixtures::BUCKET)
            .key(key)
            .body(ByteStream::from_static(b"fine"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {}", DisplayErrorContext(&e)));
        let got = s3
            .get_object()
            .bucket(fixtures::BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(got.body.collect().await.unwrap().into_bytes(), &b"fine"[..]);
    }

    // PutObject: each key would escape `appraise/` (or alias a key in it).
    let escaping = [
        "../victim/evil-put.txt".to_owned(),
        "x/../../victim/evil-put.txt".to_owned(),
        format!("../../{outside}"),
        "..\\victim\\evil-put.txt".to_owned(),
        "/evil-put.txt".to_owned(),
        "x/./evil-put.txt".to_owned(),
        "x//evil-put.txt".to_owned(),
        "..".to_owned(),
    ];
    for key in &escaping {
        assert_refused!(
            s3.put_object()
                .bucket(fixtures::BUCKET)
                .key(key)
                .body(ByteStream::from_static(b"evil"))
                .send()
                .await,
            Some("InvalidArgument"),
            format!("PUT {key:?}")
        );
    }

    // Reading, probing and deleting the victim's object through `appraise/..`.
    let through = "../victim/secret.txt";
    assert_refused!(
        s3.get_object()
            .bucket(fixtures::BUCKET)
            .key(through)
            .send()
            .await,
        Some("InvalidArgument"),
        "GET"
    );
    assert_refused!(
        s3.head_object()
            .bucket(fixtures::BUCKET)
            .key(through)
            .send()
            .await,
        None,
        "HEAD"
    );
    assert_refused!(
        s3.delete_object()
            .bucket(fixtures::BUCKET)
            .key(through)
            .send()
            .await,
        Some("InvalidArgument"),
        "DELETE"
    );
    let delete = Delete::builder()
        .objects(ObjectIdentifier::builder().key(through).build().unwrap())
        .build()
        .unwrap();
    assert_refused!(
        s3.delete_objects()
            .bucket(fixtures::BUCKET)
            .delete(delete)
            .send()
            .await,
        Some("InvalidArgument"),
        "DeleteObjects"
    );

    // CopyObject: from a source outside the bucket, and to a destination outside it.
    assert_refused!(
        s3.copy_object()
            .bucket(fixtures::BUCKET)
            .key("stolen-copy.txt")
            .copy_source(format!("{}/{through}", fixtures::BUCKET))
            .send()
            .await,
        Some("InvalidArgument"),
        "copy from ../"
    );
    assert_refused!(
        s3.copy_object()
            .bucket(fixtures::BUCKET)
            .key("../victim/evil-copy.txt")
            .copy_source(format!("{}/docs/readme.txt", fixtures::BUCKET))
            .send()
            .await,
        Some("InvalidArgument"),
        "copy to ../"
    );

    // A copy source whose bucket part is `..` (or holds one) rather than its key.
    for source in ["../victim/secret.txt", "appraise..x/victim/secret.txt"] {
        assert_refused!(
            s3.copy_object()
                .bucket(fixtures::BUCKET)
                .key("stolen-bucket.txt")
                .copy_source(source)
                .send()
                .await,
            None,
            format!("copy from {source:?}")
        );
    }

    // Multipart: creating an upload, sending a part, copying a part from outside and
    // completing, each under a key that escapes.
    assert_refused!(
        s3.create_multipart_upload()
            .bucket(fixtures::BUCKET)
            .key("../victim/evil-multipart.txt")
            .send()
            .await,
        Some("InvalidArgument"),
        "CreateMultipartUpload"
    );
    let upload = s3
        .create_multipart_upload()
        .bucket(fixtures::BUCKET)
        .key("uploads/ok.bin")
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap();
    let part = s3
        .upload_part()
        .bucket(fixtures::BUCKET)
        .key("uploads/ok.bin")
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"evil part"))
        .send()
        .await
        .unwrap();
    assert_refused!(
        s3.upload_part()
            .bucket(fixtures::BUCKET)
            .key("../victim/evil-multipart.txt")
            .upload_id(upload_id)
            .part_number(2)
            .body(ByteStream::from_static(b"evil part"))
            .send()
            .await,
        Some("InvalidArgument"),
        "UploadPart"
    );
    assert_refused!(
        s3.upload_part_copy()
            .bucket(fixtures::BUCKET)
            .key("uploads/ok.bin")
            .upload_id(upload_id)
            .part_number(2)
            .copy_source(format!("{}/{through}", fixtures::BUCKET))
            .send()
            .await,
        Some("InvalidArgument"),
        "UploadPartCopy from ../"
    );
    let parts = CompletedMultipartUpload::builder()
        .parts(
            CompletedPart::builder()
                .part_number(1)
                .e_tag(part.e_tag().unwrap())
                .build(),
        )
        .build();
    assert_refused!(
        s3.complete_multipart_upload()
            .bucket(fixtures::BUCKET)
            .key("../victim/evil-multipart.txt")
            .upload_id(upload_id)
            .multipart_upload(parts)
            .send()
            .await,
        Some("InvalidArgument"),
        "CompleteMultipartUpload"
    );

    // Raw requests, signed: the SDK's own path, then the same `../` percent-encoded.
    let answer = presigned_put(&server, &s3, "../victim/evil-raw.txt", |path| {
        assert!(path.starts_with("/appraise/../victim/"), "{path}");
        path.to_owned()
    })
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("<Code>InvalidArgument</Code>"), "{answer}");
    let answer = presigned_put(&server, &s3, "../victim/evil-encoded.txt", |path| {
        path.replacen(
            "/appraise/../victim/evil-encoded.txt",
            "/appraise/..%2Fvictim%2Fevil-encoded.txt",
            1,
        )
    })
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("<Code>InvalidArgument</Code>"), "{answer}");
    // The same signed request under an ordinary key is accepted: the refusals above are the
    // guard's, not a bad signature's.
    let answer = presigned_put(&server, &s3, "docs/presigned.txt", str::to_owned).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Nothing was written outside `appraise/`, and the victim is untouched.
    let victim: Vec<PathBuf> = files_under(&root.join(VICTIM));
    assert_eq!(victim, vec![root.join(VICTIM).join("secret.txt")]);
    assert_eq!(
        std::fs::read(root.join(VICTIM).join("secret.txt")).unwrap(),
        SECRET
    );
    let everything = files_under(&root);
    for file in &everything {
        let name = file.file_name().unwrap().to_string_lossy();
        assert!(
            !name.contains("evil") && !name.contains("stolen"),
            "{} was written",
            file.display()
        );
    }
    assert!(!root.parent().unwrap().join(&outside).exists());
    assert!(everything.contains(&root.join(fixtures::BUCKET).join("docs/presigned.txt")));
}
