//! What `/proc` tells about a process: CPU time (user + system), resident memory, its limit on
//! open files, and which process listens on a TCP port.

use std::path::Path;

/// Linux reports CPU times in USER_HZ, which is 100 on every architecture Linux runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU seconds of `pid` (all threads), or `None` if it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    stat_cpu(&format!("/proc/{pid}/stat"))
}

/// User + system CPU seconds of this process.
pub fn self_cpu_seconds() -> f64 {
    stat_cpu("/proc/self/stat").unwrap_or(0.0)
}

fn stat_cpu(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_ascii_whitespace();
    // After ')': state(3) ppid(4) ... utime is field 14, stime 15 (1-based over the whole line).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// CPU seconds the whole machine spent, from `/proc/stat`: `(busy outside softirq, softirq)`.
/// Loopback TCP is processed in softirq, which the kernel does not charge to any process.
pub fn machine_cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let t: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy = t.first()? + t.get(1)? + t.get(2)? + t.get(5)? + t.get(7)?;
    let softirq = *t.get(6)?;
    Some((
        busy as f64 / TICKS_PER_SECOND,
        softirq as f64 / TICKS_PER_SECOND,
    ))
}

/// `VmRSS` and `VmHWM` (peak) of `pid` in bytes.
pub fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets `pid`'s peak RSS (`VmHWM`) to its current RSS; false when not permitted.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// The soft limit on open files of `pid`.
pub fn open_files_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The process listening on TCP `port` (IPv4 or IPv6), found through the socket inode.
pub fn find_listener(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            // f[1] = local "ADDR:PORT" in hex, f[3] = state (0A = LISTEN), f[9] = inode.
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let listening = *state == "0A";
            let port_matches = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
                == Some(port);
            if listening && port_matches {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| Path::new(i) == target)
            {
                return Some(pid);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).is_some());
        assert!(machine_cpu_seconds().expect("/proc/stat").0 > 0.0);
        let (rss, hwm) = memory(pid).expect("status readable");
        assert!(rss > 0 && hwm >= rss);
        assert!(open_files_limit(pid).expect("limits readable") > 0);
    }

    #[test]
    fn finds_the_listener_on_a_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert_eq!(find_listener(port), Some(std::process::id()));
    }
}
