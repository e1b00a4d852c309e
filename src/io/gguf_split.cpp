// GgufSet: one GGUF file, or the parts of a gguf-split set opened together from the first part.
#include <filesystem>

#include "io/gguf.h"

namespace sy::io {

namespace {

constexpr std::string_view kSplitNo = "split.no";
constexpr std::string_view kSplitCount = "split.count";
constexpr std::string_view kSplitTensors = "split.tensors.count";

// "-00001-of-00003.gguf": gguf-split numbers parts from 1 with five digits.
std::string part_suffix(uint64_t part, uint64_t count) {
  return fmt::format("-{:05d}-of-{:05d}.gguf", part, count);
}

uint64_t split_no(const GgufFile& f) { return f.has(kSplitNo) ? f.get_u32(kSplitNo) : 0; }

}  // namespace

GgufSet GgufSet::open(const std::string& path) {
  GgufSet set;
  GgufFile first = GgufFile::open(path);
  const uint64_t count = first.has(kSplitCount) ? first.get_u32(kSplitCount) : 1;
  SY_CHECK(count >= 1, "{}: key 'split.count' is 0, expected at least 1", path);
  const uint64_t no = split_no(first);
  SY_CHECK(no == 0,
           "{}: this is part {} of {} of a split model (split.no = {}); open the first part, "
           "whose name ends in {}",
           path, no + 1, count, no, part_suffix(1, count));
  set.parts_.push_back(std::move(first));  // parts_ grows below: no references into it yet
  if (count > 1) {
    const std::string suffix = part_suffix(1, count);
    SY_CHECK(path.size() > suffix.size() &&
                 path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0,
             "{}: key 'split.count' is {}, but the file name does not end in {}", path, count,
             suffix);
    const std::string prefix = path.substr(0, path.size() - suffix.size());
    for (uint64_t i = 1; i < count; ++i) {
      const std::string part_path = prefix + part_suffix(i + 1, count);
      SY_CHECK(std::filesystem::exists(part_path),
               "{}: part {} of {} of the split model '{}' is missing", part_path, i + 1, count,
               path);
      GgufFile part = GgufFile::open(part_path);
      SY_CHECK(part.has(kSplitNo) && part.has(kSplitCount),
               "{}: part {} of {} has no split.no or split.count key", part_path, i + 1, count);
      SY_CHECK(part.get_u32(kSplitNo) == i, "{}: key 'split.no' is {}, expected {}", part_path,
               part.get_u32(kSplitNo), i);
      SY_CHECK(part.get_u32(kSplitCount) == count,
               "{}: key 'split.count' is {}, expected {} as in '{}'", part_path,
               part.get_u32(kSplitCount), count, path);
      set.parts_.push_back(std::move(part));
    }
  }
  // Merge the tensor lists; a name in two parts is an error.
  for (size_t p = 0; p < set.parts_.size(); ++p) {
    const GgufFile& part = set.parts_[p];
    for (size_t i = 0; i < part.tensors().size(); ++i) {
      const std::string& name = part.tensors()[i].name;
      const auto [it, fresh] = set.index_.emplace(name, set.order_.size());
      SY_CHECK(fresh, "{}: tensor '{}' is also in '{}'", part.name(), name,
               set.parts_[set.order_[it->second].first].name());
      set.order_.emplace_back(p, i);
    }
  }
  const GgufFile& meta = set.parts_.front();
  if (meta.has(kSplitTensors)) {
    const int64_t expected = meta.get_i64(kSplitTensors);
    SY_CHECK(expected == static_cast<int64_t>(set.order_.size()),
             "{}: key 'split.tensors.count' is {}, but the {} part(s) hold {} tensors", path,
             expected, count, set.order_.size());
  }
  return set;
}

std::vector<std::pair<size_t, const GgufTensorInfo*>> GgufSet::tensors() const {
  std::vector<std::pair<size_t, const GgufTensorInfo*>> out;
  out.reserve(order_.size());
  for (const auto& [part, index] : order_) out.emplace_back(part, &parts_[part].tensors()[index]);
  return out;
}

const GgufTensorInfo* GgufSet::find_tensor(std::string_view name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) return nullptr;
  const auto& [part, index] = order_[it->second];
  return &parts_[part].tensors()[index];
}

const GgufFile& GgufSet::part_of(std::string_view name) const {
  const auto it = index_.find(name);
  SY_CHECK(it != index_.end(), "{}: no tensor named '{}' ({} tensors in {} part(s))",
           parts_.front().name(), name, order_.size(), parts_.size());
  return parts_[order_[it->second].first];
}

const GgufTensorInfo& GgufSet::tensor_info(std::string_view name) const {
  return part_of(name).tensor_info(name);
}

Tensor GgufSet::raw(std::string_view name) const { return part_of(name).raw(name); }

Tensor GgufSet::tensor(std::string_view name) const { return part_of(name).tensor(name); }

}  // namespace sy::io
