//! The bucket: immutable objects keyed by stage and batch.
//!
//! One S3 client per process, built at start from the environment and shared: AWS S3 on Lambda,
//! MinIO on Knative, the harness's embedded server locally. Path-style addressing is always on
//! (MinIO and local servers need it; AWS accepts it). Credentials come from the standard
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` variables, which Lambda
//! sets for the function's role; the SDK's full credential chain (`aws-config`) is left out
//! on purpose, to keep builds lean.

use anyhow::Context;
use aws_sdk_s3::{
    Client,
    config::{Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation},
    error::ProvideErrorMetadata,
    primitives::ByteStream,
};
use bytes::Bytes;

use crate::config;

/// Where the bucket is and how to reach it.
#[derive(Debug, Clone)]
pub struct ObjectStoreConfig {
    /// `None` means AWS S3 itself.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl ObjectStoreConfig {
    /// Reads `S3_ENDPOINT`, `S3_BUCKET` (default `appraise`), `AWS_REGION` (default
    /// `us-east-1`) and the AWS credential variables.
    pub fn from_env() -> Result<Self, config::ConfigError> {
        Ok(ObjectStoreConfig {
            endpoint: config::maybe("S3_ENDPOINT")?,
            bucket: config::optional("S3_BUCKET", "appraise".to_owned())?,
            region: config::optional("AWS_REGION", "us-east-1".to_owned())?,
            access_key_id: config::required("AWS_ACCESS_KEY_ID", "the S3 access key")?,
            secret_access_key: config::required_secret(
                "AWS_SECRET_ACCESS_KEY",
                "the S3 secret key",
            )?,
            session_token: config::maybe_secret("AWS_SESSION_TOKEN")?,
        })
    }
}

/// An object's metadata, from a HEAD request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectHead {
    /// Bytes, when the server says.
    pub size: Option<u64>,
    /// When the object was written (the server's clock), when the server says.
    pub last_modified: Option<std::time::SystemTime>,
}

/// A bucket, and the client that reaches it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    client: Client,
    bucket: String,
}

impl ObjectStore {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self::new(&ObjectStoreConfig::from_env()?))
    }

    pub fn new(config: &ObjectStoreConfig) -> Self {
        let credentials = Credentials::new(
            &config.access_key_id,
            &config.secret_access_key,
            config.session_token.clone(),
            None,
            "environment",
        );
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(true)
            // Checksums only where S3 requires them: MinIO-compatible servers differ in which
            // of the newer flexible checksums they understand.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        ObjectStore {
            client: Client::from_conf(builder.build()),
            bucket: config.bucket.clone(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket unless it exists (the harness and tests; on AWS it is provisioned).
    pub async fn ensure_bucket(&self) -> anyhow::Result<()> {
        if self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        match self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error)
                if matches!(
                    error.code(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) =>
            {
                Ok(())
            }
            Err(error) => Err(anyhow::anyhow!(
                "creating bucket {}: {}",
                self.bucket,
                aws_sdk_s3::error::DisplayErrorContext(&error)
            )),
        }
    }

    /// Writes an object (replacing any object of that key).
    pub async fn put(&self, key: &str, body: Bytes, content_type: &str) -> anyhow::Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|error| {
                anyhow::anyhow!(
                    "writing s3://{}/{key}: {}",
                    self.bucket,
                    aws_sdk_s3::error::DisplayErrorContext(&error)
                )
            })?;
        Ok(())
    }

    /// Reads a whole object; `None` when there is no such key.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Bytes>> {
        let response = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        match response {
            Ok(output) => {
                let body = output
                    .body
                    .collect()
                    .await
                    .with_context(|| format!("reading s3://{}/{key}", self.bucket))?;
                Ok(Some(body.into_bytes()))
            }
            Err(error) if error.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(error) => Err(anyhow::anyhow!(
                "reading s3://{}/{key}: {}",
                self.bucket,
                aws_sdk_s3::error::DisplayErrorContext(&error)
            )),
        }
    }

    /// What a HEAD request says of an object: `None` when there is no such key.
    pub async fn head(&self, key: &str) -> anyhow::Result<Option<ObjectHead>> {
        let response = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        match response {
            Ok(output) => Ok(Some(ObjectHead {
                size: output.content_length().and_then(|n| u64::try_from(n).ok()),
                last_modified: output
                    .last_modified()
                    .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
            })),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(error) => Err(anyhow::anyhow!(
                "reading the metadata of s3://{}/{key}: {}",
                self.bucket,
                aws_sdk_s3::error::DisplayErrorContext(&error)
            )),
        }
    }

    /// Deletes an object; deleting a key that does not exist is not an error (S3's own rule).
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| {
                anyhow::anyhow!(
                    "deleting s3://{}/{key}: {}",
                    self.bucket,
                    aws_sdk_s3::error::DisplayErrorContext(&error)
                )
            })?;
        Ok(())
    }

    /// Every key under a prefix, in key order.
    pub async fn list(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|error| {
                anyhow::anyhow!(
                    "listing s3://{}/{prefix}: {}",
                    self.bucket,
                    aws_sdk_s3::error::DisplayErrorContext(&error)
                )
            })?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        keys.sort();
        Ok(keys)
    }
}
