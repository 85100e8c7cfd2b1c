//! moe-core: the numerics of moe-em (see docs/ALGORITHMS.md).
