// Policies, verdicts and header rendering of the Python extension (see policy.h).
#include "policy.h"

#include <chrono>

#include "fast_path.h"
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

std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

HeaderChoice HeaderChoice::of(HeaderFlag flags) {
  return {has(flags, HeaderFlag::kExpose), has(flags, HeaderFlag::kXRateLimitReset),
          has(flags, HeaderFlag::kXRateLimitPolicy)};
}

namespace {

// The ASGI (name, value) pair of a header, a new reference. The name's lower-case bytes are
// made once per name and kept (the names are a handful of constants: RateLimit-*, X-RateLimit-*,
// Retry-After), and so is the last pair made for each name, given again while its value repeats
// (the limit always, the reset within its second): a tuple of bytes cannot change, so one can
// sit in any number of responses. GIL held.
PyObject* asgi_pair(std::string_view name, std::string_view value) {
  struct Known {
    std::string name;
    PyObject* bytes;
    std::string value;  // of `pair`
    PyObject* pair;
  };
  static auto* known = new std::vector<Known>();  // never destroyed: outlives the interpreter
  constexpr std::size_t kMaxNames = 16;
  Known* slot = nullptr;
  for (Known& k : *known) {
    if (k.name == name) {
      slot = &k;
      break;
    }
  }
  if (slot != nullptr && slot->pair != nullptr && slot->value == value) {
    Py_INCREF(slot->pair);
    return slot->pair;
  }
  py::bytes fresh_name;
  if (slot == nullptr) {
    fresh_name = py::bytes(ascii_lower(name));
    if (known->size() < kMaxNames) {
      slot = &known->emplace_back(
          Known{std::string(name), fresh_name.inc_ref().ptr(), std::string(), nullptr});
    }
  }
  const py::bytes bytes_value(value.data(), value.size());
  PyObject* pair =
      PyTuple_Pack(2, slot != nullptr ? slot->bytes : fresh_name.ptr(), bytes_value.ptr());
  if (pair == nullptr) throw py::error_already_set();
  if (slot != nullptr) {
    Py_XDECREF(slot->pair);  // a tuple of two bytes: its release runs no Python code
    Py_INCREF(pair);
    slot->pair = pair;
    slot->value.assign(value);
  }
  return pair;
}

}  // namespace

py::list asgi_headers(const NativePolicy& p, const Decision& d, HeaderChoice choice) {
  const http::HeaderList headers = header_list(p, d, choice);
  py::list out(headers.size());
  std::size_t i = 0;
  for (const auto& [name, value] : headers)  // SET_ITEM steals the pair
    PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i++), asgi_pair(name, value));
  return out;
}

std::vector<std::pair<std::string, std::string>> named_headers(const NativePolicy& p,
                                                               const Decision& d,
                                                               HeaderChoice choice) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, value] : header_list(p, d, choice)) out.emplace_back(name, value);
  return out;
}

py::object admission(Verdict verdict, const py::object& send) {
  if (!verdict.decision.allowed()) return py::cast(std::move(verdict));
  py::list headers =
      verdict.headers ? py::reinterpret_borrow<py::list>(verdict.headers) : py::list();
  if (send.is_none()) return headers;
  if (headers.empty()) return send;
  return header_send(send, std::move(headers));
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
