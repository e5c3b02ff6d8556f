// The part of the Redis Module API that PACER.GCRA uses, declared here from the public Module
// API reference (https://redis.io/docs/reference/modules/modules-api-ref/): Debian 12 ships no
// redismodule.h. Redis hands a module the address of RedisModule_GetApi in the first word of the
// context given to RedisModule_OnLoad; every other function is looked up by name through it.
// Valkey keeps the same names and signatures.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {

struct RedisModuleCtx;
struct RedisModuleKey;
struct RedisModuleString;

using RedisModuleCmdFunc = int (*)(RedisModuleCtx* ctx, RedisModuleString** argv, int argc);
}

namespace pacer::redis_module {

inline constexpr int kOk = 0;
inline constexpr int kErr = 1;
inline constexpr int kApiVersion1 = 1;
inline constexpr int kRead = 1 << 0;
inline constexpr int kWrite = 1 << 1;
inline constexpr int kKeyTypeEmpty = 0;
inline constexpr int kKeyTypeString = 1;
// RedisModule_SetModuleOptions: the module says itself which keys it modified.
inline constexpr int kOptionNoImplicitSignalModified = 1 << 1;

// One pointer per function, filled by load_api().
struct Api {
  int (*GetApi)(const char* name, void* pointer) = nullptr;
  int (*IsModuleNameBusy)(const char* name) = nullptr;
  void (*SetModuleAttribs)(RedisModuleCtx* ctx, const char* name, int version,
                           int api_version) = nullptr;
  int (*CreateCommand)(RedisModuleCtx* ctx, const char* name, RedisModuleCmdFunc function,
                       const char* flags, int first_key, int last_key, int key_step) = nullptr;
  int (*WrongArity)(RedisModuleCtx* ctx) = nullptr;
  int (*ReplyWithError)(RedisModuleCtx* ctx, const char* error) = nullptr;
  int (*ReplyWithLongLong)(RedisModuleCtx* ctx, long long value) = nullptr;
  int (*ReplyWithStringBuffer)(RedisModuleCtx* ctx, const char* buffer, size_t length) = nullptr;
  int (*StringToLongLong)(const RedisModuleString* string, long long* value) = nullptr;
  const char* (*StringPtrLen)(const RedisModuleString* string, size_t* length) = nullptr;
  RedisModuleKey* (*OpenKey)(RedisModuleCtx* ctx, RedisModuleString* name, int mode) = nullptr;
  void (*CloseKey)(RedisModuleKey* key) = nullptr;
  int (*KeyType)(RedisModuleKey* key) = nullptr;
  char* (*StringDMA)(RedisModuleKey* key, size_t* length, int mode) = nullptr;
  int (*StringTruncate)(RedisModuleKey* key, size_t length) = nullptr;
  int (*SetExpire)(RedisModuleKey* key, long long milliseconds) = nullptr;
  int (*Replicate)(RedisModuleCtx* ctx, const char* command, const char* format, ...) = nullptr;
  RedisModuleString* (*CreateString)(RedisModuleCtx* ctx, const char* text,
                                     size_t length) = nullptr;
  void (*SetModuleOptions)(RedisModuleCtx* ctx, int options) = nullptr;
  int (*SignalModifiedKey)(RedisModuleCtx* ctx, RedisModuleString* name) = nullptr;
  // Redis 7.2 and later, Valkey: the wall clock Redis itself reads. Null before 7.2.
  long long (*Microseconds)() = nullptr;
};

// Looks every function up through the GetApi pointer in `ctx`. False when a required one is
// missing (a Redis older than the module supports).
inline bool load_api(RedisModuleCtx* ctx, Api& api) {
  void* get_api = *reinterpret_cast<void**>(ctx);
  api.GetApi = reinterpret_cast<int (*)(const char*, void*)>(get_api);
  bool ok = true;
  auto need = [&](const char* name, auto& pointer) {
    ok = api.GetApi(name, static_cast<void*>(&pointer)) == kOk && pointer != nullptr && ok;
  };
  need("RedisModule_IsModuleNameBusy", api.IsModuleNameBusy);
  need("RedisModule_SetModuleAttribs", api.SetModuleAttribs);
  need("RedisModule_CreateCommand", api.CreateCommand);
  need("RedisModule_WrongArity", api.WrongArity);
  need("RedisModule_ReplyWithError", api.ReplyWithError);
  need("RedisModule_ReplyWithLongLong", api.ReplyWithLongLong);
  need("RedisModule_ReplyWithStringBuffer", api.ReplyWithStringBuffer);
  need("RedisModule_StringToLongLong", api.StringToLongLong);
  need("RedisModule_StringPtrLen", api.StringPtrLen);
  need("RedisModule_OpenKey", api.OpenKey);
  need("RedisModule_CloseKey", api.CloseKey);
  need("RedisModule_KeyType", api.KeyType);
  need("RedisModule_StringDMA", api.StringDMA);
  need("RedisModule_StringTruncate", api.StringTruncate);
  need("RedisModule_SetExpire", api.SetExpire);
  need("RedisModule_Replicate", api.Replicate);
  need("RedisModule_CreateString", api.CreateString);
  need("RedisModule_SetModuleOptions", api.SetModuleOptions);
  need("RedisModule_SignalModifiedKey", api.SignalModifiedKey);
  if (api.GetApi("RedisModule_Microseconds", static_cast<void*>(&api.Microseconds)) != kOk)
    api.Microseconds = nullptr;
  return ok;
}

}  // namespace pacer::redis_module
