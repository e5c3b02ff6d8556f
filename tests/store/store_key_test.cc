// pacer/store_key.h: the one definition of how a key names its policy.
#include "pacer/store_key.h"

#include <gtest/gtest.h>

namespace pacer {
namespace {

TEST(StoreKey, AKeyCarriesItsPolicysTagOrItIsNamespaced) {
  std::string key = "shop:";
  append_policy_tag(key, "api");
  key += "/items/<id>:ip:203.0.113.7}";
  EXPECT_EQ(key, "shop:{api:/items/<id>:ip:203.0.113.7}");
  EXPECT_TRUE(carries_policy_tag(key, "api"));
  EXPECT_FALSE(carries_policy_tag(key, "ap"));    // a prefix of the name is another policy
  EXPECT_FALSE(carries_policy_tag(key, "api2"));  // so is a longer name
  EXPECT_FALSE(carries_policy_tag("user:42", "api"));
  EXPECT_FALSE(carries_policy_tag("{api}", "api"));       // no ":" after the name
  EXPECT_FALSE(carries_policy_tag("{api:x", "api"));      // never closed
  EXPECT_FALSE(carries_policy_tag("x}{api:y}", "api2"));  // the first '{' decides
  EXPECT_TRUE(carries_policy_tag("{api:x}", "api"));
  EXPECT_FALSE(carries_policy_tag("{other:{api:x}}", "api"));
}

}  // namespace
}  // namespace pacer
