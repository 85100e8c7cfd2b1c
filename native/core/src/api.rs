//! Public API types of moe-core: what the Node-API binding (native/node) converts to and from.
//! They mirror src/backends/backend.ts and src/types.ts; docs/ALGORITHMS.md defines every field.

/// Validated data, borrowed zero-copy. `x` is n×d row-major (the intercept column, if any, already in it).
#[derive(Clone, Copy, Debug)]
pub struct Data<'a> {
    pub x: &'a [f64],
    pub n: usize,
    pub d: usize,
    pub y: &'a [f64],
    /// Sample weights; `None` = all ones.
    pub s: Option<&'a [f64]>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpertKind {
    Linear,
    Logistic,
    Multinomial,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Noise {
    Fitted,
    /// The known noise standard deviation σ (not σ²).
    Known(f64),
}

/// The model, fully resolved (every default filled in by the estimator).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    pub experts: ExpertKind,
    pub symmetric: bool,
    pub k: usize,
    pub d: usize,
    /// Multinomial: C; logistic: 2; linear: 0.
    pub n_classes: usize,
    pub noise: Noise,
    pub ridge: f64,
    pub intercept: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Em,
    GradientEm,
    Gd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Solver {
    Auto,
    Newton,
    NewtonCg,
    Gradient,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MStepSpec {
    pub solver: Solver,
    pub max_iter: usize,
    pub tol: f64,
    pub cg_max_iter: usize,
    pub inner_steps: usize,
}

impl Default for MStepSpec {
    fn default() -> Self {
        MStepSpec { solver: Solver::Auto, max_iter: 25, tol: 1e-10, cg_max_iter: 50, inner_steps: 10 }
    }
}

/// The algorithm, fully resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct FitSpec {
    pub algorithm: Algorithm,
    pub mstep: MStepSpec,
    pub step_gate: f64,
    pub step_experts: f64,
    /// Gradient EM: gradient steps per block per iteration.
    pub inner_steps: usize,
    /// 0 (or ≥ n) = full batch.
    pub batch_size: usize,
    pub max_iter: usize,
    pub tol: f64,
    /// `onEmpty: 'error'`: a vanished component fails with E_EMPTY_COMPONENT instead of being re-seeded.
    pub on_empty_error: bool,
}

impl Default for FitSpec {
    fn default() -> Self {
        FitSpec {
            algorithm: Algorithm::Em,
            mstep: MStepSpec::default(),
            step_gate: 0.1,
            step_experts: 0.1,
            inner_steps: 1,
            batch_size: 0,
            max_iter: 200,
            tol: 1e-8,
            on_empty_error: false,
        }
    }
}

/// Recovery events (src/types.ts `RecoveryEvent`).
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    RidgeFallback { block: String, ridge: f64 },
    VarianceFloor { expert: usize, floor: f64 },
    Reseed { expert: usize, from: usize },
}

#[derive(Clone, Debug, PartialEq)]
pub struct IterationRecord {
    pub iter: usize,
    pub nll: f64,
    pub objective: f64,
    pub elapsed_ms: f64,
    pub param_error: Option<f64>,
    pub events: Vec<Event>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    Tol,
    MaxIter,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FitOutput {
    /// Flat parameter layout of ALGORITHMS.md §1.
    pub params: Vec<f64>,
    pub iterations: Vec<IterationRecord>,
    pub converged: bool,
    pub reason: StopReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoMethod {
    Auto,
    Dense,
    Lanczos,
}

/// Fisher information and the Missing Information Matrix (src/types.ts `InformationResult`).
#[derive(Clone, Debug, PartialEq)]
pub struct Information {
    pub p: usize,
    pub names: Vec<String>,
    /// p×p row-major (dense method only).
    pub complete: Option<Vec<f64>>,
    pub missing: Option<Vec<f64>>,
    pub observed: Option<Vec<f64>>,
    /// MIM eigenvalues, descending.
    pub eigenvalues: Vec<f64>,
    pub lambda_max: f64,
    pub standard_errors: Option<Vec<f64>>,
    pub dense: bool,
}

/// Whether a fit continues after an iteration callback (the binding maps an AbortSignal to `Abort`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    Abort,
}

/// The error codes of src/errors.ts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    Shape,
    NonFinite,
    Label,
    Option,
    TooFewRows,
    Singular,
    EmptyComponent,
    Aborted,
    NotFitted,
    BackendUnavailable,
    GpuOom,
    Gpu,
    Io,
    Internal,
}

impl ErrorCode {
    /// The code string exactly as in src/errors.ts.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Shape => "E_SHAPE",
            ErrorCode::NonFinite => "E_NON_FINITE",
            ErrorCode::Label => "E_LABEL",
            ErrorCode::Option => "E_OPTION",
            ErrorCode::TooFewRows => "E_TOO_FEW_ROWS",
            ErrorCode::Singular => "E_SINGULAR",
            ErrorCode::EmptyComponent => "E_EMPTY_COMPONENT",
            ErrorCode::Aborted => "E_ABORTED",
            ErrorCode::NotFitted => "E_NOT_FITTED",
            ErrorCode::BackendUnavailable => "E_BACKEND_UNAVAILABLE",
            ErrorCode::GpuOom => "E_GPU_OOM",
            ErrorCode::Gpu => "E_GPU",
            ErrorCode::Io => "E_IO",
            ErrorCode::Internal => "E_INTERNAL",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error { code, message: message.into() }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {}

/// Shorthand used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn err<T>(code: ErrorCode, message: impl Into<String>) -> Result<T> {
    Err(Error::new(code, message))
}
