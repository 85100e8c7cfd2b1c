//! The multi-threaded CPU backend: borrows the data zero-copy and runs each pass over a FIXED partition of
//! the selected rows into chunks. Chunk partials are added in chunk order whatever thread computed them, so
//! results are bit-identical for any thread count.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use crate::api::{err, Data, ErrorCode, Result};
use crate::backend::{Backend, OpShape, PassOut, RowOp, Rows};
use crate::gram::{self, GramScratch};
use crate::rowops::{eval_row, Scratch};
use crate::simd;

/// Rows per chunk (fixed: the reduction order depends on it, never on the thread count).
const CHUNK: usize = 2048;

pub struct CpuBackend<'a> {
    data: Data<'a>,
    threads: usize,
    /// Stored responsibilities: (width, n×width values).
    h: Mutex<(usize, Vec<f64>)>,
    order: Mutex<Vec<u32>>,
}

fn resolve_threads(threads: usize) -> usize {
    if threads == 0 {
        std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1)
    } else {
        threads
    }
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
        Ok(CpuBackend {
            data,
            threads: resolve_threads(threads),
            h: Mutex::new((0, Vec::new())),
            order: Mutex::new(Vec::new()),
        })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }
}

/// A raw pointer shared by the worker threads of one pass; each row of H is touched by one chunk only.
#[derive(Clone, Copy)]
struct SharedMut(*mut f64);
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

/// One chunk's (or the running total's) reductions; Grams are padded upper-triangle accumulators.
struct Partial {
    xtr: Vec<f64>,
    grams: Vec<f64>,
    sums: Vec<f64>,
}

impl Partial {
    fn zeros(shape: &OpShape, d: usize) -> Self {
        let per_gram = if shape.diag_only { d } else { gram::acc_len(d) };
        Partial {
            xtr: vec![0.0; shape.r_cols * d],
            grams: vec![0.0; shape.grams * per_gram],
            sums: vec![0.0; shape.sums],
        }
    }
    fn add(&mut self, o: &Partial) {
        for (a, b) in self.xtr.iter_mut().zip(&o.xtr) {
            *a += b;
        }
        for (a, b) in self.grams.iter_mut().zip(&o.grams) {
            *a += b;
        }
        for (a, b) in self.sums.iter_mut().zip(&o.sums) {
            *a += b;
        }
    }
}

/// The rows of one pass: all rows, or a list of row indices.
enum Selection<'s> {
    All(usize),
    List(&'s [u32]),
}

impl Selection<'_> {
    fn len(&self) -> usize {
        match self {
            Selection::All(n) => *n,
            Selection::List(l) => l.len(),
        }
    }
    fn row(&self, pos: usize) -> usize {
        match self {
            Selection::All(_) => pos,
            Selection::List(l) => l[pos] as usize,
        }
    }
}

struct PassCtx<'p> {
    data: Data<'p>,
    sel: Selection<'p>,
    proj: &'p [f64],
    op: &'p RowOp,
    shape: OpShape,
    h: SharedMut,
    /// AVX2+FMA available (detected once per pass).
    simd: bool,
}

impl PassCtx<'_> {
    fn chunk(&self, lo: usize, hi: usize, sc: &mut Scratch, gs: &mut GramScratch, xbuf: &mut Vec<f64>) -> Partial {
        let d = self.data.d;
        let sh = &self.shape;
        let l = hi - lo;
        let mut part = Partial::zeros(sh, d);
        let mut a = vec![0.0; sh.q];
        let mut r = vec![0.0; l * sh.r_cols];
        let mut w = vec![0.0; l * sh.grams];
        let contiguous = matches!(self.sel, Selection::All(_));
        let reads_x = sh.q > 0 || sh.r_cols > 0 || sh.grams > 0;
        if !contiguous && reads_x {
            xbuf.clear();
            for pos in lo..hi {
                let i = self.sel.row(pos);
                xbuf.extend_from_slice(&self.data.x[i * d..(i + 1) * d]);
            }
        }
        let xrows: &[f64] = if contiguous {
            &self.data.x[lo * d..hi * d]
        } else if reads_x {
            &xbuf[..]
        } else {
            &[]
        };
        let hw = sh.h_width;
        let mut empty: [f64; 0] = [];
        for (t, pos) in (lo..hi).enumerate() {
            let i = self.sel.row(pos);
            let xi = if reads_x { &xrows[t * d..(t + 1) * d] } else { &[] };
            simd::project(self.proj, d, xi, &mut a, self.simd);
            let s = self.data.s.map_or(1.0, |s| s[i]);
            // SAFETY: row i of H belongs to this chunk only (rows of a pass are distinct), and H has n×hw values.
            let hrow: &mut [f64] =
                if hw > 0 { unsafe { std::slice::from_raw_parts_mut(self.h.0.add(i * hw), hw) } } else { &mut empty };
            eval_row(
                self.op,
                &a,
                self.data.y[i],
                s,
                hrow,
                &mut r[t * sh.r_cols..(t + 1) * sh.r_cols],
                &mut w[t * sh.grams..(t + 1) * sh.grams],
                &mut part.sums,
                sc,
            );
            for c in 0..sh.r_cols {
                let rc = r[t * sh.r_cols + c];
                if rc != 0.0 {
                    simd::axpy(rc, xi, &mut part.xtr[c * d..(c + 1) * d], self.simd);
                }
            }
        }
        if sh.grams > 0 {
            if sh.diag_only {
                for t in 0..l {
                    let xi = &xrows[t * d..(t + 1) * d];
                    for j in 0..sh.grams {
                        let wj = w[t * sh.grams + j];
                        for (o, &xv) in part.grams[j * d..(j + 1) * d].iter_mut().zip(xi) {
                            *o += wj * xv * xv;
                        }
                    }
                }
            } else {
                gram::accumulate(xrows, l, d, &w, sh.grams, &mut part.grams, gs);
            }
        }
        part
    }
}

/// Run `n_chunks` chunk computations on up to `threads` threads and add the partials in chunk order.
fn ordered_reduce<F>(n_chunks: usize, threads: usize, init: Partial, compute: F) -> Partial
where
    F: Fn(usize, &mut (Scratch, GramScratch, Vec<f64>)) -> Partial + Sync,
{
    let threads = threads.min(n_chunks).max(1);
    if threads == 1 {
        let mut total = init;
        let mut sc = (Scratch::default(), GramScratch::default(), Vec::new());
        for c in 0..n_chunks {
            total.add(&compute(c, &mut sc));
        }
        return total;
    }
    let next_chunk = AtomicUsize::new(0);
    let state = Mutex::new((0usize, init));
    let turn = Condvar::new();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut sc = (Scratch::default(), GramScratch::default(), Vec::new());
                loop {
                    let c = next_chunk.fetch_add(1, Ordering::Relaxed);
                    if c >= n_chunks {
                        break;
                    }
                    let part = compute(c, &mut sc);
                    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                    while st.0 != c {
                        st = turn.wait(st).unwrap_or_else(|e| e.into_inner());
                    }
                    st.1.add(&part);
                    st.0 += 1;
                    turn.notify_all();
                }
            });
        }
    });
    state.into_inner().unwrap_or_else(|e| e.into_inner()).1
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
        if let Some(&bad) = order.iter().find(|&&i| i as usize >= self.data.n) {
            return err(ErrorCode::Internal, format!("row index {bad} out of range (n = {})", self.data.n));
        }
        let mut o = self.order.lock().unwrap_or_else(|e| e.into_inner());
        o.clear();
        o.extend_from_slice(order);
        Ok(())
    }
    fn write_h(&self, width: usize, h: &[f64]) -> Result<()> {
        if h.len() != self.data.n * width {
            return err(ErrorCode::Internal, format!("H must be n×{width}"));
        }
        let mut st = self.h.lock().unwrap_or_else(|e| e.into_inner());
        st.0 = width;
        st.1.clear();
        st.1.extend_from_slice(h);
        Ok(())
    }
    fn read_h(&self, width: usize) -> Result<Vec<f64>> {
        let st = self.h.lock().unwrap_or_else(|e| e.into_inner());
        if st.0 != width || st.1.len() != self.data.n * width {
            return err(ErrorCode::Internal, format!("no stored H of width {width}"));
        }
        Ok(st.1.clone())
    }
    fn pass(&self, rows: Rows, proj: &[f64], op: &RowOp) -> Result<PassOut> {
        let d = self.data.d;
        let shape = op.shape();
        if proj.len() != shape.q * d {
            return err(ErrorCode::Internal, format!("pass {op:?}: P must be {}×{d}", shape.q));
        }
        let order_guard = self.order.lock().unwrap_or_else(|e| e.into_inner());
        let sel = match rows {
            Rows::All => Selection::All(self.data.n),
            Rows::Order { start, len } => {
                if start + len > order_guard.len() {
                    return err(ErrorCode::Internal, "batch outside the row order");
                }
                Selection::List(&order_guard[start..start + len])
            }
        };
        let mut h_guard = self.h.lock().unwrap_or_else(|e| e.into_inner());
        if shape.h_width > 0 && (h_guard.0 != shape.h_width || h_guard.1.len() != self.data.n * shape.h_width) {
            if !shape.writes_h {
                return err(ErrorCode::Internal, format!("pass {op:?} needs a stored H of width {}", shape.h_width));
            }
            *h_guard = (shape.h_width, vec![0.0; self.data.n * shape.h_width]);
        }
        let ctx = PassCtx { data: self.data, sel, proj, op, shape, h: SharedMut(h_guard.1.as_mut_ptr()), simd: simd::has_avx2_fma() };
        let len = ctx.sel.len();
        let n_chunks = len.div_ceil(CHUNK);
        let total = ordered_reduce(n_chunks, self.threads, Partial::zeros(&shape, d), |c, (sc, gs, xb)| {
            ctx.chunk(c * CHUNK, ((c + 1) * CHUNK).min(len), sc, gs, xb)
        });
        drop(h_guard);
        let grams = if shape.grams > 0 && !shape.diag_only {
            let len = gram::acc_len(d);
            let mut g = vec![0.0; shape.grams * d * d];
            for j in 0..shape.grams {
                gram::mirror_into(&total.grams[j * len..(j + 1) * len], d, &mut g[j * d * d..(j + 1) * d * d]);
            }
            g
        } else {
            total.grams
        };
        Ok(PassOut { xtr: total.xtr, grams, sums: total.sums })
    }
}

/// See `crate::weighted_gram`.
pub fn weighted_gram(x: &[f64], n: usize, d: usize, w: &[f64], m: usize, threads: usize) -> Result<Vec<f64>> {
    if x.len() != n * d || w.len() != n * m {
        return err(ErrorCode::Shape, "weighted_gram: x must be n×d and w n×m");
    }
    let len = gram::acc_len(d);
    let shape = OpShape { q: 0, r_cols: 0, grams: m, diag_only: false, sums: 0, h_width: 0, writes_h: false };
    let total = ordered_reduce(n.div_ceil(CHUNK), resolve_threads(threads), Partial::zeros(&shape, d), |c, (_, gs, _)| {
        let (lo, hi) = (c * CHUNK, ((c + 1) * CHUNK).min(n));
        let mut part = Partial::zeros(&shape, d);
        gram::accumulate(&x[lo * d..hi * d], hi - lo, d, &w[lo * m..hi * m], m, &mut part.grams, gs);
        part
    });
    let mut g = vec![0.0; m * d * d];
    for j in 0..m {
        gram::mirror_into(&total.grams[j * len..(j + 1) * len], d, &mut g[j * d * d..(j + 1) * d * d]);
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Family, SoftmaxProblem, SoftmaxTask};
    use crate::rng::Rng;

    fn random_data(seed: u32, n: usize, d: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut rng = Rng::new(seed);
        let x = (0..n * d).map(|_| rng.uniform() * 2.0 - 1.0).collect();
        let y = (0..n).map(|_| rng.uniform() * 3.0 - 1.0).collect();
        let s = (0..n).map(|_| rng.uniform() + 0.5).collect();
        (x, y, s)
    }

    #[test]
    fn passes_are_bit_identical_for_any_thread_count() {
        let (n, d, k) = (5000, 7, 3);
        let (x, y, s) = random_data(11, n, d);
        let data = Data { x: &x, n, d, y: &y, s: Some(&s) };
        let mut rng = Rng::new(12);
        let proj: Vec<f64> = (0..2 * k * d).map(|_| rng.uniform() - 0.5).collect();
        let estep = RowOp::EStep { k, family: Family::Linear { sigma2: vec![0.5, 1.0, 2.0] }, store: true, suff: true };
        let hess = RowOp::Softmax { problem: SoftmaxProblem::Gate { k }, task: SoftmaxTask::Hessian };
        let mut reference: Option<(PassOut, PassOut)> = None;
        for threads in [1, 2, 5] {
            let b = CpuBackend::new(data, threads).unwrap();
            let e = b.pass(Rows::All, &proj, &estep).unwrap();
            let hp = b.pass(Rows::All, &proj[..(k - 1) * d], &hess).unwrap();
            match &reference {
                None => reference = Some((e, hp)),
                Some((e0, h0)) => {
                    assert_eq!(&e, e0, "E-step differs with {threads} threads");
                    assert_eq!(&hp, h0, "Hessian pass differs with {threads} threads");
                }
            }
        }
    }

    #[test]
    fn pass_matches_a_direct_row_loop_and_batches_select_rows() {
        let (n, d, k) = (3000, 5, 2);
        let (x, y, s) = random_data(21, n, d);
        let data = Data { x: &x, n, d, y: &y, s: Some(&s) };
        let b = CpuBackend::new(data, 2).unwrap();
        let mut rng = Rng::new(22);
        let proj: Vec<f64> = (0..2 * k * d).map(|_| rng.uniform() - 0.5).collect();
        let op = RowOp::EStep { k, family: Family::Linear { sigma2: vec![0.7, 1.3] }, store: true, suff: true };
        // A batch of every third row, in a shuffled order.
        let mut order: Vec<u32> = (0..n as u32).filter(|i| i % 3 == 0).collect();
        Rng::new(5).shuffle(&mut order);
        b.set_order(&order).unwrap();
        let out = b.pass(Rows::Order { start: 0, len: order.len() }, &proj, &op).unwrap();
        // Direct evaluation.
        let mut sums = vec![0.0; 1 + k];
        let mut xtr = vec![0.0; k * d];
        let mut grams = vec![0.0; k * d * d];
        let mut sc = Scratch::default();
        for &i in &order {
            let i = i as usize;
            let xi = &x[i * d..(i + 1) * d];
            let a: Vec<f64> = (0..2 * k).map(|q| (0..d).map(|f| proj[q * d + f] * xi[f]).sum()).collect();
            let (mut h, mut r, mut w) = (vec![0.0; k], vec![0.0; k], vec![0.0; k]);
            eval_row(&op, &a, y[i], s[i], &mut h, &mut r, &mut w, &mut sums, &mut sc);
            for j in 0..k {
                for f in 0..d {
                    xtr[j * d + f] += r[j] * xi[f];
                    for g in 0..d {
                        grams[(j * d + f) * d + g] += w[j] * xi[f] * xi[g];
                    }
                }
            }
        }
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(u, v)| (u - v).abs() <= 1e-10 * (1.0 + v.abs()));
        assert!(close(&out.sums, &sums));
        assert!(close(&out.xtr, &xtr));
        assert!(close(&out.grams, &grams));
        // H was written for the batch rows only.
        let h = b.read_h(k).unwrap();
        assert!((h[0] + h[1] - 1.0).abs() < 1e-12);
        assert_eq!(h[2], 0.0);
        assert_eq!(h[3], 0.0);
    }

    #[test]
    fn bad_shapes_are_errors_not_panics() {
        let x = vec![0.0; 6];
        let y = vec![0.0; 2];
        let e = CpuBackend::new(Data { x: &x, n: 2, d: 2, y: &y, s: None }, 1).err().unwrap();
        assert_eq!(e.code.as_str(), "E_SHAPE");
        let b = CpuBackend::new(Data { x: &x, n: 3, d: 2, y: &[0.0; 3], s: None }, 1).unwrap();
        let e = b.pass(Rows::All, &[1.0], &RowOp::LinearResidual { k: 1 }).err().unwrap();
        assert_eq!(e.code, ErrorCode::Internal);
    }
}
