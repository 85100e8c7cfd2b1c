//! The multi-threaded CPU backend: borrows the data zero-copy and runs each pass over a FIXED partition of
//! the selected rows into chunks. Chunk partials are added in chunk order whatever thread computed them, so
//! results are bit-identical for any thread count.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use crate::api::{err, Data, ErrorCode, Result};
use crate::backend::{check_row_indices, Backend, OpShape, PassOut, RowOp, Rows};
use crate::gram::{self, GramScratch};
use crate::rowops::{eval_row, Scratch};
use crate::simd;

/// Rows per chunk (fixed: the reduction order depends on it, never on the thread count).
const CHUNK: usize = 2048;

pub struct CpuBackend<'a> {
    data: Data<'a>,
    threads: usize,
    /// Stored responsibilities H.
    h: Mutex<RowStore>,
    /// Stored softmax probabilities (`SoftmaxTask::GradientDiagStore`), kept exactly like H.
    probs: Mutex<RowStore>,
    order: Mutex<Vec<u32>>,
}

/// A backend-resident per-row matrix (n×width row-major): H, or the softmax probabilities.
#[derive(Default)]
struct RowStore {
    width: usize,
    vals: Vec<f64>,
}

impl RowStore {
    /// Make the store ready for a pass whose ops use `width` of its columns (0: none): a store of another
    /// width is replaced by zeros when the pass `creates` it. False when the pass would read a store that
    /// does not exist.
    fn prepare(&mut self, width: usize, creates: bool, n: usize) -> bool {
        if width > 0 && (self.width != width || self.vals.len() != n * width) {
            if !creates {
                return false;
            }
            *self = RowStore { width, vals: vec![0.0; n * width] };
        }
        true
    }
    /// Where the chunks of a pass read and write the rows.
    fn rows(&mut self) -> StoreRows {
        StoreRows { ptr: SharedMut(self.vals.as_mut_ptr()), width: self.width }
    }
}

/// The width of a store that the ops of a pass use, given (width, writes) per op in order, and whether the pass
/// may create it: the ops must agree on the width, and only an op before any reader may create it.
fn store_use(what: &str, uses: impl Iterator<Item = (usize, bool)>) -> Result<(usize, bool)> {
    let (mut width, mut creates) = (0, false);
    for (w, writes) in uses.filter(|&(w, _)| w > 0) {
        if width == 0 {
            creates = writes;
        } else if width != w {
            return err(ErrorCode::Internal, format!("the ops of one pass must share the width of {what}"));
        }
        width = w;
    }
    Ok((width, creates))
}

/// Threads for one memory-bound pass over `values` f64s outside the backend (an input scan, a copy): all
/// cores from 2²⁰ values on, one below, where starting threads costs more than the pass.
pub fn streaming_threads(values: usize) -> usize {
    const PARALLEL_FROM: usize = 1 << 20;
    if values < PARALLEL_FROM {
        1
    } else {
        resolve_threads(0)
    }
}

/// `threads`, or all cores for 0.
pub(crate) fn resolve_threads(threads: usize) -> usize {
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
            h: Mutex::new(RowStore::default()),
            probs: Mutex::new(RowStore::default()),
            order: Mutex::new(Vec::new()),
        })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The stored H, locked, when it has `width` columns (`ErrorCode::Internal` otherwise: an algorithm read
    /// what no pass stored).
    fn stored_h(&self, width: usize) -> Result<std::sync::MutexGuard<'_, RowStore>> {
        let st = self.h.lock().unwrap_or_else(|e| e.into_inner());
        if st.width != width || st.vals.len() != self.data.n * width {
            return err(ErrorCode::Internal, format!("no stored H of width {width}"));
        }
        Ok(st)
    }
}

/// A raw pointer shared by the worker threads of one pass; each row of a store is touched by one chunk only.
#[derive(Clone, Copy)]
struct SharedMut(*mut f64);
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

/// A `RowStore` as the chunks of one pass see it (width 0: the pass uses no such store).
#[derive(Clone, Copy)]
struct StoreRows {
    ptr: SharedMut,
    width: usize,
}

impl StoreRows {
    /// Row i of the store, or an empty slice when `used` is false (the op does not use this store).
    ///
    /// # Safety
    /// Row i must belong to the calling chunk only (the rows of a pass are distinct), the store must hold
    /// n×width values and outlive the returned slice, and no other slice of row i may be alive.
    unsafe fn row<'r>(&self, i: usize, used: bool) -> &'r mut [f64] {
        if self.width > 0 && used {
            std::slice::from_raw_parts_mut(self.ptr.0.add(i * self.width), self.width)
        } else {
            &mut []
        }
    }
}

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
    /// The stored H and probabilities the stages read or write.
    h: StoreRows,
    probs: StoreRows,
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
        for (t, pos) in (lo..hi).enumerate() {
            let i = self.sel.row(pos);
            let xi = if reads_x { &xrows[t * d..(t + 1) * d] } else { &[] };
            let s = self.data.s.map_or(1.0, |s| s[i]);
            for (k, st) in self.stages.iter().enumerate() {
                let sh = &st.shape;
                simd::project(st.proj, d, xi, &mut a[k], self.simd);
                // SAFETY: row i belongs to this chunk only (rows of a pass are distinct), the stores have n×width
                // values and are locked for the pass, and the stages of one row run one after the other on this
                // thread, each dropping its slices before the next.
                let (hrow, prow) = unsafe { (self.h.row(i, sh.h_width > 0), self.probs.row(i, sh.p_width > 0)) };
                let rs = &mut r[k][t * sh.r_cols..(t + 1) * sh.r_cols];
                eval_row(
                    st.op,
                    &a[k],
                    self.data.y[i],
                    s,
                    hrow,
                    prow,
                    rs,
                    &mut w[k][t * sh.grams..(t + 1) * sh.grams],
                    &mut part.0[k].sums,
                    &mut sc[k],
                );
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
    let new_scratch =
        || ThreadScratch { rows: (0..n_stages).map(|_| Scratch::default()).collect(), ..Default::default() };
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
    let state =
        Mutex::new(Reduction { next: 0, total: init, pending: std::collections::BTreeMap::new(), spare: Vec::new() });
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
    fn host_threads(&self) -> usize {
        self.threads
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
        st.width = width;
        st.vals.clear();
        st.vals.extend_from_slice(h);
        Ok(())
    }
    fn read_h(&self, width: usize) -> Result<Vec<f64>> {
        Ok(self.stored_h(width)?.vals.clone())
    }
    fn gather_h(&self, idx: &[usize], width: usize) -> Result<Vec<f64>> {
        let st = self.stored_h(width)?;
        check_row_indices("gather_h", idx, self.data.n)?;
        Ok(idx.iter().flat_map(|&i| st.vals[i * width..(i + 1) * width].iter().copied()).collect())
    }
    fn gather_rows(&self, idx: &[usize]) -> Result<(Vec<f64>, Vec<f64>)> {
        let (x, d) = (self.data.x, self.data.d);
        check_row_indices("gather_rows", idx, self.data.n)?;
        let rows = idx.iter().flat_map(|&i| x[i * d..(i + 1) * d].iter().copied()).collect();
        let weights = idx.iter().map(|&i| self.data.s.map_or(1.0, |s| s[i])).collect();
        Ok((rows, weights))
    }
    fn stores_probabilities(&self) -> bool {
        true
    }
    fn pass(&self, rows: Rows, proj: &[f64], op: &RowOp) -> Result<PassOut> {
        let mut outs = self.pass_many(rows, &[(proj, op)])?;
        Ok(outs.remove(0))
    }

    /// Every op on each row in one read of X (the CPU fuses; see `Backend::pass_many`).
    fn pass_many(&self, rows: Rows, ops: &[(&[f64], &RowOp)]) -> Result<Vec<PassOut>> {
        let d = self.data.d;
        let mut stages = Vec::with_capacity(ops.len());
        for &(proj, op) in ops {
            let shape = op.shape();
            if proj.len() != shape.q * d {
                return err(ErrorCode::Internal, format!("pass {op:?}: P must be {}×{d}", shape.q));
            }
            stages.push(Stage { proj, op, shape });
        }
        let (h_width, creates_h) = store_use("H", stages.iter().map(|st| (st.shape.h_width, st.shape.writes_h)))?;
        let (p_width, creates_p) =
            store_use("probabilities", stages.iter().map(|st| (st.shape.p_width, st.shape.writes_p)))?;
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
        // Locked for the whole pass (always H first, then the probabilities).
        let mut h_guard = self.h.lock().unwrap_or_else(|e| e.into_inner());
        let mut p_guard = self.probs.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.data.n;
        if !h_guard.prepare(h_width, creates_h, n) {
            return err(ErrorCode::Internal, format!("pass {ops:?} needs a stored H of width {h_width}"));
        }
        if !p_guard.prepare(p_width, creates_p, n) {
            return err(
                ErrorCode::Internal,
                format!("pass {ops:?} needs stored probabilities of width {p_width} (a GradientDiagStore pass first)"),
            );
        }
        let n_stages = stages.len();
        let ctx = PassCtx {
            data: self.data,
            sel,
            stages,
            h: h_guard.rows(),
            probs: p_guard.rows(),
            simd: simd::has_avx2_fma(),
        };
        let len = ctx.sel.len();
        let n_chunks = len.div_ceil(CHUNK);
        let total = ordered_reduce(
            n_chunks,
            self.threads,
            n_stages,
            || Partial::zeros(&ctx.stages, d),
            |c, ts, part| ctx.chunk(c * CHUNK, ((c + 1) * CHUNK).min(len), ts, part),
        );
        drop((h_guard, p_guard));
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
                PassOut { xtr: part.xtr, grams, sums: part.sums, grams_pending: false }
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
            eval_row(&op, &a, y[i], s[i], &mut h, &mut [], &mut r, &mut w, &mut sums, &mut sc);
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

    /// A softmax problem with fitting labels and a random stored H (rows summing to 1), sample weights.
    fn softmax_fixture(
        problem: SoftmaxProblem,
        seed: u32,
        n: usize,
        d: usize,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let (x, _, s) = random_data(seed, n, d);
        let mut rng = Rng::new(seed + 1);
        let (y, h_width): (Vec<f64>, usize) = match problem {
            SoftmaxProblem::Gate { k } => (vec![0.0; n], k),
            SoftmaxProblem::Expert { k, classes, logistic, .. } => {
                let labels = if logistic { 2 } else { classes };
                ((0..n).map(|_| rng.int(labels) as f64).collect(), k)
            }
            SoftmaxProblem::SymGate | SoftmaxProblem::SymLogExpert => {
                ((0..n).map(|_| if rng.uniform() < 0.5 { -1.0 } else { 1.0 }).collect(), 2)
            }
        };
        let mut h: Vec<f64> = (0..n * h_width).map(|_| rng.uniform() + 0.01).collect();
        for row in h.chunks_mut(h_width) {
            let tot: f64 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= tot);
        }
        (x, y, s, h)
    }

    const SOFTMAX_PROBLEMS: [SoftmaxProblem; 5] = [
        SoftmaxProblem::Gate { k: 4 },
        SoftmaxProblem::Expert { j: 1, k: 3, classes: 2, logistic: true },
        SoftmaxProblem::Expert { j: 2, k: 3, classes: 4, logistic: false },
        SoftmaxProblem::SymGate,
        SoftmaxProblem::SymLogExpert,
    ];

    #[test]
    fn stored_probabilities_give_the_gradient_diag_and_hessian_vector_passes_bit_for_bit() {
        let (n, d) = (5000, 6); // three chunks, the last one partial
        for (pi, &problem) in SOFTMAX_PROBLEMS.iter().enumerate() {
            let (x, y, s, h) = softmax_fixture(problem, 40 + pi as u32, n, d);
            let data = Data { x: &x, n, d, y: &y, s: Some(&s) };
            let m = problem.free_rows();
            let mut rng = Rng::new(50 + pi as u32);
            let v: Vec<f64> = (0..m * d).map(|_| 2.0 * rng.uniform() - 1.0).collect();
            let dir: Vec<f64> = (0..m * d).map(|_| rng.uniform() - 0.5).collect();
            let v_dir: Vec<f64> = v.iter().chain(&dir).copied().collect();
            let op = |task| RowOp::Softmax { problem, task };
            // A batch of two rows in three, shuffled (rows are indexed by id, not batch position).
            let mut order: Vec<u32> = (0..n as u32).filter(|i| i % 3 != 1).collect();
            Rng::new(7).shuffle(&mut order);
            for rows in [Rows::All, Rows::Order { start: 100, len: order.len() - 200 }] {
                let mut per_threads = Vec::new();
                for threads in [1, 2] {
                    let b = CpuBackend::new(data, threads).unwrap();
                    assert!(b.stores_probabilities());
                    b.write_h(h.len() / n, &h).unwrap();
                    b.set_order(&order).unwrap();
                    let diag = b.pass(rows, &v, &op(SoftmaxTask::GradientDiag)).unwrap();
                    let diag_store = b.pass(rows, &v, &op(SoftmaxTask::GradientDiagStore)).unwrap();
                    assert_eq!(diag_store, diag, "{problem:?} {rows:?}: GradientDiagStore differs from GradientDiag");
                    let hess_vec = b.pass(rows, &v_dir, &op(SoftmaxTask::HessVec)).unwrap();
                    let stored = b.pass(rows, &dir, &op(SoftmaxTask::HessVecStored)).unwrap();
                    assert_eq!(stored, hess_vec, "{problem:?} {rows:?}: HessVecStored differs from HessVec");
                    assert!(stored.xtr.iter().all(|v| v.is_finite()) && stored.xtr.iter().any(|&v| v != 0.0));
                    per_threads.push((diag_store, stored));
                }
                assert_eq!(per_threads[0], per_threads[1], "{problem:?} {rows:?}: 1 vs 2 threads");
            }
        }
    }

    /// Newton-CG's iterate pass is the Gradient pass plus diag(−H): its f and g are the Gradient pass's bit
    /// for bit, and its diagonal Grams are the diagonals of the Hessian pass's (a, a) blocks (same weights
    /// c·p_a(1 − p_a), summed by another Gram routine: to rounding).
    #[test]
    fn gradient_diag_is_the_gradient_and_the_hessian_diagonal() {
        let (n, d) = (3000, 5);
        for (pi, &problem) in SOFTMAX_PROBLEMS.iter().enumerate() {
            let (x, y, s, h) = softmax_fixture(problem, 70 + pi as u32, n, d);
            let b = CpuBackend::new(Data { x: &x, n, d, y: &y, s: Some(&s) }, 2).unwrap();
            b.write_h(h.len() / n, &h).unwrap();
            let m = problem.free_rows();
            let mut rng = Rng::new(80 + pi as u32);
            let v: Vec<f64> = (0..m * d).map(|_| 2.0 * rng.uniform() - 1.0).collect();
            let pass = |task| b.pass(Rows::All, &v, &RowOp::Softmax { problem, task }).unwrap();
            let (both, gradient, hessian) =
                (pass(SoftmaxTask::GradientDiag), pass(SoftmaxTask::Gradient), pass(SoftmaxTask::Hessian));
            assert_eq!((&both.xtr, &both.sums), (&gradient.xtr, &gradient.sums), "{problem:?}");
            let mut block = 0; // Hessian Grams: pairs a ≤ b in row-major order
            for a in 0..m {
                for f in 0..d {
                    let want = hessian.grams[block * d * d + f * d + f];
                    let got = both.grams[a * d + f];
                    assert!(
                        (got - want).abs() <= 1e-12 * want.abs().max(1e-300),
                        "{problem:?} a={a} f={f}: {got} vs {want}"
                    );
                    assert!(got > 0.0);
                }
                block += m - a;
            }
        }
    }

    #[test]
    fn reading_probabilities_without_a_matching_store_is_an_error() {
        let (n, d) = (300, 4);
        let gate = SoftmaxProblem::Gate { k: 3 };
        let (x, y, s, h) = softmax_fixture(gate, 60, n, d);
        let b = CpuBackend::new(Data { x: &x, n, d, y: &y, s: Some(&s) }, 2).unwrap();
        b.write_h(3, &h).unwrap();
        let read = |problem: SoftmaxProblem| {
            let dir = vec![0.1; problem.free_rows() * d];
            b.pass(Rows::All, &dir, &RowOp::Softmax { problem, task: SoftmaxTask::HessVecStored })
        };
        assert_eq!(read(gate).err().unwrap().code, ErrorCode::Internal);
        b.pass(Rows::All, &vec![0.2; 2 * d], &RowOp::Softmax { problem: gate, task: SoftmaxTask::GradientDiagStore })
            .unwrap();
        assert!(read(gate).is_ok());
        // A store of m = 2 columns does not serve a problem with m = 3 (same H width).
        let expert = SoftmaxProblem::Expert { j: 0, k: 3, classes: 4, logistic: false };
        assert_eq!(read(expert).err().unwrap().code, ErrorCode::Internal);
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
