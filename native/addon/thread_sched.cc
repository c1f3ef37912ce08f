// Thread scheduling: sets one thread (by tid) of this process back to normal (SCHED_OTHER)
// scheduling. libwebrtc gives its encoder and decoder threads SCHED_FIFO when the process may;
// on a small machine they then starve the JS thread that mixes the audio (see mcu/src/core/realtime.ts).
#include <sched.h>
#include <sys/types.h>

#include <cerrno>

#include "common.h"

namespace tkt {
namespace {

Napi::Value SetThreadNormal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) ThrowType(env, "setThreadNormal(tid): tid must be a number");
  const int64_t tid = info[0].As<Napi::Number>().Int64Value();
  if (tid <= 0 || tid > 0x7fffffff) ThrowType(env, "setThreadNormal(tid): tid out of range");
  sched_param param{};
  param.sched_priority = 0;
  if (sched_setscheduler(static_cast<pid_t>(tid), SCHED_OTHER, &param) != 0) ThrowSyscall(env, "sched_setscheduler", errno);
  return env.Undefined();
}

}  // namespace

void InitThreadSched(Napi::Env env, Napi::Object exports) {
  exports.Set("setThreadNormal", Napi::Function::New(env, SetThreadNormal, "setThreadNormal"));
}

}  // namespace tkt
