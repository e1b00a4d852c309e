#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "io/atomic_file.h"
#include "support/temp_dir.h"
#include "support/tensor_testing.h"

namespace sy::io {
namespace {

namespace fs = std::filesystem;
using ::sy::test::error_of;

TEST(AtomicFile, ReplacesWholeFilesAndNamesMissingPaths) {
  test::TempDir dir("sy_atomic");
  const std::string path = (dir.path / "a.txt").string();
  write_file_atomic(path, "first version");
  write_file_atomic(path, "second");
  EXPECT_EQ(read_file(path), "second");
  EXPECT_EQ(test::file_names(dir.path), std::vector<std::string>{"a.txt"});  // no temporary left
  const std::string err = error_of([] { write_file_atomic("/nonexistent-dir/x.txt", "x"); });
  EXPECT_NE(err.find("/nonexistent-dir/x.txt"), std::string::npos) << err;
  EXPECT_NE(error_of([] { (void)read_file("/nonexistent-dir/y"); }).find("/nonexistent-dir/y"),
            std::string::npos);
}

TEST(AtomicFile, TargetChangesOnlyOnCommit) {
  test::TempDir dir("sy_atomic");
  const std::string path = (dir.path / "f.bin").string();
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  write_file_atomic(path, "old");
  {
    AtomicFile file(path);
    EXPECT_EQ(file.temporary(), tmp);
    file.write("new ");
    file.write("");
    file.write("contents");
    EXPECT_EQ(read_file(path), "old");  // written pieces go to the temporary only
    EXPECT_EQ(read_file(tmp), "new contents");
    file.commit();
    EXPECT_FALSE(file.is_open());
    EXPECT_EQ(error_of([&] { file.write("x"); }),
              path + ": write to a file already committed or abandoned");
    EXPECT_EQ(error_of([&] { file.commit(); }),
              path + ": commit of a file already committed or abandoned");
  }
  EXPECT_EQ(read_file(path), "new contents");
  EXPECT_EQ(test::file_names(dir.path), std::vector<std::string>{"f.bin"});

  {  // dropped without a commit: the target keeps its bytes, the temporary goes
    AtomicFile file(path);
    file.write("never seen");
    EXPECT_EQ(test::file_names(dir.path),
              (std::vector<std::string>{"f.bin", "f.bin.tmp." + std::to_string(::getpid())}));
  }
  EXPECT_EQ(read_file(path), "new contents");
  EXPECT_EQ(test::file_names(dir.path), std::vector<std::string>{"f.bin"});

  AtomicFile file(path);
  file.write("abandoned");
  file.abandon();
  file.abandon();  // twice is fine
  EXPECT_FALSE(file.is_open());
  EXPECT_EQ(error_of([&] { file.write("x"); }),
            path + ": write to a file already committed or abandoned");
  EXPECT_EQ(read_file(path), "new contents");
  EXPECT_EQ(test::file_names(dir.path), std::vector<std::string>{"f.bin"});
}

TEST(AtomicFile, FailedCommitKeepsTheTargetAndRemovesTheTemporary) {
  test::TempDir dir("sy_atomic");
  // A folder cannot be replaced by a file: the rename fails.
  const fs::path target = dir.path / "taken";
  fs::create_directories(target / "inside");
  AtomicFile file(target.string());
  file.write("bytes");
  const std::string err = error_of([&] { file.commit(); });
  EXPECT_EQ(err.rfind(target.string() + ": cannot rename temporary into place: ", 0), 0u) << err;
  EXPECT_FALSE(file.is_open());
  EXPECT_TRUE(fs::is_directory(target / "inside"));
  EXPECT_EQ(test::file_names(dir.path), std::vector<std::string>{"taken"});
}

TEST(AtomicFile, FsyncDirNamesTheFolder) {
  test::TempDir dir("sy_atomic");
  EXPECT_NO_THROW(fsync_dir(dir.str()));
  const std::string missing = (dir.path / "missing").string();
  EXPECT_EQ(error_of([&] { fsync_dir(missing); }),
            missing + ": cannot open folder: No such file or directory");
  write_file_atomic((dir.path / "file").string(), "x");
  const std::string file = (dir.path / "file").string();
  EXPECT_EQ(error_of([&] { fsync_dir(file); }), file + ": cannot open folder: Not a directory");
}

}  // namespace
}  // namespace sy::io
