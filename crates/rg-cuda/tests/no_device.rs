//! Without a driver or GPU, opening CUDA is an error that says what is missing, not a
//! panic; with one, the backend describes itself.

use rg_core::{Device, Error, Tensor};
use rg_cuda as _;

#[test]
fn cuda_is_available_or_a_clear_error() {
    match Device::cuda(0) {
        Ok(device) => {
            let b = rg_cuda::CudaBackend::shared(0).unwrap();
            println!("CUDA device: {}", b.describe());
            let t = Tensor::from_vec(vec![1f32, 2.0, 3.0], [3], &device).unwrap();
            assert_eq!(t.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0]);
        }
        Err(e) => {
            if std::env::var("RG_REQUIRE_CUDA").is_ok_and(|v| v == "1") {
                panic!("RG_REQUIRE_CUDA=1 but CUDA is unavailable: {e}");
            }
            let msg = e.to_string();
            println!("skipped: no CUDA device ({msg})");
            assert!(
                matches!(
                    e,
                    Error::BackendUnavailable {
                        device: Device::Cuda(0),
                        ..
                    }
                ),
                "{e:?}"
            );
            // Names what is missing: the driver library (with the names tried), the
            // device, or cuBLAS (with the directories searched).
            assert!(
                msg.contains("libcuda")
                    || msg.contains("no CUDA device")
                    || msg.contains("cuBLAS")
                    || msg.contains("compute capability"),
                "{msg}"
            );
        }
    }
}

#[test]
fn a_missing_device_ordinal_is_an_error() {
    // Ordinal 4096 never exists: the error names the ordinal or what is missing.
    let e = Device::cuda(4096).unwrap_err().to_string();
    assert!(e.contains("cuda:4096"), "{e}");
}

#[test]
fn the_cublas_search_lists_what_it_tried() {
    let dirs = rg_cuda::libs::search_dirs(
        &|v| match v {
            "LD_LIBRARY_PATH" => Some("/opt/a:/opt/b".into()),
            "CUDA_HOME" => Some("/opt/cuda".into()),
            "VIRTUAL_ENV" => Some("/venv".into()),
            _ => None,
        },
        &|p| match p.to_str() {
            Some("/usr/local") => vec!["cuda-12.4".into(), "cuda-13.0".into(), "bin".into()],
            Some("/venv/lib") => vec!["python3.11".into()],
            _ => vec![],
        },
    );
    let s: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let pos = |x: &str| {
        s.iter()
            .position(|d| d == x)
            .unwrap_or_else(|| panic!("{x} not in {s:?}"))
    };
    assert!(pos("/opt/a") < pos("/opt/b"));
    assert!(pos("/opt/b") < pos("/opt/cuda/lib64"));
    assert!(pos("/opt/cuda/lib64") < pos("/usr/local/cuda/lib64"));
    assert!(pos("/usr/local/cuda/lib64") < pos("/usr/local/cuda-13.0/lib64"));
    assert!(
        pos("/usr/local/cuda-13.0/lib64") < pos("/usr/local/cuda-12.4/lib64"),
        "newest toolkit first"
    );
    pos("/usr/lib/x86_64-linux-gnu");
    pos("/venv/lib/python3.11/site-packages/nvidia/cublas/lib");
    assert_eq!(rg_cuda::libs::file_name("cublas", 13), "libcublas.so.13");
    let msg = rg_cuda::libs::not_found_message(&dirs, &[]);
    for needle in [
        "libcublas.so.13",
        "libcublas.so.12",
        "libcublasLt.so.13",
        "/opt/cuda/lib64",
        "/usr/local/cuda/lib64",
        "CUDA_HOME",
    ] {
        assert!(msg.contains(needle), "{needle} missing from: {msg}");
    }
}
