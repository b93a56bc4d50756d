//! A CPU budget for one process: a cgroup of its own with a CFS quota (cgroup v1's
//! `cpu.cfs_quota_us`, or v2's `cpu.max`), so a bench can drive it to saturation and read what
//! it does with exactly that much CPU. Needs root; the cgroup is removed when dropped.

use std::path::{Path, PathBuf};

/// The CFS period the quota is counted over (Linux's default).
const PERIOD_US: u64 = 100_000;

pub struct CpuBudget {
    dir: PathBuf,
}

impl CpuBudget {
    /// Moves `pid` (every thread of it) into a new cgroup `name` allowed `percent` of one CPU.
    pub fn put(pid: u32, name: &str, percent: u64) -> anyhow::Result<CpuBudget> {
        let quota = PERIOD_US * percent / 100;
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        let v2 = Path::new("/sys/fs/cgroup");
        let dir = if v1.join("cpu.cfs_quota_us").exists() {
            let dir = v1.join(name);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("cpu.cfs_period_us"), PERIOD_US.to_string())?;
            std::fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string())?;
            dir
        } else if std::fs::read_to_string(v2.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "cpu"))
        {
            std::fs::write(v2.join("cgroup.subtree_control"), "+cpu")?;
            let dir = v2.join(name);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("cpu.max"), format!("{quota} {PERIOD_US}"))?;
            dir
        } else {
            anyhow::bail!(
                "no cgroup CPU controller at /sys/fs/cgroup/cpu (v1) or /sys/fs/cgroup (v2)"
            );
        };
        let budget = CpuBudget { dir };
        std::fs::write(budget.dir.join("cgroup.procs"), pid.to_string())?;
        Ok(budget)
    }

    /// How often the process was held back for having used its quota (`nr_throttled`): a
    /// budget that never bites did not limit anything.
    pub fn throttled(&self) -> u64 {
        std::fs::read_to_string(self.dir.join("cpu.stat"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for CpuBudget {
    fn drop(&mut self) {
        // A cgroup can be removed once its processes are gone; the caller kills them first,
        // and a process still dying is waited for briefly.
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
