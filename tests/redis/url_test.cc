#include "pacer/redis/url.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace pacer::redis {
namespace {

using Hosts = std::vector<std::pair<std::string, std::uint16_t>>;

std::string error_of(std::string_view url) {
  try {
    parse_redis_url(url);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted: " << url;
  return {};
}

TEST(RedisUrlTest, PlainHostDefaultsPortAndDb) {
  const RedisUrl url = parse_redis_url("redis://localhost");
  EXPECT_FALSE(url.tls);
  EXPECT_FALSE(url.cluster);
  EXPECT_EQ(url.hosts, (Hosts{{"localhost", 6379}}));
  EXPECT_EQ(url.username, "");
  EXPECT_EQ(url.password, "");
  EXPECT_EQ(url.db, 0);
  EXPECT_EQ(url.to_string(), "redis://localhost:6379");
}

TEST(RedisUrlTest, AllParts) {
  const RedisUrl url = parse_redis_url("redis://alice:s3cret@cache.internal:6380/3");
  EXPECT_EQ(url.hosts, (Hosts{{"cache.internal", 6380}}));
  EXPECT_EQ(url.username, "alice");
  EXPECT_EQ(url.password, "s3cret");
  EXPECT_EQ(url.db, 3);
  EXPECT_EQ(url.to_string(), "redis://alice:***@cache.internal:6380/3");
}

TEST(RedisUrlTest, PasswordOnly) {
  const RedisUrl url = parse_redis_url("redis://:pw@127.0.0.1:7000/");
  EXPECT_EQ(url.username, "");
  EXPECT_EQ(url.password, "pw");
  EXPECT_EQ(url.db, 0);
  EXPECT_EQ(url.to_string(), "redis://:***@127.0.0.1:7000");
}

TEST(RedisUrlTest, PercentDecodingInUserAndPassword) {
  const RedisUrl url = parse_redis_url("redis://us%65r:p%40ss%3Aw%2Fo%25rd@h:1");
  EXPECT_EQ(url.username, "user");
  EXPECT_EQ(url.password, "p@ss:w/o%rd");
}

TEST(RedisUrlTest, AnUnescapedAtSignInThePasswordEndsAtTheLastAt) {
  const RedisUrl url = parse_redis_url("redis://u:p@ss@h:1");
  EXPECT_EQ(url.password, "p@ss");
  EXPECT_EQ(url.hosts, (Hosts{{"h", 1}}));
}

TEST(RedisUrlTest, Tls) {
  const RedisUrl url = parse_redis_url("rediss://redis.example.com");
  EXPECT_TRUE(url.tls);
  EXPECT_FALSE(url.cluster);
  EXPECT_EQ(url.hosts, (Hosts{{"redis.example.com", 6379}}));
  EXPECT_EQ(url.to_string(), "rediss://redis.example.com:6379");
}

TEST(RedisUrlTest, Ipv6InBrackets) {
  const RedisUrl url = parse_redis_url("redis://[::1]:7001/2");
  EXPECT_EQ(url.hosts, (Hosts{{"::1", 7001}}));
  EXPECT_EQ(url.db, 2);
  EXPECT_EQ(url.to_string(), "redis://[::1]:7001/2");
  EXPECT_EQ(parse_redis_url("redis://[fe80::1]").hosts, (Hosts{{"fe80::1", 6379}}));
}

TEST(RedisUrlTest, Cluster) {
  const RedisUrl url = parse_redis_url("redis+cluster://u:p@10.0.0.1:7000,10.0.0.2,[::1]:7002");
  EXPECT_TRUE(url.cluster);
  EXPECT_FALSE(url.tls);
  EXPECT_EQ(url.hosts, (Hosts{{"10.0.0.1", 7000}, {"10.0.0.2", 6379}, {"::1", 7002}}));
  EXPECT_EQ(url.to_string(), "redis+cluster://u:***@10.0.0.1:7000,10.0.0.2:6379,[::1]:7002");
  const RedisUrl tls = parse_redis_url("rediss+cluster://node:7000");
  EXPECT_TRUE(tls.cluster);
  EXPECT_TRUE(tls.tls);
  EXPECT_EQ(tls.to_string(), "rediss+cluster://node:7000");
}

TEST(RedisUrlTest, Sentinel) {
  const RedisUrl url = parse_redis_url("redis+sentinel://u:p@10.0.0.1:26380,s2,[::1]:5/mymaster/3");
  EXPECT_TRUE(url.sentinel);
  EXPECT_FALSE(url.cluster);
  EXPECT_FALSE(url.tls);
  EXPECT_EQ(url.hosts, (Hosts{{"10.0.0.1", 26380}, {"s2", 26379}, {"::1", 5}}));
  EXPECT_EQ(url.master_name, "mymaster");
  EXPECT_EQ(url.db, 3);
  EXPECT_EQ(url.username, "u");
  EXPECT_EQ(url.password, "p");
  EXPECT_EQ(url.sentinel_password, "");
  EXPECT_EQ(url.to_string(), "redis+sentinel://u:***@10.0.0.1:26380,s2:26379,[::1]:5/mymaster/3");

  const RedisUrl plain = parse_redis_url("redis+sentinel://s1/m");
  EXPECT_EQ(plain.hosts, (Hosts{{"s1", 26379}}));
  EXPECT_EQ(plain.master_name, "m");
  EXPECT_EQ(plain.db, 0);
  EXPECT_EQ(parse_redis_url("redis+sentinel://s1/m/").db, 0);

  const RedisUrl tls = parse_redis_url("REDISS+SENTINEL://s1:1/m");
  EXPECT_TRUE(tls.tls);
  EXPECT_TRUE(tls.sentinel);
  EXPECT_EQ(tls.to_string(), "rediss+sentinel://s1:1/m");
}

TEST(RedisUrlTest, SentinelPasswordInTheQuery) {
  const RedisUrl url =
      parse_redis_url("redis+sentinel://:data@s1:1/m?sentinel_password=s%26c%40ret");
  EXPECT_EQ(url.password, "data");
  EXPECT_EQ(url.sentinel_password, "s&c@ret");
  EXPECT_EQ(url.sentinel_username, "");
  EXPECT_EQ(url.to_string(), "redis+sentinel://:***@s1:1/m?sentinel_password=***");
  // A raw '@' in the query belongs to the query, not to a user part.
  const RedisUrl at = parse_redis_url("redis+sentinel://s1:1/m?sentinel_password=a@b");
  EXPECT_EQ(at.sentinel_password, "a@b");
  EXPECT_EQ(at.password, "");
  EXPECT_EQ(at.hosts, (Hosts{{"s1", 1}}));

  const RedisUrl user =
      parse_redis_url("redis+sentinel://s1:1/m/2?sentinel_username=watch&sentinel_password=pw");
  EXPECT_EQ(user.sentinel_username, "watch");
  EXPECT_EQ(user.sentinel_password, "pw");
  EXPECT_EQ(user.db, 2);
  EXPECT_EQ(user.to_string(),
            "redis+sentinel://s1:1/m/2?sentinel_username=watch&sentinel_password=***");
}

TEST(RedisUrlTest, SentinelRoundTripsWithoutPasswords) {
  for (const char* text : {"redis+sentinel://s1:26379/mymaster", "rediss+sentinel://a:1,b:2/m/7",
                           "redis+sentinel://[::1]:5/my%2Fmaster"}) {
    const RedisUrl url = parse_redis_url(text);
    const RedisUrl again = parse_redis_url(url.to_string());
    EXPECT_EQ(url.to_string(), text);
    EXPECT_EQ(again.hosts, url.hosts);
    EXPECT_EQ(again.master_name, url.master_name);
    EXPECT_EQ(again.db, url.db);
    EXPECT_EQ(again.tls, url.tls);
    EXPECT_TRUE(again.sentinel);
  }
  EXPECT_EQ(parse_redis_url("redis+sentinel://s/my%2Fmaster").master_name, "my/master");
}

TEST(RedisUrlTest, SentinelErrorsSayWhatIsWrong) {
  EXPECT_NE(error_of("redis+sentinel://s1:1").find("missing master name"), std::string::npos);
  EXPECT_NE(error_of("redis+sentinel://s1:1/").find("missing master name"), std::string::npos);
  EXPECT_NE(error_of("redis+sentinel://s1:1//2").find("missing master name"), std::string::npos);
  EXPECT_NE(error_of("redis+sentinel:///m").find("missing host"), std::string::npos);
  EXPECT_NE(error_of("redis+sentinel://a:1,,b:2/m").find("missing host"), std::string::npos);
  EXPECT_NE(error_of("redis+sentinel://s:0/m").find("port '0'"), std::string::npos);
  EXPECT_NE(error_of("redis+sentinel://s:x/m").find("port 'x'"), std::string::npos);
  EXPECT_NE(error_of("redis+sentinel://s:1/m/x").find("database 'x'"), std::string::npos);
  EXPECT_NE(error_of("redis+sentinel://s:1/m/1/2").find("database '1/2'"), std::string::npos);
  EXPECT_NE(error_of("redis+sentinel://s:1/m%0A").find("invalid character in master name"),
            std::string::npos);
  // Sentinel's messages separate fields with spaces: a name with one could never match.
  EXPECT_NE(error_of("redis+sentinel://s:1/my%20master").find("invalid character in master name"),
            std::string::npos);
  EXPECT_NE(error_of("redis+sentinel://s:1/m%zz").find("percent-escape in the master name"),
            std::string::npos);
  EXPECT_NE(error_of("redis+sentinel://s:1/m?timeout=1").find("unknown query parameter 'timeout'"),
            std::string::npos);
  EXPECT_NE(error_of("redis+sentinel://s:1/m?sentinel_password=").find("empty sentinel_password"),
            std::string::npos);
  EXPECT_NE(error_of("redis+sentinel://s:1/m?sentinel_password=a&sentinel_password=b")
                .find("given twice"),
            std::string::npos);
  EXPECT_NE(error_of("redis+sentinel://s:1/m?sentinel_username=u").find("needs sentinel_password"),
            std::string::npos);
  EXPECT_NE(error_of("redis+sentinel://s:1/m#x").find("fragments"), std::string::npos);
  EXPECT_NE(error_of("redis://h/0?sentinel_password=x").find("only with redis+sentinel"),
            std::string::npos);
  EXPECT_NE(error_of("redis+sentinal://s/m").find("unknown scheme"), std::string::npos);
  // The URL is named in the message.
  EXPECT_NE(error_of("redis+sentinel://s1:1").find("'redis+sentinel://s1:1'"), std::string::npos);
}

TEST(RedisUrlTest, SentinelErrorsMaskBothPasswords) {
  for (const char* url :
       {"redis+sentinel://u:secret@s:0/m", "redis+sentinel://s:1/m?sentinel_password=secret&x=1",
        "redis+sentinel://u:secret@s:1/m?sentinel_password=secret&bad",
        "redis+sentinel://s:1?sentinel_password=se@cret",
        "redis+sentinel://u:secret@s:1/m?SENTINEL_PASSWORD=secret&sentinel_password=secret",
        "redis+sentinel://s:1/m?sentinel_password=se%zzcret",
        "redis+sentinel://:secret@s:1/?sentinel_password=secret"}) {
    const std::string text = error_of(url);
    EXPECT_EQ(text.find("cret"), std::string::npos) << text;
  }
  EXPECT_EQ(mask_redis_url("redis+sentinel://u:pw@s:1/m?sentinel_password=x&y=2"),
            "redis+sentinel://u:***@s:1/m?sentinel_password=***");
  EXPECT_EQ(mask_redis_url("redis+sentinel://s:1/m?sentinel_password=a@b"),
            "redis+sentinel://s:1/m?sentinel_password=***");
}

TEST(RedisUrlTest, HostileUrlsNeverCrash) {
  // Every prefix of a few full URLs, and bytes of every kind: an error or a URL, nothing else.
  const std::string samples[] = {
      "rediss+sentinel://u%3A:p%40@[::1]:1,h:2/m%2F/3?sentinel_username=a&sentinel_password=b",
      "redis+cluster://u:p@[fe80::1]:7000,10.0.0.2"};
  for (const std::string& sample : samples) {
    for (std::size_t n = 0; n <= sample.size(); ++n) {
      try {
        parse_redis_url(sample.substr(0, n));
      } catch (const std::invalid_argument&) {
      }
    }
  }
  std::string bytes = "redis+sentinel://s:1/";
  for (int c = 0; c < 256; ++c) bytes.push_back(static_cast<char>(c));
  try {
    parse_redis_url(bytes);
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("invalid Redis URL"), std::string::npos) << e.what();
  }
}

TEST(RedisUrlTest, SchemeIsCaseInsensitive) { EXPECT_TRUE(parse_redis_url("REDISS://h").tls); }

TEST(RedisUrlTest, ErrorsSayWhatIsWrong) {
  EXPECT_NE(error_of("localhost:6379").find("expected redis://"), std::string::npos);
  EXPECT_NE(error_of("http://h").find("unknown scheme 'http'"), std::string::npos);
  EXPECT_NE(error_of("redis://").find("missing host"), std::string::npos);
  EXPECT_NE(error_of("redis://h:").find("empty port"), std::string::npos);
  EXPECT_NE(error_of("redis://h:0").find("port '0'"), std::string::npos);
  EXPECT_NE(error_of("redis://h:65536").find("port '65536'"), std::string::npos);
  EXPECT_NE(error_of("redis://h:12a").find("port '12a'"), std::string::npos);
  EXPECT_NE(error_of("redis://h/x").find("database 'x'"), std::string::npos);
  EXPECT_NE(error_of("redis://h/-1").find("database '-1'"), std::string::npos);
  EXPECT_NE(error_of("redis://h/99999999999").find("database"), std::string::npos);
  EXPECT_NE(error_of("redis://a,b").find("redis+cluster://"), std::string::npos);
  EXPECT_NE(error_of("redis+cluster://a,b/1").find("cluster"), std::string::npos);
  EXPECT_NE(error_of("redis://::1").find("brackets"), std::string::npos);
  EXPECT_NE(error_of("redis://[::1").find("']'"), std::string::npos);
  EXPECT_NE(error_of("redis://h?timeout=1").find("query"), std::string::npos);
  EXPECT_NE(error_of("redis://user@h").find("needs a password"), std::string::npos);
  EXPECT_NE(error_of("redis://u:p%4@h").find("percent-escape in the password"), std::string::npos);
  EXPECT_NE(error_of("redis://h o").find("invalid character"), std::string::npos);
  EXPECT_NE(error_of("redis+cluster://a:1,,b:2").find("missing host"), std::string::npos);
}

TEST(RedisUrlTest, ErrorsNameTheUrlWithThePasswordMasked) {
  const std::string error = error_of("redis://u:secret@h:0");
  EXPECT_EQ(error.find("secret"), std::string::npos) << error;
  EXPECT_NE(error.find("redis://u:***@h:0"), std::string::npos) << error;
  // However broken the URL, the password does not leak.
  for (const char* url :
       {"redis://u:sec/ret@h:0", "redis://u:sec?ret@h:1", "rediss://:secret@",
        "redis://u:secret@h:1/x", "ftp://u:secret@h", "u:secret@h", "redis://secret@h",
        "redis://u:se@cret@h:99999", "redis+cluster://u:secret@a:1/5", "redis://u:se%zzcret@h"}) {
    const std::string text = error_of(url);
    EXPECT_EQ(text.find("secret"), std::string::npos) << text;
    EXPECT_EQ(text.find("cret"), std::string::npos) << text;
  }
}

TEST(RedisUrlTest, MaskRedisUrl) {
  EXPECT_EQ(mask_redis_url("redis://u:pw@h:1/2"), "redis://u:***@h:1/2");
  EXPECT_EQ(mask_redis_url("redis://:pw@h"), "redis://:***@h");
  EXPECT_EQ(mask_redis_url("redis://pw@h"), "redis://***@h");
  EXPECT_EQ(mask_redis_url("redis://h:1"), "redis://h:1");
}

}  // namespace
}  // namespace pacer::redis
