//! [`HubOptions`]: where the Hugging Face cache is, whether the network may be used,
//! and how long to wait for it. Every field left `None` is read from the environment
//! the way `huggingface_hub` reads it, so tests can pin all of them without touching
//! the process environment.

use std::path::PathBuf;
use std::time::Duration;

/// The hub used when neither [`HubOptions::endpoint`] nor `HF_ENDPOINT` says otherwise.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// How long the reachability check waits for DNS and a TCP connection by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Default)]
pub struct HubOptions {
    /// The hub cache (the folder holding `models--owner--name`). `None`:
    /// `HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
    pub cache_dir: Option<PathBuf>,
    /// Never touch the network. `None`: `HF_HUB_OFFLINE` (`1`, `true`, `yes`, `on`).
    pub offline: Option<bool>,
    /// The hub's base URL. `None`: `HF_ENDPOINT`, else [`DEFAULT_ENDPOINT`].
    pub endpoint: Option<String>,
    /// Limit on reaching the hub before a missing model is reported as unreachable.
    /// `None`: [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Option<Duration>,
    /// Draw download progress bars on stderr.
    pub progress: bool,
}

impl HubOptions {
    /// Options that use only the cache at `cache_dir` and never the network.
    pub fn offline_cache(cache_dir: impl Into<PathBuf>) -> Self {
        HubOptions {
            cache_dir: Some(cache_dir.into()),
            offline: Some(true),
            ..HubOptions::default()
        }
    }

    /// The hub cache directory these options name.
    pub fn cache_dir(&self) -> PathBuf {
        if let Some(dir) = &self.cache_dir {
            return dir.clone();
        }
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(dir) = var("HF_HUB_CACHE").or_else(|| var("HUGGINGFACE_HUB_CACHE")) {
            return PathBuf::from(dir);
        }
        if let Some(home) = var("HF_HOME") {
            return PathBuf::from(home).join("hub");
        }
        let cache = var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .or_else(|| var("USERPROFILE").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from(".cache"));
        cache.join("huggingface").join("hub")
    }

    /// Why the network is off limits, or `None` when it may be used.
    pub fn offline_reason(&self) -> Option<String> {
        match self.offline {
            Some(true) => Some("offline mode".into()),
            Some(false) => None,
            None => {
                let value = std::env::var("HF_HUB_OFFLINE").ok()?;
                let on = matches!(
                    value.trim().to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                );
                on.then(|| format!("HF_HUB_OFFLINE={}", value.trim()))
            }
        }
    }

    /// The hub's base URL, without a trailing slash.
    pub fn endpoint(&self) -> String {
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| std::env::var("HF_ENDPOINT").ok().filter(|e| !e.is_empty()))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        endpoint.trim_end_matches('/').to_string()
    }

    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)
    }
}
