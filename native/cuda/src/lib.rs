//! moe-cuda: the CUDA backend of moe-em.
