//! Safe wrappers over the raw CUDA tables: the loaded libraries (once per process), a device context with its
//! stream and cuBLAS handle, device buffers freed on Drop, the kernel module and launches, and events.
//! Every status is checked here and becomes a `GpuError` (out of memory kept apart).

use crate::error::{GpuError, GpuErrorKind, GpuResult};
use crate::ffi::*;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr::null_mut;
use std::sync::{Arc, Mutex, OnceLock};

/// The CUDA libraries, loaded once per process. cuBLAS and NVRTC are optional at load time; an operation
/// that needs a missing one fails with `Unavailable`. (No cuSOLVER: every factorisation of moe-core is a
/// small k×k / d×d / p×p solve on the host; the Backend trait has no device-side solve.)
pub struct Runtime {
    pub driver: DriverApi,
    pub cublas: Option<CublasApi>,
    pub nvrtc: Option<NvrtcApi>,
    pub library_paths: Vec<String>,
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

fn load_runtime() -> Result<Runtime, String> {
    let driver_lib = Library::open(&["libcuda.so.1"], false).map_err(|e| format!("CUDA driver not loadable: {e}"))?;
    let driver = unsafe { DriverApi::load(&driver_lib)? };
    let status = unsafe { (driver.cuInit)(0) };
    if status != CUDA_SUCCESS {
        return Err(format!("cuInit failed with CUresult {status} (no usable GPU)"));
    }
    let mut library_paths = vec![driver_lib.path.clone()];
    let mut optional = |names: &[&str]| -> Option<Library> {
        let lib = Library::open(names, true).ok()?;
        library_paths.push(lib.path.clone());
        Some(lib)
    };
    let cublas_lib = optional(&["libcublas.so.13", "libcublas.so.12"]);
    let nvrtc_lib = optional(&["libnvrtc.so.13", "libnvrtc.so.12"]);
    let cublas = cublas_lib.as_ref().and_then(|l| unsafe { CublasApi::load(l).ok() });
    let nvrtc = nvrtc_lib.as_ref().and_then(|l| unsafe { NvrtcApi::load(l).ok() });
    // The libraries stay loaded for the life of the process (never dlclose'd).
    std::mem::forget((driver_lib, cublas_lib, nvrtc_lib));
    Ok(Runtime { driver, cublas, nvrtc, library_paths })
}

/// The process-wide CUDA runtime, or `Unavailable` when there is no driver or no device.
pub fn runtime() -> GpuResult<&'static Runtime> {
    RUNTIME.get_or_init(load_runtime).as_ref().map_err(|e| GpuError::unavailable(e.clone()))
}

/// Turns a driver status into a result.
pub fn check(rt: &Runtime, status: CUresult, what: &str) -> GpuResult<()> {
    if status == CUDA_SUCCESS {
        return Ok(());
    }
    let mut text: *const c_char = std::ptr::null();
    unsafe { (rt.driver.cuGetErrorString)(status, &mut text) };
    let name =
        if text.is_null() { "unknown".into() } else { unsafe { CStr::from_ptr(text).to_string_lossy().into_owned() } };
    Err(GpuError { kind: kind_of(status), message: format!("{what} failed: CUresult {status} ({name})") })
}

/// Out of memory, a GPU this machine cannot use (so that callers may take the CPU backend instead: no device,
/// a device taken by another process in exclusive mode, a driver too old or mismatched, no kernel image for
/// the device), or any other failure.
fn kind_of(status: CUresult) -> GpuErrorKind {
    match status {
        CUDA_ERROR_OUT_OF_MEMORY => GpuErrorKind::OutOfMemory,
        CUDA_ERROR_STUB_LIBRARY
        | CUDA_ERROR_INSUFFICIENT_DRIVER
        | CUDA_ERROR_DEVICE_UNAVAILABLE
        | CUDA_ERROR_NO_DEVICE
        | CUDA_ERROR_INVALID_DEVICE
        | CUDA_ERROR_DEVICE_NOT_LICENSED
        | CUDA_ERROR_NO_BINARY_FOR_GPU
        | CUDA_ERROR_UNSUPPORTED_PTX_VERSION
        | CUDA_ERROR_SYSTEM_DRIVER_MISMATCH
        | CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE => GpuErrorKind::Unavailable,
        _ => GpuErrorKind::Failed,
    }
}

fn check_cublas(status: c_int, what: &str) -> GpuResult<()> {
    match status {
        CUBLAS_STATUS_SUCCESS => Ok(()),
        CUBLAS_STATUS_ALLOC_FAILED => Err(GpuError::out_of_memory(format!("{what}: cuBLAS could not allocate"))),
        s => Err(GpuError::failed(format!("{what} failed: cublasStatus {s}"))),
    }
}

/// What `cuda_available` reports about device 0.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    pub name: String,
    pub total_memory_bytes: usize,
    pub compute_capability: (i32, i32),
    pub multiprocessors: i32,
    /// Shared memory one block may use when its kernel opts in (48 KB without; 227 KB on an H100, 163 KB on
    /// an A100, 99 KB on sm_86/89): kernels whose staging needs more take their fallback path.
    pub max_shared_bytes_per_block: usize,
    pub driver_version: i32,
    pub library_paths: Vec<String>,
}

/// Queries device 0 without creating a context.
pub fn device_info() -> GpuResult<DeviceInfo> {
    let rt = runtime()?;
    let d = &rt.driver;
    let (mut count, mut device, mut version) = (0, 0, 0);
    unsafe {
        check(rt, (d.cuDriverGetVersion)(&mut version), "cuDriverGetVersion")?;
        check(rt, (d.cuDeviceGetCount)(&mut count), "cuDeviceGetCount")?;
        if count < 1 {
            return Err(GpuError::unavailable("no CUDA device"));
        }
        check(rt, (d.cuDeviceGet)(&mut device, 0), "cuDeviceGet")?;
        let mut name = [0 as c_char; 256];
        check(rt, (d.cuDeviceGetName)(name.as_mut_ptr(), 256, device), "cuDeviceGetName")?;
        let attribute = |which| {
            let mut value = 0;
            check(rt, (d.cuDeviceGetAttribute)(&mut value, which, device), "cuDeviceGetAttribute").map(|()| value)
        };
        let major = attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        let sms = attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
        let shared = attribute(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)?;
        let mut memory = 0usize;
        check(rt, (d.cuDeviceTotalMem_v2)(&mut memory, device), "cuDeviceTotalMem")?;
        Ok(DeviceInfo {
            name: CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned(),
            total_memory_bytes: memory,
            compute_capability: (major, minor),
            multiprocessors: sms,
            max_shared_bytes_per_block: shared.max(48 << 10) as usize,
            driver_version: version,
            library_paths: rt.library_paths.clone(),
        })
    }
}

const CUBLAS_MISSING: &str = "cuBLAS (libcublas.so.13/12) not loadable";

/// Why the CUDA backend cannot run on device 0 although the driver sees it, or None: `Context::with_kernels`
/// needs cuBLAS, and kernels for the device — the embedded fatbin (sm_80 and sm_90 code and compute_90 PTX,
/// which serve every device from sm_80 on) or NVRTC to compile the embedded source for it. A machine with the
/// NVIDIA driver but without the CUDA libraries is the usual case. Decided without creating a context, so that
/// asking is cheap; should the module still fail to load, `Context::with_kernels` says so with the same code.
pub fn backend_missing(rt: &Runtime, info: &DeviceInfo) -> Option<String> {
    missing_for_backend(rt.cublas.is_some(), rt.nvrtc.is_some(), !images::FATBIN.is_empty(), info.compute_capability)
}

fn missing_for_backend(cublas: bool, nvrtc: bool, fatbin: bool, (major, minor): (i32, i32)) -> Option<String> {
    if !cublas {
        return Some(CUBLAS_MISSING.into());
    }
    match (nvrtc, fatbin) {
        (true, _) => None,
        (false, true) if major >= 8 => None,
        (false, true) => Some(format!(
            "the embedded kernels need sm_80 or newer (this device is sm_{major}{minor}) and NVRTC (libnvrtc.so.13/12), \
             which would compile them for it, is not loadable"
        )),
        (false, false) => Some("no kernel fatbin embedded and NVRTC (libnvrtc.so.13/12) not loadable".into()),
    }
}

/// The kernels of `kernels/`: the nvcc fatbin embedded by build.rs, or the joined source for NVRTC.
mod images {
    pub static FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/moe_kernels.fatbin"));
    pub static SOURCE: &str = include_str!(concat!(env!("OUT_DIR"), "/moe_kernels.cu"));
}

/// A device context (device 0's primary context) with its streams, a cuBLAS handle and the kernel module.
/// Shared by `Arc` with every buffer allocated in it, so the context outlives them.
pub struct Context {
    pub rt: &'static Runtime,
    pub info: DeviceInfo,
    device: CUdevice,
    ctx: Handle,
    /// The stream of every pass (cuBLAS's too), at the device's highest priority.
    pub stream: Handle,
    /// A second stream, at the lowest priority, for work that overlaps the passes (the deferred Grams of
    /// `Backend::pass_many_deferring_grams`): where both have blocks waiting, the main stream's are scheduled
    /// first, so a pass is delayed at most by the side blocks already running.
    pub side_stream: Handle,
    cublas: Handle,
    module: Handle,
    functions: Mutex<HashMap<&'static str, usize>>,
    /// How the kernels were loaded: "fatbin" or "nvrtc".
    pub kernel_source: &'static str,
}

// The handles are used from one thread at a time per backend (the estimator calls one fit at a time per
// backend) and the context is made current on the calling thread before each use.
unsafe impl Send for Context {}
unsafe impl Sync for Context {}

/// Which of a context's streams work is queued on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// `Context::stream`: every pass.
    Main,
    /// `Context::side_stream`: work that overlaps the passes.
    Side,
}

/// How to obtain the kernels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KernelSource {
    /// The embedded nvcc fatbin when it has code for this device, else NVRTC.
    #[default]
    Auto,
    /// Always compile the embedded source with NVRTC (what a build without nvcc does; tested on the GPU).
    Nvrtc,
}

impl Context {
    pub fn new() -> GpuResult<Arc<Context>> {
        Self::with_kernels(KernelSource::Auto)
    }

    pub fn with_kernels(source: KernelSource) -> GpuResult<Arc<Context>> {
        let rt = runtime()?;
        let info = device_info()?;
        let d = &rt.driver;
        let mut device = 0;
        let mut ctx = null_mut();
        unsafe {
            check(rt, (d.cuDeviceGet)(&mut device, 0), "cuDeviceGet")?;
            check(rt, (d.cuDevicePrimaryCtxRetain)(&mut ctx, device), "cuDevicePrimaryCtxRetain")?;
        }
        // From here on, Drop releases what was acquired.
        let mut c = Context {
            rt,
            info,
            device,
            ctx,
            stream: null_mut(),
            side_stream: null_mut(),
            cublas: null_mut(),
            module: null_mut(),
            functions: Mutex::new(HashMap::new()),
            kernel_source: "none",
        };
        c.make_current()?;
        unsafe {
            // Priorities: numerically lower is higher; `greatest` is the highest.
            let (mut least, mut greatest) = (0, 0);
            check(rt, (d.cuCtxGetStreamPriorityRange)(&mut least, &mut greatest), "cuCtxGetStreamPriorityRange")?;
            check(
                rt,
                (d.cuStreamCreateWithPriority)(&mut c.stream, CU_STREAM_NON_BLOCKING, greatest),
                "cuStreamCreateWithPriority",
            )?;
            check(
                rt,
                (d.cuStreamCreateWithPriority)(&mut c.side_stream, CU_STREAM_NON_BLOCKING, least),
                "cuStreamCreateWithPriority",
            )?;
        }
        let blas = rt.cublas.as_ref().ok_or_else(|| GpuError::unavailable(CUBLAS_MISSING))?;
        unsafe {
            let status = (blas.cublasCreate_v2)(&mut c.cublas);
            if status != CUBLAS_STATUS_SUCCESS {
                // cuBLAS reports a failed workspace allocation as "not initialized" too: call it OOM when the
                // device is (nearly) full, so that callers fall back to the CPU.
                let full = c.memory().map(|(free, _)| free < (256 << 20)).unwrap_or(false);
                if full {
                    return Err(GpuError::out_of_memory(format!(
                        "cublasCreate failed (status {status}) with the device memory full"
                    )));
                }
                check_cublas(status, "cublasCreate")?;
            }
            check_cublas((blas.cublasSetStream_v2)(c.cublas, c.stream), "cublasSetStream")?;
        }
        c.load_module(source)?;
        Ok(Arc::new(c))
    }

    /// Makes this context current on the calling thread (Node calls come from several pool threads).
    pub fn make_current(&self) -> GpuResult<()> {
        check(self.rt, unsafe { (self.rt.driver.cuCtxSetCurrent)(self.ctx) }, "cuCtxSetCurrent")
    }

    fn load_module(&mut self, source: KernelSource) -> GpuResult<()> {
        let d = &self.rt.driver;
        if source == KernelSource::Auto && !images::FATBIN.is_empty() {
            let status = unsafe { (d.cuModuleLoadData)(&mut self.module, images::FATBIN.as_ptr() as *const c_void) };
            if status == CUDA_SUCCESS {
                self.kernel_source = "fatbin";
                return Ok(());
            }
            // A fatbin without this device's architecture: fall through to NVRTC.
        }
        let ptx = self.compile_with_nvrtc()?;
        check(
            self.rt,
            unsafe { (d.cuModuleLoadData)(&mut self.module, ptx.as_ptr() as *const c_void) },
            "cuModuleLoadData(nvrtc)",
        )?;
        self.kernel_source = "nvrtc";
        Ok(())
    }

    /// Compiles the embedded kernel source for this device; returns NUL-terminated PTX.
    fn compile_with_nvrtc(&self) -> GpuResult<Vec<u8>> {
        let nv = self
            .rt
            .nvrtc
            .as_ref()
            .ok_or_else(|| GpuError::unavailable("no kernel fatbin embedded and NVRTC not loadable"))?;
        let source = CString::new(images::SOURCE).map_err(|e| GpuError::failed(e.to_string()))?;
        let (major, minor) = self.info.compute_capability;
        let arch = CString::new(format!("--gpu-architecture=compute_{major}{minor}")).unwrap();
        let options = [arch.as_ptr(), c"--std=c++17".as_ptr()];
        unsafe {
            let mut program = null_mut();
            if (nv.nvrtcCreateProgram)(
                &mut program,
                source.as_ptr(),
                c"moe_kernels.cu".as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            ) != NVRTC_SUCCESS
            {
                return Err(GpuError::failed("nvrtcCreateProgram failed"));
            }
            let status = (nv.nvrtcCompileProgram)(program, options.len() as c_int, options.as_ptr());
            let result = if status != NVRTC_SUCCESS {
                let mut size = 0;
                (nv.nvrtcGetProgramLogSize)(program, &mut size);
                let mut log = vec![0u8; size.max(1)];
                (nv.nvrtcGetProgramLog)(program, log.as_mut_ptr() as *mut c_char);
                Err(GpuError::failed(format!("NVRTC compile failed ({status}): {}", String::from_utf8_lossy(&log))))
            } else {
                let mut size = 0;
                (nv.nvrtcGetPTXSize)(program, &mut size);
                let mut ptx = vec![0u8; size + 1]; // size counts the NUL; one more keeps it NUL-terminated anyway
                (nv.nvrtcGetPTX)(program, ptx.as_mut_ptr() as *mut c_char);
                Ok(ptx)
            };
            (nv.nvrtcDestroyProgram)(&mut program);
            result
        }
    }

    fn function(&self, name: &'static str) -> GpuResult<Handle> {
        let mut cache = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&f) = cache.get(name) {
            return Ok(f as Handle);
        }
        let c_name = CString::new(name).unwrap();
        let mut f = null_mut();
        check(self.rt, unsafe { (self.rt.driver.cuModuleGetFunction)(&mut f, self.module, c_name.as_ptr()) }, name)?;
        cache.insert(name, f as usize);
        Ok(f)
    }

    /// Whether the module has kernel `name` (kernels compiled only for newer architectures may be missing).
    pub fn has_kernel(&self, name: &'static str) -> bool {
        self.function(name).is_ok()
    }

    /// Launches kernel `name` on the stream. `args` are pointers to each argument value, in order.
    /// `shared_bytes` of dynamic shared memory; above the 48 KB every kernel may take, the kernel's limit is
    /// raised first (the device's own limit still applies: a launch past it fails with a typed error).
    pub fn launch(
        &self,
        name: &'static str,
        grid: (u32, u32, u32),
        block: u32,
        shared_bytes: u32,
        args: &mut [*mut c_void],
    ) -> GpuResult<()> {
        self.launch_on(Stream::Main, name, grid, block, shared_bytes, args)
    }

    /// `launch` on one of the context's streams.
    pub fn launch_on(
        &self,
        stream: Stream,
        name: &'static str,
        grid: (u32, u32, u32),
        block: u32,
        shared_bytes: u32,
        args: &mut [*mut c_void],
    ) -> GpuResult<()> {
        let stream = self.handle(stream);
        let f = self.function(name)?;
        if shared_bytes > 48 << 10 {
            const CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: c_int = 8;
            let status = unsafe {
                (self.rt.driver.cuFuncSetAttribute)(
                    f,
                    CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    shared_bytes as c_int,
                )
            };
            check(self.rt, status, name)?;
        }
        let status = unsafe {
            (self.rt.driver.cuLaunchKernel)(
                f,
                grid.0,
                grid.1,
                grid.2,
                block,
                1,
                1,
                shared_bytes,
                stream,
                args.as_mut_ptr(),
                null_mut(),
            )
        };
        check(self.rt, status, name)
    }

    pub fn synchronize(&self) -> GpuResult<()> {
        check(self.rt, unsafe { (self.rt.driver.cuStreamSynchronize)(self.stream) }, "cuStreamSynchronize")
    }

    fn handle(&self, stream: Stream) -> Handle {
        match stream {
            Stream::Main => self.stream,
            Stream::Side => self.side_stream,
        }
    }

    /// Waits for everything queued on `side_stream`.
    pub fn synchronize_side(&self) -> GpuResult<()> {
        check(self.rt, unsafe { (self.rt.driver.cuStreamSynchronize)(self.side_stream) }, "cuStreamSynchronize(side)")
    }

    /// Copies `out.len()` values from device address `src` to the host (waits for the stream).
    pub fn read_raw<T: DeviceElement>(&self, src: CUdeviceptr, out: &mut [T]) -> GpuResult<()> {
        if out.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::size_of_val(out);
        check(
            self.rt,
            unsafe { (self.rt.driver.cuMemcpyDtoHAsync_v2)(out.as_mut_ptr() as *mut c_void, src, bytes, self.stream) },
            "cuMemcpyDtoH",
        )?;
        self.synchronize()
    }

    /// Copies `data` to device address `dst` (waits for the stream).
    pub fn write_raw<T: DeviceElement>(&self, dst: CUdeviceptr, data: &[T]) -> GpuResult<()> {
        if data.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::size_of_val(data);
        check(
            self.rt,
            unsafe { (self.rt.driver.cuMemcpyHtoDAsync_v2)(dst, data.as_ptr() as *const c_void, bytes, self.stream) },
            "cuMemcpyHtoD",
        )?;
        self.synchronize()
    }

    /// Free and total device memory in bytes.
    pub fn memory(&self) -> GpuResult<(usize, usize)> {
        let (mut free, mut total) = (0, 0);
        check(self.rt, unsafe { (self.rt.driver.cuMemGetInfo_v2)(&mut free, &mut total) }, "cuMemGetInfo")?;
        Ok((free, total))
    }

    /// Column-major DGEMM on the stream: C = alpha·op(A)·op(B) + beta·C.
    #[allow(clippy::too_many_arguments)]
    pub fn dgemm(
        &self,
        trans_a: bool,
        trans_b: bool,
        m: usize,
        n: usize,
        k: usize,
        alpha: f64,
        a: CUdeviceptr,
        lda: usize,
        b: CUdeviceptr,
        ldb: usize,
        beta: f64,
        c: CUdeviceptr,
        ldc: usize,
    ) -> GpuResult<()> {
        let blas = self.rt.cublas.as_ref().unwrap(); // present: Context::new requires it
        let op = |t: bool| if t { CUBLAS_OP_T } else { CUBLAS_OP_N };
        check_cublas(
            unsafe {
                (blas.cublasDgemm_v2)(
                    self.cublas,
                    op(trans_a),
                    op(trans_b),
                    m as c_int,
                    n as c_int,
                    k as c_int,
                    &alpha,
                    a,
                    lda as c_int,
                    b,
                    ldb as c_int,
                    &beta,
                    c,
                    ldc as c_int,
                )
            },
            "cublasDgemm",
        )
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        let d = &self.rt.driver;
        unsafe {
            (d.cuCtxSetCurrent)(self.ctx);
            if !self.module.is_null() {
                (d.cuModuleUnload)(self.module);
            }
            if !self.cublas.is_null() {
                if let Some(blas) = &self.rt.cublas {
                    (blas.cublasDestroy_v2)(self.cublas);
                }
            }
            if !self.stream.is_null() {
                (d.cuStreamDestroy_v2)(self.stream);
            }
            if !self.side_stream.is_null() {
                (d.cuStreamDestroy_v2)(self.side_stream);
            }
            (d.cuDevicePrimaryCtxRelease_v2)(self.device);
        }
    }
}

/// Plain-old-data element types a device buffer may hold.
pub trait DeviceElement: Copy + Default + 'static {}
impl DeviceElement for f64 {}
impl DeviceElement for i32 {}
impl DeviceElement for u32 {}

/// A device allocation of `len` elements, freed on Drop. Holds no reference to the context: every owner keeps
/// its `Arc<Context>` alive longer than its buffers (struct field order in `CudaBackend`).
pub struct DeviceBuffer<T: DeviceElement> {
    pub ptr: CUdeviceptr,
    pub len: usize,
    rt: &'static Runtime,
    _marker: std::marker::PhantomData<T>,
}

unsafe impl<T: DeviceElement> Send for DeviceBuffer<T> {}
unsafe impl<T: DeviceElement> Sync for DeviceBuffer<T> {}

impl<T: DeviceElement> DeviceBuffer<T> {
    const ELEMENT: usize = std::mem::size_of::<T>();

    pub fn alloc(ctx: &Context, len: usize) -> GpuResult<Self> {
        let mut ptr = 0;
        let bytes = len.max(1) * Self::ELEMENT;
        check(
            ctx.rt,
            unsafe { (ctx.rt.driver.cuMemAlloc_v2)(&mut ptr, bytes) },
            &format!("cuMemAlloc({bytes} bytes)"),
        )?;
        Ok(DeviceBuffer { ptr, len, rt: ctx.rt, _marker: std::marker::PhantomData })
    }

    pub fn from_host(ctx: &Context, data: &[T]) -> GpuResult<Self> {
        let buffer = Self::alloc(ctx, data.len())?;
        buffer.upload(ctx, data)?;
        Ok(buffer)
    }

    /// Copies `data` into the start of the buffer (synchronous with respect to the host).
    pub fn upload(&self, ctx: &Context, data: &[T]) -> GpuResult<()> {
        assert!(data.len() <= self.len, "upload larger than the buffer");
        if data.is_empty() {
            return Ok(());
        }
        let d = &ctx.rt.driver;
        unsafe {
            check(
                ctx.rt,
                (d.cuMemcpyHtoDAsync_v2)(
                    self.ptr,
                    data.as_ptr() as *const c_void,
                    data.len() * Self::ELEMENT,
                    ctx.stream,
                ),
                "cuMemcpyHtoD",
            )?;
        }
        ctx.synchronize()
    }

    /// Copies the first `n` elements to the host (waits for the stream).
    pub fn download_prefix(&self, ctx: &Context, n: usize) -> GpuResult<Vec<T>> {
        assert!(n <= self.len, "download larger than the buffer");
        let mut out = vec![T::default(); n];
        if n == 0 {
            return Ok(out);
        }
        let d = &ctx.rt.driver;
        unsafe {
            check(
                ctx.rt,
                (d.cuMemcpyDtoHAsync_v2)(out.as_mut_ptr() as *mut c_void, self.ptr, n * Self::ELEMENT, ctx.stream),
                "cuMemcpyDtoH",
            )?;
        }
        ctx.synchronize()?;
        Ok(out)
    }

    pub fn download(&self, ctx: &Context) -> GpuResult<Vec<T>> {
        self.download_prefix(ctx, self.len)
    }

    /// Device-to-device copy of `n` elements from `src` (stream-ordered).
    pub fn copy_from(&self, ctx: &Context, src: &DeviceBuffer<T>, n: usize) -> GpuResult<()> {
        assert!(n <= self.len && n <= src.len);
        check(
            ctx.rt,
            unsafe { (ctx.rt.driver.cuMemcpyDtoDAsync_v2)(self.ptr, src.ptr, n * Self::ELEMENT, ctx.stream) },
            "cuMemcpyDtoD",
        )
    }

    /// Fills the buffer with zero bytes (stream-ordered).
    pub fn zero(&self, ctx: &Context) -> GpuResult<()> {
        check(
            ctx.rt,
            unsafe { (ctx.rt.driver.cuMemsetD8Async)(self.ptr, 0, self.len.max(1) * Self::ELEMENT, ctx.stream) },
            "cuMemsetD8",
        )
    }
}

impl<T: DeviceElement> Drop for DeviceBuffer<T> {
    fn drop(&mut self) {
        unsafe { (self.rt.driver.cuMemFree_v2)(self.ptr) };
    }
}

/// An event that orders work across streams (no timing): recorded on one stream, waited for by another
/// stream or by the host.
pub struct Event {
    handle: Handle,
    rt: &'static Runtime,
}

impl Event {
    pub fn new(ctx: &Context) -> GpuResult<Event> {
        let mut handle = null_mut();
        check(ctx.rt, unsafe { (ctx.rt.driver.cuEventCreate)(&mut handle, CU_EVENT_DISABLE_TIMING) }, "cuEventCreate")?;
        Ok(Event { handle, rt: ctx.rt })
    }
    /// Marks the point after everything queued on `stream` so far.
    pub fn record(&self, ctx: &Context, stream: Stream) -> GpuResult<()> {
        check(self.rt, unsafe { (self.rt.driver.cuEventRecord)(self.handle, ctx.handle(stream)) }, "cuEventRecord")
    }
    /// Work queued on `stream` from now on starts after the recorded point.
    pub fn make_wait(&self, ctx: &Context, stream: Stream) -> GpuResult<()> {
        check(
            self.rt,
            unsafe { (self.rt.driver.cuStreamWaitEvent)(ctx.handle(stream), self.handle, 0) },
            "cuStreamWaitEvent",
        )
    }
    /// Blocks the host until the recorded point is reached.
    pub fn synchronize(&self) -> GpuResult<()> {
        check(self.rt, unsafe { (self.rt.driver.cuEventSynchronize)(self.handle) }, "cuEventSynchronize")
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        unsafe { (self.rt.driver.cuEventDestroy_v2)(self.handle) };
    }
}

/// A pair of events timing a stretch of the stream (milliseconds, device clock).
pub struct Timer {
    start: Handle,
    stop: Handle,
    rt: &'static Runtime,
}

impl Timer {
    pub fn new(ctx: &Context) -> GpuResult<Timer> {
        let d = &ctx.rt.driver;
        let (mut start, mut stop) = (null_mut(), null_mut());
        unsafe {
            check(ctx.rt, (d.cuEventCreate)(&mut start, CU_EVENT_DEFAULT), "cuEventCreate")?;
            if let Err(e) = check(ctx.rt, (d.cuEventCreate)(&mut stop, CU_EVENT_DEFAULT), "cuEventCreate") {
                (d.cuEventDestroy_v2)(start);
                return Err(e);
            }
        }
        Ok(Timer { start, stop, rt: ctx.rt })
    }
    pub fn start(&self, ctx: &Context) -> GpuResult<()> {
        check(self.rt, unsafe { (self.rt.driver.cuEventRecord)(self.start, ctx.stream) }, "cuEventRecord")
    }
    /// Records the stop event, waits for it, returns the elapsed milliseconds.
    pub fn stop_ms(&self, ctx: &Context) -> GpuResult<f64> {
        let d = &self.rt.driver;
        let mut ms = 0f32;
        unsafe {
            check(self.rt, (d.cuEventRecord)(self.stop, ctx.stream), "cuEventRecord")?;
            check(self.rt, (d.cuEventSynchronize)(self.stop), "cuEventSynchronize")?;
            check(self.rt, (d.cuEventElapsedTime_v2)(&mut ms, self.start, self.stop), "cuEventElapsedTime")?;
        }
        Ok(ms as f64)
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        unsafe {
            (self.rt.driver.cuEventDestroy_v2)(self.start);
            (self.rt.driver.cuEventDestroy_v2)(self.stop);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{kind_of, missing_for_backend};
    use crate::error::GpuErrorKind;
    use crate::ffi::*;

    #[test]
    fn statuses_that_mean_this_gpu_cannot_be_used() {
        assert_eq!(kind_of(CUDA_ERROR_OUT_OF_MEMORY), GpuErrorKind::OutOfMemory);
        for status in [
            CUDA_ERROR_NO_DEVICE,
            CUDA_ERROR_DEVICE_UNAVAILABLE,
            CUDA_ERROR_INSUFFICIENT_DRIVER,
            CUDA_ERROR_NO_BINARY_FOR_GPU,
            CUDA_ERROR_UNSUPPORTED_PTX_VERSION,
            CUDA_ERROR_STUB_LIBRARY,
        ] {
            assert_eq!(kind_of(status), GpuErrorKind::Unavailable, "CUresult {status}");
        }
        // A failed launch (719) or an illegal address (700) is a fault to report, not a reason to move on.
        assert_eq!(kind_of(719), GpuErrorKind::Failed);
        assert_eq!(kind_of(700), GpuErrorKind::Failed);
    }

    #[test]
    fn what_the_backend_needs_beside_the_driver() {
        // Everything there, or NVRTC for any device, or the fatbin from sm_80 on.
        assert_eq!(missing_for_backend(true, true, true, (9, 0)), None);
        assert_eq!(missing_for_backend(true, true, false, (7, 5)), None);
        assert_eq!(missing_for_backend(true, false, true, (8, 6)), None);
        assert_eq!(missing_for_backend(true, false, true, (12, 0)), None);
        // The driver alone (no CUDA libraries) and the other gaps, each with its reason.
        assert!(missing_for_backend(false, false, true, (9, 0)).unwrap().contains("cuBLAS"));
        assert!(missing_for_backend(true, false, true, (7, 5)).unwrap().contains("sm_75"));
        assert!(missing_for_backend(true, false, false, (9, 0)).unwrap().contains("no kernel fatbin"));
    }
}
