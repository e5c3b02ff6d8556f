// Hostile input on real sockets against a running pacer-demo (issue 6, "What it must show"):
// requests with random bytes in the method, path, headers and body, each followed by a normal
// `GET /limited` that must be answered 200 or 429 (never 5xx, never a hang), on the same
// connection when the server kept it open, else on a new one.
//
//   auto report = pacer::testing::hostile::run({.port = server.port(), .seed = seed});
//   EXPECT_TRUE(report.failures.empty()) << report.summary();
//
// Three kinds of request, chosen at random for each round:
//   - framed (60 %): a well-framed HTTP/1.x request (Content-Length or chunked, both right)
//     with garbage in the method, target, version, header values and body; the answer is
//     read, and must not be a 5xx.
//   - bad framing (20 %): garbage Content-Length / Transfer-Encoding headers, lengths that lie;
//     the write side is then shut, so the server sees the end and must answer or close.
//   - random bytes (20 %): anything at all, sometimes after a valid request line; shut likewise.
// Each follow-up sends its own X-Forwarded-For (the loopback is a trusted proxy by default), so
// it is a fresh key and really reaches the store instead of a deny cache.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/text.h"
#include "raw_client.h"

namespace pacer::testing::hostile {

struct Options {
  std::uint16_t port = 0;
  std::uint32_t seed = 1;
  int requests = 10'000;
  std::chrono::seconds time_limit{60};
  std::chrono::milliseconds receive_timeout{5000};
  std::size_t max_failures = 10;  // stop after this many
};

struct Report {
  int rounds = 0;
  int hostile_answered = 0;
  int hostile_closed_unanswered = 0;
  int same_connection_follow_ups = 0;
  std::map<int, int> hostile_status;
  std::map<int, int> follow_up_status;
  std::vector<std::string> failures;
  double seconds = 0;
  bool timed_out = false;

  std::string summary() const {
    std::string text = std::to_string(rounds) + " rounds in " + std::to_string(seconds) +
                       " s; hostile answered " + std::to_string(hostile_answered) +
                       ", closed unanswered " + std::to_string(hostile_closed_unanswered) +
                       "; follow-ups on the same connection " +
                       std::to_string(same_connection_follow_ups) + "\n  hostile statuses:";
    for (const auto& [status, count] : hostile_status)
      text += " " + std::to_string(status) + "x" + std::to_string(count);
    text += "\n  follow-up statuses:";
    for (const auto& [status, count] : follow_up_status)
      text += " " + std::to_string(status) + "x" + std::to_string(count);
    if (timed_out) text += "\n  stopped by the time limit";
    for (const auto& failure : failures) text += "\n  FAIL " + failure;
    return text;
  }
};

namespace detail {

struct Hostile {
  std::string bytes;
  bool framed = false;  // a complete, correctly framed message: the connection may go on
  bool head = false;    // the method is HEAD: the answer has no body
  bool http10 = false;
};

class Generator {
 public:
  explicit Generator(std::uint32_t seed) : rng_(seed) {}

  Hostile next() {
    const unsigned kind = below(100);
    if (kind < 60) return framed();
    if (kind < 80) return bad_framing();
    return random_bytes();
  }

 private:
  unsigned below(unsigned n) { return static_cast<unsigned>(rng_() % n); }
  bool chance(unsigned percent) { return below(100) < percent; }
  char byte() { return static_cast<char>(below(256)); }

  std::string bytes(std::size_t n) {
    std::string out(n, '\0');
    for (char& c : out) c = byte();
    return out;
  }
  // Random bytes without CR and LF (so the header stays one line).
  std::string line_bytes(std::size_t n) {
    std::string out = bytes(n);
    for (char& c : out)
      if (c == '\r' || c == '\n') c = static_cast<char>(0x80 + below(128));
    return out;
  }
  // Mostly what an HTTP parser lets through to the handler in a field value or target (visible
  // ASCII); sometimes bytes above 0x7F (invalid UTF-8) or control characters, which Beast
  // refuses with 400 in headers and targets.
  std::string text_bytes(std::size_t n) {
    if (chance(3)) return line_bytes(n);
    const bool high = chance(20);
    std::string out(n, ' ');
    for (char& c : out)
      c = static_cast<char>(high && chance(20) ? 0x80 + below(128) : 0x21 + below(94));
    return out;
  }
  template <class T>
  const T& pick(const std::vector<T>& items) {
    return items[below(static_cast<unsigned>(items.size()))];
  }

  std::string method() {
    static const std::vector<std::string> methods{"GET",  "POST",    "PUT",      "DELETE",
                                                  "HEAD", "OPTIONS", "PATCH",    "TRACE",
                                                  "get",  "CONNECT", "PROPFIND", "M-SEARCH"};
    const unsigned kind = below(20);
    if (kind < 15) return pick(methods);
    if (kind < 19) {  // a valid token, an unknown method
      static const std::string tchar =
          "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
      std::string token;
      for (unsigned i = 0, n = 1 + below(12); i < n; ++i)
        token += tchar[below(static_cast<unsigned>(tchar.size()))];
      return token;
    }
    std::string garbage = line_bytes(1 + below(16));
    std::replace(garbage.begin(), garbage.end(), ' ', '_');
    return garbage;
  }

  std::string target() {
    static const std::vector<std::string> paths{"/limited",
                                                "/post",
                                                "/",
                                                "/health",
                                                "/config",
                                                "/metrics",
                                                "/metrics/prometheus",
                                                "/custom",
                                                "/api-key",
                                                "/nope",
                                                "*",
                                                "http://evil.example/limited",
                                                "//limited"};
    // Mostly the routes that read the body or the client's identity.
    std::string path = chance(35) ? "/post" : chance(30) ? "/limited" : pick(paths);
    switch (below(8)) {
      case 0:
        path += "?" + text_bytes(below(64));
        break;
      case 1:
        path += text_bytes(1 + below(32));
        break;
      case 2:
        path = "/" + std::string(1 + below(4000), 'a');
        break;
      case 3:
        path += "%00%ff%c0%af/../..%2f";
        break;
      default:
        break;
    }
    std::replace(path.begin(), path.end(), ' ', '+');
    return path;
  }

  std::string version(Hostile& h) {
    const unsigned kind = below(20);
    if (kind < 16) return "HTTP/1.1";
    if (kind < 18) {
      h.http10 = true;
      return "HTTP/1.0";
    }
    static const std::vector<std::string> odd{"HTTP/2.0", "HTTP/1.2",       "HTTP/9",
                                              "http/1.1", "HTTP/1.1 extra", "HTTP/1.1\t"};
    h.http10 = true;  // whatever happens, do not count on keep-alive
    return pick(odd);
  }

  std::string header_value() {
    static const std::vector<std::string> plausible{
        "1.2.3.4",          "::1",
        "2001:db8::1",      "unknown",
        "for=_hidden",      "for=\"[::1]:80\"",
        "Bearer x",         "Bearer ",
        "application/json", "text/plain",
        "100-continue",     "close",
        "keep-alive",       "1.2.3.4, 10.0.0.1, 127.0.0.1",
        "999.1.1.1",        "{braces}"};
    const unsigned kind = below(10);
    if (kind < 4) return pick(plausible);
    if (kind < 5) return std::string(1 + below(6000), 'x');
    return text_bytes(below(200));
  }

  std::string headers() {
    static const std::vector<std::string> names{
        "X-Forwarded-For", "Forwarded",     "X-Real-IP",  "CF-Connecting-IP",
        "X-API-Key",       "Authorization", "Accept",     "Content-Type",
        "Connection",      "Expect",        "User-Agent", "Cookie",
        "Range",           "If-None-Match", "Upgrade",    "X-Custom"};
    std::string out;
    for (unsigned i = 0, n = below(8); i < n; ++i) {
      std::string name;
      if (chance(95)) {
        name = pick(names);
      } else {
        name = chance(50) ? text_bytes(1 + below(20)) : line_bytes(1 + below(20));
        std::replace(name.begin(), name.end(), ':', '-');
        if (name.find("ength") != std::string::npos || name.find("ncoding") != std::string::npos)
          name = "X-Other";
      }
      out += name + ": " + header_value() + "\r\n";
    }
    return out;
  }

  std::string body() {
    switch (below(10)) {
      case 0:
        return "";
      case 1:
        return bytes(below(2000));
      case 2:
        return std::string(1 + below(5000), '[') + (chance(50) ? "\xff" : "");
      case 3:
        return "{\"a\":\"" + bytes(below(64)) + "\"}";
      case 4:
        return "\xff";
      case 5: {
        const unsigned depth = 1 + below(100'000);
        return std::string(depth, '[') + std::string(depth, ']');
      }
      case 6:
        return R"({"s":"\ud800","n":1e999})";
      case 7:
        return R"({"ok":[1,2,3],"text":"caf\u00e9"})";
      default: {
        std::string json = R"({"k":")" + line_bytes(below(32)) + R"(","v":)";
        json += std::to_string(rng_());
        json += "}";
        if (chance(50)) json.resize(below(static_cast<unsigned>(json.size())));
        return json;
      }
    }
  }

  Hostile framed() {
    Hostile h;
    const std::string path = target();
    const std::string m = path == "/post" && chance(70) ? "POST" : method();
    h.head = m == "HEAD";
    const std::string line = m + " " + path + " " + version(h) + "\r\n";
    std::string head = line + (chance(90) ? "Host: t\r\n" : "");
    // A client address of its own most of the time (the loopback is a trusted proxy), so the
    // route's limit does not answer 429 before the body and headers are looked at.
    if (chance(75)) {
      ++clients_;
      head += "X-Forwarded-For: 172.16." + std::to_string((clients_ >> 8) & 255) + "." +
              std::to_string(clients_ & 255) + "\r\n";
    }
    head += headers();
    const std::string content = body();
    if (!content.empty() && !h.http10 && chance(20)) {
      // Chunked, in chunks of random size.
      head += "Transfer-Encoding: chunked\r\n\r\n";
      std::string chunks;
      for (std::size_t at = 0; at < content.size();) {
        const std::size_t n = std::min<std::size_t>(1 + below(700), content.size() - at);
        char size[32];
        std::snprintf(size, sizeof size, "%zx\r\n", n);
        chunks += size + content.substr(at, n) + "\r\n";
        at += n;
      }
      h.bytes = head + chunks + "0\r\n\r\n";
    } else if (!content.empty() || chance(30)) {
      h.bytes = head + "Content-Length: " + std::to_string(content.size()) + "\r\n\r\n" + content;
    } else {
      h.bytes = head + "\r\n";
    }
    h.framed = true;
    return h;
  }

  Hostile bad_framing() {
    Hostile h;
    static const std::vector<std::string> framing{
        "Content-Length: -1\r\n",
        "Content-Length: 99999999999999999999\r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 1,1\r\n",
        "Content-Length: 0x10\r\n",
        "Content-Length: 100\r\n",
        "Content-Length: 2000000\r\n",
        "Transfer-Encoding: chunked\r\n",
        "Transfer-Encoding: identity\r\n",
        "Transfer-Encoding: chunked, identity\r\n",
        "Transfer-Encoding: gzip\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
        "Transfer-Encoding: \xff\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "Content-Length : 4\r\n",
        " Content-Length: 4\r\n",
        "Content-Length:\t4 \r\n"};
    std::string head = method() + " " + target() + " " + version(h) + "\r\nHost: t\r\n";
    head += pick(framing) + headers() + "\r\n";
    std::string content;
    switch (below(4)) {
      case 0:
        content = "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n";
        break;
      case 1:
        content = "zz\r\n" + bytes(below(100)) + "\r\n0\r\n\r\n";  // a broken chunk size
        break;
      case 2:
        content = "ffffffffffffffffff\r\nx\r\n";
        break;
      default:
        content = bytes(below(3000));
        break;
    }
    h.bytes = head + content;
    return h;
  }

  Hostile random_bytes() {
    Hostile h;
    if (chance(40))
      h.bytes = pick(std::vector<std::string>{"GET / HTTP/1.1\r\n", "POST /post HTTP/1.1\r\n",
                                              "GET /limited HTTP/1.1\r\nHost: t\r\n"});
    h.bytes += bytes(below(4096));
    if (chance(30)) h.bytes += "\r\n\r\n";
    return h;
  }

  std::mt19937 rng_;
  std::uint32_t clients_ = 0;
};

inline std::string describe(const std::string& bytes) {
  return "(" + std::to_string(bytes.size()) + " bytes) " + pacer::internal::printable(bytes);
}

}  // namespace detail

inline Report run(const Options& options) {
  Report report;
  detail::Generator generator(options.seed);
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + options.time_limit;
  auto fail = [&](int round, const std::string& what, const std::string& hostile) {
    report.failures.push_back("round " + std::to_string(round) + ": " + what +
                              "; after hostile request " + detail::describe(hostile));
  };

  for (int round = 0; round < options.requests; ++round) {
    if (report.failures.size() >= options.max_failures) break;
    if (std::chrono::steady_clock::now() > deadline) {
      report.timed_out = true;
      break;
    }
    ++report.rounds;
    const detail::Hostile hostile = generator.next();
    RawClient client(options.port, options.receive_timeout);
    if (!client.connected()) {
      fail(round, "cannot connect", hostile.bytes);
      continue;
    }
    bool reuse = false;
    // The server may answer and close before all is sent (an early 400): not an error.
    const bool sent = client.send_all(hostile.bytes);
    if (hostile.framed) {
      ReadError error = ReadError::kNone;
      const auto response = client.read_response(hostile.head, &error);
      if (response) {
        ++report.hostile_answered;
        ++report.hostile_status[response->status];
        if (response->status >= 500)
          fail(
              round,
              "hostile request answered " + std::to_string(response->status) + " " + response->body,
              hostile.bytes);
        reuse = sent && !response->says_close() && !hostile.http10;
      } else if (error == ReadError::kTimeout) {
        fail(round, "no answer to a framed request within the timeout", hostile.bytes);
      } else {
        ++report.hostile_closed_unanswered;
      }
    } else {
      client.shutdown_write();
      std::string received;
      if (!client.read_until_closed(&received)) {
        fail(round, "the server neither answered nor closed after the client's end", hostile.bytes);
      } else if (received.empty()) {
        ++report.hostile_closed_unanswered;
      } else {
        ++report.hostile_answered;
        // The first status line; a 5xx here is as wrong as anywhere.
        const int status = received.size() >= 12 && received.rfind("HTTP/1.", 0) == 0
                               ? std::atoi(received.substr(9, 3).c_str())
                               : -1;
        ++report.hostile_status[status];
        if (status >= 500 || status < 0)
          fail(round, "answered " + detail::describe(received.substr(0, 200)), hostile.bytes);
      }
    }

    // The follow-up: a fresh client address each time (a trusted proxy forwards it).
    const std::string follow_up = "GET /limited HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 10." +
                                  std::to_string((round >> 16) & 255) + "." +
                                  std::to_string((round >> 8) & 255) + "." +
                                  std::to_string(round & 255) + "\r\n\r\n";
    std::optional<RawClient> fresh;
    RawClient* target = &client;
    if (reuse) {
      ++report.same_connection_follow_ups;
    } else {
      client.abort();
      target = &fresh.emplace(options.port, options.receive_timeout);
      if (!target->connected()) {
        fail(round, "cannot connect for the follow-up", hostile.bytes);
        continue;
      }
    }
    ReadError error = ReadError::kNone;
    const auto response = target->request(follow_up, false, &error);
    if (!response) {
      fail(round,
           std::string("follow-up not answered (") +
               (error == ReadError::kTimeout ? "timed out" : "connection closed") +
               (reuse ? ", same connection" : ", new connection") + ")",
           hostile.bytes);
    } else {
      ++report.follow_up_status[response->status];
      if (response->status != 200 && response->status != 429)
        fail(round, "follow-up answered " + std::to_string(response->status) + " " + response->body,
             hostile.bytes);
    }
    target->abort();
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

// A seed from the environment (PACER_HOSTILE_SEED) to replay a run, else from the clock.
inline std::uint32_t seed_from_environment() {
  if (const char* text = std::getenv("PACER_HOSTILE_SEED"))
    return static_cast<std::uint32_t>(std::strtoul(text, nullptr, 10));
  return static_cast<std::uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count() &
                                    0xffffffffu);
}

}  // namespace pacer::testing::hostile
