// The GCRA script (src/redis/script.h) run at a chosen instant on a real redis-server, for the
// script's tests and the module's (tests/redis/script_test.cc, module_test.cc).
//
// The script reads Redis TIME. To run it at a chosen instant, the harness runs a copy of the
// script's text in which the one `redis.call('TIME')` is replaced by two extra ARGV values that
// the wrapper takes off again before the script sees ARGV; production sends the script
// unchanged (its SHA-1 is of the text in script.cc). The wrapper also records the PX argument
// of the script's SET (through a local `redis` that passes every call on), returns the stored
// value and PTTL from inside the same script, and then PERSISTs the key so that the real clock
// cannot expire state that the test's clock still needs.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "pacer/redis/client.h"
#include "pacer/redis/url.h"
#include "redis_server.h"
#include "script.h"

namespace pacer::redis::internal {
namespace script_harness {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using testing::RedisServer;

// The production script with its clock replaced, wrapped as the comment above says.
inline std::string script_at_fixed_time() {
  const std::string time_call = "redis.call('TIME')";
  std::string body(gcra_script());
  const auto at = body.find(time_call);
  if (at == std::string::npos || body.find(time_call, at + 1) != std::string::npos)
    throw std::logic_error("the script must read TIME exactly once: " + body);
  body.replace(at, time_call.size(), "{fake_seconds, fake_micros}");
  return "local fake_micros = table.remove(ARGV)\n"
         "local fake_seconds = table.remove(ARGV)\n"
         "local real_redis, px = redis, false\n"
         "local redis = setmetatable({call = function(...)\n"
         "  local args = {...}\n"
         "  if args[1] == 'SET' and args[4] == 'PX' then px = args[5] end\n"
         "  return real_redis.call(...)\n"
         "end}, {__index = real_redis})\n"
         "local function step()\n" +
         body +
         "\nend\n"
         "local reply = step()\n"
         "local value = redis.call('GET', KEYS[1])\n"
         "local pttl = redis.call('PTTL', KEYS[1])\n"
         "if pttl >= 0 then redis.call('PERSIST', KEYS[1]) end\n"
         "return {reply, value, px, pttl}\n";
}

enum class Format { kBinary, kDecimal };

// The stored value as the script writes it (binary doubles) or in the earlier decimal format.
inline std::string encode_tats(const std::vector<std::int64_t>& tats_us, Format format) {
  std::string out;
  for (const std::int64_t tat : tats_us) {
    if (format == Format::kDecimal) {
      if (!out.empty()) out += ' ';
      out += std::to_string(tat);
      continue;
    }
    const auto value = static_cast<double>(tat);
    static_assert(sizeof value == 8);
    char bytes[8];
    std::memcpy(bytes, &value, 8);  // x86-64 and arm64 are little-endian, like '<d'
    out.append(bytes, 8);
  }
  return out;
}

inline std::optional<std::vector<std::int64_t>> decode_tats(const std::string& value,
                                                            std::size_t n) {
  if (value.size() != 8 * n) return std::nullopt;
  std::vector<std::int64_t> tats(n);
  for (std::size_t i = 0; i < n; ++i) {
    double tat = 0;
    std::memcpy(&tat, value.data() + 8 * i, 8);
    tats[i] = static_cast<std::int64_t>(tat);
    if (static_cast<double>(tats[i]) != tat) return std::nullopt;
  }
  return tats;
}

struct StepResult {
  Reply reply;                       // the script's own reply
  std::optional<std::string> value;  // the key's value afterwards
  std::optional<std::string> px;     // the PX of the script's SET, if it wrote
  std::int64_t pttl = 0;             // its PTTL afterwards (-2 missing, -1 no TTL)
};

// One redis-server and a client on this thread's io_context.
class ScriptHarness {
 public:
  // `server_args`: e.g. {"--loadmodule", path} for the module's tests.
  explicit ScriptHarness(std::vector<std::string> server_args = {})
      : server_(std::move(server_args)),
        client_(io_, options(server_.url())),
        script_(script_at_fixed_time()) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!client_.connected() && std::chrono::steady_clock::now() < deadline) run_a_little();
    if (!client_.connected()) throw std::runtime_error("not connected: " + client_.last_error());
  }

  Reply call(const std::vector<std::string>& args, const std::string& key) {
    std::vector<std::string_view> views(args.begin(), args.end());
    std::optional<Reply> result;
    std::error_code error;
    client_.execute(views, key, [&](std::error_code ec, Reply&& reply) {
      error = ec;
      result = std::move(reply);
    });
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!result && std::chrono::steady_clock::now() < deadline) run_a_little();
    if (!result || error)
      throw std::runtime_error("no reply to " + args[0] + ": " + error.message());
    return *std::move(result);
  }

  // Replaces the key's state: no value, or `tats_us` in `format` without a TTL.
  void store(const std::string& key, const std::optional<std::vector<std::int64_t>>& tats_us,
             Format format) {
    call({"DEL", key}, key);
    if (tats_us) call({"SET", key, encode_tats(*tats_us, format)}, key);
  }

  // The script for `call` at `now_us` on `key`.
  StepResult step(const std::string& key, const ScriptCall& call_args, std::int64_t now_us) {
    std::vector<std::string> args = {"EVAL", script_, "1", key};
    for (const std::int64_t a : call_args.arguments()) args.push_back(std::to_string(a));
    args.push_back(std::to_string(now_us / 1'000'000));
    args.push_back(std::to_string(now_us % 1'000'000));
    Reply reply = call(args, key);
    if (reply.type != Reply::Type::kArray || reply.elements.size() != 4)
      throw std::runtime_error("script failed: " + reply.str);
    StepResult out;
    out.reply = std::move(reply.elements[0]);
    if (reply.elements[1].type == Reply::Type::kString) out.value = reply.elements[1].str;
    if (reply.elements[2].type == Reply::Type::kString) out.px = reply.elements[2].str;
    out.pttl = reply.elements[3].integer;
    return out;
  }

 private:
  static ClientOptions options(const std::string& url) {
    ClientOptions o;
    o.url = parse_redis_url(url);
    o.command_timeout = 5s;
    return o;
  }
  void run_a_little() {
    io_.run_for(1ms);
    if (io_.stopped()) io_.restart();
  }

  RedisServer server_;
  asio::io_context io_{1};
  Client client_;
  std::string script_;
};

inline std::string describe(const Reply& reply) {
  if (reply.type == Reply::Type::kInteger) return std::to_string(reply.integer);
  if (reply.type != Reply::Type::kArray) return "type " + std::to_string(int(reply.type));
  std::string out = "[";
  for (const Reply& e : reply.elements) out += describe(e) + " ";
  return out + "]";
}

}  // namespace script_harness
}  // namespace pacer::redis::internal
