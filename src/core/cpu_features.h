// What the CPU offers, for `switchyard env` and for kernels whose bodies are raw intrinsics.
// Highway-based kernels dispatch through Highway's own run-time target choice.
#pragma once

#include <string>
#include <vector>

namespace sy {

struct CpuFeatures {
  std::string arch;  // "x86_64", "aarch64", ...
  std::string model_name;
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512_vnni = false;
  bool avx_vnni = false, neon = false;
  // Names of the features present, e.g. {"avx2", "fma", "avx512f", ...}.
  std::vector<std::string> names() const;
};

const CpuFeatures& cpu_features();

// SIMD targets compiled into this build and usable on this CPU, best first ("AVX3", "AVX2",
// "EMU128"), and the one Highway-dispatched kernels currently use.
std::vector<std::string> simd_paths_available();
std::string simd_path_chosen();

}  // namespace sy
