//! The access log: one line per request, written by a dedicated thread so the request path
//! never blocks on output. When the writer falls behind by more than [`QUEUE`] lines, lines
//! are dropped and counted rather than slowing requests down; `/metrics` shows the count as
//! `weir_access_log_dropped_total`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use super::config::{AccessLogConfig, AccessLogFormat, AccessLogTarget};

const QUEUE: usize = 16 * 1024;

/// Everything one access log line says about a request.
#[derive(Debug, Default)]
pub(crate) struct LogRecord {
    pub(crate) request_id: String,
    pub(crate) method: String,
    pub(crate) authority: String,
    pub(crate) path: String,
    pub(crate) protocol: &'static str,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) route: String,
    pub(crate) cluster: String,
    pub(crate) endpoint: Option<SocketAddr>,
    pub(crate) status: u16,
    /// Time to upstream response headers, when an upstream answered.
    pub(crate) upstream: Option<Duration>,
    pub(crate) duration: Duration,
    pub(crate) error: &'static str,
}

/// Access log sink.
pub(crate) struct AccessLog {
    format: AccessLogFormat,
    tx: Option<mpsc::SyncSender<String>>,
    dropped: AtomicU64,
}

impl AccessLog {
    /// Starts the writer thread for `config` (none when the log is off). A file that cannot
    /// be opened turns the log off with an error message.
    pub(crate) fn start(config: &AccessLogConfig) -> Self {
        let sink: Option<Box<dyn std::io::Write + Send>> = match &config.target {
            AccessLogTarget::Off => None,
            AccessLogTarget::Stdout => Some(Box::new(std::io::stdout())),
            AccessLogTarget::File(path) => match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(f) => Some(Box::new(f)),
                Err(error) => {
                    tracing::error!(%error, path = %path.display(), "cannot open access log; access log off");
                    None
                }
            },
        };
        Self::with_sink(config.format, sink, QUEUE)
    }

    /// Starts the writer thread over `sink` with room for `queue` lines.
    fn with_sink(
        format: AccessLogFormat,
        sink: Option<Box<dyn std::io::Write + Send>>,
        queue: usize,
    ) -> Self {
        let tx = sink.and_then(|sink| {
            let (tx, rx) = mpsc::sync_channel::<String>(queue);
            let spawned = std::thread::Builder::new()
                .name("weir-access-log".into())
                .spawn(move || write_lines(rx, sink));
            match spawned {
                Ok(_) => Some(tx),
                Err(error) => {
                    tracing::error!(%error, "cannot start the access log thread; access log off");
                    None
                }
            }
        });
        AccessLog {
            format,
            tx,
            dropped: AtomicU64::new(0),
        }
    }

    /// Lines dropped so far because the writer had fallen behind.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether lines are written at all (records are only built when they are).
    pub(crate) fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    pub(crate) fn write(&self, rec: &LogRecord) {
        let Some(tx) = &self.tx else { return };
        let line = match self.format {
            AccessLogFormat::Json => json_line(rec),
            AccessLogFormat::Text => text_line(rec),
        };
        if tx.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn write_lines(rx: mpsc::Receiver<String>, sink: Box<dyn std::io::Write + Send>) {
    let mut out = std::io::BufWriter::new(sink);
    while let Ok(line) = rx.recv() {
        let _ = out.write_all(line.as_bytes());
        // Flush when the queue is empty so lines appear promptly without a write per line.
        while let Ok(more) = rx.try_recv() {
            let _ = out.write_all(more.as_bytes());
        }
        let _ = out.flush();
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

fn timestamp() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub(crate) fn json_line(r: &LogRecord) -> String {
    let v = serde_json::json!({
        "ts": timestamp(),
        "request_id": r.request_id,
        "method": r.method,
        "authority": r.authority,
        "path": r.path,
        "protocol": r.protocol,
        "peer": r.peer.map(|p| p.to_string()),
        "route": r.route,
        "cluster": r.cluster,
        "endpoint": r.endpoint.map(|e| e.to_string()),
        "status": r.status,
        "upstream_ms": r.upstream.map(ms),
        "duration_ms": ms(r.duration),
        "error": if r.error.is_empty() { None } else { Some(r.error) },
    });
    let mut s = v.to_string();
    s.push('\n');
    s
}

pub(crate) fn text_line(r: &LogRecord) -> String {
    let mut s = String::with_capacity(256);
    let _ = write!(
        s,
        "ts={:.3} request_id={} method={} authority={:?} path={:?} protocol={} peer={} route={:?} cluster={:?} endpoint={} status={} upstream_ms={} duration_ms={:.3}",
        timestamp(),
        r.request_id,
        r.method,
        r.authority,
        r.path,
        r.protocol,
        r.peer.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
        r.route,
        r.cluster,
        r.endpoint
            .map(|e| e.to_string())
            .unwrap_or_else(|| "-".into()),
        r.status,
        r.upstream
            .map(|d| format!("{:.3}", ms(d)))
            .unwrap_or_else(|| "-".into()),
        ms(r.duration),
    );
    if !r.error.is_empty() {
        let _ = write!(s, " error={}", r.error);
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A sink that reports each write and then blocks until released: a disk that stalls.
    struct Stalled {
        entered: mpsc::Sender<()>,
        release: Arc<Mutex<mpsc::Receiver<()>>>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl std::io::Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.entered.send(());
            let _ = self.release.lock().expect("lock").recv();
            self.written.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_beyond_the_queue_are_dropped_and_counted_while_the_writer_is_stuck() {
        let (entered_tx, entered) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = Stalled {
            entered: entered_tx,
            release: Arc::new(Mutex::new(release_rx)),
            written: written.clone(),
        };
        let log = AccessLog::with_sink(AccessLogFormat::Text, Some(Box::new(sink)), 4);
        let rec = |status| LogRecord {
            status,
            ..LogRecord::default()
        };
        // The writer takes the first line and stalls in the sink ...
        log.write(&rec(200));
        entered
            .recv_timeout(Duration::from_secs(10))
            .expect("the writer reached the sink");
        // ... so four lines fill the queue and the next three are dropped, not waited for.
        for _ in 0..7 {
            log.write(&rec(201));
        }
        assert_eq!(log.dropped(), 3);
        // Released, the writer catches up with everything that was queued.
        for _ in 0..8 {
            let _ = release.send(());
        }
        drop(release);
        for _ in 0..1000 {
            let text = String::from_utf8(written.lock().expect("lock").clone()).expect("utf8");
            if text.lines().count() == 5 {
                assert_eq!(text.matches("status=201").count(), 4);
                assert_eq!(log.dropped(), 3);
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("queued lines were not written");
    }

    #[test]
    fn json_line_carries_route_cluster_endpoint_status_and_request_id() {
        let rec = LogRecord {
            request_id: "abc".into(),
            method: "GET".into(),
            route: "default/web/0/0".into(),
            cluster: "default/web:80".into(),
            endpoint: Some("127.0.0.1:8080".parse().expect("addr")),
            status: 200,
            upstream: Some(Duration::from_millis(2)),
            duration: Duration::from_millis(3),
            ..LogRecord::default()
        };
        let line = json_line(&rec);
        assert!(line.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["request_id"], "abc");
        assert_eq!(v["route"], "default/web/0/0");
        assert_eq!(v["cluster"], "default/web:80");
        assert_eq!(v["endpoint"], "127.0.0.1:8080");
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_ms"], 3.0);
    }
}
