#include "heartbeat_thread.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "common.h"

namespace tkt {

double MonotonicMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1000.0 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double WallClockMs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) * 1000.0 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double DateNowMs() { return std::floor(WallClockMs()); }

namespace {
// A heartbeat thread's loop needs a few KiB of stack; this leaves room and is all touched at start.
constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kPrefaultBytes = 64 * 1024;
}  // namespace

int StartHeartbeatThread(pthread_t* thread, void* (*body)(void*), void* arg) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kStackBytes);
  sigset_t all;
  sigset_t previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  const int rc = pthread_create(thread, &attr, body, arg);
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  pthread_attr_destroy(&attr);
  return rc;
}

void PrefaultHeartbeatStack() {
  volatile uint8_t stack[kPrefaultBytes];
  for (size_t i = 0; i < kPrefaultBytes; i += 256) stack[i] = 0;
  (void)stack[0];
}

Wakeup::~Wakeup() { Close(); }

int Wakeup::Open() {
  fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  return fd_ < 0 ? errno : 0;
}

void Wakeup::Signal() const {
  const uint64_t one = 1;
  // Non-blocking: a counter already this high is a wakeup pending anyway.
  ssize_t ignored = write(fd_, &one, sizeof(one));
  (void)ignored;
}

void Wakeup::Drain() const {
  uint64_t count = 0;
  ssize_t ignored = read(fd_, &count, sizeof(count));
  (void)ignored;
}

void Wakeup::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

int MainThreadInbox::Start(napi_env env, int fd, Handler handler, void* owner) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return UV_EINVAL;
  poll_ = new uv_poll_t;
  int rc = uv_poll_init(loop, poll_, fd);
  if (rc != 0) {
    delete poll_;
    poll_ = nullptr;
    return rc;
  }
  handler_ = handler;
  owner_ = owner;
  poll_->data = this;
  rc = uv_poll_start(poll_, UV_READABLE, &MainThreadInbox::OnPoll);
  if (rc != 0) {
    Close();
    return rc;
  }
  uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  return 0;
}

void MainThreadInbox::Close() {
  if (poll_ == nullptr) return;
  uv_poll_stop(poll_);
  poll_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(poll_), &MainThreadInbox::OnClosed);
  poll_ = nullptr;
}

void MainThreadInbox::OnPoll(uv_poll_t* handle, int /*status*/, int /*events*/) {
  auto* self = static_cast<MainThreadInbox*>(handle->data);
  if (self == nullptr || self->handler_ == nullptr) return;
  self->handler_(self->owner_);
}

void MainThreadInbox::OnClosed(uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); }

Napi::Object RealtimeToJs(Napi::Env env, const RealtimeResult& rt, int priority) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("type", "realtime");
  out.Set("ok", Napi::Boolean::New(env, rt.ok));
  out.Set("priority", Napi::Number::New(env, priority));
  out.Set("tid", Napi::Number::New(env, rt.tid));
  if (!rt.ok) {
    out.Set("step", rt.permitted ? "sched_setscheduler(SCHED_FIFO)" : "sched_setscheduler(SCHED_FIFO) without CAP_SYS_NICE");
    const char* name = strerrorname_np(rt.err);
    out.Set("errnoName", name != nullptr ? name : "UNKNOWN");
    out.Set("errno", Napi::Number::New(env, rt.err));
    out.Set("message", std::strerror(rt.err));
  }
  return out;
}

int ResolveAddress(const std::string& host, uint16_t port, bool passive, SocketAddress* out, std::string* detail) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICHOST | (passive ? AI_PASSIVE : 0);
  addrinfo* found = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (rc != 0) {
    hints.ai_flags &= ~AI_NUMERICHOST;
    rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  }
  if (rc != 0 || found == nullptr) {
    *detail = std::string("cannot resolve ") + host + ": " + gai_strerror(rc);
    return rc == EAI_SYSTEM ? errno : ENOENT;
  }
  std::memcpy(&out->storage, found->ai_addr, found->ai_addrlen);
  out->length = found->ai_addrlen;
  freeaddrinfo(found);
  if (out->storage.ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&out->storage)->sin_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in6*>(&out->storage)->sin6_port = htons(port);
  }
  return 0;
}

std::string AddressText(const sockaddr_storage& address) {
  char text[INET6_ADDRSTRLEN] = "";
  if (address.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&address)->sin_addr, text, sizeof(text));
  } else if (address.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&address)->sin6_addr, text, sizeof(text));
  }
  return text;
}

uint16_t AddressPort(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
  if (address.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port);
  return 0;
}

std::string SecretArg(Napi::Env env, const Napi::Value& value) {
  if (value.IsString()) return value.As<Napi::String>().Utf8Value();
  if (value.IsBuffer()) {
    Napi::Buffer<char> buffer = value.As<Napi::Buffer<char>>();
    return std::string(buffer.Data(), buffer.Length());
  }
  ThrowType(env, "secret must be a string or a Buffer");
}

double NumberProp(Napi::Env env, const Napi::Object& obj, const char* name) {
  Napi::Value v = obj.Get(name);
  if (!v.IsNumber()) ThrowType(env, std::string(name) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) ThrowType(env, std::string(name) + " must be finite");
  return d;
}

}  // namespace tkt
