#include <cerrno>
#include <cmath>
#include <cstring>
#include <string>

#include "common.h"

namespace tkt {

namespace {

std::string ErrnoName(int err) {
  // strerrorname_np: glibc >= 2.32.
  const char* name = strerrorname_np(err);
  if (name != nullptr) return name;
  return "errno " + std::to_string(err);
}

}  // namespace

void ThrowSyscall(Napi::Env env, const std::string& step, int err) {
  const std::string name = ErrnoName(err);
  Napi::Error error = Napi::Error::New(env, step + ": " + name + " (" + std::strerror(err) + ")");
  error.Set("step", Napi::String::New(env, step));
  error.Set("errnoName", Napi::String::New(env, name));
  error.Set("errno", Napi::Number::New(env, err));
  throw error;
}

void ThrowType(Napi::Env env, const std::string& message) {
  throw Napi::TypeError::New(env, message);
}

int FdArg(const Napi::CallbackInfo& info, size_t index) {
  Napi::Env env = info.Env();
  if (info.Length() <= index || !info[index].IsNumber()) ThrowType(env, "fd must be a number");
  double value = info[index].As<Napi::Number>().DoubleValue();
  if (!(value >= 0 && value <= 2147483647.0) || std::floor(value) != value) {
    ThrowType(env, "fd must be a non-negative integer, got " + std::to_string(value));
  }
  return static_cast<int>(value);
}

uint32_t U32Prop(Napi::Env env, const Napi::Object& obj, const char* name, uint64_t max) {
  Napi::Value v = obj.Get(name);
  if (!v.IsNumber()) ThrowType(env, std::string(name) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= static_cast<double>(max)) || std::floor(d) != d) {
    ThrowType(env, std::string(name) + " must be an integer in [0, " + std::to_string(max) + "], got " +
                       std::to_string(d));
  }
  return static_cast<uint32_t>(d);
}

uint32_t OptionalU32Prop(Napi::Env env, const Napi::Object& obj, const char* name, uint32_t fallback,
                         uint64_t max) {
  Napi::Value v = obj.Get(name);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  return U32Prop(env, obj, name, max);
}

bool BoolProp(Napi::Env env, const Napi::Object& obj, const char* name, bool fallback) {
  Napi::Value v = obj.Get(name);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsBoolean()) ThrowType(env, std::string(name) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string StringProp(Napi::Env env, const Napi::Object& obj, const char* name) {
  Napi::Value v = obj.Get(name);
  if (!v.IsString()) ThrowType(env, std::string(name) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

}  // namespace tkt
