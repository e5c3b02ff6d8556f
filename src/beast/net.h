// Asio and Beast types shared by the server's parts (session.cc, worker.cc, server.cc).
#pragma once

#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/handler_guard.h"
#include "pacer/beast/message.h"

namespace pacer::beast::internal {

namespace asio = boost::asio;
namespace bb = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// The concrete executor instead of any_io_executor: no type erasure on every completion.
using Executor = asio::io_context::executor_type;
using Socket = asio::basic_stream_socket<tcp, Executor>;
using Acceptor = asio::basic_socket_acceptor<tcp, Executor>;
using Stream = bb::basic_stream<tcp, Executor, bb::unlimited_rate_policy>;
using Parser = bhttp::request_parser<bhttp::string_body>;

inline std::string_view to_std(bb::string_view s) { return {s.data(), s.size()}; }

// At most one line a second for a kind of event; the next line says how many were left out.
using pacer::internal::LogThrottle;

inline std::string skipped_note(std::uint64_t skipped) {
  return skipped == 0 ? std::string()
                      : " (" + std::to_string(skipped) + " more since the last such line)";
}

// "host:port", "[v6]:port".
std::string describe(const std::string& host, std::uint16_t port);

// Throws std::runtime_error: "pacer::beast: cannot <what> <host:port>: <error>".
[[noreturn]] void fail(const char* what, const tcp::endpoint& endpoint, const std::string& host,
                       const error_code& ec);

}  // namespace pacer::beast::internal
