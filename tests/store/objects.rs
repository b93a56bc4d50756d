//! The object store recordings go to (issue 38), against a real S3 server (Garage, started by
//! the test): an object put through a presigned URL, as a node puts a recording, reads back
//! whole with its size and sha256, a `Range` of it, a presigned download URL; a deleted one is
//! gone; wrong credentials and a stopped server are told apart (refused, or worth retrying).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sha2::{Digest, Sha256};
use switchyard::objects::{ObjectStore, S3Config};

use crate::common::garage::Garage;

fn config(g: &Garage) -> S3Config {
    S3Config {
        endpoint: g.endpoint.clone(),
        region: g.region.clone(),
        bucket: g.bucket.clone(),
        prefix: "calls".into(),
        path_style: true,
    }
}

#[tokio::test]
#[cfg_attr(
    not(garage),
    ignore = "needs Garage: bash ../shared/garage/install.sh (or scripts/test-deps.sh)"
)]
async fn a_file_put_by_url_reads_back_whole_checked_ranged_and_deletes() {
    let g = tokio::task::spawn_blocking(Garage::start).await.unwrap();
    let s3 = g.object_store("calls");
    let key = s3.key("app1/room/rec.wav");
    assert_eq!(s3.size(&key).await.unwrap(), None, "nothing there yet");
    assert_eq!(s3.check(&key).await.unwrap(), None);

    // A node uploads with nothing but the URL (as mod_http_cache's http_put does: a PUT of
    // the file with its content type, no signature headers of its own).
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let url = s3.put_url(&key, Duration::from_secs(300));
    let put = reqwest::Client::new()
        .put(&url)
        .header("content-type", "audio/wav")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200, "{:?}", put.text().await);

    assert_eq!(s3.size(&key).await.unwrap(), Some(bytes.len() as u64));
    let checked = s3.check(&key).await.unwrap().unwrap();
    assert_eq!(checked.size, bytes.len() as u64);
    let want: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(checked.sha256, want);

    let part = s3.get(&key, Some("bytes=10-19")).await.unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &bytes[10..20]);

    // A presigned download works for anyone holding it, until it expires.
    let got = reqwest::get(s3.get_url(&key, Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(got.bytes().await.unwrap().len(), bytes.len());

    s3.delete(&key).await.unwrap();
    assert_eq!(s3.size(&key).await.unwrap(), None);
    s3.delete(&key).await.unwrap();
}

#[tokio::test]
#[cfg_attr(
    not(garage),
    ignore = "needs Garage: bash ../shared/garage/install.sh (or scripts/test-deps.sh)"
)]
async fn bad_credentials_are_refused_and_a_stopped_server_is_worth_retrying() {
    let g = tokio::task::spawn_blocking(Garage::start).await.unwrap();
    let wrong = ObjectStore::new(&config(&g), &g.key_id, "not-the-secret").unwrap();
    let refused = wrong.size(&wrong.key("x.wav")).await.unwrap_err();
    assert!(!refused.is_retryable(), "{refused}");
    let gone = config(&g);
    drop(g);
    let s3 = ObjectStore::new(&gone, "k", "s").unwrap();
    let down = s3.put(&s3.key("x.wav"), vec![1, 2, 3]).await.unwrap_err();
    assert!(down.is_retryable(), "{down}");
}

/// What a signed URL gives away: one object, one method, for its time. The bucket is not
/// public (an unsigned read of a key someone guessed is refused), a download URL's signature
/// does not read another key or write its own, and an expired one reads nothing. So an app
/// holding its recording's URL cannot reach another app's object, whose key it may guess.
#[tokio::test]
#[cfg_attr(
    not(garage),
    ignore = "needs Garage: bash ../shared/garage/install.sh (or scripts/test-deps.sh)"
)]
async fn a_signed_url_reads_its_one_object_until_it_expires_and_nothing_else() {
    let g = tokio::task::spawn_blocking(Garage::start).await.unwrap();
    let s3 = g.object_store("calls");
    let (mine, theirs) = (s3.key("app-a/room/a.wav"), s3.key("app-b/room/b.wav"));
    s3.put(&mine, b"RIFF-a".to_vec()).await.unwrap();
    s3.put(&theirs, b"RIFF-b".to_vec()).await.unwrap();
    let http = reqwest::Client::new();
    let status = |r: reqwest::Response| r.status().as_u16();

    let url = s3.get_url(&mine, Duration::from_secs(60));
    let got = http.get(&url).send().await.unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"RIFF-a");

    // The bucket's own address of the other object, with no signature, or with this one's.
    let plain = url
        .split('?')
        .next()
        .unwrap()
        .replace("app-a/room/a.wav", "app-b/room/b.wav");
    assert_eq!(status(http.get(&plain).send().await.unwrap()), 403);
    let query = url.split_once('?').unwrap().1;
    let borrowed = format!("{plain}?{query}");
    assert_eq!(status(http.get(&borrowed).send().await.unwrap()), 403);
    // Nor does a download URL write.
    let put = http.put(&url).body("overwritten").send().await.unwrap();
    assert_eq!(status(put), 403);
    assert_eq!(s3.check(&mine).await.unwrap().unwrap().size, 6);

    // Past its time, nothing.
    let brief = s3.get_url(&mine, Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let late = http.get(&brief).send().await.unwrap();
    // AWS answers 403 "Request has expired"; Garage, 400.
    assert!(matches!(late.status().as_u16(), 400 | 403), "{late:?}");
    assert_ne!(late.bytes().await.unwrap().as_ref(), b"RIFF-a");
}
