// pacer-redis-module.so: the GCRA script's step as one native Redis command.
//
//   redis-server --loadmodule /usr/lib/x86_64-linux-gnu/pacer/pacer-redis-module.so
//   PACER.GCRA <key> <inc_1> <room_1> [<inc_2> <room_2> ... up to 8 rates]
//
// Arguments, reply and stored value are the Lua script's (src/redis/script.h): the same step,
// src/redis/script_step.h, run on the same value, so Lua and module decisions can be mixed on
// one key and a deployment can switch either way without losing counts. The client finds the
// command on its own (RedisStoreOptions::script) and keeps the script as the fallback.
//
// Why: the script costs Redis 4.0-4.6 us of CPU per one-rate decision, most of it in Lua
// (GET, SET, struct.pack, formatting); a SET alone costs 0.6-0.8 us. This command reads and
// writes the value in place through the key API, with no Lua and no command parsing inside.
//
// - Key positions and flags are declared (first key 1, "write deny-oom fast"): Redis Cluster
//   routes it, ACLs allow it by name (+pacer.gcra) or category (@write, @fast).
// - Time is Redis's own wall clock (RedisModule_Microseconds on 7.2+; before, the same clock
//   through clock_gettime, as Redis's TIME reads it).
// - Replicas and the AOF get the effect, `SET <key> <value> PX <ms>`, never the command: they
//   hold the same TATs whatever their clocks say, and need no module.
// - Bad arguments are errors naming the argument (Redis stays up): wrong arity, non-integers,
//   negative values or values above 2^52; a key of another type is WRONGTYPE.
#include <time.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

#include "module_api.h"
#include "redis/script_step.h"

namespace pacer::redis_module {
namespace {

using redis::internal::kMaxScriptArgument;
using redis::internal::script_step;
using redis::internal::ScriptStepResult;

constexpr std::size_t kMaxRates = 8;

Api api;
// "PX" for the replicated SET, made once (a C string argument would be copied every call).
RedisModuleString* px_argument = nullptr;

long long now_microseconds() {
  if (api.Microseconds != nullptr) return api.Microseconds();
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<long long>(now.tv_sec) * 1'000'000 + now.tv_nsec / 1'000;
}

// "ERR PACER.GCRA argument 3 ('abc'): ..." with the value shown printable and short.
int reply_bad_argument(RedisModuleCtx* ctx, int position, const RedisModuleString* value) {
  size_t length = 0;
  const char* text = api.StringPtrLen(value, &length);
  std::string shown;
  for (size_t i = 0; i < length && shown.size() < 40; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\'') {
      shown += static_cast<char>(c);
    } else {
      char escaped[5];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      shown += escaped;
    }
  }
  if (length > 40) shown += "...";
  char message[160];
  std::snprintf(message, sizeof message,
                "ERR PACER.GCRA argument %d ('%s'): expected an integer from 0 to %lld", position,
                shown.c_str(), kMaxScriptArgument);
  return api.ReplyWithError(ctx, message);
}

int reply(RedisModuleCtx* ctx, const ScriptStepResult& r) {
  if (r.integer_reply) return api.ReplyWithLongLong(ctx, r.integer);
  return api.ReplyWithStringBuffer(ctx, r.bytes().data(), r.bytes().size());
}

int gcra(RedisModuleCtx* ctx, RedisModuleString** argv, int argc) {
  // PACER.GCRA key inc room [inc room ...]
  if (argc < 4 || argc % 2 != 0 || static_cast<std::size_t>(argc) > 2 + 2 * kMaxRates)
    return api.WrongArity(ctx);
  std::array<long long, 2 * kMaxRates> args{};
  const int count = argc - 2;
  for (int i = 0; i < count; ++i) {
    long long value = 0;
    if (api.StringToLongLong(argv[2 + i], &value) != kOk || value < 0 ||
        value > kMaxScriptArgument) {
      return reply_bad_argument(ctx, 2 + i, argv[2 + i]);
    }
    args[static_cast<std::size_t>(i)] = value;
  }
  RedisModuleKey* key = api.OpenKey(ctx, argv[1], kRead | kWrite);
  const int type = api.KeyType(key);
  if (type != kKeyTypeEmpty && type != kKeyTypeString) {
    api.CloseKey(key);
    return api.ReplyWithError(ctx,
                              "WRONGTYPE Operation against a key holding the wrong kind of value");
  }
  // One DMA for reading and, when the size stays (the usual case), writing in place.
  char* current = nullptr;
  size_t current_length = 0;
  if (type == kKeyTypeString) current = api.StringDMA(key, &current_length, kRead | kWrite);
  const ScriptStepResult r = script_step(
      std::string_view(current == nullptr ? "" : current, current_length), type == kKeyTypeString,
      now_microseconds(), {args.data(), static_cast<std::size_t>(count)});
  if (r.write) {
    const std::string_view value = r.value();
    char* target = current_length == value.size() ? current : nullptr;
    if (target == nullptr && api.StringTruncate(key, value.size()) == kOk) {
      // A new key (truncating an empty key creates it), or a value of another size.
      size_t length = 0;
      target = api.StringDMA(key, &length, kWrite);
      if (length != value.size()) target = nullptr;
    }
    if (target == nullptr) {
      api.CloseKey(key);
      return api.ReplyWithError(ctx, "ERR PACER.GCRA could not write the key");
    }
    std::memcpy(target, value.data(), value.size());
    api.SetExpire(key, r.px_ms);
    api.Replicate(ctx, "SET", "sbsl", argv[1], value.data(), value.size(), px_argument, r.px_ms);
    // WATCH sees a write; a peek or a denial, like the script's, is no write.
    api.SignalModifiedKey(ctx, argv[1]);
  }
  api.CloseKey(key);
  return reply(ctx, r);
}

// Redis is C: nothing may unwind out of a command.
int gcra_command(RedisModuleCtx* ctx, RedisModuleString** argv, int argc) {
  try {
    return gcra(ctx, argv, argc);
  } catch (const std::exception& e) {
    return api.ReplyWithError(ctx, (std::string("ERR PACER.GCRA failed: ") + e.what()).c_str());
  } catch (...) {
    return api.ReplyWithError(ctx, "ERR PACER.GCRA failed");
  }
}

}  // namespace
}  // namespace pacer::redis_module

extern "C" __attribute__((visibility("default"))) int RedisModule_OnLoad(
    RedisModuleCtx* ctx, RedisModuleString** /*argv*/, int /*argc*/) {
  using namespace pacer::redis_module;
  if (!load_api(ctx, api)) return kErr;
  if (api.IsModuleNameBusy("pacer") != 0) return kErr;
  api.SetModuleAttribs(ctx, "pacer", 1, kApiVersion1);
  api.SetModuleOptions(ctx, kOptionNoImplicitSignalModified);
  // Without a context: kept for the module's life (Redis never unloads it while in use).
  px_argument = api.CreateString(nullptr, "PX", 2);
  if (px_argument == nullptr) return kErr;
  return api.CreateCommand(ctx, "pacer.gcra", gcra_command, "write deny-oom fast", 1, 1, 1);
}
