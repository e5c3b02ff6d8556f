#include "api.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "json_depth.h"
#include "pacer/http/response.h"

namespace pacer::pacerd {
namespace {

using nlohmann::json;

// A value quoted in an error message: JSON, invalid UTF-8 replaced, at most ~64 bytes.
std::string show(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 64) {
    std::size_t cut = 60;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;
    text = text.substr(0, cut) + "...";
  }
  return text;
}

const char* type_name(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    case json::value_t::number_float:
      return "a fractional number";
    default:
      return "a number";
  }
}

std::string field_name(bool batch, std::size_t index, std::string_view field) {
  return batch ? fmt::format("[{}]{}{}", index, field.empty() ? "" : ".", field)
               : std::string(field);
}

// One object of a request; returns false with `error` set.
bool parse_item(const json& object, bool batch, std::size_t index, ApiCall call,
                const ApiLimits& limits, ApiItem& item, ApiError& error) {
  auto fail = [&](std::string_view field, std::string message) {
    error = {field_name(batch, index, field), std::move(message)};
    return false;
  };
  if (!object.is_object()) {
    return fail("", std::string("expected an object {\"policy\": ..., \"key\": ...}, got ") +
                        type_name(object));
  }
  bool has_policy = false, has_key = false;
  for (const auto& [name, value] : object.items()) {
    if (name == "policy") {
      if (!value.is_string() || value.get_ref<const std::string&>().empty())
        return fail("policy", "must be a non-empty string, got " + show(value));
      item.policy = value.get<std::string>();
      has_policy = true;
    } else if (name == "key") {
      if (!value.is_string()) return fail("key", "must be a string, got " + show(value));
      const auto& key = value.get_ref<const std::string&>();
      if (key.empty()) return fail("key", "must not be empty");
      if (key.size() > limits.max_key_bytes) {
        return fail("key", fmt::format("is {} bytes long; at most {} are allowed", key.size(),
                                       limits.max_key_bytes));
      }
      item.key = key;
      has_key = true;
    } else if (name == "cost" && call != ApiCall::kReset) {
      if (value.is_number_unsigned() && value.get<std::uint64_t>() <= kMaxCost) {
        item.cost = static_cast<std::int64_t>(value.get<std::uint64_t>());
      } else if (value.is_number_integer() && !value.is_number_unsigned()) {
        return fail("cost", fmt::format("must be from 0 to {}, got {}", kMaxCost, show(value)));
      } else {
        return fail("cost", fmt::format("must be a whole number from 0 to {}, got {}", kMaxCost,
                                        show(value)));
      }
    } else {
      std::string shown = json(name).dump(-1, ' ', false, json::error_handler_t::replace);
      if (shown.size() > 66) shown = show(json(name.substr(0, 60)));
      return fail(name.size() <= 64 ? name : "",
                  "unknown field " + shown + "; expected " +
                      (call != ApiCall::kReset ? "policy, key and cost" : "policy and key"));
    }
  }
  if (!has_policy) return fail("policy", "missing");
  if (!has_key) return fail("key", "missing");
  return true;
}

}  // namespace

std::variant<ApiRequest, ApiError> parse_api_request(std::string_view body, ApiCall call,
                                                     const ApiLimits& limits) {
  if (apps::json_nested_deeper_than(body, kMaxDepth))
    return ApiError{"", fmt::format("JSON nested deeper than {} levels", kMaxDepth)};
  json document;
  try {
    document = json::parse(body);
  } catch (const json::exception& e) {
    // parse_error (also invalid UTF-8), out_of_range for numbers beyond a double.
    return ApiError{"", std::string("not valid JSON: ") + e.what()};
  }
  ApiRequest request;
  ApiError error;
  if (document.is_array()) {
    request.batch = true;
    if (document.empty()) return ApiError{"", "an empty batch: expected 1 or more requests"};
    if (document.size() > limits.max_batch) {
      return ApiError{"", fmt::format("a batch of {} requests; at most {} are allowed",
                                      document.size(), limits.max_batch)};
    }
    request.items.resize(document.size());
    for (std::size_t i = 0; i < document.size(); ++i)
      if (!parse_item(document[i], true, i, call, limits, request.items[i], error)) return error;
    return request;
  }
  request.items.resize(1);
  if (!parse_item(document, false, 0, call, limits, request.items[0], error)) return error;
  return request;
}

std::string item_field(const ApiRequest& request, std::size_t index, std::string_view field) {
  return field_name(request.batch, index, field);
}

std::string error_body(std::string_view error, const ApiError& detail) {
  json body = {{"error", error}, {"field", detail.field}, {"message", detail.message}};
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

void append_decision_json(std::string& out, std::string_view policy, const Decision& decision,
                          bool shadow) {
  const bool allowed = decision.allowed();
  std::string retry = decision.outcome == Outcome::kExceedsCapacity
                          ? "null"
                          : std::to_string(http::ceil_milliseconds(decision.retry_after));
  // Policy names are [A-Za-z0-9_.-] (pacer::Policy checks): no escaping needed.
  fmt::format_to(std::back_inserter(out),
                 "{{\"allowed\":{},\"outcome\":\"{}\",\"limit\":{},\"remaining\":{},"
                 "\"retry_after_ms\":{},\"reset_after_ms\":{},\"policy\":\"{}\",\"shadow\":{},"
                 "\"degraded\":{}}}",
                 allowed, to_string(decision.outcome), decision.limit, decision.remaining, retry,
                 http::ceil_milliseconds(decision.reset_after), policy, shadow, decision.degraded);
}

}  // namespace pacer::pacerd
