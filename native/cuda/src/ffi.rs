//! Raw FFI: `dlopen`/`dlsym` and the tables of CUDA entry points this crate uses. Declarations and loading
//! only; nothing here checks a status (see `driver.rs` for the safe layer).
//!
//! Why dlopen and no link-time dependency: the package must load and run its CPU backend on machines with no
//! CUDA at all, so the GPU libraries are looked up only when the CUDA backend is asked for. CUDA 13 renamed
//! several driver entry points; we take the versioned names (`cuMemAlloc_v2`, ...) and the primary context.
#![allow(non_snake_case, non_camel_case_types)]

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};

extern "C" {
    fn dlopen(filename: *const c_char, flag: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlerror() -> *mut c_char;
}
const RTLD_NOW: c_int = 2;

pub type CUresult = c_int;
pub type CUdevice = c_int;
pub type CUdeviceptr = u64;
pub type Handle = *mut c_void;

pub const CUDA_SUCCESS: CUresult = 0;
pub const CUDA_ERROR_OUT_OF_MEMORY: CUresult = 2;
// The statuses that say this machine's GPU cannot be used (cuda.h's descriptions abridged).
/// The loaded libcuda is the toolkit's stub, not a driver.
pub const CUDA_ERROR_STUB_LIBRARY: CUresult = 34;
/// The driver is older than the call needs.
pub const CUDA_ERROR_INSUFFICIENT_DRIVER: CUresult = 35;
/// The device is in exclusive-process mode and taken, or prohibited.
pub const CUDA_ERROR_DEVICE_UNAVAILABLE: CUresult = 46;
pub const CUDA_ERROR_NO_DEVICE: CUresult = 100;
pub const CUDA_ERROR_INVALID_DEVICE: CUresult = 101;
pub const CUDA_ERROR_DEVICE_NOT_LICENSED: CUresult = 102;
/// No kernel image for this device in the module.
pub const CUDA_ERROR_NO_BINARY_FOR_GPU: CUresult = 209;
/// PTX newer than the driver can compile.
pub const CUDA_ERROR_UNSUPPORTED_PTX_VERSION: CUresult = 222;
pub const CUDA_ERROR_SYSTEM_DRIVER_MISMATCH: CUresult = 803;
pub const CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE: CUresult = 804;
pub const CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: c_int = 16;
pub const CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: c_int = 97;
pub const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: c_int = 75;
pub const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: c_int = 76;
pub const CU_EVENT_DEFAULT: c_uint = 0;
pub const CU_EVENT_DISABLE_TIMING: c_uint = 2;
pub const CU_STREAM_NON_BLOCKING: c_uint = 1;

pub const CUBLAS_STATUS_SUCCESS: c_int = 0;
pub const CUBLAS_STATUS_ALLOC_FAILED: c_int = 3;
pub const CUBLAS_OP_N: c_int = 0;
pub const CUBLAS_OP_T: c_int = 1;
pub const NVRTC_SUCCESS: c_int = 0;

/// One shared library opened with `dlopen`. Never closed: CUDA libraries are not safe to unload.
pub struct Library {
    handle: Handle,
    pub path: String,
}

// The handle is only used for dlsym, which is thread-safe.
unsafe impl Send for Library {}
unsafe impl Sync for Library {}

impl Library {
    /// Opens the first loadable name: through the loader path first, then `$CUDA_PATH/lib64`,
    /// `$CUDA_HOME/lib64` and `/usr/local/cuda/lib64` when `cuda_dirs` (the driver is never taken from a
    /// toolkit folder: those hold link stubs that fail at run time).
    pub fn open(names: &[&str], cuda_dirs: bool) -> Result<Library, String> {
        let mut dirs = vec![String::new()];
        if cuda_dirs {
            for var in ["CUDA_PATH", "CUDA_HOME"] {
                if let Ok(p) = std::env::var(var) {
                    dirs.push(format!("{p}/lib64/"));
                }
            }
            dirs.push("/usr/local/cuda/lib64/".into());
        }
        let mut first_error = None;
        for name in names {
            for dir in &dirs {
                let path = format!("{dir}{name}");
                let c_path = CString::new(path.clone()).map_err(|e| e.to_string())?;
                let handle = unsafe { dlopen(c_path.as_ptr(), RTLD_NOW) };
                if !handle.is_null() {
                    return Ok(Library { handle, path });
                }
                let message = unsafe {
                    let e = dlerror();
                    if e.is_null() {
                        String::from("dlopen failed")
                    } else {
                        CStr::from_ptr(e).to_string_lossy().into_owned()
                    }
                };
                first_error.get_or_insert(message);
            }
        }
        Err(first_error.unwrap_or_else(|| format!("none of {names:?} found")))
    }

    /// # Safety
    /// `T` must be the function-pointer type of the symbol.
    pub unsafe fn symbol<T: Copy>(&self, name: &str) -> Result<T, String> {
        let c_name = CString::new(name).map_err(|e| e.to_string())?;
        let p = dlsym(self.handle, c_name.as_ptr());
        if p.is_null() {
            return Err(format!("symbol {name} missing in {}", self.path));
        }
        Ok(std::mem::transmute_copy::<*mut c_void, T>(&p))
    }
}

/// Declares a table of entry points and its loader (`load` fails on the first missing symbol).
macro_rules! entry_points {
    ($table:ident { $($name:ident : fn($($arg:ty),*) -> $ret:ty),* $(,)? }) => {
        pub struct $table { $(pub $name: unsafe extern "C" fn($($arg),*) -> $ret),* }
        impl $table {
            /// # Safety
            /// The library must export these symbols with exactly these C signatures.
            pub unsafe fn load(lib: &Library) -> Result<Self, String> {
                Ok(Self { $($name: lib.symbol(stringify!($name))?),* })
            }
        }
    };
}

entry_points!(DriverApi {
    cuInit: fn(c_uint) -> CUresult,
    cuDriverGetVersion: fn(*mut c_int) -> CUresult,
    cuDeviceGetCount: fn(*mut c_int) -> CUresult,
    cuDeviceGet: fn(*mut CUdevice, c_int) -> CUresult,
    cuDeviceGetName: fn(*mut c_char, c_int, CUdevice) -> CUresult,
    cuDeviceGetAttribute: fn(*mut c_int, c_int, CUdevice) -> CUresult,
    cuDeviceTotalMem_v2: fn(*mut usize, CUdevice) -> CUresult,
    cuDevicePrimaryCtxRetain: fn(*mut Handle, CUdevice) -> CUresult,
    cuDevicePrimaryCtxRelease_v2: fn(CUdevice) -> CUresult,
    cuCtxSetCurrent: fn(Handle) -> CUresult,
    cuCtxSynchronize: fn() -> CUresult,
    cuMemGetInfo_v2: fn(*mut usize, *mut usize) -> CUresult,
    cuModuleLoadData: fn(*mut Handle, *const c_void) -> CUresult,
    cuModuleUnload: fn(Handle) -> CUresult,
    cuModuleGetFunction: fn(*mut Handle, Handle, *const c_char) -> CUresult,
    cuFuncSetAttribute: fn(Handle, c_int, c_int) -> CUresult,
    cuLaunchKernel: fn(Handle, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, Handle, *mut *mut c_void, *mut *mut c_void) -> CUresult,
    cuMemAlloc_v2: fn(*mut CUdeviceptr, usize) -> CUresult,
    cuMemFree_v2: fn(CUdeviceptr) -> CUresult,
    cuMemcpyHtoD_v2: fn(CUdeviceptr, *const c_void, usize) -> CUresult,
    cuMemcpyDtoH_v2: fn(*mut c_void, CUdeviceptr, usize) -> CUresult,
    cuMemcpyHtoDAsync_v2: fn(CUdeviceptr, *const c_void, usize, Handle) -> CUresult,
    cuMemcpyDtoHAsync_v2: fn(*mut c_void, CUdeviceptr, usize, Handle) -> CUresult,
    cuMemcpyDtoDAsync_v2: fn(CUdeviceptr, CUdeviceptr, usize, Handle) -> CUresult,
    cuMemsetD8Async: fn(CUdeviceptr, u8, usize, Handle) -> CUresult,
    cuStreamCreateWithPriority: fn(*mut Handle, c_uint, c_int) -> CUresult,
    cuCtxGetStreamPriorityRange: fn(*mut c_int, *mut c_int) -> CUresult,
    cuStreamWaitEvent: fn(Handle, Handle, c_uint) -> CUresult,
    cuStreamDestroy_v2: fn(Handle) -> CUresult,
    cuStreamSynchronize: fn(Handle) -> CUresult,
    cuEventCreate: fn(*mut Handle, c_uint) -> CUresult,
    cuEventDestroy_v2: fn(Handle) -> CUresult,
    cuEventRecord: fn(Handle, Handle) -> CUresult,
    cuEventSynchronize: fn(Handle) -> CUresult,
    cuEventElapsedTime_v2: fn(*mut f32, Handle, Handle) -> CUresult,
    cuGetErrorString: fn(CUresult, *mut *const c_char) -> CUresult,
});

entry_points!(CublasApi {
    cublasCreate_v2: fn(*mut Handle) -> c_int,
    cublasDestroy_v2: fn(Handle) -> c_int,
    cublasSetStream_v2: fn(Handle, Handle) -> c_int,
    cublasDgemm_v2: fn(Handle, c_int, c_int, c_int, c_int, c_int, *const f64, CUdeviceptr, c_int, CUdeviceptr, c_int, *const f64, CUdeviceptr, c_int) -> c_int,
});

entry_points!(NvrtcApi {
    nvrtcCreateProgram: fn(*mut Handle, *const c_char, *const c_char, c_int, *const *const c_char, *const *const c_char) -> c_int,
    nvrtcCompileProgram: fn(Handle, c_int, *const *const c_char) -> c_int,
    nvrtcGetPTXSize: fn(Handle, *mut usize) -> c_int,
    nvrtcGetPTX: fn(Handle, *mut c_char) -> c_int,
    nvrtcGetProgramLogSize: fn(Handle, *mut usize) -> c_int,
    nvrtcGetProgramLog: fn(Handle, *mut c_char) -> c_int,
    nvrtcDestroyProgram: fn(*mut Handle) -> c_int,
});
