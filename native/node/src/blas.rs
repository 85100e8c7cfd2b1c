//! A reference DGEMM for the benchmark: OpenBLAS's `cblas_dgemm`, loaded at run time with `dlopen` when
//! `libopenblas.so.0` is installed. The package never requires it: without it `load` reports why.
use std::ffi::{c_char, c_int, c_void, CStr};

const RTLD_NOW: c_int = 2;
const CBLAS_ROW_MAJOR: c_int = 101;
const CBLAS_NO_TRANS: c_int = 111;
const CBLAS_TRANS: c_int = 112;

extern "C" {
    // glibc ≥ 2.34 has these in libc itself.
    fn dlopen(filename: *const c_char, flag: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlerror() -> *const c_char;
}

type CblasDgemm = unsafe extern "C" fn(
    layout: c_int,
    trans_a: c_int,
    trans_b: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    alpha: f64,
    a: *const f64,
    lda: c_int,
    b: *const f64,
    ldb: c_int,
    beta: f64,
    c: *mut f64,
    ldc: c_int,
);
type GetThreads = unsafe extern "C" fn() -> c_int;

pub struct OpenBlas {
    dgemm: CblasDgemm,
    get_threads: Option<GetThreads>,
    pub library: &'static str,
}

fn last_dl_error() -> String {
    let e = unsafe { dlerror() };
    if e.is_null() {
        "unknown dlopen error".into()
    } else {
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

impl OpenBlas {
    /// Loads OpenBLAS (the handle is never closed: the library stays loaded for the process).
    pub fn load() -> Result<OpenBlas, String> {
        let library = "libopenblas.so.0";
        let handle = unsafe { dlopen(c"libopenblas.so.0".as_ptr(), RTLD_NOW) };
        if handle.is_null() {
            return Err(format!("{library} not loadable: {}", last_dl_error()));
        }
        let dgemm = unsafe { dlsym(handle, c"cblas_dgemm".as_ptr()) };
        if dgemm.is_null() {
            return Err(format!("{library} has no cblas_dgemm"));
        }
        let get_threads = unsafe { dlsym(handle, c"openblas_get_num_threads".as_ptr()) };
        Ok(OpenBlas {
            dgemm: unsafe { std::mem::transmute::<*mut c_void, CblasDgemm>(dgemm) },
            get_threads: (!get_threads.is_null())
                .then(|| unsafe { std::mem::transmute::<*mut c_void, GetThreads>(get_threads) }),
            library,
        })
    }

    pub fn threads(&self) -> Option<usize> {
        self.get_threads.map(|f| unsafe { f() } as usize)
    }

    /// `C (d × cols) = Aᵀ B` with A n×d and B n×cols row-major: the shape of a batch of Gram matrices
    /// `Σ_i x_i b_iᵀ` over n rows. Sizes must fit in the 32-bit ints of a standard OpenBLAS build.
    pub fn gram_shaped_dgemm(&self, a: &[f64], n: usize, d: usize, b: &[f64], cols: usize, c: &mut [f64]) {
        assert!(a.len() == n * d && b.len() == n * cols && c.len() == d * cols, "dgemm operand sizes");
        assert!(n <= c_int::MAX as usize && d * cols <= c_int::MAX as usize, "dgemm sizes exceed 32-bit ints");
        unsafe {
            (self.dgemm)(
                CBLAS_ROW_MAJOR,
                CBLAS_TRANS,
                CBLAS_NO_TRANS,
                d as c_int,
                cols as c_int,
                n as c_int,
                1.0,
                a.as_ptr(),
                d as c_int,
                b.as_ptr(),
                cols as c_int,
                0.0,
                c.as_mut_ptr(),
                cols as c_int,
            )
        }
    }
}
