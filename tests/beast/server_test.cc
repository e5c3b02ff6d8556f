// Tests of pacer::beast::Server over real sockets on 127.0.0.1, with a tiny blocking client on
// POSIX sockets (SO_RCVTIMEO/SO_SNDTIMEO, so a broken server fails a test instead of hanging it).
#include "pacer/beast/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace http = boost::beast::http;
using pacer::beast::BeastRequestView;
using pacer::beast::ClientEndpoint;
using pacer::beast::Handler;
using pacer::beast::Request;
using pacer::beast::Response;
using pacer::beast::Send;
using pacer::beast::Server;
using pacer::beast::ServerOptions;
using pacer::beast::ServerStats;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct RawResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;

  std::optional<std::string> header(const std::string& name) const {
    for (const auto& [key, value] : headers)
      if (key == lower(name)) return value;
    return std::nullopt;
  }
};

class Client {
 public:
  explicit Client(std::uint16_t port, std::chrono::milliseconds timeout = 5s) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }

  bool send_all(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // The next response, or nullopt on EOF, error or timeout. `head`: the request was HEAD.
  std::optional<RawResponse> read_response(bool head = false) {
    std::size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos)
      if (!fill()) return std::nullopt;
    RawResponse response;
    const std::string head_text = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    std::size_t line_end = head_text.find("\r\n");
    const std::string status_line = head_text.substr(0, line_end);
    if (status_line.size() < 12 || status_line.rfind("HTTP/1.", 0) != 0) return std::nullopt;
    response.status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos) {
      const std::size_t start = line_end + 2;
      line_end = head_text.find("\r\n", start);
      const std::string line = head_text.substr(start, line_end - start);
      const std::size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      response.headers.emplace_back(lower(line.substr(0, colon)), value);
    }
    if (head) return response;
    std::size_t length = 0;
    if (auto content_length = response.header("content-length"))
      length = std::stoul(*content_length);
    while (buffer_.size() < length)
      if (!fill()) return std::nullopt;
    response.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return response;
  }

  std::optional<RawResponse> request(std::string_view raw, bool head = false) {
    if (!send_all(raw)) return std::nullopt;
    return read_response(head);
  }

  // True when the server closed the connection (EOF or reset) before the timeout, with no
  // unread bytes in between.
  bool closed_by_server() {
    if (!buffer_.empty()) return false;
    char byte;
    const ssize_t n = ::recv(fd_, &byte, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

 private:
  bool fill() {
    char chunk[16 * 1024];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

std::string get(std::string_view target, std::string_view extra_headers = "") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra_headers) +
         "\r\n";
}

std::string post(std::string_view target, std::string_view body,
                 std::string_view extra_headers = "") {
  return "POST " + std::string(target) +
         " HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         std::string(extra_headers) + "\r\n" + std::string(body);
}

Response text(const Request& request, std::string body, http::status status = http::status::ok) {
  Response response{status, request.version()};
  response.set(http::field::content_type, "text/plain");
  response.body() = std::move(body);
  return response;
}

// Answers "<METHOD> <target>|<body>" and tells which connection and worker served it.
void echo(Request&& request, const ClientEndpoint& connection, Send send) {
  Response response = text(request, std::string(request.method_string()) + " " +
                                        std::string(request.target()) + "|" + request.body());
  response.set("X-Peer-Port", std::to_string(connection.peer_port));
  response.set("X-Worker", std::to_string(connection.worker));
  send(std::move(response));
}

ServerOptions test_options() {
  ServerOptions options;
  options.port = 0;
  options.threads = 1;
  return options;
}

std::unique_ptr<Server> start_server(Handler handler, ServerOptions options = test_options()) {
  auto server = std::make_unique<Server>(std::move(options), std::move(handler));
  server->start();
  return server;
}

// Threads that answer later; joined before the server goes away (Send must not outlive it).
class Later {
 public:
  ~Later() { join(); }
  template <class F>
  void run(F&& fn) {
    std::lock_guard lock(mutex_);
    threads_.emplace_back(std::forward<F>(fn));
  }
  void join() {
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mutex_);
      threads.swap(threads_);
    }
    for (auto& thread : threads) thread.join();
  }

 private:
  std::mutex mutex_;
  std::vector<std::thread> threads_;
};

TEST(BeastServer, EchoesRequests) {
  auto options = test_options();
  options.server_header = "test-server";
  auto server = start_server(echo, options);
  ASSERT_NE(server->port(), 0);
  Client client(server->port());
  ASSERT_TRUE(client.connected());

  auto response = client.request(get("/hello?x=1"));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "GET /hello?x=1|");
  EXPECT_EQ(response->header("Server"), "test-server");
  EXPECT_EQ(response->header("Content-Length"), "15");
  EXPECT_EQ(response->header("Connection"), std::nullopt);  // HTTP/1.1 default keep-alive

  response = client.request(post("/submit", "some body"));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "POST /submit|some body");
}

TEST(BeastServer, KeepsConnectionsAlive) {
  auto server = start_server(echo);
  Client client(server->port());
  std::set<std::string> peer_ports;
  for (int i = 0; i < 5; ++i) {
    auto response = client.request(get("/n/" + std::to_string(i)));
    ASSERT_TRUE(response) << i;
    EXPECT_EQ(response->body, "GET /n/" + std::to_string(i) + "|");
    peer_ports.insert(response->header("X-Peer-Port").value_or(""));
  }
  EXPECT_EQ(peer_ports.size(), 1U);  // one connection served them all
}

TEST(BeastServer, HonoursConnectionClose) {
  auto server = start_server(echo);
  {
    Client client(server->port());
    auto response = client.request(get("/", "Connection: close\r\n"));
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(lower(response->header("Connection").value_or("")), "close");
    EXPECT_TRUE(client.closed_by_server());
  }
  {
    Client client(server->port());  // HTTP/1.0 closes by default...
    auto response = client.request("GET /old HTTP/1.0\r\n\r\n");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->body, "GET /old|");
    EXPECT_TRUE(client.closed_by_server());
  }
  {
    Client client(server->port());  // ...unless it asks for keep-alive
    auto response = client.request("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    ASSERT_TRUE(response);
    EXPECT_EQ(lower(response->header("Connection").value_or("")), "keep-alive");
    response = client.request("GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->body, "GET /b|");
  }
}

TEST(BeastServer, AnswersTooLargeHeadersWith431) {
  auto server = start_server(echo);
  Client client(server->port());
  auto response = client.request(get("/", "X-Big: " + std::string(16 * 1024, 'a') + "\r\n"));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 431);
  EXPECT_EQ(response->body, R"({"detail":"Request header fields too large"})");
  EXPECT_EQ(response->header("Content-Type"), "application/json");
  EXPECT_EQ(lower(response->header("Connection").value_or("")), "close");
  EXPECT_TRUE(client.closed_by_server());
}

TEST(BeastServer, AnswersTooLargeBodiesWith413) {
  auto server = start_server(echo);
  Client client(server->port());
  // The whole body goes out before we read: the server must drain it rather than reset.
  auto response = client.request(post("/upload", std::string(2 * 1024 * 1024, 'x')));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 413);
  EXPECT_EQ(response->body, R"({"detail":"Request body too large"})");
  EXPECT_TRUE(client.closed_by_server());

  Client next(server->port());
  response = next.request(post("/upload", std::string(1000, 'x')));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

TEST(BeastServer, AnswersGarbageWith400) {
  auto server = start_server(echo);
  Client client(server->port());
  auto response = client.request("\x01\x02 this is not http\r\n\r\n");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 400);
  EXPECT_EQ(response->body, R"({"detail":"Bad request"})");
  EXPECT_TRUE(client.closed_by_server());
}

TEST(BeastServer, ThrowingHandlerGets500AndServerKeepsServing) {
  auto server = start_server([](Request&& request, const ClientEndpoint& connection, Send send) {
    if (request.target() == "/throw") throw std::runtime_error("boom");
    echo(std::move(request), connection, std::move(send));
  });
  Client client(server->port());
  auto response = client.request(get("/throw"));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 500);
  EXPECT_EQ(response->body, R"({"detail":"Internal Server Error"})");
  response = client.request(get("/fine"));  // same connection
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  Client other(server->port());
  response = other.request(get("/fine"));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

TEST(BeastServer, DroppedSendGets500) {
  Later later;
  auto server = start_server([&](Request&& request, const ClientEndpoint& connection, Send send) {
    if (request.target() == "/drop") return;
    if (request.target() == "/drop-elsewhere") {
      later.run([send = std::move(send)]() mutable { Send gone = std::move(send); });
      return;
    }
    echo(std::move(request), connection, std::move(send));
  });
  Client client(server->port());
  auto response = client.request(get("/drop"));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 500);
  response = client.request(get("/drop-elsewhere"));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 500);
  response = client.request(get("/fine"));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

TEST(BeastServer, SendCanBeCalledLaterFromAnotherThread) {
  Later later;
  std::atomic<std::thread::id> handler_thread, sender_thread;
  auto server = start_server([&](Request&& request, const ClientEndpoint&, Send send) {
    handler_thread = std::this_thread::get_id();
    later.run([&, request = std::move(request), send = std::move(send)]() mutable {
      std::this_thread::sleep_for(50ms);
      sender_thread = std::this_thread::get_id();
      send(text(request, "later " + std::string(request.target())));
    });
  });
  Client client(server->port());
  for (int i = 0; i < 3; ++i) {
    auto response = client.request(get("/" + std::to_string(i)));
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->body, "later /" + std::to_string(i));
  }
  EXPECT_NE(handler_thread.load(), sender_thread.load());
}

TEST(BeastServer, FixesUpHeadAndNoContentResponses) {
  auto server = start_server([](Request&& request, const ClientEndpoint&, Send send) {
    if (request.target() == "/empty") {
      send(text(request, "ignored", http::status::no_content));
      return;
    }
    send(text(request, "hello"));
  });
  Client client(server->port());
  auto response = client.request("HEAD / HTTP/1.1\r\nHost: test\r\n\r\n", /*head=*/true);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->header("Content-Length"), "5");
  response = client.request(get("/empty"), /*head=*/true);  // 204: no body follows
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 204);
  EXPECT_EQ(response->header("Content-Length"), std::nullopt);
  response = client.request(get("/"));  // nothing stray left on the connection
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "hello");
}

TEST(BeastServer, AnswersExpectContinue) {
  auto server = start_server(echo);
  Client client(server->port());
  ASSERT_TRUE(client.send_all(
      "PUT /up HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  auto interim = client.read_response(/*head=*/true);
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  auto response = client.request("hello");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "PUT /up|hello");
}

TEST(BeastServer, ClosesIdleConnectionsAfterTimeout) {
  auto options = test_options();
  options.idle_timeout = 1s;
  auto server = start_server(echo, options);
  Client client(server->port());
  ASSERT_TRUE(client.request(get("/")));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(client.closed_by_server());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST(BeastRequestView, SplitsTargetAndLooksUpHeaders) {
  Request request{http::verb::get, "/items/42?x=1&y=2", 11};
  request.set(http::field::content_type, "text/plain");
  request.insert("X-Forwarded-For", "1.1.1.1");
  request.insert("x-forwarded-for", "2.2.2.2, 3.3.3.3");
  const ClientEndpoint connection{"10.0.0.1", 4242, 0};
  BeastRequestView view(request, connection);

  EXPECT_EQ(view.method(), "GET");
  EXPECT_EQ(view.path(), "/items/42");
  EXPECT_EQ(view.query(), "x=1&y=2");
  EXPECT_EQ(view.route(), "/items/42");
  EXPECT_EQ(view.peer_address(), "10.0.0.1");
  EXPECT_EQ(view.peer_ip(), nullptr);  // not given: the HTTP layer parses peer_address()
  EXPECT_EQ(view.header("content-type"), "text/plain");
  EXPECT_EQ(view.header("CONTENT-TYPE"), "text/plain");
  EXPECT_EQ(view.header("X-FORWARDED-FOR"), "1.1.1.1");
  EXPECT_EQ(view.header("X-Missing"), std::nullopt);
  EXPECT_EQ(view.header_list("X-Forwarded-For"), "1.1.1.1, 2.2.2.2, 3.3.3.3");
  EXPECT_EQ(view.header_list("Forwarded"), "");
  EXPECT_EQ(view.header_count("X-FORWARDED-FOR"), 2U);
  EXPECT_EQ(view.header_count("Content-Type"), 1U);
  EXPECT_EQ(view.header_count("Forwarded"), 0U);

  EXPECT_EQ(view.attribute("user"), std::nullopt);
  view.set_attribute("user", "alice");
  view.set_attribute("org", "acme");
  view.set_attribute("user", "bob");
  EXPECT_EQ(view.attribute("user"), "bob");
  EXPECT_EQ(view.attribute("org"), "acme");

  Request plain{http::verb::post, "/no-query", 11};
  BeastRequestView plain_view(plain, connection);
  EXPECT_EQ(plain_view.method(), "POST");
  EXPECT_EQ(plain_view.path(), "/no-query");
  EXPECT_EQ(plain_view.query(), "");

  Request trailing{http::verb::get, "/p?", 11};
  EXPECT_EQ(BeastRequestView(trailing, connection).path(), "/p");
  EXPECT_EQ(BeastRequestView(trailing, connection).query(), "");

  Request absolute{http::verb::get, "http://example.com/a/b?q=1", 11};
  EXPECT_EQ(BeastRequestView(absolute, connection).path(), "/a/b");
  EXPECT_EQ(BeastRequestView(absolute, connection).query(), "q=1");
}

TEST(BeastRequestView, WorksOverARealConnection) {
  auto server = start_server([](Request&& request, const ClientEndpoint& connection, Send send) {
    BeastRequestView view(request, connection);
    // The server parses the peer once per connection and the view hands it over.
    const bool parsed = view.peer_ip() != nullptr &&
                        *view.peer_ip() == *pacer::http::IpAddress::parse(connection.peer_address);
    send(text(request, std::string(view.path()) + "|" + std::string(view.query()) + "|" +
                           std::string(view.peer_address()) + (parsed ? "" : " (not parsed)") +
                           "|" + view.header_list("x-forwarded-for") + "|" +
                           std::string(view.header("x-api-key").value_or("-"))));
  });
  Client client(server->port());
  auto response = client.request(
      get("/v1/things?limit=5",
          "X-Forwarded-For: 203.0.113.7\r\nX-API-KEY: k1\r\nX-Forwarded-For: 10.1.1.1\r\n"));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "/v1/things|limit=5|127.0.0.1|203.0.113.7, 10.1.1.1|k1");
}

TEST(BeastServer, StopLetsInFlightRequestsFinish) {
  Later later;
  std::promise<void> entered;
  auto server = start_server([&](Request&& request, const ClientEndpoint&, Send send) {
    entered.set_value();
    later.run([request = std::move(request), send = std::move(send)]() mutable {
      std::this_thread::sleep_for(300ms);
      send(text(request, "slow"));
    });
  });
  Client client(server->port());
  ASSERT_TRUE(client.send_all(get("/slow")));
  ASSERT_EQ(entered.get_future().wait_for(5s), std::future_status::ready);

  const auto start = std::chrono::steady_clock::now();
  server->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 100ms);  // stop() does not block

  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "slow");
  EXPECT_EQ(lower(response->header("Connection").value_or("")), "close");
  EXPECT_TRUE(client.closed_by_server());
  server->wait();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);

  Client refused(server->port());
  EXPECT_FALSE(refused.connected());
}

TEST(BeastServer, StopClosesIdleKeepAliveConnectionsPromptly) {
  auto options = test_options();
  options.threads = 2;
  auto server = start_server(echo, options);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(std::make_unique<Client>(server->port()));
    ASSERT_TRUE(clients.back()->request(get("/")));
  }
  const auto start = std::chrono::steady_clock::now();
  server->stop();
  server->wait();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);  // far below shutdown_grace (5 s)
  for (auto& client : clients) EXPECT_TRUE(client->closed_by_server());
}

TEST(BeastServer, StopForceClosesAfterGrace) {
  std::mutex mutex;
  std::vector<Send> parked;
  std::promise<void> entered;
  auto options = test_options();
  options.shutdown_grace = 1s;
  auto server = start_server(
      [&](Request&&, const ClientEndpoint&, Send send) {
        std::lock_guard lock(mutex);
        parked.push_back(std::move(send));
        entered.set_value();
      },
      options);
  Client client(server->port());
  ASSERT_TRUE(client.send_all(get("/never")));
  ASSERT_EQ(entered.get_future().wait_for(5s), std::future_status::ready);
  const auto start = std::chrono::steady_clock::now();
  server->stop();
  server->wait();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, 900ms);
  EXPECT_LT(elapsed, 3s);
  EXPECT_TRUE(client.closed_by_server());
  std::lock_guard lock(mutex);
  parked.clear();  // before the server goes away
}

TEST(BeastServer, StopFromHandler) {
  Server* self = nullptr;
  auto server = start_server([&](Request&& request, const ClientEndpoint&, Send send) {
    self->stop();
    send(text(request, "bye"));
  });
  self = server.get();
  Client client(server->port());
  auto response = client.request(get("/stop"));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "bye");
  EXPECT_EQ(lower(response->header("Connection").value_or("")), "close");
  server->wait();
  server->stop();  // idempotent
  server->wait();
}

TEST(BeastServer, StopsOnSignal) {
  auto options = test_options();
  options.handle_signals = true;
  auto server = start_server(echo, options);
  Client client(server->port());
  ASSERT_TRUE(client.request(get("/")));
  std::raise(SIGTERM);
  auto done = std::async(std::launch::async, [&] { server->wait(); });
  EXPECT_EQ(done.wait_for(5s), std::future_status::ready);
}

TEST(BeastServer, TwoThreadsServeConcurrentClients) {
  auto options = test_options();
  options.threads = 2;
  std::mutex mutex;
  std::condition_variable cv;
  int inside = 0;
  auto server = start_server(
      [&](Request&& request, const ClientEndpoint& connection, Send send) {
        if (request.target() == "/together") {
          // Returns only once the other worker is inside its handler too.
          std::unique_lock lock(mutex);
          ++inside;
          cv.notify_all();
          const bool met = cv.wait_for(lock, 5s, [&] { return inside >= 2; });
          send(text(request, met ? "met" : "alone"));
          return;
        }
        echo(std::move(request), connection, std::move(send));
      },
      options);
  ASSERT_EQ(server->threads(), 2U);

  // The kernel spreads connections over the two listening sockets; find one on each worker.
  std::unique_ptr<Client> on_worker[2];
  for (int attempt = 0; attempt < 64 && !(on_worker[0] && on_worker[1]); ++attempt) {
    auto client = std::make_unique<Client>(server->port());
    auto response = client->request(get("/which"));
    ASSERT_TRUE(response);
    const int worker = std::stoi(response->header("X-Worker").value_or("-1"));
    ASSERT_TRUE(worker == 0 || worker == 1);
    if (!on_worker[worker]) on_worker[worker] = std::move(client);
  }
  ASSERT_TRUE(on_worker[0] && on_worker[1]);

  ASSERT_TRUE(on_worker[0]->send_all(get("/together")));
  ASSERT_TRUE(on_worker[1]->send_all(get("/together")));
  for (auto& client : on_worker) {
    auto response = client->read_response();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->body, "met");
  }

  // And a burst of keep-alive clients in parallel.
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      Client client(server->port());
      for (int i = 0; i < 50; ++i) {
        auto response = client.request(get("/burst"));
        if (response && response->status == 200) ++ok;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), 200);
}

TEST(BeastServer, RefusesAPortInUse) {
  for (unsigned threads : {1U, 2U}) {
    auto options = test_options();
    options.threads = 2;
    auto first = start_server(echo, options);
    auto second_options = test_options();
    second_options.threads = threads;
    second_options.port = first->port();
    try {
      Server second(second_options, echo);
      ADD_FAILURE() << "bound a port that is in use, threads=" << threads;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(first->port())),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(BeastServer, StopBeforeStartAndDestroyWithoutStart) {
  {
    Server server(test_options(), echo);
    server.stop();
    server.start();  // no-op once stopped
    server.wait();   // returns at once
  }
  { Server server(test_options(), echo); }  // destructor alone is fine
}

// --- Request smuggling (RFC 9112 §6.1) ------------------------------------------------------

// Records every target the handler sees, to prove a smuggled request never reached it.
struct Recorder {
  std::mutex mutex;
  std::vector<std::string> targets;

  Handler handler() {
    return [this](Request&& request, const ClientEndpoint& connection, Send send) {
      {
        std::lock_guard lock(mutex);
        targets.emplace_back(request.target());
      }
      echo(std::move(request), connection, std::move(send));
    };
  }
  bool saw(const std::string& target) {
    std::lock_guard lock(mutex);
    return std::find(targets.begin(), targets.end(), target) != targets.end();
  }
};

TEST(BeastServer, RejectsTransferCodingsThatAreNotChunkedLastWith400AndClose) {
  Recorder recorder;
  auto server = start_server(recorder.handler());
  // Each would otherwise frame the body differently than a proxy in front of us might.
  const std::vector<std::string> cases{
      "Transfer-Encoding: identity\r\n",
      "Transfer-Encoding: gzip\r\n",
      "Transfer-Encoding: deflate\r\n",
      "Transfer-Encoding: compress\r\n",
      "Transfer-Encoding: x-custom\r\n",
      "Transfer-Encoding: chunked, identity\r\n",
      "Transfer-Encoding: identity, chunked, identity\r\n",
      "Transfer-Encoding: chunked, chunked\r\n",
      "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",   // two lines, one list
      "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",  // last line wins
      "Transfer-Encoding: \r\n",
      "Transfer-Encoding: ,\r\n",
      "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
      "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
      "Transfer-Encoding: identity\r\nContent-Length: 5\r\n",
  };
  int n = 0;
  for (const auto& framing : cases) {
    SCOPED_TRACE(framing);
    const std::string smuggled = "/smuggled-" + std::to_string(n++);
    Client client(server->port());
    ASSERT_TRUE(client.connected());
    // A body that is itself a request: read as "no body" it would run as a second request.
    const std::string body = "GET " + smuggled + " HTTP/1.1\r\nHost: test\r\n\r\n";
    ASSERT_TRUE(
        client.send_all("POST /front HTTP/1.1\r\nHost: test\r\n" + framing + "\r\n" + body));
    auto response = client.read_response();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 400);
    EXPECT_EQ(response->body, R"({"detail":"Bad request"})");
    EXPECT_EQ(lower(response->header("Connection").value_or("")), "close");
    EXPECT_TRUE(client.closed_by_server());  // nothing more: the smuggled request is unanswered
    EXPECT_FALSE(recorder.saw(smuggled));
    EXPECT_FALSE(recorder.saw("/front"));
  }
}

TEST(BeastServer, RejectsTransferEncodingOnHttp10) {
  Recorder recorder;
  auto server = start_server(recorder.handler());
  Client client(server->port());
  ASSERT_TRUE(client.send_all(
      "POST /old HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 400);
  EXPECT_TRUE(client.closed_by_server());
  EXPECT_FALSE(recorder.saw("/old"));
}

TEST(BeastServer, UnsupportedCodingBeforeChunkedIs501AndClose) {
  Recorder recorder;
  auto server = start_server(recorder.handler());
  Client client(server->port());
  ASSERT_TRUE(
      client.send_all("POST /zip HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                      "5\r\nhello\r\n0\r\n\r\n"));
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 501);
  EXPECT_TRUE(client.closed_by_server());
  EXPECT_FALSE(recorder.saw("/zip"));
}

TEST(BeastServer, ChunkedRequestsStillWork) {
  auto server = start_server(echo);
  Client client(server->port());
  for (const char* coding : {"chunked", "Chunked", "chunked ", ", chunked"}) {
    SCOPED_TRACE(coding);
    auto response = client.request(std::string("POST /c HTTP/1.1\r\nHost: test\r\n") +
                                   "Transfer-Encoding: " + coding +
                                   "\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->body, "POST /c|hello world");
  }
  // The connection stays usable after chunked bodies.
  auto response = client.request(get("/after"));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "GET /after|");
}

// --- Connection cap, shedding, descriptor limit -----------------------------------------------

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// Captures the log lines of the server (spdlog's default logger) for the test's lifetime.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000)) {
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  std::vector<std::string> lines_with(const std::string& text) {
    std::vector<std::string> found;
    for (const auto& line : sink_->last_formatted())
      if (line.find(text) != std::string::npos) found.push_back(line);
    return found;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
};

TEST(BeastServer, AtTheCapShedsIdleThenSlowestHeadersThenRefuses) {
  LogCapture log;
  std::mutex mutex;
  std::vector<Send> parked;
  auto options = test_options();
  options.max_connections = 3;
  auto server = start_server(
      [&](Request&& request, const ClientEndpoint& connection, Send send) {
        if (request.target() == "/park") {
          std::lock_guard lock(mutex);
          parked.push_back(std::move(send));
          return;
        }
        echo(std::move(request), connection, std::move(send));
      },
      options);
  EXPECT_EQ(server->max_connections(), 3U);
  auto open = [&] { return server->stats().open_connections; };

  Client idle(server->port());  // served once, now an idle keep-alive connection
  ASSERT_TRUE(idle.request(get("/")));
  Client slow_old(server->port());  // reading its header since long ago
  ASSERT_TRUE(slow_old.send_all("GET / HTTP/1.1\r\nHost: te"));
  ASSERT_TRUE(wait_until([&] { return open() == 2; }));
  std::this_thread::sleep_for(20ms);
  Client slow_new(server->port());
  ASSERT_TRUE(slow_new.send_all("GET / HTTP/1.1\r\n"));
  ASSERT_TRUE(wait_until([&] { return open() == 3; }));

  // Full: the idle connection goes first, although the slow ones are older.
  Client busy1(server->port());
  ASSERT_TRUE(busy1.send_all(get("/park")));
  EXPECT_TRUE(idle.closed_by_server());
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lock(mutex);
    return parked.size() == 1;
  }));
  // Then the connection that has been reading its header the longest.
  Client busy2(server->port());
  ASSERT_TRUE(busy2.send_all(get("/park")));
  EXPECT_TRUE(slow_old.closed_by_server());
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lock(mutex);
    return parked.size() == 2;
  }));
  Client busy3(server->port());
  ASSERT_TRUE(busy3.send_all(get("/park")));
  EXPECT_TRUE(slow_new.closed_by_server());
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lock(mutex);
    return parked.size() == 3;
  }));

  // Every connection is busy: the new one is refused (closed without an answer).
  Client refused(server->port());
  ASSERT_TRUE(refused.connected());
  refused.send_all(get("/never"));
  EXPECT_TRUE(refused.closed_by_server());

  ServerStats stats = server->stats();
  EXPECT_EQ(stats.open_connections, 3U);
  EXPECT_EQ(stats.shed, 3U);
  EXPECT_EQ(stats.refused, 1U);
  EXPECT_FALSE(log.lines_with("connection cap").empty());

  // The busy ones are answered as usual.
  {
    std::lock_guard lock(mutex);
    for (auto& send : parked) {
      Response response{http::status::ok, 11};
      response.body() = "done";
      send(std::move(response));
    }
    parked.clear();
  }
  for (Client* client : {&busy1, &busy2, &busy3}) {
    auto response = client->read_response();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->body, "done");
  }
}

TEST(BeastServer, RefusalsAreLoggedAtABoundedRate) {
  LogCapture log;
  std::mutex mutex;
  std::vector<Send> parked;
  auto options = test_options();
  options.max_connections = 1;
  auto server = start_server(
      [&](Request&&, const ClientEndpoint&, Send send) {
        std::lock_guard lock(mutex);
        parked.push_back(std::move(send));
      },
      options);
  Client busy(server->port());
  ASSERT_TRUE(busy.send_all(get("/park")));
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lock(mutex);
    return parked.size() == 1;
  }));
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i) {
    Client refused(server->port());
    EXPECT_TRUE(refused.closed_by_server()) << i;
  }
  const bool within_a_second = std::chrono::steady_clock::now() - start < 900ms;
  EXPECT_EQ(server->stats().refused, 50U);
  if (within_a_second) {
    EXPECT_EQ(log.lines_with("connection cap").size(), 1U);
  }
  std::this_thread::sleep_for(1100ms);
  Client one_more(server->port());
  EXPECT_TRUE(one_more.closed_by_server());
  ASSERT_TRUE(wait_until([&] { return log.lines_with("connection cap").size() >= 2; }));
  const auto lines = log.lines_with("connection cap");
  // The next line tells how many were not logged.
  if (within_a_second) {
    EXPECT_NE(lines.back().find("49 more"), std::string::npos) << lines.back();
  }
  EXPECT_LE(lines.size(), 3U);
  std::lock_guard lock(mutex);
  parked.clear();
}

TEST(BeastServer, RaisesTheDescriptorSoftLimitAndDerivesTheCapFromIt) {
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  if (saved.rlim_max < 1024) GTEST_SKIP() << "hard descriptor limit below 1024";
  rlimit lowered = saved;
  lowered.rlim_cur = 512;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  {
    auto options = test_options();
    options.threads = 2;
    Server server(options, echo);
    rlimit now{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &now), 0);
    EXPECT_EQ(now.rlim_cur, std::min<rlim_t>(saved.rlim_max, rlim_t{1} << 20));
    // Derived: the new soft limit less a reserve, split evenly over the two workers.
    EXPECT_GT(server.max_connections(), 512U);
    EXPECT_LT(server.max_connections(), now.rlim_cur);
    EXPECT_EQ(server.max_connections() % 2, 0U);
  }
  {
    ::setrlimit(RLIMIT_NOFILE, &lowered);
    auto options = test_options();
    options.raise_fd_limit = false;
    Server server(options, echo);
    rlimit now{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &now), 0);
    EXPECT_EQ(now.rlim_cur, 512U);
    EXPECT_GT(server.max_connections(), 256U);
    EXPECT_LT(server.max_connections(), 512U);
  }
  ::setrlimit(RLIMIT_NOFILE, &saved);
}

}  // namespace
