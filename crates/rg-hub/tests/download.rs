//! Downloads through `hf-hub`, against a stand-in hub: a small HTTP server on the
//! loopback interface that answers the two requests `hf-hub` makes (the repository
//! listing and `resolve/<revision>/<file>` with byte ranges). Nothing leaves the
//! machine.
#![cfg(feature = "download")]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rg_core::Device;
use rg_cpu as _;
use rg_hub::{load_model, resolve_model, HubId, HubOptions, ModelSource, WeightFiles};

const COMMIT: &str = "feedfacefeedfacefeedfacefeedfacefeedface";

/// Serves the files of `repos` (repository id -> folder) until the test ends.
struct FakeHub {
    url: String,
    requests: Arc<AtomicUsize>,
}

impl FakeHub {
    fn start(repos: BTreeMap<String, PathBuf>) -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                let repos = repos.clone();
                std::thread::spawn(move || serve(stream, &repos));
            }
        });
        FakeHub { url, requests }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn serve(mut stream: TcpStream, repos: &BTreeMap<String, PathBuf>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    let mut range: Option<(usize, Option<usize>)> = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let (start, end) = v.trim().split_once('-').unwrap_or((v.trim(), ""));
            range = Some((start.parse().unwrap_or(0), end.parse().ok()));
        }
    }
    let (status, headers, body) = respond(&path, range, repos);
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
}

fn respond(
    path: &str,
    range: Option<(usize, Option<usize>)>,
    repos: &BTreeMap<String, PathBuf>,
) -> (&'static str, Vec<(String, String)>, Vec<u8>) {
    let not_found = ("404 Not Found", vec![], b"not found".to_vec());
    for (repo, dir) in repos {
        if path == format!("/api/models/{repo}/revision/main") {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            let siblings: Vec<_> = names
                .iter()
                .map(|n| serde_json::json!({ "rfilename": n }))
                .collect();
            let body = serde_json::json!({"siblings": siblings, "sha": COMMIT}).to_string();
            let headers = vec![("Content-Type".into(), "application/json".into())];
            return ("200 OK", headers, body.into_bytes());
        }
        if let Some(file) = path.strip_prefix(&format!("/{repo}/resolve/main/")) {
            let Ok(bytes) = std::fs::read(dir.join(file)) else {
                return not_found;
            };
            // `bytes=0-0` is hf-hub's metadata probe, `bytes=N-` a (resumed) download.
            let (start, end) = match range {
                Some((start, Some(end))) => (start, end + 1),
                Some((start, None)) => (start, bytes.len()),
                None => (0, bytes.len()),
            };
            let (start, end) = (start.min(bytes.len()), end.min(bytes.len()));
            let body = bytes[start..end.max(start)].to_vec();
            let last = start + body.len().saturating_sub(1);
            let headers = vec![
                ("X-Repo-Commit".into(), COMMIT.into()),
                (
                    "ETag".into(),
                    format!("\"etag-{repo}-{file}\"").replace('/', "-"),
                ),
                (
                    "Content-Range".into(),
                    format!("bytes {start}-{last}/{}", bytes.len()),
                ),
            ];
            return ("206 Partial Content", headers, body);
        }
    }
    not_found
}

fn options(cache: &Path, hub: &FakeHub) -> HubOptions {
    HubOptions {
        cache_dir: Some(cache.to_path_buf()),
        offline: Some(false),
        endpoint: Some(hub.url.clone()),
        connect_timeout: Some(Duration::from_secs(2)),
        progress: false,
    }
}

#[test]
fn a_missing_model_is_downloaded_into_the_cache_once() {
    without_proxies("a_missing_model_is_downloaded_into_the_cache_once", || {
        let Some(shared) = shared_dir() else { return };
        let tmp = tempfile::tempdir().unwrap();
        let repo_dir = copy_model(&shared, &tmp.path().join("repo"), ALL_FILES);
        std::fs::write(repo_dir.join("pytorch_model.bin"), b"never fetched").unwrap();
        let hub = FakeHub::start(BTreeMap::from([("me/tiny".to_string(), repo_dir)]));
        let cache = tmp.path().join("cache");
        let options = options(&cache, &hub);

        let loaded = load_model("me/tiny", &Device::Cpu, &options).unwrap();
        assert_matches_fixture(&shared, &loaded.model);
        let snapshot = cache.join("models--me--tiny/snapshots").join(COMMIT);
        assert_eq!(loaded.dir, snapshot);
        assert!(!snapshot.join("pytorch_model.bin").exists());
        assert_eq!(
            std::fs::read_to_string(cache.join("models--me--tiny/refs/main")).unwrap(),
            COMMIT
        );

        // Now cached: resolved without a single request, offline or not.
        let before = hub.requests();
        let files = resolve_model("me/tiny", &options).unwrap();
        assert_eq!(
            files.source,
            ModelSource::HubCache {
                id: HubId {
                    repo: "me/tiny".into(),
                    revision: "main".into()
                }
            }
        );
        resolve_model("me/tiny", &HubOptions::offline_cache(&cache)).unwrap();
        assert_eq!(hub.requests(), before);
    });
}

#[test]
fn sharded_repositories_download_every_shard() {
    without_proxies("sharded_repositories_download_every_shard", || {
        let Some(shared) = shared_dir() else { return };
        let tmp = tempfile::tempdir().unwrap();
        let repo_dir = copy_model(
            &shared,
            &tmp.path().join("repo"),
            &["config.json", "vocab.json", "merges.txt"],
        );
        let entries = fixture_entries(&shared);
        let (a, b) = entries.split_at(5);
        write_sharded(&repo_dir, &[a.to_vec(), b.to_vec()], None);
        let hub = FakeHub::start(BTreeMap::from([("me/sharded".to_string(), repo_dir)]));
        let cache = tmp.path().join("cache");

        let files = resolve_model("me/sharded", &options(&cache, &hub)).unwrap();
        assert!(matches!(files.source, ModelSource::Downloaded { .. }));
        let WeightFiles::Sharded { shards, .. } = &files.weights else {
            panic!("{:?}", files.weights)
        };
        assert_eq!(shards.len(), 2);
        let loaded = load_model(
            "me/sharded",
            &Device::Cpu,
            &HubOptions::offline_cache(&cache),
        )
        .unwrap();
        assert_matches_fixture(&shared, &loaded.model);
    });
}

#[test]
fn hub_side_problems_are_explained() {
    without_proxies("hub_side_problems_are_explained", || {
        let Some(shared) = shared_dir() else { return };
        let tmp = tempfile::tempdir().unwrap();
        let pickles = tmp.path().join("pickles");
        copy_model(&shared, &pickles, &["config.json", "tokenizer.json"]);
        std::fs::write(pickles.join("pytorch_model.bin"), b"pickle").unwrap();
        let hub = FakeHub::start(BTreeMap::from([("me/pickles".to_string(), pickles)]));
        let cache = tmp.path().join("cache");

        let err = err_of(resolve_model("me/absent", &options(&cache, &hub)));
        assert_eq!(
            err,
            "model \"me/absent\": me/absent on the hub: cannot list its files: no such model, \
             revision or file on the hub"
        );
        let err = err_of(resolve_model("me/pickles", &options(&cache, &hub)));
        assert!(
            err.contains("only safetensors are supported (the repository has: pytorch_model.bin)"),
            "{err}"
        );
    });
}
