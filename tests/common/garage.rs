//! A real S3 server for one test: Garage (`../shared/garage`, installed as
//! `/usr/local/bin/garage` by `scripts/test-deps.sh`; `SWITCHYARD_GARAGE` names another binary),
//! a single node on free ports in a temporary directory, with a bucket and a key made with its
//! own CLI. Stopped by pid when dropped.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HOW_TO_INSTALL: &str = "Garage (an S3-compatible object store) serves the object-storage \
     tests: install it with `bash ../shared/garage/install.sh` (or run scripts/test-deps.sh), or \
     name its binary in SWITCHYARD_GARAGE";

pub struct Garage {
    child: Option<Child>,
    dir: PathBuf,
    config: PathBuf,
    /// `http://127.0.0.1:<port>` of its S3 API.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
}

fn binary() -> PathBuf {
    std::env::var("SWITCHYARD_GARAGE")
        .ok()
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/local/bin/garage"))
}

impl Garage {
    /// A `[recordings]` table of a configuration that copies to this bucket under `prefix`
    /// (the credentials go by [`Garage::env`]).
    pub fn recordings_toml(&self, prefix: &str) -> String {
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        format!(
            "[recordings]\nstore = \"s3\"\nendpoint = {}\nregion = {}\nbucket = {}\n\
             prefix = {}\naddressing = \"path\"\n",
            q(&self.endpoint),
            q(&self.region),
            q(&self.bucket),
            q(prefix),
        )
    }

    /// The environment that gives a controller this bucket's credentials.
    pub fn env(&self) -> [(&'static str, &str); 2] {
        [
            ("SWITCHYARD_S3_ACCESS_KEY_ID", self.key_id.as_str()),
            ("SWITCHYARD_S3_SECRET_ACCESS_KEY", self.secret.as_str()),
        ]
    }

    /// The bucket as the controller sees it, under `prefix`.
    pub fn object_store(&self, prefix: &str) -> switchyard::objects::ObjectStore {
        let config = switchyard::objects::S3Config {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            bucket: self.bucket.clone(),
            prefix: prefix.into(),
            path_style: true,
        };
        switchyard::objects::ObjectStore::new(&config, &self.key_id, &self.secret)
            .expect("the bucket's address and credentials make an object store")
    }

    /// Starts one with the bucket `recordings` and a key allowed to read and write it.
    pub fn start() -> Garage {
        let bin = binary();
        assert!(
            bin.is_file(),
            "{HOW_TO_INSTALL} ({} not found)",
            bin.display()
        );
        let (rpc, s3, admin) = (
            super::ports::tcp(),
            super::ports::tcp(),
            super::ports::tcp(),
        );
        let dir =
            std::env::temp_dir().join(format!("switchyard-garage-{}-{s3}", std::process::id()));
        std::fs::create_dir_all(dir.join("meta")).unwrap();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let secret: String = (0..32)
            .map(|_| format!("{:02x}", fastrand::u8(..)))
            .collect();
        let config = dir.join("garage.toml");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\
                 [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n\
                 root_domain = \".s3.garage.localhost\"\n\
                 [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\nadmin_token = \"{secret}\"\n",
                meta = dir.join("meta").display(),
                data = dir.join("data").display(),
            ),
        )
        .unwrap();
        // Garage refuses a configuration others may read (it holds secrets).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        let child = spawn(&config, &dir);
        let mut garage = Garage {
            child: Some(child),
            dir,
            config,
            endpoint: format!("http://127.0.0.1:{s3}"),
            region: "garage".into(),
            bucket: "recordings".into(),
            key_id: String::new(),
            secret: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let id = loop {
            let out = garage.cli(&["node", "id", "-q"]).unwrap_or_default();
            let id = out.split('@').next().unwrap_or_default().trim().to_owned();
            if !id.is_empty() {
                break id;
            }
            assert!(
                Instant::now() < deadline,
                "garage did not come up: {}",
                garage.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        // The node's id is read from its key file; its RPC may not listen yet.
        while garage.cli(&["status"]).is_err() {
            assert!(
                Instant::now() < deadline,
                "garage did not come up: {}",
                garage.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        garage.ok(&["layout", "assign", "-z", "dc1", "-c", "1G", &id]);
        garage.ok(&["layout", "apply", "--version", "1"]);
        garage.ok(&["bucket", "create", "recordings"]);
        let key = garage.ok(&["key", "create", "switchyard-test"]);
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
                .unwrap_or_else(|| panic!("no {name} in {key}"))
        };
        garage.key_id = field("Key ID:");
        garage.secret = field("Secret key:");
        garage.ok(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            "recordings",
            "--key",
            "switchyard-test",
        ]);
        garage
    }

    /// Runs its CLI: stdout, or why it failed.
    fn cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(binary())
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        match out.status.success() {
            true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        self.cli(args)
            .unwrap_or_else(|e| panic!("garage {args:?}: {e}\n{}", self.log()))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("garage.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops it (SIGKILL by pid): the bucket is out of reach until [`Garage::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports and data, and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        self.child = Some(spawn(&self.config, &self.dir));
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.cli(&["bucket", "list"]).is_err() {
            assert!(
                Instant::now() < deadline,
                "garage did not come back: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `garage server` on `config`, its output appended to the directory's log.
fn spawn(config: &std::path::Path, dir: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("garage.log"))
        .unwrap();
    Command::new(binary())
        .arg("-c")
        .arg(config)
        .arg("server")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("garage starts")
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
