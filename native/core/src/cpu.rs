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

/// One op's reductions over a chunk (or the running total); Grams are padded upper-triangle accumulators.
struct StagePartial {
    xtr: Vec<f64>,
    grams: Vec<f64>,
    sums: Vec<f64>,
}

impl StagePartial {
    fn zeros(shape: &OpShape, d: usize) -> Self {
        let per_gram = if shape.diag_only { d } else { gram::acc_len(d) };
        StagePartial {
            xtr: vec![0.0; shape.r_cols * d],
            grams: vec![0.0; shape.grams * per_gram],
            sums: vec![0.0; shape.sums],
        }
    }
    fn add(&mut self, o: &StagePartial) {
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

/// The reductions of every op of a (possibly fused) pass.
struct Partial(Vec<StagePartial>);

impl Partial {
    fn zeros(stages: &[Stage], d: usize) -> Self {
        Partial(stages.iter().map(|st| StagePartial::zeros(&st.shape, d)).collect())
    }
    fn add(&mut self, o: &Partial) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            a.add(b);
        }
    }
    /// Reset to zeros for reuse (buffers are recycled: fresh large allocations cost page faults).
    fn clear(&mut self) {
        for st in &mut self.0 {
            st.xtr.iter_mut().for_each(|v| *v = 0.0);
            st.grams.iter_mut().for_each(|v| *v = 0.0);
            st.sums.iter_mut().for_each(|v| *v = 0.0);
        }
    }
}

/// One op of a pass with its projection matrix.
struct Stage<'p> {
    proj: &'p [f64],
    op: &'p RowOp,
    shape: OpShape,
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
    /// The ops evaluated on each row, in order (a later op may read the H row an earlier one wrote).
    stages: Vec<Stage<'p>>,
    /// Width of the stored H the stages read or write (0 = none).
    h_width: usize,
    h: SharedMut,
    /// AVX2+FMA available (detected once per pass).
    simd: bool,
}

impl PassCtx<'_> {
    /// Reductions of rows lo..hi into `part` (zeroed on entry).
    fn chunk(&self, lo: usize, hi: usize, ts: &mut ThreadScratch, mut part: Partial) -> Partial {
        let d = self.data.d;
        let l = hi - lo;
        let ThreadScratch { rows: sc, gram: gs, xbuf, a, r, w } = ts;
        let n_st = self.stages.len();
        a.resize_with(n_st, Vec::new);
        r.resize_with(n_st, Vec::new);
        w.resize_with(n_st, Vec::new);
        for (k, st) in self.stages.iter().enumerate() {
            a[k].resize(st.shape.q, 0.0);
            r[k].resize(l * st.shape.r_cols, 0.0);
            w[k].resize(l * st.shape.grams, 0.0);
        }
        let contiguous = matches!(self.sel, Selection::All(_));
        let reads_x = self.stages.iter().any(|st| st.shape.q > 0 || st.shape.r_cols > 0 || st.shape.grams > 0);
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
        let hw = self.h_width;
        let mut empty: [f64; 0] = [];
        for (t, pos) in (lo..hi).enumerate() {
            let i = self.sel.row(pos);
            let xi = if reads_x { &xrows[t * d..(t + 1) * d] } else { &[] };
            let s = self.data.s.map_or(1.0, |s| s[i]);
            for (k, st) in self.stages.iter().enumerate() {
                let sh = &st.shape;
                simd::project(st.proj, d, xi, &mut a[k], self.simd);
                // SAFETY: row i of H belongs to this chunk only (rows of a pass are distinct), H has n×hw values,
                // and the stages of one row run one after the other on this thread.
                let hrow: &mut [f64] = if hw > 0 && sh.h_width > 0 {
                    unsafe { std::slice::from_raw_parts_mut(self.h.0.add(i * hw), hw) }
                } else {
                    &mut empty
                };
                let rs = &mut r[k][t * sh.r_cols..(t + 1) * sh.r_cols];
                eval_row(st.op, &a[k], self.data.y[i], s, hrow, rs, &mut w[k][t * sh.grams..(t + 1) * sh.grams], &mut part.0[k].sums, &mut sc[k]);
                for (c, &rc) in rs.iter().enumerate() {
                    if rc != 0.0 {
                        simd::axpy(rc, xi, &mut part.0[k].xtr[c * d..(c + 1) * d], self.simd);
                    }
                }
            }
        }
        for (k, st) in self.stages.iter().enumerate() {
            let sh = &st.shape;
            if sh.grams == 0 {
                continue;
            }
            let (w, out) = (&w[k], &mut part.0[k].grams);
            if sh.diag_only {
                for t in 0..l {
                    let xi = &xrows[t * d..(t + 1) * d];
                    for j in 0..sh.grams {
                        let wj = w[t * sh.grams + j];
                        for (o, &xv) in out[j * d..(j + 1) * d].iter_mut().zip(xi) {
                            *o += wj * xv * xv;
                        }
                    }
                }
            } else {
                gram::accumulate(xrows, l, d, w, sh.grams, out, gs);
            }
        }
        part
    }
}

/// Run `n_chunks` chunk computations on up to `threads` threads and add the partials in chunk order.
/// Per-thread scratch: one row-op `Scratch` per stage (it caches per-op constants), Gram packing, row gather.
#[derive(Default)]
struct ThreadScratch {
    rows: Vec<Scratch>,
    gram: GramScratch,
    /// Gathered rows of a batch.
    xbuf: Vec<f64>,
    /// Per stage: projections of one row, R and Gram weights of the chunk.
    a: Vec<Vec<f64>>,
    r: Vec<Vec<f64>>,
    w: Vec<Vec<f64>>,
}

/// `compute(c, scratch, zeroed partial)` fills chunk c's partial; `zeros()` makes a new one.
fn ordered_reduce<F, Z>(n_chunks: usize, threads: usize, n_stages: usize, zeros: Z, compute: F) -> Partial
where
    F: Fn(usize, &mut ThreadScratch, Partial) -> Partial + Sync,
    Z: Fn() -> Partial + Sync,
{
    let new_scratch = || ThreadScratch { rows: (0..n_stages).map(|_| Scratch::default()).collect(), ..Default::default() };
    let init = zeros();
    let threads = threads.min(n_chunks).max(1);
    if threads == 1 {
        let mut total = init;
        let mut sc = new_scratch();
        let mut buf = zeros();
        for c in 0..n_chunks {
            buf = compute(c, &mut sc, buf);
            total.add(&buf);
            buf.clear();
        }
        return total;
    }
    // Partials finished out of order wait in `pending` (at most WINDOW·threads of them, which bounds the
    // memory) and are added to the total strictly in chunk order: the result does not depend on timing.
    const WINDOW: usize = 4;
    struct Reduction {
        next: usize,
        total: Partial,
        pending: std::collections::BTreeMap<usize, Partial>,
        /// Consumed partials, zeroed, for reuse.
        spare: Vec<Partial>,
    }
    let next_chunk = AtomicUsize::new(0);
    let state = Mutex::new(Reduction { next: 0, total: init, pending: std::collections::BTreeMap::new(), spare: Vec::new() });
    let progressed = Condvar::new();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut sc = new_scratch();
                loop {
                    let c = next_chunk.fetch_add(1, Ordering::Relaxed);
                    if c >= n_chunks {
                        break;
                    }
                    let buf = state.lock().unwrap_or_else(|e| e.into_inner()).spare.pop().unwrap_or_else(&zeros);
                    let part = compute(c, &mut sc, buf);
                    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                    // Too far ahead of the slowest chunk: wait until the window has room (or it is our turn).
                    while c != st.next && st.pending.len() >= WINDOW * threads {
                        st = progressed.wait(st).unwrap_or_else(|e| e.into_inner());
                    }
                    st.pending.insert(c, part);
                    let mut advanced = false;
                    loop {
                        let next = st.next;
                        match st.pending.remove(&next) {
                            Some(mut p) => {
                                st.total.add(&p);
                                st.next += 1;
                                advanced = true;
                                p.clear();
                                st.spare.push(p);
                            }
                            None => break,
                        }
                    }
                    if advanced {
                        progressed.notify_all();
                    }
                }
            });
        }
    });
    state.into_inner().unwrap_or_else(|e| e.into_inner()).total
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
        // Distinct, in-range rows: each row of H is then written by one chunk only.
        let mut seen = vec![false; self.data.n];
        for &i in order {
            match seen.get_mut(i as usize) {
                None => return err(ErrorCode::Internal, format!("row index {i} out of range (n = {})", self.data.n)),
                Some(true) => return err(ErrorCode::Internal, format!("row index {i} appears twice in the row order")),
                Some(s) => *s = true,
            }
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
        let mut outs = self.pass_many(rows, &[(proj, op)])?;
        Ok(outs.remove(0))
    }

    /// Every op on each row in one read of X (the CPU fuses; see `Backend::pass_many`).
    fn pass_many(&self, rows: Rows, ops: &[(&[f64], &RowOp)]) -> Result<Vec<PassOut>> {
        let d = self.data.d;
        let mut stages = Vec::with_capacity(ops.len());
        let (mut h_width, mut writes_h) = (0, false);
        for &(proj, op) in ops {
            let shape = op.shape();
            if proj.len() != shape.q * d {
                return err(ErrorCode::Internal, format!("pass {op:?}: P must be {}×{d}", shape.q));
            }
            if shape.h_width > 0 {
                if h_width > 0 && h_width != shape.h_width {
                    return err(ErrorCode::Internal, "the ops of one pass must share the width of H");
                }
                h_width = shape.h_width;
                // Only an op before any reader may create H.
                writes_h |= shape.writes_h && !stages.iter().any(|st: &Stage| st.shape.h_width > 0);
            }
            stages.push(Stage { proj, op, shape });
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
        if h_width > 0 && (h_guard.0 != h_width || h_guard.1.len() != self.data.n * h_width) {
            if !writes_h {
                return err(ErrorCode::Internal, format!("pass {ops:?} needs a stored H of width {h_width}"));
            }
            *h_guard = (h_width, vec![0.0; self.data.n * h_width]);
        }
        let n_stages = stages.len();
        let ctx = PassCtx { data: self.data, sel, stages, h_width, h: SharedMut(h_guard.1.as_mut_ptr()), simd: simd::has_avx2_fma() };
        let len = ctx.sel.len();
        let n_chunks = len.div_ceil(CHUNK);
        let total = ordered_reduce(n_chunks, self.threads, n_stages, || Partial::zeros(&ctx.stages, d), |c, ts, part| {
            ctx.chunk(c * CHUNK, ((c + 1) * CHUNK).min(len), ts, part)
        });
        drop(h_guard);
        let outs = total
            .0
            .into_iter()
            .zip(&ctx.stages)
            .map(|(part, st)| {
                let grams = if st.shape.grams > 0 && !st.shape.diag_only {
                    let len = gram::acc_len(d);
                    let mut g = vec![0.0; st.shape.grams * d * d];
                    for j in 0..st.shape.grams {
                        gram::mirror_into(&part.grams[j * len..(j + 1) * len], d, &mut g[j * d * d..(j + 1) * d * d]);
                    }
                    g
                } else {
                    part.grams
                };
                PassOut { xtr: part.xtr, grams, sums: part.sums }
            })
            .collect();
        Ok(outs)
    }
}

/// See `crate::weighted_gram`.
pub fn weighted_gram(x: &[f64], n: usize, d: usize, w: &[f64], m: usize, threads: usize) -> Result<Vec<f64>> {
    if x.len() != n * d || w.len() != n * m {
        return err(ErrorCode::Shape, "weighted_gram: x must be n×d and w n×m");
    }
    let len = gram::acc_len(d);
    let zeros = || Partial(vec![StagePartial { xtr: Vec::new(), grams: vec![0.0; m * len], sums: Vec::new() }]);
    let total = ordered_reduce(n.div_ceil(CHUNK), resolve_threads(threads), 0, zeros, |c, ts, mut part| {
        let (lo, hi) = (c * CHUNK, ((c + 1) * CHUNK).min(n));
        gram::accumulate(&x[lo * d..hi * d], hi - lo, d, &w[lo * m..hi * m], m, &mut part.0[0].grams, &mut ts.gram);
        part
    });
    let mut g = vec![0.0; m * d * d];
    for j in 0..m {
        gram::mirror_into(&total.0[0].grams[j * len..(j + 1) * len], d, &mut g[j * d * d..(j + 1) * d * d]);
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
    fn fused_passes_equal_separate_passes() {
        let (n, d, k) = (4100, 6, 3);
        let (x, y, s) = random_data(31, n, d);
        let data = Data { x: &x, n, d, y: &y, s: Some(&s) };
        let mut rng = Rng::new(32);
        let proj: Vec<f64> = (0..2 * k * d).map(|_| rng.uniform() - 0.5).collect();
        let estep = RowOp::EStep { k, family: Family::Linear { sigma2: vec![0.5, 1.0, 2.0] }, store: true, suff: true };
        let hess = RowOp::Softmax { problem: SoftmaxProblem::Gate { k }, task: SoftmaxTask::Hessian };
        let gate = &proj[..(k - 1) * d];
        let b = CpuBackend::new(data, 2).unwrap();
        let fused = b.pass_many(Rows::All, &[(&proj, &estep), (gate, &hess)]).unwrap();
        let b2 = CpuBackend::new(data, 3).unwrap();
        let separate = vec![b2.pass(Rows::All, &proj, &estep).unwrap(), b2.pass(Rows::All, gate, &hess).unwrap()];
        assert_eq!(fused, separate);
        assert_eq!(b.read_h(k).unwrap(), b2.read_h(k).unwrap());
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
        assert_eq!(b.set_order(&[0, 2, 0]).err().unwrap().code, ErrorCode::Internal);
        assert_eq!(b.set_order(&[3]).err().unwrap().code, ErrorCode::Internal);
        assert!(b.set_order(&[2, 0]).is_ok());
    }
}
