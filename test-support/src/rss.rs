//! Resident memory of the test process over time, read from `/proc/self/status`, for tests
//! that show a client's memory stays bounded under a flood.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Samples this process's resident set size on a background thread.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<(Duration, u64)>>,
}

/// What an [`RssSampler`] saw.
#[derive(Debug, Clone)]
pub struct RssReport {
    /// (time since start, resident KiB) samples.
    pub samples: Vec<(Duration, u64)>,
    /// Highest resident set size seen, KiB.
    pub peak_kib: u64,
}

impl RssSampler {
    /// Starts sampling every `interval`.
    ///
    /// # Panics
    ///
    /// If `/proc/self/status` cannot be read (not Linux): the tests that use this measure
    /// memory and cannot run without it.
    pub fn start(interval: Duration) -> Self {
        assert!(
            resident_kib().is_some(),
            "cannot read VmRSS from /proc/self/status: these memory tests need Linux's procfs"
        );
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Some(kib) = resident_kib() {
                    samples.push((start.elapsed(), kib));
                }
                std::thread::sleep(interval);
            }
            samples
        });
        Self { stop, thread }
    }

    /// Stops sampling and returns the samples.
    ///
    /// # Panics
    ///
    /// If the sampling thread panicked.
    pub fn stop(self) -> RssReport {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self
            .thread
            .join()
            .expect("the RSS sampling thread panicked");
        let peak_kib = samples.iter().map(|&(_, kib)| kib).max().unwrap_or(0);
        RssReport { samples, peak_kib }
    }
}

impl RssReport {
    /// Peak after `warm_up` minus the first sample after it, KiB: how much memory kept
    /// growing once the scenario was under way.
    pub fn growth_after(&self, warm_up: Duration) -> u64 {
        let mut later = self.samples.iter().filter(|(at, _)| *at >= warm_up);
        let Some(&(_, first)) = later.next() else {
            return 0;
        };
        later
            .map(|&(_, kib)| kib)
            .max()
            .unwrap_or(first)
            .saturating_sub(first)
    }
}

impl fmt::Display for RssReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.samples.first().map_or(0, |s| s.1);
        let last = self.samples.last().map_or(0, |s| s.1);
        write!(
            f,
            "RSS first {first} KiB, peak {} KiB, last {last} KiB over {} samples",
            self.peak_kib,
            self.samples.len()
        )
    }
}

/// This process's resident set size in KiB.
pub fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}
