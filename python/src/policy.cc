// Policies, verdicts and header rendering of the Python extension (see policy.h).
#include "policy.h"

#include <chrono>

#include "pacer/http/identity.h"
#include "pacer/http/rule.h"

namespace pacer::python {
namespace {

// A policy name as the C++ library accepts it ([A-Za-z0-9_.-], 1..64 bytes). Python policies
// may be named anything; other names are replaced by a digest, so they still get a key space
// of their own.
std::string native_name(const std::string& name) {
  const bool ok = !name.empty() && name.size() <= 64 &&
                  name.find_first_not_of(
                      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                      "0123456789_.-") == std::string::npos;
  return ok ? name : "h-" + http::hash_identity(name).substr(2, 16);
}

http::HeaderList header_list(const NativePolicy& p, const Decision& d, HeaderChoice choice) {
  http::HeaderList out;
  if (!choice.expose || p.shadow || d.outcome == Outcome::kUnavailable) return out;
  http::append_headers(p.policy, d, {.ratelimit = true, .x_ratelimit_reset = choice.legacy}, out);
  if (choice.policy) out.add("X-RateLimit-Policy", p.description);
  return out;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool has(HeaderFlag flags, HeaderFlag flag) {
  return (static_cast<unsigned>(flags) & static_cast<unsigned>(flag)) != 0;
}

}  // namespace

NativePolicy NativePolicy::make(
    const std::string& name,
    const std::vector<std::tuple<std::int64_t, std::int64_t, std::int64_t>>& rates,
    std::string description, bool shadow) {
  std::vector<Rate> native;
  native.reserve(rates.size());
  for (const auto& [permits, period_ns, burst] : rates)
    native.emplace_back(permits, Nanos(period_ns), burst);
  return NativePolicy{Policy(native_name(name), std::move(native)), std::move(description), shadow};
}

Decision NativePolicy::told(const Decision& decision) const {
  return shadow ? http::shadow_told(decision) : decision;
}

HeaderChoice HeaderChoice::of(HeaderFlag flags) {
  return {has(flags, HeaderFlag::kExpose), has(flags, HeaderFlag::kXRateLimitReset),
          has(flags, HeaderFlag::kXRateLimitPolicy)};
}

py::list asgi_headers(const NativePolicy& p, const Decision& d, HeaderChoice choice) {
  py::list out;
  for (const auto& [name, value] : header_list(p, d, choice))
    out.append(py::make_tuple(py::bytes(lower(name)), py::bytes(value)));
  return out;
}

std::vector<std::pair<std::string, std::string>> named_headers(const NativePolicy& p,
                                                               const Decision& d,
                                                               HeaderChoice choice) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, value] : header_list(p, d, choice)) out.emplace_back(name, value);
  return out;
}

HeaderSend::HeaderSend(py::object send, py::list headers)
    : send_(std::move(send)), headers_(std::move(headers)) {
  for (const py::handle pair : headers_) {
    const py::object name = py::reinterpret_borrow<py::sequence>(pair)[0];
    if (!PyBytes_Check(name.ptr())) throw py::type_error("HeaderSend: header names must be bytes");
    names_.push_back(lower(std::string_view(
        PyBytes_AS_STRING(name.ptr()), static_cast<std::size_t>(PyBytes_GET_SIZE(name.ptr())))));
  }
}

py::object HeaderSend::operator()(const py::object& message) const {
  const py::object type = message["type"];
  if (PyUnicode_Check(type.ptr()) &&
      PyUnicode_CompareWithASCIIString(type.ptr(), "http.response.start") == 0) {
    // As Python's [h for h in message.get("headers", ()) if h[0].lower() not in names]
    // + headers.
    py::list merged;
    const py::object existing = message.attr("get")("headers", py::tuple());
    for (const py::handle field : existing) {
      const py::object name = py::reinterpret_borrow<py::sequence>(field)[0];
      bool replaced = false;
      if (PyBytes_Check(name.ptr())) {
        const std::string low = lower(std::string_view(
            PyBytes_AS_STRING(name.ptr()), static_cast<std::size_t>(PyBytes_GET_SIZE(name.ptr()))));
        for (const std::string& ours : names_) replaced = replaced || ours == low;
      } else {
        // Not bytes (an app breaking the ASGI spec): Python's comparison, which a str never
        // passes; its lower() must still exist, as it did for the Python wrapper.
        const py::object low = name.attr("lower")();
        for (const py::handle ours : headers_)
          replaced = replaced || low.equal(py::reinterpret_borrow<py::sequence>(ours)[0]);
      }
      if (!replaced) merged.append(field);
    }
    for (const py::handle pair : headers_) merged.append(pair);
    message["headers"] = merged;
  }
  return send_(message);
}

py::object admission(Verdict verdict, const py::object& send) {
  if (!verdict.decision.allowed()) return py::cast(std::move(verdict));
  py::list headers =
      verdict.headers ? py::reinterpret_borrow<py::list>(verdict.headers) : py::list();
  if (send.is_none()) return headers;
  if (headers.empty()) return send;
  return py::cast(HeaderSend(send, std::move(headers)));
}

py::bytes Verdict::body(bool nested) const {
  if (decision.outcome == Outcome::kUnavailable) return py::bytes(http::unavailable_body());
  return py::bytes(http::too_many_requests_body(
      decision, nested ? http::BodyStyle::kNested : http::BodyStyle::kFlat));
}

Decision decision_from_fields(const NativePolicy& p, bool allowed, std::int64_t retry_after_ms,
                              std::int64_t reset_ms, std::int64_t remaining, std::size_t index) {
  const auto rates = p.policy.rates();
  if (index >= rates.size()) {
    throw py::index_error("matched_rate_index " + std::to_string(index) + " is out of range for " +
                          std::to_string(rates.size()) + " rate(s)");
  }
  Decision d;
  d.outcome = allowed ? Outcome::kAllowed : Outcome::kDenied;
  d.limit = rates[index].permits();
  d.remaining = remaining < 0 ? 0 : remaining;
  d.retry_after = std::chrono::milliseconds(retry_after_ms < 0 ? 0 : retry_after_ms);
  d.reset_after = std::chrono::milliseconds(reset_ms < 0 ? 0 : reset_ms);
  d.rate_index = static_cast<std::uint8_t>(index);
  return d;
}

}  // namespace pacer::python
