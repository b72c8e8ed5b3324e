//! Dashboard viewers for `shoal bench --dashboard-viewers N`: each holds the dashboard's
//! event stream open over plain HTTP, as a browser's `EventSource` does, and counts the
//! bytes of every update it receives. Also reads what the scheduler says it spent on the
//! dashboard (`/metrics`) and the scheduler process's CPU time (`/proc`).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sizes in bytes of the updates (`data:` payloads) one viewer received, in order.
pub type Sizes = Arc<Mutex<Vec<usize>>>;

/// Starts a viewer of the dashboard at `http` (host:port); it runs until aborted.
pub fn spawn(http: String, token: String) -> (tokio::task::JoinHandle<()>, Sizes) {
    let sizes: Sizes = Arc::default();
    let out = Arc::clone(&sizes);
    let task = tokio::spawn(async move {
        let Ok(mut stream) = TcpStream::connect(&http).await else {
            return;
        };
        let request = format!(
            "GET /api/v1/dashboard/events HTTP/1.1\r\nHost: {http}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        );
        if stream.write_all(request.as_bytes()).await.is_err() {
            return;
        }
        let mut pending = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            pending.extend_from_slice(&buf[..n]);
            while let Some(end) = find(&pending, b"\n\n") {
                let event: Vec<u8> = pending.drain(..end + 2).collect();
                let data: usize = String::from_utf8_lossy(&event)
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::len)
                    .sum();
                if data > 0
                    && let Ok(mut s) = out.lock()
                {
                    s.push(data);
                }
            }
        }
    });
    (task, sizes)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `shoal_scheduler_dashboard_seconds_total` from the scheduler's `/metrics`.
pub async fn dashboard_seconds(http: &str) -> f64 {
    let Ok(mut stream) = TcpStream::connect(http).await else {
        return 0.0;
    };
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {http}\r\n\r\n");
    let mut text = String::new();
    if stream.write_all(request.as_bytes()).await.is_err()
        || stream.read_to_string(&mut text).await.is_err()
    {
        return 0.0;
    }
    text.lines()
        .find_map(|l| l.strip_prefix("shoal_scheduler_dashboard_seconds_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// User + system CPU seconds of a process (`/proc/<pid>/stat`, 100 ticks a second).
pub fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0)
}
