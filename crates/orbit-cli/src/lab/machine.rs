//! Where and when a lab run happened, for the report's header: Orbit's version, the
//! date (UTC), the CPU count, the host name and the CPU model (from `/proc/cpuinfo`).
//! Anything the system does not tell is printed as `unknown`, never an error.

use std::time::{SystemTime, UNIX_EPOCH};

/// The machine and moment of a run.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Orbit's version (the workspace version this binary was built from).
    pub version: &'static str,
    /// When the report was written, `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    /// CPUs this process may run on.
    pub cpus: usize,
    /// The host name.
    pub hostname: String,
    /// The CPU model.
    pub cpu_model: String,
}

impl Machine {
    /// Reads the current machine.
    pub fn current() -> Machine {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Machine {
            version: env!("CARGO_PKG_VERSION"),
            date: utc_date(secs),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            hostname: hostname().unwrap_or_else(|| "unknown".into()),
            cpu_model: cpu_model().unwrap_or_else(|| "unknown".into()),
        }
    }
}

fn hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| matches!(k.trim(), "model name" | "Hardware" | "cpu model" | "uarch"))
        .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
}

/// `secs` since the Unix epoch as `YYYY-MM-DD HH:MM UTC` (the proleptic Gregorian
/// calendar, from Howard Hinnant's `civil_from_days`).
pub fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::utc_date;

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_798_400_000), "2026-12-27 19:33 UTC");
    }
}
