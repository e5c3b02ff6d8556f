// pacer/open_store.h: one reading of store URLs for every front end.
#include "pacer/open_store.h"

#include <gtest/gtest.h>

namespace pacer {
namespace {

TEST(OpenStore, MemoryHasOneSpellingAndItsShorthand) {
  EXPECT_TRUE(is_memory_url("memory://"));
  EXPECT_TRUE(is_memory_url("memory"));
  EXPECT_FALSE(is_memory_url("Memory"));
  EXPECT_FALSE(is_memory_url(""));
  auto store = open_store("memory://", {.memory = {.max_keys = 10}});
  EXPECT_TRUE(store->completes_inline());
  EXPECT_TRUE(store->wait_connected(std::chrono::milliseconds(0)));
  EXPECT_TRUE(open_store("memory")->completes_inline());
}

TEST(OpenStore, ABadUrlNamesItselfAndEveryAcceptedScheme) {
  try {
    open_store("mysql://user:secret@db");
    FAIL();
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("mysql://"), std::string::npos) << what;
    EXPECT_EQ(what.find("secret"), std::string::npos) << what;  // the password is masked
    EXPECT_NE(what.find("redis://"), std::string::npos) << what;
    EXPECT_NE(what.find("memory:// for the in-process store"), std::string::npos) << what;
  }
  EXPECT_THROW(open_store(""), std::invalid_argument);
}

TEST(OpenStore, ARedisUrlOpensARedisStoreWithTheOptionsGiven) {
  // Nothing listens there: the store exists, is not connected, and says why.
  auto store = open_store("redis://127.0.0.1:1",
                          {.redis = {.connect_timeout = std::chrono::milliseconds(50)}});
  EXPECT_FALSE(store->completes_inline());
  EXPECT_EQ(store->resolution(), std::chrono::microseconds(1));
  EXPECT_FALSE(store->wait_connected(std::chrono::milliseconds(300)));
  EXPECT_FALSE(store->last_error().empty());
  EXPECT_FALSE(store->counters().empty());
}

}  // namespace
}  // namespace pacer
