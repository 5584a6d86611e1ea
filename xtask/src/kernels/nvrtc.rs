//! NVRTC, loaded at run time from the path the toolkit discovery found (the pip wheel's
//! `libnvrtc.so.12`), so the xtask builds and runs without CUDA installed and only
//! `cargo xtask kernels` needs the wheel.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;
use std::ptr;

use anyhow::{bail, Context, Result};
use libloading::Library;

type NvrtcResult = c_int;
type Program = *mut c_void;

/// The NVRTC entry points we call, resolved once.
pub struct Nvrtc {
    version: unsafe extern "C" fn(*mut c_int, *mut c_int) -> NvrtcResult,
    error_string: unsafe extern "C" fn(NvrtcResult) -> *const c_char,
    create: unsafe extern "C" fn(
        *mut Program,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> NvrtcResult,
    compile: unsafe extern "C" fn(Program, c_int, *const *const c_char) -> NvrtcResult,
    ptx_size: unsafe extern "C" fn(Program, *mut usize) -> NvrtcResult,
    ptx: unsafe extern "C" fn(Program, *mut c_char) -> NvrtcResult,
    log_size: unsafe extern "C" fn(Program, *mut usize) -> NvrtcResult,
    log: unsafe extern "C" fn(Program, *mut c_char) -> NvrtcResult,
    destroy: unsafe extern "C" fn(*mut Program) -> NvrtcResult,
    // Keeps the function pointers above valid.
    _lib: Library,
}

/// Successful output of one compilation: the PTX and NVRTC's log (warnings).
pub struct Compiled {
    pub ptx: Vec<u8>,
    pub log: String,
}

impl Nvrtc {
    pub fn load(path: &Path) -> Result<Nvrtc> {
        // SAFETY: loading NVRTC runs only its own initialisers; the symbols below are
        // NVRTC's documented C API with these exact signatures (nvrtc.h, CUDA 12).
        unsafe {
            let lib = Library::new(path)
                .with_context(|| format!("loading NVRTC from {}", path.display()))?;
            macro_rules! sym {
                ($name:literal) => {
                    *lib.get($name).with_context(|| {
                        format!(
                            "{} has no {}",
                            path.display(),
                            String::from_utf8_lossy(&$name[..$name.len() - 1])
                        )
                    })?
                };
            }
            Ok(Nvrtc {
                version: sym!(b"nvrtcVersion\0"),
                error_string: sym!(b"nvrtcGetErrorString\0"),
                create: sym!(b"nvrtcCreateProgram\0"),
                compile: sym!(b"nvrtcCompileProgram\0"),
                ptx_size: sym!(b"nvrtcGetPTXSize\0"),
                ptx: sym!(b"nvrtcGetPTX\0"),
                log_size: sym!(b"nvrtcGetProgramLogSize\0"),
                log: sym!(b"nvrtcGetProgramLog\0"),
                destroy: sym!(b"nvrtcDestroyProgram\0"),
                _lib: lib,
            })
        }
    }

    /// `(major, minor)`, e.g. `(12, 4)`.
    pub fn version(&self) -> Result<(i32, i32)> {
        let (mut major, mut minor) = (0, 0);
        // SAFETY: two valid out-pointers.
        self.check("nvrtcVersion", unsafe {
            (self.version)(&mut major, &mut minor)
        })?;
        Ok((major, minor))
    }

    fn check(&self, what: &str, r: NvrtcResult) -> Result<()> {
        if r == 0 {
            return Ok(());
        }
        // SAFETY: NVRTC returns a static string for every result code.
        let msg = unsafe {
            let s = (self.error_string)(r);
            if s.is_null() {
                format!("error {r}")
            } else {
                CStr::from_ptr(s).to_string_lossy().into_owned()
            }
        };
        bail!("{what}: {msg}")
    }

    /// Compiles `source` (named `name` in diagnostics) with `options`. A compile error
    /// is an `Err` carrying NVRTC's log.
    pub fn compile(&self, name: &str, source: &str, options: &[String]) -> Result<Compiled> {
        let c_name = CString::new(name)?;
        let c_source = CString::new(source).with_context(|| format!("{name} holds a NUL byte"))?;
        let c_options: Vec<CString> = options
            .iter()
            .map(|o| CString::new(o.as_str()))
            .collect::<Result<_, _>>()?;
        let option_ptrs: Vec<*const c_char> = c_options.iter().map(|o| o.as_ptr()).collect();
        let mut prog: Program = ptr::null_mut();
        // SAFETY: valid NUL-terminated strings that outlive the calls; no headers.
        self.check("nvrtcCreateProgram", unsafe {
            (self.create)(
                &mut prog,
                c_source.as_ptr(),
                c_name.as_ptr(),
                0,
                ptr::null(),
                ptr::null(),
            )
        })?;
        let guard = ProgramGuard { nvrtc: self, prog };
        // SAFETY: `prog` is a live program; `option_ptrs` point into `c_options`.
        let compiled =
            unsafe { (self.compile)(prog, option_ptrs.len() as c_int, option_ptrs.as_ptr()) };
        let log = guard.log()?;
        if compiled != 0 {
            self.check(&format!("compiling {name}"), compiled)
                .with_context(|| log.trim_end().to_string())?;
        }
        let mut size = 0usize;
        // SAFETY: live program, valid out-pointer.
        self.check("nvrtcGetPTXSize", unsafe {
            (self.ptx_size)(prog, &mut size)
        })?;
        let mut ptx = vec![0u8; size];
        // SAFETY: the buffer holds the `size` bytes NVRTC reported.
        self.check("nvrtcGetPTX", unsafe {
            (self.ptx)(prog, ptx.as_mut_ptr().cast())
        })?;
        Ok(Compiled { ptx, log })
    }
}

/// Destroys the program on every path out of `compile`.
struct ProgramGuard<'a> {
    nvrtc: &'a Nvrtc,
    prog: Program,
}

impl ProgramGuard<'_> {
    fn log(&self) -> Result<String> {
        let mut size = 0usize;
        // SAFETY: live program, valid out-pointer.
        self.nvrtc.check("nvrtcGetProgramLogSize", unsafe {
            (self.nvrtc.log_size)(self.prog, &mut size)
        })?;
        let mut buf = vec![0u8; size];
        // SAFETY: the buffer holds the `size` bytes NVRTC reported.
        self.nvrtc.check("nvrtcGetProgramLog", unsafe {
            (self.nvrtc.log)(self.prog, buf.as_mut_ptr().cast())
        })?;
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
    }
}

impl Drop for ProgramGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: the program was created by nvrtcCreateProgram and is destroyed once.
        unsafe {
            (self.nvrtc.destroy)(&mut self.prog);
        }
    }
}
