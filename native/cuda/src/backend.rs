//! `CudaBackend`: moe_core's `Backend` on one GPU. X, y and s are uploaded once (in `new`); each pass sends
//! only the small projection matrix P (and σ²) and brings back only the reduced results.
//!
//! A pass: A = X·Pᵀ (cuBLAS DGEMM) → the row op (`row_op_tiled`: per-row outputs R, Gram weights, sum terms;
//! reads or writes H) → reductions: XᵀR and diagonal Grams by the skinny Xᵀ·W kernel (xtw.rs), full Grams by
//! the tensor-core kernel (gram.rs), the sums by a DGEMM against ones. All reductions run in a fixed order (no
//! float atomics), so a pass is reproducible bit for bit on one GPU. Knobs, each measured against the
//! defaults on hardware (bench/GPU.md) and tested against the CPU backend: cuBLAS reductions instead
//! (`set_gram_kernel`, `set_skinny_xtw`), the untiled row op (`set_tiled_row_op`), one fused tensor-core
//! kernel for the projections, row op and XᵀR of the passes where it saves a read of X (fused.rs,
//! `set_fused_policy`), Newton-CG's probability store (`set_stored_probabilities`, beside H), and the E-step's
//! Grams left running on a second stream while the gate's passes run (`set_overlapped_grams`).

use crate::driver::{Context, DeviceBuffer, DeviceElement, Event, KernelSource, Stream};
use crate::error::{GpuError, GpuErrorKind};
use crate::fused::{self, FusedPolicy};
use crate::gram::{GramKernel, TcVariant};
use crate::kernels::{encode, row_tile, RowOpParams};
use crate::xtw::{skinny_xtw, XtwPlan};
use moe_core::backend::{check_row_indices, Backend, PassOut, RowOp, Rows};
use moe_core::{Data, Error, ErrorCode, Result};
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

impl From<GpuError> for Error {
    fn from(e: GpuError) -> Error {
        let code = match e.kind {
            GpuErrorKind::Unavailable => ErrorCode::BackendUnavailable,
            GpuErrorKind::OutOfMemory => ErrorCode::GpuOom,
            GpuErrorKind::Failed => ErrorCode::Gpu,
        };
        Error::new(code, e.message)
    }
}

pub(crate) const THREADS: u32 = 256;

pub(crate) fn blocks(len: usize) -> u32 {
    len.div_ceil(THREADS as usize).max(1) as u32
}

/// A device buffer that grows on demand and is reused across passes.
#[derive(Default)]
pub(crate) struct Scratch<T: DeviceElement>(Option<DeviceBuffer<T>>);

impl<T: DeviceElement> Scratch<T> {
    pub(crate) fn at_least(&mut self, ctx: &Context, len: usize) -> Result<&DeviceBuffer<T>> {
        if self.0.as_ref().is_none_or(|b| b.len < len) {
            self.0 = None; // free the old one first: the new one may need its memory
            self.0 = Some(DeviceBuffer::alloc(ctx, len.max(1))?);
        }
        Ok(self.0.as_ref().unwrap())
    }
}

/// A device-resident per-row matrix (n×width, row-major): H, or the softmax probabilities.
#[derive(Default)]
struct RowStore {
    buf: Option<DeviceBuffer<f64>>,
    width: usize,
}

impl RowStore {
    /// Makes the store ready for a pass that uses `width` of its columns (0: none): a pass that `writes` it
    /// replaces a store of another width by zeros; one that only reads it needs a store of that width
    /// (`ErrorCode::Internal` otherwise: an algorithm read what no pass stored).
    fn prepare(&mut self, ctx: &Context, n: usize, width: usize, writes: bool, what: &str) -> Result<()> {
        if width == 0 || (self.buf.is_some() && self.width == width) {
            return Ok(());
        }
        if !writes {
            return Err(Error::new(
                ErrorCode::Internal,
                format!("pass reads {what} of width {width} but the stored {what} has width {}", self.width),
            ));
        }
        self.buf = None; // free the old one first: the new one may need its memory
        let buf = DeviceBuffer::alloc(ctx, n * width)?;
        buf.zero(ctx)?;
        (self.buf, self.width) = (Some(buf), width);
        Ok(())
    }

    fn ptr(&self) -> u64 {
        self.buf.as_ref().map_or(0, |b| b.ptr)
    }
}

/// The deferred Grams of `pass_many_deferring_grams` on the side stream: the Gram weights the pass's row op
/// wrote (handed over from `State::gw`), the partials and the output, and the events that order them after the
/// pass and before `finish_grams`. Nothing else touches these buffers while Grams are pending.
#[derive(Default)]
struct SideGrams {
    gw: Scratch<f64>,
    partial: Scratch<f64>,
    out: Scratch<f64>,
    /// Values of the pending Grams in `out`; None when nothing is pending.
    pending: Option<usize>,
    /// (the pass's work is queued, on the main stream; the Grams are done, on the side stream).
    events: Option<(Event, Event)>,
}

/// Mutable state behind `&self` (the trait's methods take `&self`).
pub(crate) struct State {
    /// Stored responsibilities H.
    h: RowStore,
    /// Stored softmax probabilities (`SoftmaxTask::GradientDiagStore`), kept exactly like H.
    probs: RowStore,
    /// Row order for `Rows::Order`.
    order: Option<DeviceBuffer<u32>>,
    order_len: usize,
    proj: Scratch<f64>,
    /// The linear experts' per-pass constants (`RowOpParams::linear`).
    linear: Scratch<f64>,
    a: Scratch<f64>,
    r: Scratch<f64>,
    gw: Scratch<f64>,
    sv: Scratch<f64>,
    batch_x: Scratch<f64>,
    batch_y: Scratch<f64>,
    batch_s: Scratch<f64>,
    /// Weight-scaled (or squared) rows of the GEMM Gram path, or the tensor-core Gram partials (gram.rs).
    pub(crate) scaled: Scratch<f64>,
    pub(crate) partial: Scratch<f64>,
    reduced: Scratch<f64>,
    side: SideGrams,
}

pub struct CudaBackend {
    n: usize,
    pub(crate) d: usize,
    x: DeviceBuffer<f64>,
    y: DeviceBuffer<f64>,
    s: Option<DeviceBuffer<f64>>,
    /// All ones (length n): the right-hand side of the GEMMs that sum over rows.
    ones: DeviceBuffer<f64>,
    state: Mutex<State>,
    /// Gram chunk size in bytes; 0 = the default.
    pub(crate) gram_chunk_bytes: AtomicUsize,
    /// Whether full Grams use the tensor-core kernel where it can run (gram.rs `GramKernel`).
    pub(crate) tensor_core_grams: AtomicBool,
    /// The tensor-core Gram kernel's variant (an index into gram.rs `TC_VARIANTS`).
    pub(crate) gram_tc_variant: AtomicUsize,
    /// Which passes use the fused kernel where they fit it (`FusedPolicy::index`).
    fused_policy: AtomicUsize,
    /// Whether the device and the module have the fused kernel (else every pass is unfused).
    fused_available: bool,
    /// Launch configuration of the fused kernel (index into `fused::VARIANTS`).
    fused_variant: AtomicUsize,
    /// Whether XᵀR and diagonal Grams use the skinny Xᵀ·W kernel (xtw.rs, the default) instead of cuBLAS.
    pub(crate) skinny_xtw: AtomicBool,
    /// Whether the unfused row op stages its rows through shared memory (`row_op_tiled`, the default) or
    /// reads and writes them in place (`row_op`; `MOE_CUDA_ROW_OP=direct`).
    tiled_row_op: AtomicBool,
    /// Whether `stores_probabilities()` answers true (`set_stored_probabilities`).
    stored_probabilities: AtomicBool,
    /// Whether `pass_many_deferring_grams` leaves the full Grams running on the side stream
    /// (`set_overlapped_grams`).
    overlapped_grams: AtomicBool,
    /// Declared last so that it is dropped after every buffer above.
    pub(crate) ctx: Arc<Context>,
}

impl CudaBackend {
    /// Uploads X, y and s to device 0. `E_BACKEND_UNAVAILABLE` without a usable GPU, `E_GPU_OOM` when the
    /// data does not fit (everything allocated so far is freed again).
    pub fn new(data: Data<'_>) -> Result<CudaBackend> {
        Self::with_kernels(data, KernelSource::Auto)
    }

    /// As `new`, choosing how the kernels are loaded (tests compare the NVRTC build with the fatbin).
    pub fn with_kernels(data: Data<'_>, kernels: KernelSource) -> Result<CudaBackend> {
        if data.x.len() != data.n * data.d || data.y.len() != data.n {
            return Err(Error::new(
                ErrorCode::Shape,
                format!("x must be n×d = {}×{} and y of length n", data.n, data.d),
            ));
        }
        if data.s.is_some_and(|s| s.len() != data.n) {
            return Err(Error::new(ErrorCode::Shape, format!("sample weights must have length n = {}", data.n)));
        }
        let ctx = Context::with_kernels(kernels)?;
        let x = DeviceBuffer::from_host(&ctx, data.x)?;
        let y = DeviceBuffer::from_host(&ctx, data.y)?;
        let s = data.s.map(|s| DeviceBuffer::from_host(&ctx, s)).transpose()?;
        let ones_len = data.n;
        let ones = DeviceBuffer::alloc(&ctx, ones_len)?;
        fill(&ctx, &ones, ones_len, 1.0)?;
        ctx.synchronize()?;
        let state = State {
            h: RowStore::default(),
            probs: RowStore::default(),
            order: None,
            order_len: 0,
            proj: Scratch(None),
            linear: Scratch(None),
            a: Scratch(None),
            r: Scratch(None),
            gw: Scratch(None),
            sv: Scratch(None),
            batch_x: Scratch(None),
            batch_y: Scratch(None),
            batch_s: Scratch(None),
            scaled: Scratch(None),
            partial: Scratch(None),
            reduced: Scratch(None),
            side: SideGrams::default(),
        };
        Ok(CudaBackend {
            n: data.n,
            d: data.d,
            x,
            y,
            s,
            ones,
            state: Mutex::new(state),
            gram_chunk_bytes: AtomicUsize::new(0),
            tensor_core_grams: AtomicBool::new(GramKernel::from_env() == GramKernel::TensorCore),
            gram_tc_variant: AtomicUsize::new(TcVariant::index_from_env()),
            fused_policy: AtomicUsize::new(FusedPolicy::from_env().index()),
            fused_available: fused::available(&ctx),
            fused_variant: AtomicUsize::new(0),
            tiled_row_op: AtomicBool::new(std::env::var("MOE_CUDA_ROW_OP").map_or(true, |v| v != "direct")),
            skinny_xtw: AtomicBool::new(std::env::var("MOE_CUDA_XTW").map_or(true, |v| v != "gemm")),
            stored_probabilities: AtomicBool::new(std::env::var("MOE_CUDA_STORED_P").is_ok_and(|v| v == "1")),
            overlapped_grams: AtomicBool::new(std::env::var("MOE_CUDA_OVERLAP").is_ok_and(|v| v == "1")),
            ctx,
        })
    }

    /// The device this backend runs on.
    pub fn device(&self) -> &crate::driver::DeviceInfo {
        &self.ctx.info
    }

    /// "fatbin" (nvcc at build time) or "nvrtc" (compiled at run time).
    pub fn kernel_source(&self) -> &'static str {
        self.ctx.kernel_source
    }

    /// The context, for timing with `driver::Timer` (benchmarks).
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    fn state(&self) -> Result<MutexGuard<'_, State>> {
        self.ctx.make_current()?;
        Ok(self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn fill(ctx: &Context, buf: &DeviceBuffer<f64>, len: usize, value: f64) -> Result<()> {
    let (mut ptr, mut n, mut v) = (buf.ptr, len, value);
    let mut args: [*mut c_void; 3] = [&mut ptr as *mut _ as _, &mut n as *mut _ as _, &mut v as *mut _ as _];
    Ok(ctx.launch("fill", (blocks(len), 1, 1), THREADS, 0, &mut args)?)
}

/// Where a pass's rows live on the device.
pub(crate) struct PassRows {
    pub(crate) rows: usize,
    pub(crate) x: u64,
    y: u64,
    s: u64,
    /// H row of each pass row (0 = identity).
    idx: u64,
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }
    fn n(&self) -> usize {
        self.n
    }
    fn d(&self) -> usize {
        self.d
    }

    fn set_order(&self, order: &[u32]) -> Result<()> {
        if let Some(&bad) = order.iter().find(|&&i| i as usize >= self.n) {
            return Err(Error::new(ErrorCode::Shape, format!("row order names row {bad} of {}", self.n)));
        }
        let mut st = self.state()?;
        if st.order.as_ref().is_none_or(|b| b.len < order.len()) {
            st.order = None;
            st.order = Some(DeviceBuffer::alloc(&self.ctx, order.len().max(1))?);
        }
        st.order.as_ref().unwrap().upload(&self.ctx, order)?;
        st.order_len = order.len();
        Ok(())
    }

    fn write_h(&self, width: usize, h: &[f64]) -> Result<()> {
        if h.len() != self.n * width {
            return Err(Error::new(ErrorCode::Shape, format!("H must be n×width = {}×{width}", self.n)));
        }
        let mut st = self.state()?;
        st.h.prepare(&self.ctx, self.n, width, true, "H")?;
        if let Some(buf) = &st.h.buf {
            buf.upload(&self.ctx, h)?;
        }
        Ok(())
    }

    fn read_h(&self, width: usize) -> Result<Vec<f64>> {
        let st = self.state()?;
        match &st.h.buf {
            Some(h) if st.h.width == width => Ok(h.download_prefix(&self.ctx, self.n * width)?),
            _ => {
                Err(Error::new(ErrorCode::Internal, format!("read_h({width}): the stored H has width {}", st.h.width)))
            }
        }
    }

    fn gather_rows(&self, idx: &[usize]) -> Result<(Vec<f64>, Vec<f64>)> {
        check_row_indices("gather_rows", idx, self.n)?;
        let rows = self.gather_to_host(&self.x, self.d, idx)?;
        let weights = match &self.s {
            Some(s) => self.gather_to_host(s, 1, idx)?,
            None => vec![1.0; idx.len()],
        };
        Ok((rows, weights))
    }

    fn gather_h(&self, idx: &[usize], width: usize) -> Result<Vec<f64>> {
        check_row_indices("gather_h", idx, self.n)?;
        let st = self.state()?;
        match &st.h.buf {
            Some(h) if st.h.width == width => self.gather_to_host(h, width, idx),
            _ => Err(Error::new(
                ErrorCode::Internal,
                format!("gather_h({width}): the stored H has width {}", st.h.width),
            )),
        }
    }

    /// Only when opted in (`set_stored_probabilities`, `MOE_CUDA_STORED_P=1`).
    fn stores_probabilities(&self) -> bool {
        self.stored_probabilities.load(Ordering::Relaxed)
    }

    fn pass(&self, rows: Rows, proj: &[f64], op: &RowOp) -> Result<PassOut> {
        self.run_pass(rows, proj, op, false)
    }

    /// The first op's full Grams on the side stream where `defer_full_grams` can; every op as `pass`
    /// otherwise.
    fn pass_many_deferring_grams(&self, rows: Rows, ops: &[(&[f64], &RowOp)]) -> Result<Vec<PassOut>> {
        ops.iter().enumerate().map(|(i, &(proj, op))| self.run_pass(rows, proj, op, i == 0)).collect()
    }

    fn finish_grams(&self) -> Result<Vec<f64>> {
        let st = &mut *self.state()?;
        let Some(len) = st.side.pending.take() else {
            return Err(Error::new(ErrorCode::Internal, "finish_grams: no Grams are pending"));
        };
        st.side.events.as_ref().unwrap().1.synchronize()?;
        Ok(st.side.out.0.as_ref().unwrap().download_prefix(&self.ctx, len)?)
    }
}

impl Drop for CudaBackend {
    /// Deferred Grams may still be running on the side stream, over buffers that are freed next.
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if st.side.pending.is_some() {
            let _ = self.ctx.make_current().and_then(|_| self.ctx.synchronize_side());
        }
    }
}

impl CudaBackend {
    /// One pass (`Backend::pass`); `defer`: its full Grams may be left running on the side stream
    /// (`defer_full_grams`), the output then `grams_pending`.
    fn run_pass(&self, rows: Rows, proj: &[f64], op: &RowOp, defer: bool) -> Result<PassOut> {
        let shape = op.shape();
        let (d, ctx) = (self.d, &*self.ctx);
        if proj.len() != shape.q * d {
            return Err(Error::new(
                ErrorCode::Shape,
                format!("projection must be {}×{d}, got {} values", shape.q, proj.len()),
            ));
        }
        let kernel = encode(op, &shape)?;
        let mut st = self.state()?;
        st.h.prepare(ctx, self.n, shape.h_width, shape.writes_h, "H")?;
        st.probs.prepare(ctx, self.n, shape.p_width, shape.writes_p, "softmax probabilities")?;
        let pr = self.select_rows(&mut st, rows)?;
        let m = pr.rows;
        let grams_len = if shape.diag_only { shape.grams * d } else { shape.grams * d * d };
        if m == 0 {
            return Ok(PassOut {
                xtr: vec![0.0; shape.r_cols * d],
                grams: vec![0.0; grams_len],
                sums: vec![0.0; shape.sums],
                grams_pending: false,
            });
        }

        let p_dev = if shape.q > 0 {
            let p = st.proj.at_least(ctx, proj.len())?.ptr;
            ctx.write_raw(p, proj)?;
            p
        } else {
            0
        };
        let gw = if shape.grams > 0 { st.gw.at_least(ctx, m * shape.grams)?.ptr } else { 0 };
        let sv = if shape.sums > 0 { st.sv.at_least(ctx, m * shape.sums)?.ptr } else { 0 };
        let (xtr_len, sums_len) = (shape.r_cols * d, shape.sums);
        let out = st.reduced.at_least(ctx, xtr_len + sums_len + grams_len)?.ptr;
        let fused_variant = self.fused_variant.load(Ordering::Relaxed);
        let use_fused = kernel.is_some()
            && self.fused_available
            && self.fused_policy().serves(&shape)
            && fused::fits(d, &shape, fused_variant, ctx.info.max_shared_bytes_per_block);
        let mut host_sums = None;
        if use_fused {
            // One read of X: projections, row op and XᵀR in the fused kernel (sums and Grams below).
            let (mut params, linear) = kernel.unwrap();
            self.bind_params(&mut st, &mut params, linear.as_deref(), &pr, 0, 0, gw, sv)?;
            let partial = if xtr_len > 0 {
                st.partial.at_least(ctx, fused::partial_len(fused_variant, m, shape.r_cols, d))?.ptr
            } else {
                0
            };
            fused::launch(ctx, fused_variant, &mut params, pr.x, p_dev, d, partial, out)?;
        } else {
            let r = if shape.r_cols > 0 { st.r.at_least(ctx, m * shape.r_cols)?.ptr } else { 0 };
            // 1. A = X·Pᵀ: column-major (q×m) = Pᵀ(q×d) · X(d×m).
            let a_ptr = if shape.q > 0 {
                let a = st.a.at_least(ctx, m * shape.q)?.ptr;
                ctx.dgemm(true, false, shape.q, m, d, 1.0, p_dev, d, pr.x, d, 0.0, a, shape.q)?;
                a
            } else {
                0
            };
            // 2. The per-row operation: a kernel, or (ops without one) rowops::eval_row on the host.
            host_sums = match kernel {
                Some((mut params, linear)) => {
                    self.bind_params(&mut st, &mut params, linear.as_deref(), &pr, a_ptr, r, gw, sv)?;
                    let tile = if self.tiled_row_op.load(Ordering::Relaxed) {
                        row_tile(&params, ctx.info.max_shared_bytes_per_block)
                    } else {
                        None
                    };
                    let mut args: [*mut c_void; 1] = [&mut params as *mut RowOpParams as *mut c_void];
                    match tile {
                        Some((rows, bytes)) => ctx.launch(
                            "row_op_tiled",
                            (m.div_ceil(rows as usize).max(1) as u32, 1, 1),
                            rows,
                            bytes,
                            &mut args,
                        )?,
                        None => ctx.launch("row_op", (blocks(m), 1, 1), THREADS, 0, &mut args)?,
                    }
                    None
                }
                None => Some(self.host_row_op(&st, op, &pr, a_ptr, r, gw)?),
            };
            // 3. XᵀR (row-major r×d): the skinny kernel, or the GEMM column-major (d×r) = X(d×m) · R(r×m)ᵀ.
            if shape.r_cols > 0 {
                if self.skinny_xtw.load(Ordering::Relaxed) {
                    let plan = XtwPlan::new(m, d);
                    let partial = st.partial.at_least(ctx, plan.partial_len(shape.r_cols, d))?.ptr;
                    skinny_xtw(ctx, plan, pr.x, m, d, r, shape.r_cols, false, partial, out)?;
                } else {
                    ctx.dgemm(false, true, d, shape.r_cols, m, 1.0, pr.x, d, r, shape.r_cols, 0.0, out, d)?;
                }
            }
        }

        // 4. The other reductions. One output buffer: [XᵀR (r_cols×d) | sums | grams].
        if shape.sums > 0 && host_sums.is_none() {
            ctx.dgemm(
                false,
                false,
                shape.sums,
                1,
                m,
                1.0,
                sv,
                shape.sums,
                self.ones.ptr,
                m,
                0.0,
                out + 8 * xtr_len as u64,
                shape.sums,
            )?;
        }
        let grams_out = out + 8 * (xtr_len + sums_len) as u64;
        let mut pending = false;
        if shape.grams > 0 {
            if shape.diag_only {
                self.diagonal_grams(&mut st, &pr, gw, shape.grams, grams_out)?;
            } else if defer && self.defer_full_grams(&mut st, &pr, gw, shape.grams)? {
                pending = true;
            } else {
                self.full_grams(&mut st, &pr, gw, shape.grams, grams_out)?;
            }
        }
        let ready = xtr_len + sums_len + if pending { 0 } else { grams_len };
        let all = st.reduced.0.as_ref().unwrap().download_prefix(ctx, ready)?;
        Ok(PassOut {
            xtr: all[..xtr_len].to_vec(),
            sums: host_sums.unwrap_or_else(|| all[xtr_len..xtr_len + sums_len].to_vec()),
            grams: all[xtr_len + sums_len..].to_vec(),
            grams_pending: pending,
        })
    }

    /// Starts the pass's full Grams on the side stream, behind the pass's work so far, and returns true; they
    /// run while the caller's next passes run on the main stream, until `finish_grams`. Returns false (the
    /// caller computes them now) unless overlapping is on (`set_overlapped_grams`), the Grams take the
    /// tensor-core kernel (no cuBLAS, whose handle is the main stream's), the pass is over all rows (X itself:
    /// gathered rows live in batch buffers that the next pass overwrites) and the device has room for the side
    /// stream's buffers. Grams still pending from before are discarded first.
    fn defer_full_grams(&self, st: &mut State, pr: &PassRows, gw: u64, grams: usize) -> Result<bool> {
        let ctx = &*self.ctx;
        if !self.overlapped_grams.load(Ordering::Relaxed)
            || pr.x != self.x.ptr
            || pr.idx != 0
            || self.full_gram_kernel() != GramKernel::TensorCore
        {
            return Ok(false);
        }
        self.settle_side(st)?;
        let room = |r: Result<u64>| match r {
            Ok(ptr) => Ok(Some(ptr)),
            Err(e) if e.code == ErrorCode::GpuOom => Ok(None),
            Err(e) => Err(e),
        };
        let side = &mut st.side;
        let Some(out) = room(side.out.at_least(ctx, grams * self.d * self.d).map(|b| b.ptr))? else { return Ok(false) };
        if room(side.partial.at_least(ctx, self.tc_partial_len(pr.rows, grams)).map(|b| b.ptr))?.is_none() {
            return Ok(false);
        }
        if side.events.is_none() {
            side.events = Some((Event::new(ctx)?, Event::new(ctx)?));
        }
        // The row op has just written the Gram weights into `gw` (State::gw's buffer): the side stream keeps
        // that buffer until the Grams are done, and later passes get the side stream's previous one.
        std::mem::swap(&mut st.gw, &mut st.side.gw);
        let (ready, done) = st.side.events.as_ref().unwrap();
        ready.record(ctx, Stream::Main)?;
        ready.make_wait(ctx, Stream::Side)?;
        self.tensor_core_grams(&mut st.side.partial, Stream::Side, pr, gw, grams, out)?;
        done.record(ctx, Stream::Side)?;
        st.side.pending = Some(grams * self.d * self.d);
        Ok(true)
    }

    /// Discards pending deferred Grams: waits for the side stream, whose buffers the caller reuses.
    fn settle_side(&self, st: &mut State) -> Result<()> {
        if st.side.pending.take().is_some() {
            self.ctx.synchronize_side()?;
        }
        Ok(())
    }
}

impl CudaBackend {
    /// The rows of a pass: all of X in place, or the ordered slice gathered into the batch buffers.
    fn select_rows(&self, st: &mut State, rows: Rows) -> Result<PassRows> {
        let s_ptr = self.s.as_ref().map_or(0, |s| s.ptr);
        let (start, len) = match rows {
            Rows::All => return Ok(PassRows { rows: self.n, x: self.x.ptr, y: self.y.ptr, s: s_ptr, idx: 0 }),
            Rows::Order { start, len } => (start, len),
        };
        if start + len > st.order_len {
            return Err(Error::new(
                ErrorCode::Internal,
                format!("rows {start}..{} outside the row order (length {})", start + len, st.order_len),
            ));
        }
        if len == 0 {
            return Ok(PassRows { rows: 0, x: 0, y: 0, s: 0, idx: 0 });
        }
        let ctx = &*self.ctx;
        let idx = st.order.as_ref().unwrap().ptr + 4 * start as u64;
        let bx = st.batch_x.at_least(ctx, len * self.d)?.ptr;
        let by = st.batch_y.at_least(ctx, len)?.ptr;
        let bs = if self.s.is_some() { st.batch_s.at_least(ctx, len)?.ptr } else { 0 };
        let (mut xp, mut yp, mut sp, mut ip) = (self.x.ptr, self.y.ptr, s_ptr, idx);
        let (mut rows_i, mut d_i) = (len as i32, self.d as i32);
        let (mut bxp, mut byp, mut bsp) = (bx, by, bs);
        let mut args: [*mut c_void; 9] = [
            &mut xp as *mut _ as _,
            &mut yp as *mut _ as _,
            &mut sp as *mut _ as _,
            &mut ip as *mut _ as _,
            &mut rows_i as *mut _ as _,
            &mut d_i as *mut _ as _,
            &mut bxp as *mut _ as _,
            &mut byp as *mut _ as _,
            &mut bsp as *mut _ as _,
        ];
        ctx.launch("gather_rows", (blocks(len * self.d), 1, 1), THREADS, 0, &mut args)?;
        Ok(PassRows { rows: len, x: bx, y: by, s: bs, idx })
    }

    /// The rows `idx` (checked) of a row-major device matrix `width` wide, gathered on the device by one kernel
    /// and read back in one copy: a copy per row costs the host microseconds each (512 rows per M-step).
    fn gather_to_host(&self, src: &DeviceBuffer<f64>, width: usize, idx: &[usize]) -> Result<Vec<f64>> {
        if idx.is_empty() || width == 0 {
            return Ok(Vec::new());
        }
        let ctx = &*self.ctx;
        let rows: Vec<u32> =
            idx.iter().map(|&i| u32::try_from(i)).collect::<std::result::Result<_, _>>().map_err(|_| {
                Error::new(
                    ErrorCode::Internal,
                    "gather: a row index beyond the kernels' 32-bit row indices".to_string(),
                )
            })?;
        let device_idx = DeviceBuffer::from_host(ctx, &rows)?;
        let out = DeviceBuffer::<f64>::alloc(ctx, rows.len() * width)?;
        let (mut src_p, mut idx_p, mut out_p) = (src.ptr, device_idx.ptr, out.ptr);
        let (mut rows_i, mut width_i) = (rows.len() as i32, width as i32);
        let mut args: [*mut c_void; 5] = [
            &mut src_p as *mut _ as _,
            &mut idx_p as *mut _ as _,
            &mut rows_i as *mut _ as _,
            &mut width_i as *mut _ as _,
            &mut out_p as *mut _ as _,
        ];
        ctx.launch("gather", (blocks(rows.len() * width), 1, 1), THREADS, 0, &mut args)?;
        Ok(out.download(ctx)?)
    }

    /// Fills the size and pointer fields of a kernel's parameters (the per-pass constants uploaded for linear experts).
    #[allow(clippy::too_many_arguments)]
    fn bind_params(
        &self,
        st: &mut State,
        params: &mut RowOpParams,
        linear: Option<&[f64]>,
        pr: &PassRows,
        a: u64,
        r: u64,
        gw: u64,
        sv: u64,
    ) -> Result<()> {
        let ctx = &*self.ctx;
        if let Some(consts) = linear {
            params.linear = st.linear.at_least(ctx, consts.len())?.ptr;
            ctx.write_raw(params.linear, consts)?;
        }
        params.rows = pr.rows as i32;
        params.a = a;
        params.y = pr.y;
        params.s = pr.s;
        params.idx = pr.idx;
        params.h = st.h.ptr();
        params.probs = st.probs.ptr();
        (params.r, params.gw, params.sv) = (r, gw, sv);
        Ok(())
    }

    /// Which passes use the fused tensor-core kernel (`FusedPolicy`), among those that fit it (d ≤ 128, q ≤ 32,
    /// r_cols ≤ 16, and the chosen variant's shared memory within the device's per-block limit), where the
    /// device has it (sm_80 or newer; elsewhere always the GEMM + row-op path). By default
    /// `FusedPolicy::SavesARead` (measured faster on an H100 at (1e6, 100, 8) and (1e7, 100, 16), bench/GPU.md);
    /// `MOE_CUDA_FUSED=0` sets `Off`, `MOE_CUDA_FUSED=all` `Everywhere`. Tests compare each with the CPU backend.
    pub fn set_fused_policy(&self, policy: FusedPolicy) {
        self.fused_policy.store(policy.index(), Ordering::Relaxed);
    }

    pub fn fused_policy(&self) -> FusedPolicy {
        FusedPolicy::from_index(self.fused_policy.load(Ordering::Relaxed))
    }

    /// Whether XᵀR and diagonal Grams use the skinny Xᵀ·W kernel (kernels/skinny_xtw.cu: one read of X, no
    /// materialised squares) instead of cuBLAS GEMMs. On by default (measured faster on an H100,
    /// bench/GPU.md; `MOE_CUDA_XTW=gemm` turns it off); tests compare both with the CPU backend.
    pub fn set_skinny_xtw(&self, on: bool) {
        self.skinny_xtw.store(on, Ordering::Relaxed);
    }

    /// Stages the unfused row op's rows through shared memory (`row_op_tiled`, on by default) or not
    /// (`row_op`): the same `eval_row`, the same bits; a knob for the benchmark and the tests.
    pub fn set_tiled_row_op(&self, on: bool) {
        self.tiled_row_op.store(on, Ordering::Relaxed);
    }

    /// Chooses the fused kernel's launch configuration, `moe_cuda::FUSED_VARIANTS[variant]` (0, the
    /// default, unless set): a knob for the benchmark to measure them.
    pub fn set_fused_variant(&self, variant: usize) {
        assert!(variant < fused::VARIANTS.len(), "fused variant {variant} of {}", fused::VARIANTS.len());
        self.fused_variant.store(variant, Ordering::Relaxed);
    }

    /// Whether `stores_probabilities()` is true, i.e. Newton-CG computes the softmax probabilities once per
    /// Newton step (`SoftmaxTask::GradientDiagStore`) and its Hessian-vector passes read them
    /// (`HessVecStored`: half the projections, no exp/log per row). Off by default (`MOE_CUDA_STORED_P=1` sets
    /// it on): checked against the CPU backend on an H100 and measured neutral there (bench/GPU.md).
    pub fn set_stored_probabilities(&self, on: bool) {
        self.stored_probabilities.store(on, Ordering::Relaxed);
    }

    /// Whether `pass_many_deferring_grams` leaves the first op's full Grams running on a second stream of lower
    /// priority while the caller's next passes run (EM: the gate's M-step overlaps the experts' Grams), where
    /// they take the tensor-core kernel over all rows. Off by default (`MOE_CUDA_OVERLAP=1` sets it on) until
    /// measured on a GPU; the results are the same bits either way (the same kernels, the same sums).
    pub fn set_overlapped_grams(&self, on: bool) {
        self.overlapped_grams.store(on, Ordering::Relaxed);
    }

    /// Whether this device and module can run the fused kernel (where not, every policy falls back to the unfused
    /// path where not): lets the GPU tests check that they exercised it.
    pub fn fused_available(&self) -> bool {
        self.fused_available
    }

    /// The per-row operation on the host, for ops that have no kernel: downloads A, y, s (and the stores it
    /// uses: H, probabilities), runs `rowops::eval_row` row by row, uploads R and the Gram weights (and the
    /// stores it writes) for the device reductions, and returns the sums.
    fn host_row_op(
        &self,
        st: &State,
        op: &RowOp,
        pr: &PassRows,
        a_ptr: u64,
        r_ptr: u64,
        gw_ptr: u64,
    ) -> Result<Vec<f64>> {
        let ctx = &*self.ctx;
        let shape = op.shape();
        let m = pr.rows;
        let mut a = vec![0.0; m * shape.q];
        ctx.read_raw(a_ptr, &mut a)?;
        let mut y = vec![0.0; m];
        ctx.read_raw(pr.y, &mut y)?;
        let mut s = vec![1.0; if pr.s != 0 { m } else { 0 }];
        ctx.read_raw(pr.s, &mut s)?;
        let (hw, pw) = (shape.h_width, shape.p_width);
        let mut h = if hw > 0 { st.h.buf.as_ref().unwrap().download(ctx)? } else { Vec::new() };
        let mut probs = if pw > 0 { st.probs.buf.as_ref().unwrap().download(ctx)? } else { Vec::new() };
        let mut idx = vec![0u32; if pr.idx != 0 { m } else { 0 }];
        ctx.read_raw(pr.idx, &mut idx)?;
        let (mut r, mut w, mut sums) = (vec![0.0; m * shape.r_cols], vec![0.0; m * shape.grams], vec![0.0; shape.sums]);
        let mut scratch = moe_core::rowops::Scratch::default(); // one per pass: it caches per-op constants
        for i in 0..m {
            let row = if pr.idx != 0 { idx[i] as usize } else { i };
            // An empty store gives empty rows (width 0: the op uses none).
            let hrow = &mut h[row * hw..(row + 1) * hw];
            let prow = &mut probs[row * pw..(row + 1) * pw];
            let si = if s.is_empty() { 1.0 } else { s[i] };
            moe_core::rowops::eval_row(
                op,
                &a[i * shape.q..(i + 1) * shape.q],
                y[i],
                si,
                hrow,
                prow,
                &mut r[i * shape.r_cols..(i + 1) * shape.r_cols],
                &mut w[i * shape.grams..(i + 1) * shape.grams],
                &mut sums,
                &mut scratch,
            );
        }
        ctx.write_raw(r_ptr, &r)?;
        ctx.write_raw(gw_ptr, &w)?;
        if shape.writes_h {
            st.h.buf.as_ref().unwrap().upload(ctx, &h)?;
        }
        if shape.writes_p {
            st.probs.buf.as_ref().unwrap().upload(ctx, &probs)?;
        }
        Ok(sums)
    }
}
