//! Finding `libnccl` before cudarc does: cudarc loads it on first use and panics when
//! it is missing, and it asks only for `libnccl.so` (plus CUDA-versioned names), while
//! pip wheels (`nvidia-nccl-cu12`) and distro packages often ship only `libnccl.so.2`.

use crate::{DistError, Result};

/// The names cudarc tries first; any one that loads is what cudarc will use.
const CUDARC_NAMES: &[&str] = &["libnccl.so", "libnccl.so.12", "libnccl.so.13"];
/// The runtime name NCCL 2 is installed under.
const RUNTIME_NAME: &str = "libnccl.so.2";

/// The name under which cudarc will find NCCL, or an error saying what to do.
pub fn find_libnccl() -> Result<&'static str> {
    find_among(CUDARC_NAMES, RUNTIME_NAME)
}

fn loads(name: &str) -> bool {
    // SAFETY: loading runs the library's initialisers; NCCL's only set up its state.
    unsafe { libloading::Library::new(name).is_ok() }
}

fn find_among(wanted: &[&'static str], runtime: &str) -> Result<&'static str> {
    if let Some(name) = wanted.iter().copied().find(|n| loads(n)) {
        return Ok(name);
    }
    let msg = if loads(runtime) {
        format!(
            "{runtime} is installed but the loader looks for {} only; make a link named \
             libnccl.so to it in a directory on LD_LIBRARY_PATH \
             (e.g. `ln -s /path/to/{runtime} ~/lib/libnccl.so`)",
            wanted.join(", ")
        )
    } else {
        format!(
            "NCCL is not installed or not on the library path (tried {} and {runtime}); \
             install libnccl2 or the nvidia-nccl-cu12 wheel and add its lib directory to \
             LD_LIBRARY_PATH",
            wanted.join(", ")
        )
    };
    Err(DistError::unavailable("nccl", msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_library_is_an_error_naming_what_was_tried() {
        let err = find_among(&["librg-no-such-nccl.so"], "librg-no-such-nccl.so.2")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("nccl: NCCL is not installed"), "{err}");
        assert!(err.contains("librg-no-such-nccl.so.2"), "{err}");
    }

    #[test]
    fn runtime_name_only_explains_the_link_to_make() {
        // libc is always loadable: it stands for a `libnccl.so.2` that exists while
        // the names the loader wants do not.
        let err = find_among(&["librg-no-such-nccl.so"], "libc.so.6")
            .unwrap_err()
            .to_string();
        assert!(err.contains("libc.so.6 is installed"), "{err}");
        assert!(err.contains("ln -s"), "{err}");
    }

    #[test]
    fn a_loadable_name_is_returned() {
        assert_eq!(find_among(&["libc.so.6"], "unused").unwrap(), "libc.so.6");
    }
}
