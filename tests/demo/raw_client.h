// A raw HTTP/1.1 client on a POSIX socket for tests that send bytes no HTTP library would:
// receive and send timeouts on every call, so a broken server fails a test instead of hanging it.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pacer::testing {

struct RawResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;

  std::optional<std::string> header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (key.size() != name.size()) continue;
      bool same = true;
      for (std::size_t i = 0; i < key.size() && same; ++i)
        same = key[i] == static_cast<char>(std::tolower(static_cast<unsigned char>(name[i])));
      if (same) return value;
    }
    return std::nullopt;
  }
  bool says_close() const {
    const auto value = header("connection");
    if (!value) return false;
    std::string lowered;
    for (char c : *value) lowered += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return lowered.find("close") != std::string::npos;
  }
};

enum class ReadError { kNone, kClosed, kTimeout, kMalformed };

class RawClient {
 public:
  // Connects (blocking, bounded by `timeout` through the send timeout). Check connected().
  explicit RawClient(std::uint16_t port,
                     std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    set_timeout(timeout);
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~RawClient() { close(); }
  RawClient(RawClient&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)),
        connected_(other.connected_),
        buffer_(std::move(other.buffer_)) {}
  RawClient& operator=(RawClient&& other) noexcept {
    if (this != &other) {
      close();
      fd_ = std::exchange(other.fd_, -1);
      connected_ = other.connected_;
      buffer_ = std::move(other.buffer_);
    }
    return *this;
  }

  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  void set_timeout(std::chrono::milliseconds timeout) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }

  // Closes with a reset rather than a FIN: thousands of short test connections then leave no
  // TIME_WAIT entries behind to exhaust the loopback's ephemeral ports.
  void abort() {
    if (fd_ < 0) return;
    linger hard{.l_onoff = 1, .l_linger = 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    close();
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool send_all(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  // The next final response (1xx interim responses are skipped). `head`: the request was HEAD.
  std::optional<RawResponse> read_response(bool head = false, ReadError* error = nullptr) {
    ReadError ignored;
    ReadError& err = error != nullptr ? *error : ignored;
    err = ReadError::kNone;
    for (;;) {
      std::size_t end;
      while ((end = buffer_.find("\r\n\r\n")) == std::string::npos)
        if (!fill(err)) return std::nullopt;
      RawResponse response;
      const std::string head_text = buffer_.substr(0, end);
      buffer_.erase(0, end + 4);
      std::size_t line_end = head_text.find("\r\n");
      const std::string status_line = head_text.substr(0, line_end);
      if (status_line.size() < 12 || status_line.rfind("HTTP/1.", 0) != 0) {
        err = ReadError::kMalformed;
        return std::nullopt;
      }
      response.status = std::atoi(status_line.substr(9, 3).c_str());
      while (line_end != std::string::npos) {
        const std::size_t start = line_end + 2;
        line_end = head_text.find("\r\n", start);
        const std::string line = head_text.substr(start, line_end - start);
        const std::size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        response.headers.emplace_back(std::move(name), std::move(value));
      }
      if (response.status >= 100 && response.status < 200) continue;
      if (head || response.status == 204 || response.status == 304) return response;
      std::size_t length = 0;
      if (auto content_length = response.header("content-length"))
        length = std::stoul(*content_length);
      while (buffer_.size() < length)
        if (!fill(err)) return std::nullopt;
      response.body = buffer_.substr(0, length);
      buffer_.erase(0, length);
      return response;
    }
  }

  // Reads until the server closes; false on timeout. Whatever arrived is in `received`.
  bool read_until_closed(std::string* received = nullptr) {
    ReadError err;
    while (fill(err)) {
    }
    if (received != nullptr) *received = buffer_;
    buffer_.clear();
    return err == ReadError::kClosed;
  }

  std::optional<RawResponse> request(std::string_view raw, bool head = false,
                                     ReadError* error = nullptr) {
    if (!send_all(raw)) {
      if (error != nullptr) *error = ReadError::kClosed;
      return std::nullopt;
    }
    return read_response(head, error);
  }

 private:
  bool fill(ReadError& err) {
    char chunk[16 * 1024];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n > 0) {
      buffer_.append(chunk, static_cast<std::size_t>(n));
      return true;
    }
    if (n == 0 || errno == ECONNRESET || errno == EPIPE) {
      err = ReadError::kClosed;
    } else {
      err = ReadError::kTimeout;  // EAGAIN after SO_RCVTIMEO
    }
    return false;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

}  // namespace pacer::testing
