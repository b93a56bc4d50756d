//! Recordings to object storage (issue 38), the path chosen: the node uploads the file itself.
//! The controller signs a `PUT` URL for the object (SigV4, valid minutes; the bucket's
//! credentials never leave the controller) and asks the node, over its Event Socket, for
//! `http_put <url> <file>` (mod_http_cache, loaded by `freeswitch-conf/`, in both supported
//! lines). Proven here on a real node (1.11 and 1.10.12) against a real S3 server (Garage): a
//! room's recording of a SIPp caller is put by the node, and the object in the bucket is the
//! node's file, byte for byte (size and sha256 read back from the bucket).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::garage::Garage;
use crate::live::Live;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use switchyard::objects::{ObjectStore, S3Config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(live_fs, garage)),
    ignore = "needs a real FreeSWITCH and Garage: run scripts/test-deps.sh"
)]
async fn live_a_node_puts_a_finished_recording_into_the_bucket_by_a_signed_url() {
    let g = tokio::task::spawn_blocking(Garage::start).await.unwrap();
    let s3 = ObjectStore::new(
        &S3Config {
            endpoint: g.endpoint.clone(),
            region: g.region.clone(),
            bucket: g.bucket.clone(),
            prefix: "switchyard".into(),
            path_style: true,
        },
        &g.key_id,
        &g.secret,
    )
    .unwrap();
    let t = Live::start().await;
    let room = t.room("to-the-bucket").await;
    let caller = t.call("4001").await;
    t.joined(&room, &caller).await;
    let r = t
        .post(
            &format!("/api/v1/conferences/{room}/recording/start"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let rec = r.body["id"].as_str().unwrap().to_owned();
    t.eventually("the room records", || async {
        t.get(&format!("/api/v1/recordings/{rec}")).await.body["status"] == "recording"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = t
        .post(
            &format!("/api/v1/conferences/{room}/recording/stop"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.eventually("the recording ended", || async {
        t.get(&format!("/api/v1/recordings/{rec}")).await.body["status"] == "ended"
    })
    .await;
    let (status, _, file) = t.raw_get(&format!("/api/v1/recordings/{rec}/file")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(file.len() > 8000, "a second of audio: {} bytes", file.len());

    let stored = t.stored_room(&room).await;
    let path = &stored.recordings[0].path;
    let key = s3.key(&format!("{}/{room}/{rec}.wav", t.app_id()));
    let url = s3.put_url(&key, Duration::from_secs(600));
    let reply = t.node_api(&format!("http_put {url} {path}")).await;
    assert!(reply.starts_with("+OK 200"), "http_put: {reply}");

    let checked = s3.check(&key).await.unwrap().expect("the object is there");
    assert_eq!(checked.size, file.len() as u64);
    let sha: String = Sha256::digest(&file)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(checked.sha256, sha, "the node's file, byte for byte");
}
