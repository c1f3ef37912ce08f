// Shared helpers for the tcp_takeover addon: argument checks and syscall errors.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace tkt {

// Throws a JS Error "STEP: ENAME (description)" carrying `step`, `errnoName` and
// `errno` properties, so the TS layer can turn it into a NativeSyscallError.
[[noreturn]] void ThrowSyscall(Napi::Env env, const std::string& step, int err);

// Throws a TypeError (bad argument from JS, not a syscall failure).
[[noreturn]] void ThrowType(Napi::Env env, const std::string& message);

// Reads argument `index` as a file descriptor (a non-negative int32).
int FdArg(const Napi::CallbackInfo& info, size_t index);

// Reads a property as an unsigned 32-bit integer in [0, max].
uint32_t U32Prop(Napi::Env env, const Napi::Object& obj, const char* name, uint64_t max = 0xffffffffULL);

// Same, but returns `fallback` when the property is undefined or null.
uint32_t OptionalU32Prop(Napi::Env env, const Napi::Object& obj, const char* name, uint32_t fallback,
                         uint64_t max = 0xffffffffULL);

bool BoolProp(Napi::Env env, const Napi::Object& obj, const char* name, bool fallback);

std::string StringProp(Napi::Env env, const Napi::Object& obj, const char* name);

void InitTcpRepair(Napi::Env env, Napi::Object exports);
void InitPacketCapture(Napi::Env env, Napi::Object exports);
void InitThreadSched(Napi::Env env, Napi::Object exports);

}  // namespace tkt
