// pacer/redis/url.h — Redis connection URLs.
//
//   redis://[user:password@]host[:port][/db]        plain TCP, default port 6379
//   rediss://...                                      TLS
//   redis+cluster://[user:password@]h1:p1[,h2:p2...]  Redis Cluster (seed nodes; no db)
//   rediss+cluster://...                              Redis Cluster over TLS
//   redis+sentinel://[user:password@]s1:p1[,s2:p2...]/master_name[/db][?sentinel_password=pw]
//   rediss+sentinel://...                             Sentinel, TLS to sentinels and data nodes
//
// Sentinel: the hosts are sentinels (default port 26379), asked in order for the address of
// `master_name`; user and password authenticate to the data nodes (the master), `db` is
// selected there. Sentinels are contacted without AUTH unless `sentinel_password` (and
// optionally `sentinel_username`) is given as a query parameter; these are the only query
// parameters accepted, with any scheme. In the query a value's `&`, `#` or `%` is
// percent-encoded.
//
// IPv6 hosts go in brackets (`redis://[::1]:6379`). User and password are percent-decoded, so a
// password containing `@`, `:`, `/` or `?` is written `%40`, `%3A`, `%2F`, `%3F`. A password
// alone is `redis://:password@host`. Errors name the URL with the passwords masked.
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
  bool sentinel = false;
  // At least one (cluster: the seed nodes; sentinel: the sentinels); IPv6 addresses without
  // brackets.
  std::vector<std::pair<std::string, std::uint16_t>> hosts;
  std::string username;           // empty: the default user
  std::string password;           // empty: no AUTH
  int db = 0;                     // SELECT after connecting (standalone and sentinel)
  std::string master_name;        // sentinel: the monitored master's name (never empty)
  std::string sentinel_username;  // sentinel: AUTH to the sentinels (empty: default user)
  std::string sentinel_password;  // sentinel: empty: sentinels without AUTH

  // The URL again, safe to log: passwords are shown as `***` (without passwords, parsing it
  // gives this RedisUrl again).
  std::string to_string() const;
};

// Throws std::invalid_argument naming the URL (password masked) and what is wrong with it.
RedisUrl parse_redis_url(std::string_view url);

// `url` with anything between the user name and the host, and everything from a
// `sentinel_password=` on, replaced by `***`, for messages.
std::string mask_redis_url(std::string_view url);

}  // namespace pacer::redis
