#include "support/reference.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/npy.h"

namespace sy::test {

namespace fs = std::filesystem;

NamedTensors run_reference(const std::string& script, const NamedTensors& inputs,
                           const nlohmann::json& params) {
  std::string tmpl = (fs::temp_directory_path() / "sy_ref_XXXXXX").string();
  SY_CHECK(::mkdtemp(tmpl.data()) != nullptr, "run_reference: cannot create a temporary folder");
  const fs::path dir(tmpl);
  for (const auto& [name, tensor] : inputs) io::write_npy((dir / (name + ".npy")).string(), tensor);
  io::write_file_atomic((dir / "params.json").string(), params.dump());
  const std::string path = std::string(SY_SOURCE_DIR) + "/tests/reference/" + script + ".py";
  const std::string cmd = std::string(SY_PYTHON) + " " + path + " " + dir.string() + " 2>" +
                          (dir / "stderr.txt").string();
  const int rc = std::system(cmd.c_str());
  NamedTensors out;
  if (rc != 0) {
    const std::string err = io::read_file((dir / "stderr.txt").string());
    fs::remove_all(dir);
    fail("reference script {} failed (exit {}):\n{}", path, rc, err);
  }
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string file = entry.path().filename().string();
    if (file.rfind("out_", 0) == 0 && entry.path().extension() == ".npy") {
      out[file.substr(4, file.size() - 8)] = io::read_npy(entry.path().string());
    }
  }
  fs::remove_all(dir);
  return out;
}

}  // namespace sy::test
