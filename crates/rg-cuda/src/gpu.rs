//! One opened GPU: its context and stream, the loaded kernel modules, the caching
//! allocator and cuBLAS. Everything the ops need to allocate, copy and launch.
//!
//! Streams: all work of a backend goes, in order, onto one non-blocking stream, so ops
//! never need events between them and freed buffers can be reused at once (see
//! `alloc`). Host reads (`to_host`) wait for that stream only. Data-parallel training
//! over NCCL would open one backend per GPU (each its own stream and pool) and run
//! the collectives on those streams: `CudaBackend::stream_handle` and
//! `CudaStorage::device_ptr` give NCCL what it needs.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use cudarc::driver::sys::{CUdevice_attribute, CUfunction, CUmodule};
use cudarc::driver::{result, CudaContext, CudaStream, DriverError};
use rg_core::{Device, Error, Result};

use crate::alloc::{DeviceBuffer, Pool, RawMemory};
use crate::blas::Blas;
use crate::kernels::Module;

pub struct Gpu {
    pub device: Device,
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    pub pool: Arc<Pool>,
    pub blas: Blas,
    pub major: i32,
    pub minor: i32,
    /// Streaming multiprocessors.
    pub sms: u32,
    /// Blocks for grid-stride loops: a few waves over the SMs.
    pub max_blocks: u32,
    modules: Mutex<HashMap<Module, Loaded>>,
    functions: Mutex<HashMap<(Module, String), Function>>,
}

struct Loaded(CUmodule);
// SAFETY: a CUmodule handle is usable from any thread of its context.
unsafe impl Send for Loaded {}

#[derive(Clone, Copy)]
struct Function(CUfunction);
// SAFETY: as above for function handles.
unsafe impl Send for Function {}

/// The driver's name for an error, with the call that failed.
pub fn driver_error(device: Device, op: &'static str, what: &str, e: DriverError) -> Error {
    let name = e
        .error_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| format!("{:?}", e.0));
    Error::backend(device, op, format!("{what}: {name}"))
}

struct DriverMemory(Arc<CudaContext>);

impl RawMemory for DriverMemory {
    fn alloc(&self, bytes: usize) -> std::result::Result<u64, String> {
        self.0.bind_to_thread().map_err(|e| format!("{e:?}"))?;
        // SAFETY: plain allocation in the bound context.
        unsafe { result::malloc_sync(bytes) }.map_err(|e| {
            e.error_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|_| format!("{:?}", e.0))
        })
    }

    fn free(&self, ptr: u64) {
        if self.0.bind_to_thread().is_ok() {
            // SAFETY: `ptr` came from `alloc` and is no longer handed out.
            let _ = unsafe { result::free_sync(ptr) };
        }
    }
}

impl Gpu {
    /// Opens GPU `ordinal`, or explains what is missing (driver, device, cuBLAS).
    pub fn open(ordinal: usize) -> Result<Gpu> {
        const OP: &str = "open";
        let device = Device::Cuda(ordinal);
        let unavailable = |hint: String| Error::BackendUnavailable { device, hint };
        if !crate::libs::driver_present() {
            return Err(unavailable(format!(
                "the NVIDIA driver library is not installed (tried {}): no driver, or no GPU on this machine",
                crate::libs::driver_candidates().join(", ")
            )));
        }
        result::init().map_err(|e| unavailable(format!("cuInit failed: {}", err_name(e))))?;
        let count = result::device::get_count()
            .map_err(|e| unavailable(format!("cuDeviceGetCount failed: {}", err_name(e))))?;
        if ordinal >= count as usize {
            return Err(unavailable(format!(
                "no CUDA device {ordinal}: the driver sees {count}"
            )));
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| unavailable(format!("creating a context: {}", err_name(e))))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| driver_error(device, OP, "compute capability", e))?;
        if major < 8 {
            return Err(unavailable(format!(
                "compute capability {major}.{minor} is below 8.0 (Ampere), which the kernels (bf16) need"
            )));
        }
        let sms = ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(|e| driver_error(device, OP, "SM count", e))?;
        let stream = ctx
            .new_stream()
            .map_err(|e| driver_error(device, OP, "creating a stream", e))?;
        let poison = std::env::var("RG_CUDA_POISON").is_ok_and(|v| v == "1");
        let pool = Pool::new(Box::new(DriverMemory(ctx.clone())), poison);
        let blas = Blas::open(device, &pool, stream.cu_stream()).map_err(|e| match e {
            Error::Backend { msg, .. } => unavailable(msg),
            other => other,
        })?;
        Ok(Gpu {
            device,
            ctx,
            stream,
            pool,
            blas,
            major,
            minor,
            sms: sms.max(1) as u32,
            max_blocks: (sms.max(1) as u32) * 16,
            modules: Mutex::default(),
            functions: Mutex::default(),
        })
    }

    pub fn bind(&self, op: &'static str) -> Result<()> {
        self.ctx
            .bind_to_thread()
            .map_err(|e| driver_error(self.device, op, "binding the context", e))
    }

    /// Uninitialised device memory for `bytes` (poisoned when poisoning is on).
    pub fn alloc(&self, op: &'static str, bytes: usize) -> Result<DeviceBuffer> {
        self.bind(op)?;
        let buf =
            DeviceBuffer::new(&self.pool, bytes).map_err(|e| Error::backend(self.device, op, e))?;
        if self.pool.poison() && bytes > 0 {
            // SAFETY: the buffer holds at least `bytes`.
            unsafe { result::memset_d8_async(buf.ptr(), 0xFF, bytes, self.stream.cu_stream()) }
                .map_err(|e| driver_error(self.device, op, "poisoning", e))?;
        }
        Ok(buf)
    }

    /// Queues a copy of `src` to device address `dst` (which holds at least its size).
    pub fn upload<T>(&self, op: &'static str, dst: u64, src: &[T]) -> Result<()> {
        if src.is_empty() {
            return Ok(());
        }
        self.bind(op)?;
        // SAFETY: pageable memory: the driver stages it before returning, so `src` may
        // be dropped afterwards; `dst` is large enough (caller).
        unsafe { result::memcpy_htod_async(dst, src, self.stream.cu_stream()) }
            .map_err(|e| driver_error(self.device, op, "host to device copy", e))
    }

    /// Copies device memory at `src` into `dst`, waiting for the stream.
    pub fn download<T>(&self, op: &'static str, dst: &mut [T], src: u64) -> Result<()> {
        if dst.is_empty() {
            return Ok(());
        }
        self.bind(op)?;
        // SAFETY: `src` holds at least `dst`'s size (caller); we wait before reading.
        unsafe { result::memcpy_dtoh_async(dst, src, self.stream.cu_stream()) }
            .map_err(|e| driver_error(self.device, op, "device to host copy", e))?;
        self.synchronize(op)
    }

    pub fn synchronize(&self, op: &'static str) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| driver_error(self.device, op, "stream synchronize", e))
    }

    fn function(&self, op: &'static str, module: Module, name: &str) -> Result<CUfunction> {
        let key = (module, name.to_string());
        if let Some(f) = self
            .functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(f.0);
        }
        let m = {
            let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
            match modules.get(&module) {
                Some(m) => m.0,
                None => {
                    let ptx = std::ffi::CString::new(module.ptx(self.major))
                        .map_err(|_| Error::backend(self.device, op, "PTX contains a NUL byte"))?;
                    // SAFETY: NUL-terminated PTX text, context bound by the caller.
                    let m = unsafe { result::module::load_data(ptx.as_ptr() as *const c_void) }
                        .map_err(|e| {
                            driver_error(
                                self.device,
                                op,
                                &format!("loading kernels/{}.cu's PTX", module.stem()),
                                e,
                            )
                        })?;
                    modules.insert(module, Loaded(m));
                    m
                }
            }
        };
        let cname = std::ffi::CString::new(name)
            .map_err(|_| Error::backend(self.device, op, "bad kernel name"))?;
        // SAFETY: `m` is a loaded module.
        let f = unsafe { result::module::get_function(m, cname) }.map_err(|e| {
            driver_error(
                self.device,
                op,
                &format!("kernel {name} in kernels/{}.cu", module.stem()),
                e,
            )
        })?;
        self.functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, Function(f));
        Ok(f)
    }

    /// Launches kernel `name` of `module` with `args` in the order its C signature
    /// declares them.
    pub fn launch(
        &self,
        op: &'static str,
        module: Module,
        name: &str,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        args: &Args,
    ) -> Result<()> {
        self.bind(op)?;
        let f = self.function(op, module, name)?;
        let mut params = args.pointers();
        // SAFETY: the argument list matches the kernel's signature (each call site is
        // written against kernels/*.cu), and every pointer argument is a live device
        // buffer of the size the kernel indexes.
        unsafe { result::launch_kernel(f, grid, block, 0, self.stream.cu_stream(), &mut params) }
            .map_err(|e| driver_error(self.device, op, &format!("launching {name}"), e))
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        if self.ctx.bind_to_thread().is_ok() {
            let _ = self.stream.synchronize();
            for (_, m) in self
                .modules
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain()
            {
                // SAFETY: no launches remain queued (synchronised above).
                let _ = unsafe { result::module::unload(m.0) };
            }
        }
    }
}

fn err_name(e: DriverError) -> String {
    e.error_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| format!("{:?}", e.0))
}

/// Kernel arguments, each boxed so its address is stable until the launch.
#[derive(Default)]
pub struct Args {
    values: Vec<Box<dyn std::any::Any>>,
}

impl Args {
    pub fn new() -> Self {
        Args::default()
    }

    /// Appends one argument; `T` must have the C type's size and alignment.
    pub fn push<T: Copy + 'static>(&mut self, v: T) -> &mut Self {
        self.values.push(Box::new(v));
        self
    }

    fn pointers(&self) -> Vec<*mut c_void> {
        self.values
            .iter()
            .map(|b| &**b as *const dyn std::any::Any as *const c_void as *mut c_void)
            .collect()
    }
}
