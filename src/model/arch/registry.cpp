#include "model/arch/arch.h"

// One X(name) per architecture file: arch/<name>.cpp defines `ArchReader <name>_arch()`.
#define SY_ARCHS(X) \
  X(mixtral)        \
  X(qwen2_moe)      \
  X(qwen3_moe)      \
  X(olmoe)          \
  X(deepseek)       \
  X(switchyard)

namespace sy::model {

#define SY_DECLARE_ARCH(name) ArchReader name##_arch();
SY_ARCHS(SY_DECLARE_ARCH)
#undef SY_DECLARE_ARCH

const std::vector<ArchReader>& arch_readers() {
#define SY_ARCH_ENTRY(name) name##_arch(),
  static const std::vector<ArchReader> readers{SY_ARCHS(SY_ARCH_ENTRY)};
#undef SY_ARCH_ENTRY
  return readers;
}

}  // namespace sy::model
