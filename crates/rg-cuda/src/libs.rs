//! Finding the CUDA libraries at run time.
//!
//! The driver (`libcuda.so.1`) comes with the NVIDIA driver and sits on the system
//! library path; cudarc finds it, and we ask it first (`is_culib_present`) because its
//! loader panics when the library is missing.
//!
//! cuBLAS and cuBLASLt come with a CUDA toolkit (or the `nvidia-cublas-cu12`/`-cu13` pip
//! wheels) and are often *not* on the library path: cudarc would look only for the
//! names of the version it was built for. So we search ourselves, CUDA 13 first, then
//! CUDA 12, in:
//! 1. `RG_CUDA_LIB_DIR` (one directory, for unusual installs);
//! 2. every entry of `LD_LIBRARY_PATH`;
//! 3. `$CUDA_HOME`, `$CUDA_PATH`, `$CUDA_ROOT` (their `lib64` and `lib`);
//! 4. `/usr/local/cuda/lib64`, then `/usr/local/cuda-*/lib64`, newest first;
//! 5. the distribution's directories (`/usr/lib/x86_64-linux-gnu`, `/usr/lib64`, ...);
//! 6. the `nvidia/cublas/lib` directory of pip wheels in the active virtual environment
//!    (`$VIRTUAL_ENV`, `$CONDA_PREFIX`) and the usual site-packages;
//! 7. finally the bare names, through the system loader (`ldconfig` cache).
//!
//! cuBLASLt is loaded from the same directory right before cuBLAS, because cuBLAS needs
//! it and the dynamic loader would not look in that directory by itself. When nothing
//! is found, the error lists every file name and directory that was tried.

use std::path::{Path, PathBuf};

/// CUDA major versions whose cuBLAS we accept, preferred first.
pub const CUBLAS_MAJORS: [u32; 2] = [13, 12];

/// Directories searched for cuBLAS, in order, given the environment `env` and the
/// directories that exist among the glob-like candidates (`list_dir` lists a directory's
/// entry names; injected so tests need no file system).
pub fn search_dirs(
    env: &dyn Fn(&str) -> Option<String>,
    list_dir: &dyn Fn(&Path) -> Vec<String>,
) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut push = |p: PathBuf| {
        if !p.as_os_str().is_empty() && !dirs.contains(&p) {
            dirs.push(p);
        }
    };
    if let Some(d) = env("RG_CUDA_LIB_DIR") {
        push(PathBuf::from(d));
    }
    if let Some(paths) = env("LD_LIBRARY_PATH") {
        for p in paths.split(':') {
            push(PathBuf::from(p));
        }
    }
    for var in ["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"] {
        if let Some(root) = env(var) {
            push(Path::new(&root).join("lib64"));
            push(Path::new(&root).join("lib"));
        }
    }
    push(PathBuf::from("/usr/local/cuda/lib64"));
    let mut versioned: Vec<String> = list_dir(Path::new("/usr/local"))
        .into_iter()
        .filter(|n| n.starts_with("cuda-"))
        .collect();
    versioned.sort_by_key(|n| std::cmp::Reverse(version_key(&n["cuda-".len()..])));
    for n in versioned {
        push(Path::new("/usr/local").join(n).join("lib64"));
    }
    for d in [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
    ] {
        push(PathBuf::from(d));
    }
    for prefix in ["VIRTUAL_ENV", "CONDA_PREFIX"]
        .iter()
        .filter_map(|v| env(v))
        .chain(["/usr/local".to_string(), "/usr".to_string()])
        .chain(env("HOME").map(|h| format!("{h}/.local")))
    {
        let lib = Path::new(&prefix).join("lib");
        let mut pythons: Vec<String> = list_dir(&lib)
            .into_iter()
            .filter(|n| n.starts_with("python3"))
            .collect();
        pythons.sort();
        for py in pythons.iter().rev() {
            for site in ["site-packages", "dist-packages"] {
                push(lib.join(py).join(site).join("nvidia/cublas/lib"));
                push(lib.join(py).join(site).join("nvidia/cu13/lib"));
            }
        }
    }
    dirs
}

/// `"12.4"` -> `[12, 4]`, for sorting toolkit directories newest first.
fn version_key(v: &str) -> Vec<u32> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// The file names of one library for one CUDA major version, e.g. `libcublas.so.13`.
pub fn file_name(stem: &str, major: u32) -> String {
    format!("lib{stem}.so.{major}")
}

/// A loaded cuBLAS: the library handles (cuBLASLt kept open for cuBLAS's sake) and
/// where they came from.
pub struct LoadedCublas {
    pub cublas: libloading::Library,
    pub cublas_lt: libloading::Library,
    pub path: PathBuf,
    pub major: u32,
}

/// Opens cuBLAS (and cuBLASLt) of CUDA 13 or 12, or says everything that was tried.
pub fn open_cublas() -> Result<LoadedCublas, String> {
    let dirs = search_dirs(&|v| std::env::var(v).ok(), &|p| {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    });
    let mut failures = Vec::new();
    for dir in &dirs {
        for major in CUBLAS_MAJORS {
            let (lt, blas) = (
                dir.join(file_name("cublasLt", major)),
                dir.join(file_name("cublas", major)),
            );
            if !blas.exists() {
                continue;
            }
            match open_pair(&lt, &blas) {
                Ok((cublas_lt, cublas)) => {
                    return Ok(LoadedCublas {
                        cublas,
                        cublas_lt,
                        path: blas,
                        major,
                    })
                }
                Err(e) => failures.push(e),
            }
        }
    }
    // Last, the system loader's own search (ldconfig cache, RPATH of the executable).
    for major in CUBLAS_MAJORS {
        let (lt, blas) = (file_name("cublasLt", major), file_name("cublas", major));
        if let Ok((cublas_lt, cublas)) = open_pair(Path::new(&lt), Path::new(&blas)) {
            return Ok(LoadedCublas {
                cublas,
                cublas_lt,
                path: PathBuf::from(blas),
                major,
            });
        }
    }
    Err(not_found_message(&dirs, &failures))
}

fn open_pair(lt: &Path, blas: &Path) -> Result<(libloading::Library, libloading::Library), String> {
    // SAFETY: loading a shared library runs its initialisers; cuBLAS's are sound.
    let open = |p: &Path| {
        unsafe { libloading::Library::new(p) }.map_err(|e| format!("{}: {e}", p.display()))
    };
    let lt = open(lt)?;
    let blas = open(blas)?;
    Ok((lt, blas))
}

/// The error text when no cuBLAS was found: every name and directory tried.
pub fn not_found_message(dirs: &[PathBuf], failures: &[String]) -> String {
    let names: Vec<String> = CUBLAS_MAJORS
        .iter()
        .flat_map(|&m| [file_name("cublas", m), file_name("cublasLt", m)])
        .collect();
    let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let mut msg = format!(
        "cuBLAS not found: looked for {} in {} and on the system library path; install a CUDA 12 or 13 toolkit \
         (or `pip install nvidia-cublas-cu12`), or point CUDA_HOME, LD_LIBRARY_PATH or RG_CUDA_LIB_DIR at its libraries",
        names.join(", "),
        dirs.join(", "),
    );
    if !failures.is_empty() {
        msg.push_str(&format!(
            "; found but failed to load: {}",
            failures.join("; ")
        ));
    }
    msg
}

/// The driver library names cudarc tries that exist on this platform (for the error
/// when none loads), without repeats.
pub fn driver_candidates() -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for n in cudarc::get_lib_name_candidates("cuda") {
        let native = !cfg!(unix) || n.starts_with("libcuda.so");
        if native && !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

/// Whether the NVIDIA driver library can be opened; cudarc's loader panics otherwise.
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the candidates.
    unsafe { cudarc::driver::sys::is_culib_present() }
}
