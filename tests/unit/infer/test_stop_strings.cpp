#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "infer/stop_strings.h"

namespace sy::infer {
namespace {

using Strings = std::vector<std::string>;

// Feeds `pieces` one by one; returns what each feed showed, then what flush showed.
Strings run(StopStrings& stop, const Strings& pieces) {
  Strings shown;
  for (const std::string& p : pieces) shown.push_back(stop.feed(p));
  shown.push_back(stop.flush());
  return shown;
}

TEST(StopStrings, NoStopStringsPassEverythingThrough) {
  StopStrings stop({});
  EXPECT_EQ(run(stop, {"Hello", "", " wor", "ld"}), (Strings{"Hello", "", " wor", "ld", ""}));
  EXPECT_FALSE(stop.stopped());
  EXPECT_EQ(stop.matched(), std::nullopt);
}

TEST(StopStrings, StopSplitAcrossThreePieces) {
  StopStrings stop({"User:", "</answer>"});
  EXPECT_EQ(stop.feed("The end</"), "The end");
  EXPECT_EQ(stop.held(), 2u);
  EXPECT_EQ(stop.feed("ans"), "");
  EXPECT_EQ(stop.held(), 5u);
  EXPECT_FALSE(stop.stopped());
  EXPECT_EQ(stop.feed("wer> and more"), "");
  EXPECT_TRUE(stop.stopped());
  EXPECT_EQ(stop.matched(), 1u);
  EXPECT_EQ(stop.feed("ignored"), "");  // nothing after a stop
  EXPECT_EQ(stop.flush(), "");
}

TEST(StopStrings, HeldTextIsReleasedWhenItCannotBecomeAStop) {
  StopStrings stop({"###"});
  EXPECT_EQ(stop.feed("a#"), "a");
  EXPECT_EQ(stop.feed("#"), "");
  EXPECT_EQ(stop.held(), 2u);
  EXPECT_EQ(stop.feed("b#"), "##b");  // "##b" can no longer grow into "###"; "#" still can
  EXPECT_EQ(stop.flush(), "#");       // the end of generation releases the rest
  EXPECT_FALSE(stop.stopped());
}

TEST(StopStrings, OverlappingCandidatesTheFirstToEndWins) {
  {
    // "ab" is held for "abcd"; "bc" completes first.
    StopStrings stop({"abcd", "bc"});
    EXPECT_EQ(stop.feed("xab"), "x");
    EXPECT_EQ(stop.feed("cd"), "a");
    EXPECT_EQ(stop.matched(), 1u);
  }
  {
    // In one piece, too: "y" ends before "xyz" would, so the text before "y" is shown.
    StopStrings stop({"xyz", "y"});
    EXPECT_EQ(stop.feed("axyz"), "ax");
    EXPECT_EQ(stop.matched(), 1u);
  }
  {
    // Both end at the same byte: the longer one (starting first) cuts.
    StopStrings stop({"cd", "bcd"});
    EXPECT_EQ(stop.feed("abcd"), "a");
    EXPECT_EQ(stop.matched(), 1u);
  }
  {
    // A stop string that is a prefix of another: the short one completes first.
    StopStrings stop({"abc", "ab"});
    EXPECT_EQ(stop.feed("za"), "z");
    EXPECT_EQ(stop.feed("bc"), "");
    EXPECT_EQ(stop.matched(), 1u);
  }
  {
    // The held suffix is the longest one that can still grow: "aa" for "aab", not "a".
    StopStrings stop({"aab"});
    EXPECT_EQ(stop.feed("xaaa"), "xa");
    EXPECT_EQ(stop.feed("b"), "");
    EXPECT_TRUE(stop.stopped());
  }
}

TEST(StopStrings, MultibyteUtf8StopsAndText) {
  StopStrings stop({"ünd", "→END"});
  EXPECT_EQ(stop.feed("Grü"), "Gr");  // both bytes of ü held
  EXPECT_EQ(stop.held(), 2u);
  EXPECT_EQ(stop.feed("n"), "");
  EXPECT_EQ(stop.feed("e →"), "üne ");
  EXPECT_EQ(stop.feed("EN"), "");
  EXPECT_EQ(stop.feed("D…"), "");
  EXPECT_EQ(stop.matched(), 1u);
  // Raw bytes of a character split across pieces (byte-level tokens) match as well.
  StopStrings bytes({"→"});
  EXPECT_EQ(bytes.feed("a\xE2"), "a");
  EXPECT_EQ(bytes.feed("\x86"), "");
  EXPECT_EQ(bytes.feed("\x92z"), "");
  EXPECT_TRUE(bytes.stopped());
}

TEST(StopStrings, EmptyPiecesChangeNothing) {
  StopStrings stop({"STOP"});
  EXPECT_EQ(run(stop, {"", "ab", "", "ST", "", "", "OP", ""}),
            (Strings{"", "ab", "", "", "", "", "", "", ""}));
  EXPECT_TRUE(stop.stopped());
  EXPECT_EQ(stop.matched(), 0u);
}

// What the stream must show for `text`, from the definition: cut before the stop string that
// ends first (longest on a tie), or all of it.
std::string expected_output(const std::string& text, const Strings& stops) {
  for (size_t end = 1; end <= text.size(); ++end) {
    std::optional<size_t> cut;
    for (const std::string& s : stops) {
      if (s.size() <= end && text.compare(end - s.size(), s.size(), s) == 0) {
        cut = std::min(cut.value_or(end), end - s.size());
      }
    }
    if (cut) return text.substr(0, *cut);
  }
  return text;
}

// However the text is cut into pieces, the output is the same and matches the definition.
TEST(StopStrings, OutputDoesNotDependOnHowTextIsSplit) {
  Rng rng(5);
  const auto random_string = [&](size_t max_len, size_t min_len) {
    std::string s(min_len + rng.below(max_len - min_len + 1), 'a');
    for (char& c : s) c = static_cast<char>('a' + rng.below(3));
    return s;
  };
  int stopped = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    Strings stops;
    for (uint64_t i = 0, n = rng.below(4); i < n; ++i) stops.push_back(random_string(4, 1));
    const std::string text = random_string(30, 0);
    StopStrings stop(stops);
    std::string shown;
    size_t pos = 0;
    while (pos < text.size()) {
      const size_t len = std::min<size_t>(rng.below(5), text.size() - pos);
      shown += stop.feed(std::string_view(text).substr(pos, len));
      pos += len;
    }
    shown += stop.flush();
    ASSERT_EQ(shown, expected_output(text, stops)) << "text " << text << " trial " << trial;
    stopped += stop.stopped();
  }
  EXPECT_GT(stopped, 500);  // both outcomes are well represented
  EXPECT_LT(stopped, 1900);
}

TEST(StopStrings, EmptyStopStringIsAnError) {
  try {
    StopStrings stop({"a", ""});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "stop strings: entry 1 of 2 is empty, expected at least 1 byte");
  }
}

}  // namespace
}  // namespace sy::infer
