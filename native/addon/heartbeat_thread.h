// What the two native heartbeat threads (heartbeat_beacon.cc, heartbeat_monitor.cc) share.
//
// A heartbeat thread is a plain pthread at SCHED_FIFO: no V8 isolate, no JavaScript, no
// allocation and no lock shared with the main thread while it runs (no malloc, no stdio, no
// OpenSSL, no libuv). What it tells the main thread goes through a single-producer
// single-consumer ring of fixed-size records and an eventfd the main loop polls (MainThreadInbox);
// what the main thread tells it, through atomics and a second eventfd that wakes its ppoll();
// the counters JavaScript asks for are atomics, read on demand.
#pragma once

#include <napi.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <uv.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace tkt {

// Lock-free single-producer single-consumer ring. Push never blocks: when the consumer is behind
// and the ring is full the record is dropped (and counted), the producer carries on.
template <typename T, size_t Capacity>
class SpscRing {
 public:
  // `reserve`: slots left free for other records (a flood of rejected datagrams must not crowd
  // out a verdict while the main thread is slow to drain).
  bool Push(const T& item, size_t reserve = 0) {
    const size_t head = head_.load(std::memory_order_relaxed);
    if (head - tail_.load(std::memory_order_acquire) + reserve >= Capacity) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    slots_[head % Capacity] = item;
    head_.store(head + 1, std::memory_order_release);
    return true;
  }

  bool Pop(T* item) {
    const size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail == head_.load(std::memory_order_acquire)) return false;
    *item = slots_[tail % Capacity];
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  // Records dropped because the ring was full, since the previous call.
  uint64_t TakeDropped() { return dropped_.exchange(0, std::memory_order_relaxed); }

 private:
  T slots_[Capacity];
  alignas(64) std::atomic<size_t> head_{0};
  alignas(64) std::atomic<size_t> tail_{0};
  std::atomic<uint64_t> dropped_{0};
};

// Ring slots only the records that matter for a verdict or its logs may take (not rejected datagrams).
constexpr size_t kReservedEventSlots = 128;

// Milliseconds on CLOCK_MONOTONIC (intervals, deadlines) and on the wall clock (epoch ms, as
// Date.now(): what the beats carry and the verdicts report).
double MonotonicMs();
double WallClockMs();
// Whole epoch ms, as Date.now() returns them.
double DateNowMs();

// An eventfd: Signal() from any thread wakes whoever polls it; Drain() resets it.
class Wakeup {
 public:
  ~Wakeup();
  // Returns 0 or errno.
  int Open();
  void Signal() const;
  void Drain() const;
  int fd() const { return fd_; }
  void Close();

 private:
  int fd_ = -1;
};

// On the main thread: everything a heartbeat thread queued, plus a `dropped` record when its ring
// was full, handed to `callback` as one array (the beacon's and the monitor's inbox alike). Call
// inside a HandleScope (the receiver is a handle too).
template <typename T, size_t Capacity, typename ToJs>
void DeliverEvents(Napi::Env env, SpscRing<T, Capacity>& ring, const std::atomic<uint64_t>& rejected, ToJs toJs,
                   Napi::FunctionReference& callback, Napi::Object receiver, Napi::AsyncContext& context) {
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  T event;
  while (ring.Pop(&event)) out.Set(n++, toJs(event));
  const uint64_t dropped = ring.TakeDropped();
  if (dropped > 0) {
    Napi::Object d = Napi::Object::New(env);
    d.Set("type", "dropped");
    d.Set("count", Napi::Number::New(env, static_cast<double>(dropped)));
    d.Set("rejectedTotal", Napi::Number::New(env, static_cast<double>(rejected.load())));
    out.Set(n++, d);
  }
  if (n == 0 || callback.IsEmpty()) return;
  try {
    callback.MakeCallback(receiver, {out}, context);
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  }
}

// Delivers a heartbeat thread's news on the main thread: a libuv poll of an eventfd, whose
// callback drains the thread's ring and calls into JavaScript. Unreferenced: it does not keep
// the process alive (as the worker threads were unref'd).
class MainThreadInbox {
 public:
  using Handler = void (*)(void* owner);
  // Returns 0 or a libuv error.
  int Start(napi_env env, int fd, Handler handler, void* owner);
  void Close();

 private:
  static void OnPoll(uv_poll_t* handle, int status, int events);
  static void OnClosed(uv_handle_t* handle);
  uv_poll_t* poll_ = nullptr;
  Handler handler_ = nullptr;
  void* owner_ = nullptr;
};

// Starts a heartbeat thread: every signal blocked in it (it inherits the mask it is created with,
// so no signal is ever handled there: libuv's handler takes a lock the main thread holds while it
// installs handlers), a small stack. Returns 0 or the pthread_create error.
int StartHeartbeatThread(pthread_t* thread, void* (*body)(void*), void* arg);

// First thing on a heartbeat thread: touches the stack it will use, so its loop takes no page
// fault (which could wait for the main thread's address-space changes: V8 maps and unmaps heap).
void PrefaultHeartbeatStack();

// The result of making the calling thread real-time (thread_sched.cc).
struct RealtimeResult {
  bool ok = false;
  bool permitted = false;
  int err = 0;
  int32_t tid = 0;
};

// The allow path, for a heartbeat thread: SCHED_FIFO `priority` with SCHED_RESET_ON_FORK, through
// CAP_SYS_NICE raised from the permitted set for this thread alone and dropped again.
RealtimeResult MakeCallingThreadRealtime(int priority);

// { ok, priority, tid, step?, errnoName?, errno? } for JavaScript.
Napi::Object RealtimeToJs(Napi::Env env, const RealtimeResult& rt, int priority);

// A resolved UDP/TCP peer or local address.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family() const { return storage.ss_family; }
};

// Resolves host (numeric first, then a name lookup: main thread only, at start) and port.
// Returns 0, or an EAI_* error negated into a positive errno-like code with `*detail` set.
int ResolveAddress(const std::string& host, uint16_t port, bool passive, SocketAddress* out, std::string* detail);

// "address" and port of a socket address, for JavaScript.
std::string AddressText(const sockaddr_storage& address);
uint16_t AddressPort(const sockaddr_storage& address);

// The heartbeat secret from a JS string (UTF-8, as node:crypto's createHmac takes it) or Buffer.
std::string SecretArg(Napi::Env env, const Napi::Value& value);

// Returns `name` of `obj` as a finite number, or throws a TypeError.
double NumberProp(Napi::Env env, const Napi::Object& obj, const char* name);

void InitFailureDetector(Napi::Env env, Napi::Object exports);
void InitHeartbeatBeacon(Napi::Env env, Napi::Object exports);
void InitHeartbeatMonitor(Napi::Env env, Napi::Object exports);

}  // namespace tkt
