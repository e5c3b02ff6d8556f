// pacer/beast/limit.h — rate limits for a pacer::beast handler, in a few lines.
//
// with_limits() wraps a handler: every request is checked by an HttpLimiter first. A request
// over a limit is answered right there (429 with the JSON body of docs/DESIGN.md §7, or 503 when
// the store is unreachable and the fail mode is "closed"); the others reach your handler, and the
// RateLimit-* headers are added to its response on the way out.
//
//   pacer::MemoryStore store;
//   pacer::Limiter limiter(store);
//   pacer::http::HttpLimiter limits(limiter, {.key_prefix = "shop"});
//   limits.add_route("POST", "/orders",
//                    {.policy = pacer::Policy("orders", {pacer::Rate::parse("3/1m")})});
//   pacer::beast::Server server({.port = 8080}, pacer::beast::with_limits(limits,
//       [](pacer::beast::Request&& request, const pacer::beast::ClientEndpoint& client,
//          pacer::beast::Send send) { /* answer as usual */ }));
//   server.run();
//
// The two halves, for a handler that checks by itself:
//
//   limits.check(view, [&](pacer::http::Verdict&& verdict) {
//     if (verdict.refused()) return send(pacer::beast::verdict_response(verdict, version));
//     pacer::beast::Response response = ...;
//     pacer::beast::add_headers(verdict.headers, response);
//     send(std::move(response));
//   });
#pragma once

#include "pacer/beast/message.h"
#include "pacer/http/http_limiter.h"

namespace pacer::beast {

// Adds each header to `response` (RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, ...).
void add_headers(const http::HeaderList& headers, Response& response);

// The answer to a request the verdict refuses (verdict.status: 429, 503 or 401): that status, the
// verdict's JSON body and headers, for HTTP version `version` (request.version()).
Response verdict_response(const http::Verdict& verdict, unsigned version);

// A handler that checks `limits` before calling `next`, as described above. The request reaches
// `next` unchanged (its RequestView is a BeastRequestView: route() is the path). Whatever `next`
// throws is logged and answered 500, for that request only. `limits` must outlive the handler's
// last call and the verdicts it waits for (destroy the Server first).
Handler with_limits(const http::HttpLimiter& limits, Handler next);

}  // namespace pacer::beast
