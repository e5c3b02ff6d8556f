#include "pacer/beast/limit.h"

#include <algorithm>
#include <exception>
#include <memory>

#include "core/logging.h"
#include "pacer/beast/request_view.h"
#include "session.h"

namespace pacer::beast {
namespace {

namespace bhttp = boost::beast::http;

// "Name: value\r\n" for each header: sized once and copied into place (an append per piece
// costs several times more for these short pieces).
void append_lines(std::string& out, const http::HeaderList& headers) {
  std::size_t size = 0;
  for (const auto& [name, value] : headers) size += name.size() + value.size() + 4;
  std::size_t at = out.size();
  out.resize(at + size);
  for (const auto& [name, value] : headers) {
    char* p = out.data() + at;
    p = std::copy_n(name.data(), name.size(), p);
    p = std::copy_n(": ", 2, p);
    p = std::copy_n(value.data(), value.size(), p);
    std::copy_n("\r\n", 2, p);
    at += name.size() + value.size() + 4;
  }
}

// RateLimit-* are not among Beast's known fields: say so and skip the name lookup.
void insert(Response& response, std::string_view name, std::string_view value) {
  response.insert(bhttp::field::unknown, boost::beast::string_view(name.data(), name.size()),
                  boost::beast::string_view(value.data(), value.size()));
}

// One allocation holds what the (possibly asynchronous) verdict and the response need; the view
// refers to the request inside it, so neither moves until the request goes to the handler.
class Exchange {
 public:
  Exchange(Request&& request, const ClientEndpoint& client, Send send)
      : request_(std::move(request)),
        client_(client),
        view_(request_, client_),
        send_(std::move(send)) {}

  const BeastRequestView& view() const { return view_; }

  // Sends the answer for a stopped request.
  void refuse(const http::Verdict& verdict) {
    send_(verdict_response(verdict, request_.version()));
  }

  // Hands the request to `next`, with a Send that adds the verdict's headers to its response.
  static void pass(std::unique_ptr<Exchange> self, http::Verdict& verdict, const Handler& next) {
    self->headers_ = std::move(verdict.headers);
    Request request = std::move(self->request_);
    const ClientEndpoint& client = self->client_;
    next(std::move(request), client, Send(AddHeaders{std::move(self)}));
  }

 private:
  // The Send given to the application's handler.
  struct AddHeaders {
    std::unique_ptr<Exchange> exchange;
    void operator()(Response&& response) {
      Exchange& x = *exchange;
      // Our own server takes the headers as ready-made lines, written after the response's
      // fields, instead of a Beast field (an allocation and a tree insert) each.
      if (auto* responder = x.send_.target<internal::Session::Responder>()) {
        thread_local std::string lines;  // capacity reused
        lines.clear();
        append_lines(lines, x.headers_);
        (*responder)(std::move(response), lines);
        return;
      }
      add_headers(x.headers_, response);
      x.send_(std::move(response));
    }
  };

  Request request_;
  const ClientEndpoint& client_;  // valid until send_ is called (server.h)
  BeastRequestView view_;
  Send send_;
  http::HeaderList headers_;  // the verdict's
};

void handler_threw(const char* what) noexcept {
  try {
    pacer::internal::log_error("pacer::beast: answering a rate-limited request failed: {}", what);
  } catch (...) {
  }
}

}  // namespace

void add_headers(const http::HeaderList& headers, Response& response) {
  for (const auto& [name, value] : headers) insert(response, name, value);
}

Response verdict_response(const http::Verdict& verdict, unsigned version) {
  Response response{static_cast<bhttp::status>(verdict.status), version};
  response.set(bhttp::field::content_type, "application/json");
  response.body() = verdict.body;
  add_headers(verdict.headers, response);
  return response;
}

Handler with_limits(const http::HttpLimiter& limits, Handler next) {
  return [&limits, next = std::move(next)](Request&& request, const ClientEndpoint& client,
                                           Send send) {
    auto exchange = std::make_unique<Exchange>(std::move(request), client, std::move(send));
    const http::RequestView& view = exchange->view();
    // The verdict may come inside a Redis connection's read handler: nothing may escape it.
    limits.check(view, [&next, exchange = std::move(exchange)](http::Verdict&& verdict) mutable {
      try {
        if (verdict.refused()) return exchange->refuse(verdict);
        Exchange::pass(std::move(exchange), verdict, next);
      } catch (const std::exception& e) {
        handler_threw(e.what());
      } catch (...) {
        handler_threw("unknown exception");
      }
      // An exception left the Send unanswered: destroyed (here, or with the handler's frame), it
      // answers 500 for this request only.
    });
  };
}

}  // namespace pacer::beast
