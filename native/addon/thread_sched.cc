// Thread scheduling: only the threads that ask become real-time.
//
// libwebrtc (inside @roamhq/wrtc) starts every PlatformThread by calling
// pthread_setschedparam(pthread_self(), SCHED_FIFO, 49..98) from the new thread itself
// (rtc::PlatformThread::SpawnThread), at each join. On a small machine those threads keep
// every normal thread off the CPU (see mcu/src/core/realtime.ts). Demoting them afterwards
// needs a normal thread to run, which is exactly what they prevent; so the process is set up
// once, on the main thread, before libwebrtc creates anything:
//   - the main thread drops CAP_SYS_NICE from its *effective* set. Linux credentials are per
//     thread and a new thread copies its creator's, so every thread created from then on
//     (libwebrtc's, and the threads those create) is refused SCHED_FIFO/SCHED_RR by the kernel
//     (EPERM; libwebrtc carries on at normal priority). The capability stays *permitted*;
//   - RLIMIT_RTPRIO's soft limit goes to 0, so an unprivileged thread cannot go real-time
//     through the rlimit either;
//   - the main thread gets SCHED_RESET_ON_FORK, so the threads it creates start at nice 0
//     instead of inheriting its raised priority (nice -20: it mixes the audio).
// A heartbeat thread (a native pthread of this addon, started from the main thread) then asks
// explicitly (MakeCallingThreadRealtime): it raises CAP_SYS_NICE from its permitted set for
// itself alone, sets SCHED_FIFO, and drops the capability again.
#include <linux/capability.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>

#include "common.h"
#include "heartbeat_thread.h"

#ifndef SCHED_RESET_ON_FORK
#define SCHED_RESET_ON_FORK 0x40000000
#endif

namespace tkt {
namespace {

// glibc has no wrappers for capget/capset (libcap does, but its newer versions broadcast
// capset to every thread through libpsx, which is the opposite of what we need here).
struct ThreadCaps {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
};

bool ReadCaps(ThreadCaps* caps) {
  return syscall(SYS_capget, &caps->header, caps->data) == 0;
}

bool WriteCaps(ThreadCaps* caps) {
  return syscall(SYS_capset, &caps->header, caps->data) == 0;
}

constexpr unsigned kNiceWord = CAP_SYS_NICE / 32;
constexpr uint32_t kNiceBit = 1U << (CAP_SYS_NICE % 32);

// Sets CAP_SYS_NICE in the calling thread's effective set on or off; errno on failure.
bool SetEffectiveNice(bool on, bool* permitted) {
  ThreadCaps caps;
  if (!ReadCaps(&caps)) return false;
  *permitted = (caps.data[kNiceWord].permitted & kNiceBit) != 0;
  if (on && !*permitted) return true;
  if (on) caps.data[kNiceWord].effective |= kNiceBit;
  else caps.data[kNiceWord].effective &= ~kNiceBit;
  return WriteCaps(&caps);
}

pid_t CurrentTid() {
  return static_cast<pid_t>(syscall(SYS_gettid));
}

// confineRealtimeScheduling({ mainNice, keepMediaRealtime }) -> { tid, capabilityDropped, hadCapability, rtprioLimit, mainNice }
Napi::Value ConfineRealtimeScheduling(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) ThrowType(env, "confineRealtimeScheduling(options): options must be an object");
  Napi::Object opts = info[0].As<Napi::Object>();
  Napi::Value niceValue = opts.Get("mainNice");
  if (!niceValue.IsNumber()) ThrowType(env, "confineRealtimeScheduling: mainNice must be a number");
  const int32_t nice = niceValue.As<Napi::Number>().Int32Value();
  if (nice < -20 || nice > 19) ThrowType(env, "confineRealtimeScheduling: mainNice must be within -20..19");
  const bool keepMediaRealtime = BoolProp(env, opts, "keepMediaRealtime", false);
  const pid_t tid = CurrentTid();

  // Order matters: a negative nice needs CAP_SYS_NICE, which this thread gives up below.
  // Without the privilege the main thread keeps its nice (reported back): not a reason to
  // leave libwebrtc's threads unconfined.
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(tid), nice) != 0 && errno != EACCES && errno != EPERM) {
    ThrowSyscall(env, "setpriority(main thread)", errno);
  }
  errno = 0;
  const int actualNice = getpriority(PRIO_PROCESS, static_cast<id_t>(tid));
  sched_param normal{};
  if (sched_setscheduler(0, SCHED_OTHER | SCHED_RESET_ON_FORK, &normal) != 0) ThrowSyscall(env, "sched_setscheduler(SCHED_RESET_ON_FORK)", errno);

  Napi::Object result = Napi::Object::New(env);
  result.Set("tid", Napi::Number::New(env, tid));
  result.Set("mainNice", Napi::Number::New(env, actualNice));
  bool permitted = false;
  if (keepMediaRealtime) {
    ThreadCaps caps;
    if (!ReadCaps(&caps)) ThrowSyscall(env, "capget", errno);
    permitted = (caps.data[kNiceWord].permitted & kNiceBit) != 0;
  } else {
    if (!SetEffectiveNice(false, &permitted)) ThrowSyscall(env, "capset(drop CAP_SYS_NICE)", errno);
    rlimit rt{};
    if (getrlimit(RLIMIT_RTPRIO, &rt) != 0) ThrowSyscall(env, "getrlimit(RLIMIT_RTPRIO)", errno);
    if (rt.rlim_cur != 0) {
      rt.rlim_cur = 0;
      if (setrlimit(RLIMIT_RTPRIO, &rt) != 0) ThrowSyscall(env, "setrlimit(RLIMIT_RTPRIO)", errno);
    }
  }
  rlimit now{};
  getrlimit(RLIMIT_RTPRIO, &now);
  result.Set("hadCapability", Napi::Boolean::New(env, permitted));
  result.Set("capabilityDropped", Napi::Boolean::New(env, !keepMediaRealtime));
  result.Set("rtprioLimit", Napi::Number::New(env, static_cast<double>(now.rlim_cur)));
  return result;
}

}  // namespace

// The allow path, called by a heartbeat thread on itself (heartbeat_beacon.cc, heartbeat_monitor.cc).
// SCHED_RESET_ON_FORK keeps whatever it starts from inheriting SCHED_FIFO.
RealtimeResult MakeCallingThreadRealtime(int priority) {
  RealtimeResult result;
  result.tid = CurrentTid();
  if (!SetEffectiveNice(true, &result.permitted)) {
    result.err = errno;
    return result;
  }
  sched_param param{};
  param.sched_priority = priority;
  const int rc = sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &param);
  result.err = rc == 0 ? 0 : errno;
  // Given up again at once: nothing this thread does later needs it.
  bool ignored = false;
  SetEffectiveNice(false, &ignored);
  result.ok = rc == 0;
  return result;
}

void InitThreadSched(Napi::Env env, Napi::Object exports) {
  exports.Set("confineRealtimeScheduling", Napi::Function::New(env, ConfineRealtimeScheduling, "confineRealtimeScheduling"));
}

}  // namespace tkt
