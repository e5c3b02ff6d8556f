// pacer/redis/url.h — Redis connection URLs.
//
//   redis://[user:password@]host[:port][/db]        plain TCP, default port 6379
//   rediss://...                                      TLS
//   redis+cluster://[user:password@]h1:p1[,h2:p2...]  Redis Cluster (seed nodes; no db)
//   rediss+cluster://...                              Redis Cluster over TLS
//
// IPv6 hosts go in brackets (`redis://[::1]:6379`). User and password are percent-decoded, so a
// password containing `@`, `:` or `/` is written `%40`, `%3A`, `%2F`. A password alone is
// `redis://:password@host`. Errors name the URL with the password masked.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pacer::redis {

struct RedisUrl {
  bool tls = false;
  bool cluster = false;
  // At least one (cluster: the seed nodes); IPv6 addresses without brackets.
  std::vector<std::pair<std::string, std::uint16_t>> hosts;
  std::string username;  // empty: the default user
  std::string password;  // empty: no AUTH
  int db = 0;            // SELECT after connecting (standalone only)

  // The URL again, safe to log: the password is shown as `***`.
  std::string to_string() const;
};

// Throws std::invalid_argument naming the URL (password masked) and what is wrong with it.
RedisUrl parse_redis_url(std::string_view url);

// `url` with anything between the user name and the host replaced by `***`, for messages.
std::string mask_redis_url(std::string_view url);

}  // namespace pacer::redis
