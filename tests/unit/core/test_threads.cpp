#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "core/threads.h"

namespace sy {
namespace {

// Small work runs on the caller without entering an OpenMP region (not even a team of one, whose
// set-up is what the helpers exist to skip); large work runs in a region over the team. Every
// index is visited exactly once either way.
TEST(Threads, ParallelForVisitsEachIndexOnceAndEntersARegionOnlyWhenAsked) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(3);
  for (const bool parallel : {false, true}) {
    SCOPED_TRACE(parallel ? "parallel" : "serial");
    std::vector<std::atomic<int>> seen(1000);
    std::atomic<int> levels_wrong{0};
    parallel_for(5, 1000, parallel, [&](int64_t i) {
      seen[static_cast<size_t>(i)].fetch_add(1);
      if (omp_get_level() != (parallel ? 1 : 0)) levels_wrong.fetch_add(1);
    });
    for (int64_t i = 0; i < 1000; ++i) {
      EXPECT_EQ(seen[static_cast<size_t>(i)].load(), i < 5 ? 0 : 1) << "index " << i;
    }
    EXPECT_EQ(levels_wrong.load(), 0);
  }
  omp_set_num_threads(saved);
}

TEST(Threads, RunTeamGivesEachThreadItsIdAndTheTeamSize) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(3);
  std::vector<int> calls;
  run_team(false, [&](int64_t tid, int64_t nt) {
    EXPECT_EQ(omp_get_level(), 0);
    calls.push_back(static_cast<int>(tid * 10 + nt));
  });
  EXPECT_EQ(calls, std::vector<int>{1});
  std::vector<std::atomic<int>> by_thread(8);
  std::atomic<int64_t> team{-1};
  run_team(true, [&](int64_t tid, int64_t nt) {
    EXPECT_EQ(omp_get_level(), 1);
    team.store(nt);
    by_thread[static_cast<size_t>(tid)].fetch_add(1);
  });
  ASSERT_GE(team.load(), 1);
  for (int64_t t = 0; t < 8; ++t) {
    EXPECT_EQ(by_thread[static_cast<size_t>(t)].load(), t < team.load() ? 1 : 0) << "thread " << t;
  }
  omp_set_num_threads(saved);
}

}  // namespace
}  // namespace sy
