#include "support/reference.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/npy.h"

namespace sy::test {

namespace fs = std::filesystem;

namespace {

// Removes the folder on every path out of run_reference_cases, errors included.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "sy_ref_XXXXXX").string();
    SY_CHECK(::mkdtemp(tmpl.data()) != nullptr, "run_reference: cannot create a temporary folder");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

std::string case_name(size_t i) { return fmt::format("case{:05d}", i); }

}  // namespace

std::vector<NamedTensors> run_reference_cases(const std::string& script,
                                              const std::vector<ReferenceCase>& cases) {
  const TempDir dir;
  for (size_t i = 0; i < cases.size(); ++i) {
    const fs::path case_dir = dir.path / case_name(i);
    fs::create_directory(case_dir);
    for (const auto& [name, tensor] : cases[i].inputs) {
      io::write_npy((case_dir / (name + ".npy")).string(), tensor);
    }
    io::write_file_atomic((case_dir / "params.json").string(), cases[i].params.dump());
  }
  const std::string path = std::string(SY_SOURCE_DIR) + "/tests/reference/" + script + ".py";
  const std::string cmd = std::string(SY_PYTHON) + " " + path + " " + dir.path.string() + " 2>" +
                          (dir.path / "stderr.txt").string();
  const int rc = std::system(cmd.c_str());
  if (rc != 0) {
    fail("reference script {} failed (exit {}):\n{}", path, rc,
         io::read_file((dir.path / "stderr.txt").string()));
  }
  std::vector<NamedTensors> out(cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    for (const auto& entry : fs::directory_iterator(dir.path / case_name(i))) {
      const std::string file = entry.path().filename().string();
      if (file.rfind("out_", 0) == 0 && entry.path().extension() == ".npy") {
        out[i][file.substr(4, file.size() - 8)] = io::read_npy(entry.path().string());
      }
    }
    SY_CHECK(!out[i].empty(), "reference script {} wrote no outputs for case {}", path, i);
  }
  return out;
}

NamedTensors run_reference(const std::string& script, const NamedTensors& inputs,
                           const nlohmann::json& params) {
  return run_reference_cases(script, {ReferenceCase{inputs, params}}).front();
}

}  // namespace sy::test
