//! The test kit's own tests, one binary: the S3 server refuses keys that leave the bucket (`s3_keys`), and the throw-away cluster keeps commits through a crash (`postgres_durability`).

mod postgres_durability;
mod s3_keys;
