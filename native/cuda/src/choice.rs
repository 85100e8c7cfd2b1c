//! `KernelChoice`: one setting of every kernel knob of `CudaBackend` at once, for the benchmark and the tests
//! that compare configurations side by side (each knob's setter documents what it chooses between).

use crate::backend::CudaBackend;
use crate::fused::FusedPolicy;
use crate::gram::GramKernel;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KernelChoice {
    /// `set_fused_policy`.
    pub fused: FusedPolicy,
    /// `set_fused_variant`: an index into `FUSED_VARIANTS`.
    pub fused_variant: usize,
    /// `set_gram_kernel`.
    pub gram: GramKernel,
    /// `set_skinny_xtw`.
    pub skinny: bool,
    /// `set_stored_probabilities`.
    pub stored_p: bool,
    /// `set_tiled_row_op`.
    pub tiled: bool,
    /// `set_overlapped_grams`.
    pub overlap: bool,
}

impl KernelChoice {
    /// The defaults when no `MOE_CUDA_*` variable overrides them: the fused narrow pass where it saves a read of
    /// X (launch configuration 0), tensor-core Grams, the skinny Xᵀ·W kernel, the tiled row op, no probability
    /// store, the E-step's Grams computed at once.
    pub const DEFAULT: KernelChoice = KernelChoice {
        fused: FusedPolicy::SavesARead,
        fused_variant: 0,
        gram: GramKernel::TensorCore,
        skinny: true,
        stored_p: false,
        tiled: true,
        overlap: false,
    };

    /// The defaults with every opt-in at once: the fused kernel on every pass it fits, the probability store,
    /// the overlapped Grams.
    pub const ALL: KernelChoice =
        KernelChoice { fused: FusedPolicy::Everywhere, stored_p: true, overlap: true, ..KernelChoice::DEFAULT };

    pub fn label(&self) -> String {
        format!(
            "fused {:?} (variant {}), grams {:?}, skinny {}, stored p {}, tiled row op {}, overlapped grams {}",
            self.fused, self.fused_variant, self.gram, self.skinny, self.stored_p, self.tiled, self.overlap
        )
    }
}

impl CudaBackend {
    /// Sets every kernel knob.
    pub fn set_kernels(&self, k: KernelChoice) {
        self.set_fused_policy(k.fused);
        self.set_fused_variant(k.fused_variant);
        self.set_gram_kernel(k.gram);
        self.set_skinny_xtw(k.skinny);
        self.set_stored_probabilities(k.stored_p);
        self.set_tiled_row_op(k.tiled);
        self.set_overlapped_grams(k.overlap);
    }
}
