//! The multi-threaded CPU backend: borrows the data zero-copy and runs each pass over fixed chunks of rows.

use std::sync::Mutex;

use crate::api::{err, Data, ErrorCode, Result};
use crate::backend::{Backend, PassOut, RowOp, Rows};

pub struct CpuBackend<'a> {
    data: Data<'a>,
    threads: usize,
    /// Stored responsibilities (n×width) and their width.
    h: Mutex<(usize, Vec<f64>)>,
    order: Mutex<Vec<u32>>,
}

impl<'a> CpuBackend<'a> {
    /// `threads` = 0 uses `std::thread::available_parallelism()`.
    pub fn new(data: Data<'a>, threads: usize) -> Result<Self> {
        if data.x.len() != data.n * data.d || data.y.len() != data.n {
            return err(ErrorCode::Shape, format!("x must be n×d = {}×{} and y of length n", data.n, data.d));
        }
        if let Some(s) = data.s {
            if s.len() != data.n {
                return err(ErrorCode::Shape, format!("sample weights must have length n = {}", data.n));
            }
        }
        let threads = if threads == 0 {
            std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1)
        } else {
            threads
        };
        Ok(CpuBackend { data, threads, h: Mutex::new((0, Vec::new())), order: Mutex::new(Vec::new()) })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }
}

impl Backend for CpuBackend<'_> {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn n(&self) -> usize {
        self.data.n
    }
    fn d(&self) -> usize {
        self.data.d
    }
    fn set_order(&self, order: &[u32]) -> Result<()> {
        let _ = (order, &self.order);
        err(ErrorCode::Internal, "cpu backend: not implemented yet")
    }
    fn write_h(&self, width: usize, h: &[f64]) -> Result<()> {
        let _ = (width, h, &self.h);
        err(ErrorCode::Internal, "cpu backend: not implemented yet")
    }
    fn read_h(&self, width: usize) -> Result<Vec<f64>> {
        let _ = width;
        err(ErrorCode::Internal, "cpu backend: not implemented yet")
    }
    fn pass(&self, rows: Rows, proj: &[f64], op: &RowOp) -> Result<PassOut> {
        let _ = (rows, proj, op);
        err(ErrorCode::Internal, "cpu backend: not implemented yet")
    }
}

/// See `crate::weighted_gram`.
pub fn weighted_gram(x: &[f64], n: usize, d: usize, w: &[f64], m: usize, threads: usize) -> Result<Vec<f64>> {
    let _ = (x, n, d, w, m, threads);
    err(ErrorCode::Internal, "weighted_gram: not implemented yet")
}
