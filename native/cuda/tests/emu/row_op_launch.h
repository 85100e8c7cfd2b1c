// The launch of the per-row kernels in the emulated tests: `row_op` in 64-thread blocks, or `row_op_tiled` with
// `tile` rows per block and the dynamic shared memory src/kernels.rs `row_tile` gives it (the padded widths
// are odd: w | 1). Include after the kernels (MOE_KERNELS).
#pragma once
#include <algorithm>
#include <cstddef>

inline void launch_row_op(const RowOpParams& p, unsigned tile) {
    if (tile > 0) {
        const auto stride = [](int w) { return w == 0 ? 0 : (w | 1); };
        const size_t bytes = 8 * (size_t)tile * (stride(p.q) + stride(p.r_cols) + stride(p.grams) + stride(p.sums));
        emu::launch({std::max(1u, (unsigned)((p.rows + tile - 1) / tile))}, {tile}, [&] { row_op_tiled(p); }, bytes);
    } else if (p.rows > 0) {
        emu::launch({(unsigned)((p.rows + 63) / 64)}, {64}, [&] { row_op(p); });
    }
}
