//! Hub ids resolved through the Hugging Face cache, offline: a cached snapshot loads,
//! a missing model fails fast with a message that says what to download. Every cache
//! here is a temporary directory; the process environment is not changed (the one
//! test of the environment variables runs in a child process).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use rg_core::Device;
use rg_cpu as _;
use rg_hub::{load_model, resolve_model, HubId, HubOptions, ModelSource};

fn id(repo: &str) -> HubId {
    HubId {
        repo: repo.into(),
        revision: "main".into(),
    }
}

#[test]
fn cached_snapshot_resolves_offline_and_loads() {
    let Some(shared) = shared_dir() else { return };
    let cache = tempfile::tempdir().unwrap();
    let snapshot = fake_cache(&shared, cache.path(), "gpt2", ALL_FILES);
    let options = HubOptions::offline_cache(cache.path());

    let files = resolve_model("gpt2", &options).unwrap();
    assert_eq!(files.dir, snapshot);
    assert_eq!(files.source, ModelSource::HubCache { id: id("gpt2") });

    let loaded = load_model("gpt2", &Device::Cpu, &options).unwrap();
    assert_matches_fixture(&shared, &loaded.model);
    assert_eq!(
        loaded.tokenizer.encode("Hello, my name is"),
        [15496, 11, 616, 1438, 318]
    );
}

#[test]
fn renamed_repositories_are_found_under_either_name() {
    let Some(shared) = shared_dir() else { return };
    let cache = tempfile::tempdir().unwrap();
    let options = HubOptions::offline_cache(cache.path());
    let gpt2 = fake_cache(&shared, cache.path(), "openai-community/gpt2", ALL_FILES);
    let distil = fake_cache(&shared, cache.path(), "distilgpt2", ALL_FILES);
    assert_eq!(resolve_model("gpt2", &options).unwrap().dir, gpt2);
    assert_eq!(
        resolve_model("distilbert/distilgpt2", &options)
            .unwrap()
            .dir,
        distil
    );
    let files = resolve_model("distilgpt2", &options).unwrap();
    assert_eq!(
        files.source,
        ModelSource::HubCache {
            id: id("distilgpt2")
        }
    );
}

#[test]
fn revisions_pick_their_snapshot() {
    let Some(shared) = shared_dir() else { return };
    let cache = tempfile::tempdir().unwrap();
    let snapshot = fake_cache(&shared, cache.path(), "me/tiny", ALL_FILES);
    let commit = snapshot.file_name().unwrap().to_str().unwrap().to_string();
    let options = HubOptions::offline_cache(cache.path());
    let files = resolve_model(&format!("me/tiny@{commit}"), &options).unwrap();
    assert_eq!(files.dir, snapshot);
    let err = err_of(resolve_model("me/tiny@v2", &options));
    assert!(
        err.contains("download it with `huggingface-cli download me/tiny --revision v2`"),
        "{err}"
    );
}

#[test]
fn missing_model_offline_fails_fast_saying_what_to_download() {
    let cache = tempfile::tempdir().unwrap();
    let options = HubOptions::offline_cache(cache.path());
    let start = Instant::now();
    let err = err_of(resolve_model("gpt2", &options));
    let elapsed = start.elapsed();
    assert_eq!(
        err,
        format!(
            "model \"gpt2\" is not in the Hugging Face cache at {} and the hub cannot be \
             reached (offline mode); download it with `huggingface-cli download gpt2` or \
             pass a local directory",
            cache.path().display()
        )
    );
    assert!(elapsed < Duration::from_millis(200), "took {elapsed:?}");

    let start = Instant::now();
    let err = err_of(load_model("owner/some-model", &Device::Cpu, &options));
    assert!(start.elapsed() < Duration::from_millis(200));
    assert!(
        err.contains("`huggingface-cli download owner/some-model`"),
        "{err}"
    );
}

#[test]
fn incomplete_snapshot_offline_names_what_is_missing() {
    let Some(shared) = shared_dir() else { return };
    let cache = tempfile::tempdir().unwrap();
    let snapshot = fake_cache(
        &shared,
        cache.path(),
        "gpt2",
        &["config.json", "tokenizer.json"],
    );
    let err = err_of(resolve_model(
        "gpt2",
        &HubOptions::offline_cache(cache.path()),
    ));
    assert!(err.contains(&snapshot.display().to_string()), "{err}");
    assert!(err.contains("is incomplete (no weights"), "{err}");
    assert!(err.contains("`huggingface-cli download gpt2`"), "{err}");
}

#[test]
fn unreachable_hub_fails_fast() {
    without_proxies("unreachable_hub_fails_fast", || {
        let cache = tempfile::tempdir().unwrap();
        let options = HubOptions {
            cache_dir: Some(cache.path().to_path_buf()),
            offline: Some(false),
            // Port 9 (discard) on loopback: refused at once on any normal machine.
            endpoint: Some("http://127.0.0.1:9".into()),
            connect_timeout: Some(Duration::from_millis(500)),
            progress: false,
        };
        let start = Instant::now();
        let err = err_of(resolve_model("gpt2", &options));
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "took {:?}",
            start.elapsed()
        );
        let why = if cfg!(feature = "download") {
            "connecting to 127.0.0.1:9"
        } else {
            "built without its `download` feature"
        };
        assert!(
            err.contains("is not in the Hugging Face cache")
                && err.contains(why)
                && err.contains("`huggingface-cli download gpt2`"),
            "{err}"
        );
    });
}

/// `HF_HUB_OFFLINE` and `HF_HUB_CACHE` are read when the options leave them open.
/// Runs this same test binary again as a child with those variables set, so the
/// environment of the test process itself never changes.
#[test]
fn environment_variables_choose_cache_and_offline_mode() {
    const CHILD: &str = "RG_HUB_TEST_CHILD";
    if let Some(expect_cache) = std::env::var_os(CHILD) {
        let options = HubOptions::default();
        assert_eq!(options.cache_dir(), Path::new(&expect_cache));
        assert_eq!(
            options.offline_reason().as_deref(),
            Some("HF_HUB_OFFLINE=1")
        );
        let err = err_of(resolve_model("gpt2", &options));
        println!("CHILD-ERROR: {err}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run_child = |expect_cache: &Path, vars: &[(&str, &Path)]| {
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "--exact",
                "environment_variables_choose_cache_and_offline_mode",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, expect_cache)
            .env("HF_HUB_OFFLINE", "1")
            .env_remove("HF_HUB_CACHE")
            .env_remove("HUGGINGFACE_HUB_CACHE")
            .env_remove("HF_HOME");
        for (k, v) in vars {
            command.env(k, v);
        }
        let out = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want = format!(
            "CHILD-ERROR: model \"gpt2\" is not in the Hugging Face cache at {} and the hub \
             cannot be reached (HF_HUB_OFFLINE=1); download it with `huggingface-cli download \
             gpt2` or pass a local directory",
            expect_cache.display()
        );
        assert!(stdout.contains(&want), "{stdout}");
    };
    let hub_cache = tmp.path().join("hub-cache");
    run_child(&hub_cache, &[("HF_HUB_CACHE", &hub_cache)]);
    let hf_home = tmp.path().join("hf-home");
    run_child(&hf_home.join("hub"), &[("HF_HOME", &hf_home)]);
}
