//! The S3 client: presigned URLs (SigV4, `rusty-s3`) sent with the HTTP client the controller
//! already has. Only what recordings need: put (by URL, for a node), head, a checked read
//! (size and sha256), a ranged read, delete.

use std::time::Duration;

use futures_util::StreamExt;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use sha2::{Digest, Sha256};

/// Where the bucket is, as the configuration names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `http(s)://host[:port][/path]` of the S3 API.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// Every object's key begins with it (`<prefix>/…`); empty: none.
    pub prefix: String,
    /// Path-style (`<endpoint>/<bucket>/<key>`, the default: Garage, MinIO, any IP endpoint)
    /// or virtual-host (`<bucket>.<endpoint host>/<key>`, AWS's preference).
    pub path_style: bool,
}

/// Why an object operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    #[error("object storage is not configured: {0}")]
    Config(String),
    /// The bucket answered with an error status (a 403 for bad credentials, a 5xx…).
    #[error("object storage answered {status} for {what}")]
    Status { what: &'static str, status: u16 },
    /// The bucket could not be reached, or the answer was cut.
    #[error("object storage unreachable: {0}")]
    Unreachable(String),
}

impl ObjectError {
    /// Worth trying again later (the bucket down or overloaded), as opposed to a refusal.
    pub fn is_retryable(&self) -> bool {
        match self {
            ObjectError::Unreachable(_) => true,
            ObjectError::Status { status, .. } => *status >= 500 || *status == 429,
            ObjectError::Config(_) => false,
        }
    }
}

/// An object's size and sha256 (lowercase hex), read back from the bucket whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub size: u64,
    pub sha256: String,
}

/// One bucket and the credentials to use it.
#[derive(Clone)]
pub struct ObjectStore {
    bucket: Bucket,
    credentials: Credentials,
    prefix: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for ObjectStore {
    /// Without the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore")
            .field("bucket", &self.bucket.name())
            .field("endpoint", &self.bucket.base_url().as_str())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl ObjectStore {
    /// The bucket of `config`, with the credentials `access_key` and `secret_key`.
    pub fn new(
        config: &S3Config,
        access_key: &str,
        secret_key: &str,
    ) -> Result<ObjectStore, ObjectError> {
        let endpoint = config
            .endpoint
            .parse()
            .map_err(|e| ObjectError::Config(format!("endpoint: {e}")))?;
        let style = if config.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            endpoint,
            style,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| ObjectError::Config(format!("bucket: {e}")))?;
        if access_key.is_empty() || secret_key.is_empty() {
            return Err(ObjectError::Config(format!(
                "no credentials: set {} and {}",
                super::ACCESS_KEY_ENV,
                super::SECRET_KEY_ENV
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ObjectError::Config(format!("http client: {e}")))?;
        Ok(ObjectStore {
            bucket,
            credentials: Credentials::new(access_key.to_owned(), secret_key.to_owned()),
            prefix: config.prefix.trim_matches('/').to_owned(),
            http,
        })
    }

    /// The bucket of `config`, with the credentials from the environment.
    pub fn from_env(config: &S3Config) -> Result<ObjectStore, ObjectError> {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        ObjectStore::new(
            config,
            &var(super::ACCESS_KEY_ENV),
            &var(super::SECRET_KEY_ENV),
        )
    }

    /// The key of `name` under the configured prefix.
    pub fn key(&self, name: &str) -> String {
        let name = name.trim_start_matches('/');
        match self.prefix.is_empty() {
            true => name.to_owned(),
            false => format!("{}/{name}", self.prefix),
        }
    }

    /// A URL that lets its holder `PUT` the object at `key` for `ttl` (a node's upload).
    pub fn put_url(&self, key: &str, ttl: Duration) -> String {
        self.bucket
            .put_object(Some(&self.credentials), key)
            .sign(ttl)
            .to_string()
    }

    /// A URL that lets its holder `GET` the object at `key` for `ttl` (a client's download).
    pub fn get_url(&self, key: &str, ttl: Duration) -> String {
        self.bucket
            .get_object(Some(&self.credentials), key)
            .sign(ttl)
            .to_string()
    }

    /// The object's size, or `None` when there is no such object.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, ObjectError> {
        let url = self
            .bucket
            .head_object(Some(&self.credentials), key)
            .sign(Duration::from_secs(60));
        let r = self.send(self.http.head(url), "head").await?;
        match r.status().as_u16() {
            404 => Ok(None),
            s if (200..300).contains(&s) => Ok(r
                .headers()
                .get(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())),
            status => Err(ObjectError::Status {
                what: "head",
                status,
            }),
        }
    }

    /// Reads the whole object back: its size and sha256 (`None`: no such object).
    pub async fn check(&self, key: &str) -> Result<Option<Checked>, ObjectError> {
        let r = self.get(key, None).await?;
        if r.status().as_u16() == 404 {
            return Ok(None);
        }
        if !r.status().is_success() {
            return Err(ObjectError::Status {
                what: "get",
                status: r.status().as_u16(),
            });
        }
        let mut hash = Sha256::new();
        let mut size = 0u64;
        let mut body = r.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ObjectError::Unreachable(e.to_string()))?;
            size += chunk.len() as u64;
            hash.update(&chunk);
        }
        Ok(Some(Checked {
            size,
            sha256: hex(&hash.finalize()),
        }))
    }

    /// A `GET` of the object (a `Range` passed on as it came), its answer unread: the caller
    /// streams it.
    pub async fn get(
        &self,
        key: &str,
        range: Option<&str>,
    ) -> Result<reqwest::Response, ObjectError> {
        let url = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(Duration::from_secs(60));
        let mut request = self.http.get(url);
        if let Some(range) = range {
            request = request.header(reqwest::header::RANGE, range);
        }
        self.send(request, "get").await
    }

    /// Deletes the object (gone already is fine).
    pub async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        let url = self
            .bucket
            .delete_object(Some(&self.credentials), key)
            .sign(Duration::from_secs(60));
        let r = self.send(self.http.delete(url), "delete").await?;
        match r.status().as_u16() {
            s if (200..300).contains(&s) || s == 404 => Ok(()),
            status => Err(ObjectError::Status {
                what: "delete",
                status,
            }),
        }
    }

    /// Whether the bucket takes this controller as it will need to: an empty object written
    /// under the prefix and deleted (a missing bucket or refused credentials answer 404 or 403,
    /// which a `HEAD` of a missing key would not tell apart from a bucket that works).
    pub async fn probe(&self) -> Result<(), ObjectError> {
        let key = self.key(".switchyard-probe");
        self.put(&key, Vec::new()).await?;
        self.delete(&key).await
    }

    /// `PUT`s `bytes` at `key` from the controller (tests, and files the controller holds).
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), ObjectError> {
        let url = self
            .bucket
            .put_object(Some(&self.credentials), key)
            .sign(Duration::from_secs(60));
        let r = self.send(self.http.put(url).body(bytes), "put").await?;
        match r.status().as_u16() {
            s if (200..300).contains(&s) => Ok(()),
            status => Err(ObjectError::Status {
                what: "put",
                status,
            }),
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &'static str,
    ) -> Result<reqwest::Response, ObjectError> {
        request
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| ObjectError::Unreachable(format!("{what}: {}", e.without_url())))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(prefix: &str) -> S3Config {
        S3Config {
            endpoint: "http://127.0.0.1:3900".into(),
            region: "garage".into(),
            bucket: "recordings".into(),
            prefix: prefix.into(),
            path_style: true,
        }
    }

    #[test]
    fn keys_go_under_the_prefix_and_urls_are_signed_without_the_secret_in_them() {
        let s = ObjectStore::new(&config("/calls/"), "GKexample", "secret-never-shown").unwrap();
        assert_eq!(s.key("app/room/r.wav"), "calls/app/room/r.wav");
        assert_eq!(
            ObjectStore::new(&config(""), "k", "s")
                .unwrap()
                .key("/a.wav"),
            "a.wav"
        );
        let url = s.put_url("calls/app/room/r.wav", Duration::from_secs(600));
        assert!(
            url.starts_with("http://127.0.0.1:3900/recordings/calls/app/room/r.wav?"),
            "{url}"
        );
        assert!(url.contains("X-Amz-Signature="), "{url}");
        assert!(url.contains("X-Amz-Expires=600"), "{url}");
        assert!(!url.contains("secret-never-shown"));
        assert!(!format!("{s:?}").contains("secret-never-shown"));
    }

    #[test]
    fn missing_credentials_say_where_to_put_them() {
        let e = ObjectStore::new(&config(""), "", "").unwrap_err();
        assert!(e.to_string().contains(super::super::ACCESS_KEY_ENV), "{e}");
        assert!(!e.is_retryable());
    }
}
