//! Object storage for recordings (issue 38): an S3-compatible bucket (AWS S3, Garage, MinIO…)
//! that every controller instance reads, whichever node made a recording. This folder knows
//! S3, not rooms: it names objects, signs URLs for them (a node uploads a file itself with a
//! presigned `PUT`, so the controller needs no access to the node's disk and the credentials
//! never leave the controller), and reads, checks and deletes them.
//!
//! Credentials come from the environment (`SWITCHYARD_S3_ACCESS_KEY_ID`,
//! `SWITCHYARD_S3_SECRET_ACCESS_KEY`), never from the configuration file, and are never logged.

mod s3;

pub use s3::{Checked, ObjectError, ObjectStore, S3Config};

/// The environment variables the bucket's credentials are read from.
pub const ACCESS_KEY_ENV: &str = "SWITCHYARD_S3_ACCESS_KEY_ID";
pub const SECRET_KEY_ENV: &str = "SWITCHYARD_S3_SECRET_ACCESS_KEY";
