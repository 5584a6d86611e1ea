//! A quick reachability check of the hub (or of the proxy that stands before it), so
//! a missing model on a machine without network fails in seconds, not after the HTTP
//! client's long default timeouts. DNS and the TCP connection both run under one limit.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Proxy variables, in the order `ureq` (which `hf-hub` uses) reads them.
const PROXY_VARS: &[&str] = &[
    "ALL_PROXY",
    "all_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
];

/// `Ok` when a TCP connection to the endpoint's host (or the configured proxy) opens
/// within `timeout`; otherwise why not, in words.
pub fn check_reachable(endpoint: &str, timeout: Duration) -> Result<(), String> {
    let proxy = PROXY_VARS
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|p| !p.trim().is_empty()));
    let (target, what) = match &proxy {
        Some(p) => (p.as_str(), "proxy"),
        None => (endpoint, "hub"),
    };
    let (host, port) =
        host_port(target).ok_or_else(|| format!("cannot parse {what} URL {target:?}"))?;
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let (tx, rx) = mpsc::channel();
    // A thread, because name resolution has no timeout of its own; if it hangs, the
    // thread is left to finish on its own and we report the timeout.
    std::thread::spawn(move || {
        let _ = tx.send(connect(&host, port, timeout));
    });
    match rx.recv_timeout(timeout + Duration::from_millis(100)) {
        Ok(result) => result.map_err(|e| format!("connecting to {address} failed: {e}")),
        Err(_) => Err(format!(
            "connecting to {address} timed out after {:.1}s",
            timeout.as_secs_f64()
        )),
    }
}

fn connect(host: &str, port: u16, timeout: Duration) -> std::io::Result<()> {
    let start = Instant::now();
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address found");
    for addr in (host, port).to_socket_addrs()? {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "timed out",
            ));
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Host and port of `scheme://[user@]host[:port][/path]` (or a bare `host[:port]`).
fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("http".to_string(), url),
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let default_port = match scheme.as_str() {
        "https" => 443,
        "socks5" | "socks5h" | "socks4" | "socks4a" => 1080,
        _ => 80,
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').map(str::parse).transpose().ok()?;
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.parse().ok()?)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some((host, port.unwrap_or(default_port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let hp = |u: &str| host_port(u).unwrap();
        assert_eq!(hp("https://huggingface.co"), ("huggingface.co".into(), 443));
        assert_eq!(hp("http://127.0.0.1:9/x"), ("127.0.0.1".into(), 9));
        assert_eq!(hp("http://user:pw@proxy:3128"), ("proxy".into(), 3128));
        assert_eq!(hp("socks5://[::1]:1081"), ("::1".into(), 1081));
        assert_eq!(hp("mirror.local"), ("mirror.local".into(), 80));
        assert!(host_port("https://").is_none());
        assert!(host_port("http://h:notaport").is_none());
    }
}
