// simd_path_chosen() asks Highway's dynamic dispatch itself which target it runs, so the answer
// is what the kernels use (including under hwy::SetSupportedTargetsForTest in tests).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "core/cpu_features.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace sy {
namespace HWY_NAMESPACE {
const char* DispatchedTargetName() { return hwy::TargetName(HWY_TARGET); }
}  // namespace HWY_NAMESPACE
}  // namespace sy
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <hwy/targets.h>

#include <fstream>

#include "core/cpu_features.h"

namespace sy {

namespace {
CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__)
  f.arch = "x86_64";
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512_vnni = __builtin_cpu_supports("avx512vnni");
#elif defined(__aarch64__)
  f.arch = "aarch64";
  f.neon = true;
#else
  f.arch = "other";
#endif
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0 && f.model_name.empty()) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) f.model_name = line.substr(colon + 2);
    }
    if (line.rfind("flags", 0) == 0) {
      f.f16c = line.find(" f16c") != std::string::npos;
      f.avx_vnni = line.find(" avx_vnni") != std::string::npos;
      break;
    }
  }
  return f;
}
}  // namespace

std::vector<std::string> CpuFeatures::names() const {
  std::vector<std::string> out;
  const std::pair<bool, const char*> table[] = {{avx2, "avx2"},
                                                {fma, "fma"},
                                                {f16c, "f16c"},
                                                {avx512f, "avx512f"},
                                                {avx512bw, "avx512bw"},
                                                {avx512vl, "avx512vl"},
                                                {avx512_vnni, "avx512_vnni"},
                                                {avx_vnni, "avx_vnni"},
                                                {neon, "neon"}};
  for (const auto& [present, name] : table) {
    if (present) out.emplace_back(name);
  }
  return out;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

std::vector<std::string> simd_paths_available() {
  std::vector<std::string> out;
  for (int64_t t : hwy::SupportedAndGeneratedTargets()) out.emplace_back(hwy::TargetName(t));
  return out;
}

HWY_EXPORT(DispatchedTargetName);

std::string simd_path_chosen() { return HWY_DYNAMIC_DISPATCH(DispatchedTargetName)(); }

}  // namespace sy
#endif  // HWY_ONCE
