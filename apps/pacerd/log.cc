// pacerd's log lines: the one escaping function, the two formats, and the spdlog formatter that
// gives the library's lines the same shape (log.h; docs/OPERATIONS.md, "pacerd", Logs).
#include "log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdint>

namespace pacer::pacerd::log {
namespace {

constexpr std::string_view kLoggerName = "pacerd";

// Set once by install(), before any thread logs (spdlog's own registry is process-wide too).
std::atomic<Format> g_format{Format::kLogfmt};
std::atomic<std::shared_ptr<spdlog::logger>> g_logger;

// The length of the UTF-8 sequence at `text[at]` (1 to 4), or 0 when it is not one: overlong
// forms, surrogates and code points past U+10FFFF are not UTF-8 (RFC 3629).
std::size_t utf8_length(std::string_view text, std::size_t at) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char b0 = byte(at);
  std::size_t length = 0;
  std::uint32_t code = 0;
  if (b0 < 0x80) return 1;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    length = 2;
    code = b0 & 0x1fu;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    length = 3;
    code = b0 & 0x0fu;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    length = 4;
    code = b0 & 0x07u;
  } else {
    return 0;
  }
  if (at + length > text.size()) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(at + i) & 0xc0u) != 0x80) return 0;
    code = (code << 6) | (byte(at + i) & 0x3fu);
  }
  if ((length == 3 && code < 0x800) || (length == 4 && code < 0x10000) || code > 0x10ffff ||
      (code >= 0xd800 && code <= 0xdfff))
    return 0;
  return length;
}

void append_json_field(std::string& out, std::string_view key, const std::string& value,
                       bool bare) {
  if (!out.empty()) out += ',';
  out += quote(key);
  out += ':';
  out += bare ? value : quote(value);
}

void append_logfmt_field(std::string& out, std::string_view key, std::string_view value) {
  if (!out.empty()) out += ' ';
  out += key;
  out += '=';
  out += logfmt_value(value);
}

// `%*` in the pattern: pacerd's own lines as rendered, the library's as event=library msg=...
class Payload final : public spdlog::custom_flag_formatter {
 public:
  explicit Payload(Format format) : format_(format) {}

  void format(const spdlog::details::log_msg& msg, const std::tm& /*time*/,
              spdlog::memory_buf_t& dest) override {
    const std::string_view text(msg.payload.data(), msg.payload.size());
    if (std::string_view(msg.logger_name.data(), msg.logger_name.size()) == kLoggerName) {
      dest.append(text.data(), text.data() + text.size());
      return;
    }
    const std::string line = render(format_, "library", {{"msg", text}});
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::custom_flag_formatter> clone() const override {
    return std::make_unique<Payload>(format_);
  }

 private:
  Format format_;
};

}  // namespace

std::optional<Format> parse_format(std::string_view text) {
  if (text == "logfmt") return Format::kLogfmt;
  if (text == "json") return Format::kJson;
  return std::nullopt;
}

std::string quote(std::string_view value) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(value.size() + 2);
  out += '"';
  for (std::size_t i = 0; i < value.size();) {
    const auto c = static_cast<unsigned char>(value[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else if (c >= 0x80) {
      const std::size_t length = utf8_length(value, i);
      if (length == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(value.substr(i, length));
        i += length;
      }
      continue;
    } else {
      out += static_cast<char>(c);
    }
    ++i;
  }
  out += '"';
  return out;
}

std::string logfmt_value(std::string_view value) {
  bool bare = !value.empty();
  for (const char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '=' || c == '\\') {
      bare = false;
      break;
    }
  }
  return bare ? std::string(value) : quote(value);
}

std::string render(Format format, std::string_view event, std::initializer_list<Field> fields) {
  std::string out;
  if (format == Format::kJson) {
    append_json_field(out, "event", std::string(event), false);
    for (const Field& f : fields) append_json_field(out, f.key, f.value, f.number);
  } else {
    append_logfmt_field(out, "event", event);
    for (const Field& f : fields) append_logfmt_field(out, f.key, f.value);
  }
  return out;
}

void install(Format format, spdlog::level::level_enum level,
             std::shared_ptr<spdlog::sinks::sink> sink) {
  if (!sink) sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  // Time in UTC with microseconds; the level as spdlog names it (info, warning, error, ...).
  const char* pattern = format == Format::kJson
                            ? R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l",%*})"
                            : "ts=%Y-%m-%dT%H:%M:%S.%fZ level=%l %*";
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  formatter->add_flag<Payload>('*', format).set_pattern(pattern);
  sink->set_formatter(std::move(formatter));
  // One sink for both loggers, so their lines never interleave within a line.
  auto library = std::make_shared<spdlog::logger>("", sink);
  auto own = std::make_shared<spdlog::logger>(std::string(kLoggerName), sink);
  library->set_level(level);
  own->set_level(level);
  spdlog::set_default_logger(std::move(library));
  g_format = format;
  g_logger.store(std::move(own));
}

void write(spdlog::level::level_enum level, std::string_view event,
           std::initializer_list<Field> fields) {
  const std::shared_ptr<spdlog::logger> own = g_logger.load();
  spdlog::logger& logger = own ? *own : *spdlog::default_logger_raw();
  if (!logger.should_log(level)) return;
  const std::string line = render(own ? g_format.load() : Format::kLogfmt, event, fields);
  logger.log(level, spdlog::string_view_t(line.data(), line.size()));
}

}  // namespace pacer::pacerd::log
