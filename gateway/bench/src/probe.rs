//! Watching the server process from the outside: CPU time and memory from `/proc/PID`.
//!
//! CPU comes from `utime + stime` in `/proc/PID/stat` (all threads), read before and after a
//! run. Peak RSS is sampled from `VmRSS` every 50 ms by a background task, because the
//! kernel's own high-water mark (`VmHWM`) covers the whole life of the process and so
//! cannot tell one run from the previous; both are reported.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::BenchError;

/// How often the RSS sampler looks.
pub const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(50);

/// CPU time of a process in clock ticks, split user/system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTicks {
    pub user: u64,
    pub system: u64,
}

impl CpuTicks {
    pub fn total(self) -> u64 {
        self.user + self.system
    }
}

/// A process being watched: the server under test, or the bench itself.
#[derive(Debug, Clone, Copy)]
pub struct ProcessProbe {
    pid: u32,
    ticks_per_second: u64,
}

impl ProcessProbe {
    /// Checks that `pid` is readable and learns the clock-tick rate once.
    pub fn new(pid: u32) -> Result<Self, BenchError> {
        let probe = Self {
            pid,
            ticks_per_second: clock_ticks_per_second(),
        };
        probe.cpu_ticks()?;
        Ok(probe)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// CPU seconds in a tick delta.
    pub fn seconds(&self, ticks: u64) -> f64 {
        ticks as f64 / self.ticks_per_second as f64
    }

    pub fn cpu_ticks(&self) -> Result<CpuTicks, BenchError> {
        let stat = self.read("stat")?;
        parse_stat_cpu(&stat).ok_or_else(|| self.malformed("stat"))
    }

    /// Current resident set size in bytes.
    pub fn rss_bytes(&self) -> Result<u64, BenchError> {
        self.status_field("VmRSS")
    }

    /// Peak resident set size over the whole life of the process, in bytes.
    pub fn hwm_bytes(&self) -> Result<u64, BenchError> {
        self.status_field("VmHWM")
    }

    /// Starts sampling RSS until the returned sampler is stopped.
    pub fn start_rss_sampler(&self) -> RssSampler {
        let probe = *self;
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut peak = 0u64;
            let mut ticker = tokio::time::interval(RSS_SAMPLE_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = ticker.tick() => {
                        // A vanished process just ends the sampling; the run reports the failure.
                        match probe.rss_bytes() {
                            Ok(rss) => peak = peak.max(rss),
                            Err(_) => break,
                        }
                    }
                }
            }
            // One last look, so a run shorter than one interval still has a sample.
            probe.rss_bytes().map_or(peak, |rss| peak.max(rss))
        });
        RssSampler { stop, task }
    }

    fn status_field(&self, name: &str) -> Result<u64, BenchError> {
        let status = self.read("status")?;
        parse_status_kib(&status, name)
            .map(|kib| kib * 1024)
            .ok_or_else(|| self.malformed("status"))
    }

    fn read(&self, file: &str) -> Result<String, BenchError> {
        std::fs::read_to_string(format!("/proc/{}/{file}", self.pid)).map_err(|source| {
            BenchError::ProcessProbe {
                pid: self.pid,
                source,
            }
        })
    }

    fn malformed(&self, file: &str) -> BenchError {
        BenchError::ProcessProbe {
            pid: self.pid,
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unexpected /proc/PID/{file} format"),
            ),
        }
    }
}

/// A running RSS sampler; [`RssSampler::finish`] stops it and returns the peak in bytes.
#[derive(Debug)]
pub struct RssSampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<u64>,
}

impl RssSampler {
    pub async fn finish(self) -> u64 {
        // The task may have ended already (process gone); then the send fails harmlessly.
        let _ = self.stop.send(());
        self.task.await.unwrap_or(0)
    }
}

/// `utime` and `stime` (fields 14 and 15) of `/proc/PID/stat`. The command name (field 2)
/// may contain spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat_cpu(stat: &str) -> Option<CpuTicks> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11); // field 3 is the first here
    let user = fields.next()?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some(CpuTicks { user, system })
}

/// A `Name:   1234 kB` line of `/proc/PID/status`, in KiB.
pub fn parse_status_kib(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// `getconf CLK_TCK`, read once; 100 (the value on every common Linux) if that fails.
fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_even_with_odd_process_names() {
        let stat = "4242 (s3s fs) (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    731 129 0 0 20 0 8 0 12345 1000000 2000 18446744073709551615";
        assert_eq!(
            parse_stat_cpu(stat),
            Some(CpuTicks {
                user: 731,
                system: 129
            })
        );
        assert_eq!(parse_stat_cpu("garbage"), None);
    }

    #[test]
    fn parses_status_fields() {
        let status = "Name:\ts3s-fs\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(40960));
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(51200));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[tokio::test]
    async fn watches_its_own_process() {
        let probe = ProcessProbe::new(std::process::id()).unwrap();
        let sampler = probe.start_rss_sampler();
        tokio::time::sleep(Duration::from_millis(120)).await;
        let peak = sampler.finish().await;
        assert!(peak > 0);
        assert!(probe.hwm_bytes().unwrap() > 0);
        assert!(probe.cpu_ticks().is_ok());
    }
}
