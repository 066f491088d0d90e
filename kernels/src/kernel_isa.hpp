#pragma once
// Which build of the portable kernels (cpu/isa.hpp) this process runs.
#include "cpu/isa.hpp"

namespace troupe::kernels {

/// AVX-512 where cpu_features() says so, else AVX2 with FMA where the CPU has both,
/// else the baseline; the baseline under TROUPE_KERNELS_PORTABLE=1. Asked once.
cpu::Isa kernel_isa();

}  // namespace troupe::kernels
