#include "pacer/detail/unique_function.h"

#include <gtest/gtest.h>

#include <array>
#include <memory>

namespace pacer::detail {
namespace {

TEST(UniqueFunction, CallsInlineAndHeapCallables) {
  int small_calls = 0;
  UniqueFunction<int(int)> small = [&](int x) { return ++small_calls + x; };
  EXPECT_EQ(small(10), 11);

  std::array<char, 256> big{};
  big[0] = 7;
  UniqueFunction<int(int)> large = [big](int x) { return big[0] + x; };
  EXPECT_EQ(large(1), 8);
}

TEST(UniqueFunction, MovesOwnershipOfMoveOnlyCaptures) {
  auto owned = std::make_unique<int>(5);
  UniqueFunction<int()> f = [p = std::move(owned)] { return *p; };
  UniqueFunction<int()> g = std::move(f);
  EXPECT_FALSE(
      static_cast<bool>(f));  // NOLINT(bugprone-use-after-move): checking the moved-from state
  EXPECT_EQ(g(), 5);
  UniqueFunction<int()> h;
  h = std::move(g);
  EXPECT_EQ(h(), 5);
}

TEST(UniqueFunction, DestroysCapturesExactlyOnce) {
  auto counter = std::make_shared<int>(0);
  {
    UniqueFunction<void()> f = [counter] {};
    UniqueFunction<void()> g = std::move(f);
    EXPECT_EQ(counter.use_count(), 2);
  }
  EXPECT_EQ(counter.use_count(), 1);
}

// target<T>() finds the callable when it is a T, inline or on the heap, like std::function.
TEST(UniqueFunction, TargetIsTheStoredCallableOfThatType) {
  struct Small {
    int value;
    int operator()() const { return value; }
  };
  struct Big {
    char pad[200];
    int value;
    int operator()() const { return value; }
  };
  UniqueFunction<int()> small = Small{7};
  UniqueFunction<int()> big = Big{{}, 9};
  ASSERT_NE(small.target<Small>(), nullptr);
  EXPECT_EQ(small.target<Small>()->value, 7);
  EXPECT_EQ(small.target<Big>(), nullptr);
  ASSERT_NE(big.target<Big>(), nullptr);
  EXPECT_EQ(big.target<Big>()->value, 9);
  EXPECT_EQ(big.target<Small>(), nullptr);
  UniqueFunction<int()> empty;
  EXPECT_EQ(empty.target<Small>(), nullptr);
}

}  // namespace
}  // namespace pacer::detail
