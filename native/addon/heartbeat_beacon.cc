// The primary's heartbeat thread (NativeHeartbeatBeacon; typed by mcu/src/detection/heartbeat-beacon.ts).
//
// A native pthread at SCHED_FIFO that answers the standbys' subscriptions and sends each
// subscriber a beat every interval, renews the host firewall's lease on every beat (a line
// written to a long-lived `nft -i`'s stdin, kernel-lease.ts), and stops both when the main
// thread has made no progress for `mainStallMs` (a hung process is a dead one). Nothing it does
// waits for the main thread: the main thread's progress is an atomic counter it bumps (touch()),
// what the thread reports goes through a lock-free ring (heartbeat_thread.h).
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <string>

#include "common.h"
#include "heartbeat_thread.h"
#include "heartbeat_wire.h"

namespace tkt {

namespace {

// Standbys following one primary: one or two in practice; the table never grows.
constexpr int kMaxSubscribers = 32;
// A subscriber renews every second; one silent this long is gone.
constexpr double kSubscriberExpiryMs = 3000;
// Datagrams read per wakeup at most, so a flood cannot delay a beat by more than that much work.
constexpr int kMaxReadsPerWake = 64;
constexpr size_t kEventRing = 1024;

enum class BeaconEventType : uint8_t { kRealtime, kSubscriber, kSubscribers, kMainStalled, kMainRecovered, kRejected, kLeaseFailed };

struct BeaconEvent {
  BeaconEventType type = BeaconEventType::kRealtime;
  HeartbeatDecodeError reason = HeartbeatDecodeError::kNone;
  uint8_t kindCode = 0;
  uint32_t count = 0;
  uint64_t total = 0;
  double value = 0;
  RealtimeResult realtime;
  sockaddr_storage from{};
};

struct Subscriber {
  bool used = false;
  sockaddr_storage address{};
  socklen_t length = 0;
  double lastSeenMs = 0;
};

// Raises an atomic maximum that another thread may reset (exchange to 0) meanwhile.
void RaiseTo(std::atomic<int64_t>& max, int64_t value) {
  int64_t current = max.load(std::memory_order_relaxed);
  while (value > current && !max.compare_exchange_weak(current, value, std::memory_order_relaxed)) {
  }
}

bool SameAddress(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const auto* x = reinterpret_cast<const sockaddr_in*>(&a);
    const auto* y = reinterpret_cast<const sockaddr_in*>(&b);
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  const auto* x = reinterpret_cast<const sockaddr_in6*>(&a);
  const auto* y = reinterpret_cast<const sockaddr_in6*>(&b);
  return x->sin6_port == y->sin6_port && std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(in6_addr)) == 0;
}

timespec TimeoutFromMs(double ms) {
  if (ms < 0) ms = 0;
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ms / 1000);
  ts.tv_nsec = static_cast<long>((ms - static_cast<double>(ts.tv_sec) * 1000) * 1e6);
  return ts;
}

const char* DecodeErrorName(HeartbeatDecodeError e) {
  switch (e) {
    case HeartbeatDecodeError::kLength:
      return "length";
    case HeartbeatDecodeError::kMagic:
      return "magic";
    case HeartbeatDecodeError::kMac:
      return "mac";
    case HeartbeatDecodeError::kKind:
      return "kind";
    case HeartbeatDecodeError::kNone:
      break;
  }
  return "none";
}

class HeartbeatBeacon : public Napi::ObjectWrap<HeartbeatBeacon> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeHeartbeatBeacon",
                       {
                           InstanceMethod("touch", &HeartbeatBeacon::Touch),
                           InstanceMethod("setEpoch", &HeartbeatBeacon::SetEpoch),
                           InstanceMethod("pauses", &HeartbeatBeacon::Pauses),
                           InstanceMethod("stats", &HeartbeatBeacon::Stats),
                           InstanceMethod("takeWindowGap", &HeartbeatBeacon::TakeWindowGap),
                           InstanceMethod("attachLease", &HeartbeatBeacon::AttachLease),
                           InstanceMethod("close", &HeartbeatBeacon::Close),
                           InstanceAccessor("port", &HeartbeatBeacon::Port, nullptr),
                       });
  }

  // new NativeHeartbeatBeacon({ host, port, secret, epoch, intervalMs, mainStallMs, rtPriority }, onEvents)
  explicit HeartbeatBeacon(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<HeartbeatBeacon>(info), key_(reinterpret_cast<const uint8_t*>(""), 0) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
      ThrowType(env, "NativeHeartbeatBeacon(options: object, onEvents: function)");
    }
    const Napi::Object opts = info[0].As<Napi::Object>();
    const std::string host = StringProp(env, opts, "host");
    const uint32_t port = U32Prop(env, opts, "port", 65535);
    const std::string secret = SecretArg(env, opts.Get("secret"));
    key_ = HmacSha256Key(reinterpret_cast<const uint8_t*>(secret.data()), secret.size());
    epoch_.store(U32Prop(env, opts, "epoch"));
    intervalMs_ = NumberProp(env, opts, "intervalMs");
    mainStallMs_ = NumberProp(env, opts, "mainStallMs");
    if (!(intervalMs_ > 0) || !(mainStallMs_ > 0)) ThrowType(env, "intervalMs and mainStallMs must be > 0");
    priority_ = static_cast<int>(U32Prop(env, opts, "rtPriority", 99));
    if (priority_ < 1) ThrowType(env, "rtPriority must be within 1..99");

    SocketAddress local;
    std::string detail;
    if (ResolveAddress(host, static_cast<uint16_t>(port), true, &local, &detail) != 0) {
      Cleanup();
      ThrowType(env, detail);
    }
    fd_ = socket(local.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      const int err = errno;
      Cleanup();
      ThrowSyscall(env, "socket(heartbeat UDP)", err);
    }
    if (bind(fd_, reinterpret_cast<sockaddr*>(&local.storage), local.length) != 0) {
      const int err = errno;
      Cleanup();
      ThrowSyscall(env, "bind(heartbeat UDP " + host + ":" + std::to_string(port) + ")", err);
    }
    sockaddr_storage bound{};
    socklen_t boundLength = sizeof(bound);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&bound), &boundLength);
    port_ = AddressPort(bound);

    int err = events_.wake.Open();
    if (err == 0) err = control_.Open();
    if (err != 0) {
      Cleanup();
      ThrowSyscall(env, "eventfd", err);
    }
    env_ = env;
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    asyncContext_ = std::make_unique<Napi::AsyncContext>(env, "tcp_takeover.HeartbeatBeacon");
    const int uvErr = inbox_.Start(env, events_.wake.fd(), &HeartbeatBeacon::OnInbox, this);
    if (uvErr != 0) {
      Cleanup();
      ThrowSyscall(env, "uv_poll_start", -uvErr);
    }
    err = StartHeartbeatThread(&thread_, &HeartbeatBeacon::ThreadMain, this);
    if (err != 0) {
      Cleanup();
      ThrowSyscall(env, "pthread_create(heartbeat beacon)", err);
    }
    running_ = true;
    napi_add_env_cleanup_hook(env, &HeartbeatBeacon::OnEnvCleanup, this);
    Ref();  // alive while the thread runs, even if JS drops its reference
  }

  ~HeartbeatBeacon() override { Shutdown(false); }

 private:
  // ---- the heartbeat thread: syscalls, atomics and its own memory only ----

  static void* ThreadMain(void* arg) {
    static_cast<HeartbeatBeacon*>(arg)->Run();
    return nullptr;
  }

  void Run() {
    PrefaultHeartbeatStack();
    pthread_setname_np(pthread_self(), "hb-beacon");
    BeaconEvent rt;
    rt.type = BeaconEventType::kRealtime;
    rt.realtime = MakeCallingThreadRealtime(priority_);
    Push(rt);
    double now = MonotonicMs();
    lastTickMs_ = now;
    lastProgressMs_ = now;
    lastLiveness_ = liveness_.load(std::memory_order_relaxed);
    double nextTick = now + intervalMs_;
    pollfd fds[2] = {{fd_, POLLIN, 0}, {control_.fd(), POLLIN, 0}};
    while (!stop_.load(std::memory_order_acquire)) {
      const timespec timeout = TimeoutFromMs(nextTick - MonotonicMs());
      const int n = ppoll(fds, 2, &timeout, nullptr);
      if (n > 0 && fds[1].revents != 0) control_.Drain();
      if (stop_.load(std::memory_order_acquire)) break;
      if (n > 0 && (fds[0].revents & (POLLIN | POLLERR)) != 0) ReadDatagrams();
      now = MonotonicMs();
      if (now >= nextTick) {
        Tick(now);
        nextTick += intervalMs_;
        // Late by more than a period (a pause): one beat now, not a burst to catch up.
        if (nextTick <= now) nextTick = now + intervalMs_;
      }
    }
    // Beats end here (fenced, or stopping): so does this host's promise to the standby.
    if (leaseFd_ < 0 && leaseAttached_.load(std::memory_order_acquire)) leaseFd_ = pendingLeaseFd_;
    if (leaseFd_ >= 0) {
      if (leaseRenewing_ && !leaseFailed_) {
        ssize_t ignored = write(leaseFd_, revocation_.data(), revocation_.size());
        (void)ignored;
      }
      close(leaseFd_);
      leaseFd_ = -1;
      pendingLeaseFd_ = -1;
    }
  }

  void ReadDatagrams() {
    uint8_t buffer[64];
    for (int i = 0; i < kMaxReadsPerWake; i++) {
      sockaddr_storage from{};
      socklen_t fromLength = sizeof(from);
      // MSG_TRUNC: the datagram's real length, however long (the reason names it).
      const ssize_t length =
          recvfrom(fd_, buffer, sizeof(buffer), MSG_DONTWAIT | MSG_TRUNC, reinterpret_cast<sockaddr*>(&from), &fromLength);
      if (length < 0) {
        if (errno == EINTR) continue;
        return;
      }
      HeartbeatDatagram datagram;
      const HeartbeatDecodeError error = DecodeHeartbeat(buffer, static_cast<size_t>(length), key_, &datagram);
      if (error != HeartbeatDecodeError::kNone) {
        BeaconEvent rejected;
        rejected.type = BeaconEventType::kRejected;
        rejected.reason = error;
        rejected.kindCode = datagram.kind;
        rejected.value = static_cast<double>(length);
        rejected.total = rejected_.fetch_add(1, std::memory_order_relaxed) + 1;
        rejected.from = from;
        Push(rejected);
        continue;
      }
      if (datagram.kind != kHeartbeatSubscribe) continue;
      Subscribe(from, fromLength);
    }
  }

  void Subscribe(const sockaddr_storage& from, socklen_t length) {
    const double now = MonotonicMs();
    Subscriber* slot = nullptr;
    Subscriber* free = nullptr;
    for (Subscriber& s : subscribers_) {
      if (s.used && SameAddress(s.address, from)) slot = &s;
      if (!s.used && free == nullptr) free = &s;
    }
    if (slot == nullptr) {
      // A full table (32 standbys with the secret) ignores the newcomer until one expires.
      if (free == nullptr) return;
      slot = free;
      slot->used = true;
      slot->address = from;
      slot->length = length;
      subscriberCount_.fetch_add(1, std::memory_order_relaxed);
      BeaconEvent added;
      added.type = BeaconEventType::kSubscriber;
      added.from = from;
      added.count = subscriberCount_.load(std::memory_order_relaxed);
      Push(added);
    }
    slot->lastSeenMs = now;
    // A subscription is also the standby's port probe: a process whose main thread is stuck
    // must not answer it with a beat, or a hung primary would never be judged dead.
    if (!stalled_) SendBeat(*slot);
  }

  void SendBeat(const Subscriber& to) {
    HeartbeatDatagram beat;
    beat.kind = kHeartbeatBeat;
    beat.epoch = epoch_.load(std::memory_order_relaxed);
    beat.seq = seq_++;
    beat.sentAt = DateNowMs();
    uint8_t bytes[kHeartbeatBytes];
    EncodeHeartbeat(beat, key_, bytes);
    sendto(fd_, bytes, sizeof(bytes), MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&to.address), to.length);
    beatsSent_.fetch_add(1, std::memory_order_relaxed);
  }

  void Tick(double now) {
    // The gap since the previous tick is silence the standby saw (fencing.ts asks: was this
    // process paused long enough to be taken over?).
    const double gap = now - lastTickMs_;
    lastTickMs_ = now;
    lastTickUs_.store(static_cast<int64_t>(now * 1000), std::memory_order_relaxed);
    const int64_t gapUs = static_cast<int64_t>(gap * 1000);
    RaiseTo(maxGapUs_, gapUs);
    RaiseTo(windowGapUs_, gapUs);
    RaiseTo(longestGapUs_, gapUs);

    const uint64_t liveness = liveness_.load(std::memory_order_relaxed);
    if (liveness != lastLiveness_) {
      lastLiveness_ = liveness;
      lastProgressMs_ = now;
      if (stalled_) {
        stalled_ = false;
        BeaconEvent recovered;
        recovered.type = BeaconEventType::kMainRecovered;
        Push(recovered);
      }
    } else if (!stalled_ && now - lastProgressMs_ > mainStallMs_) {
      stalled_ = true;
      BeaconEvent stalledEvent;
      stalledEvent.type = BeaconEventType::kMainStalled;
      stalledEvent.value = now - lastProgressMs_;
      Push(stalledEvent);
    }
    if (stalled_) return;

    RenewLease();
    for (Subscriber& s : subscribers_) {
      if (!s.used) continue;
      if (now - s.lastSeenMs > kSubscriberExpiryMs) {
        s.used = false;
        BeaconEvent gone;
        gone.type = BeaconEventType::kSubscribers;
        gone.count = subscriberCount_.fetch_sub(1, std::memory_order_relaxed) - 1;
        Push(gone);
      } else {
        SendBeat(s);
      }
    }
  }

  void RenewLease() {
    // Attached once by the main thread (attachLease): its fields are written before the flag.
    if (leaseFd_ < 0 && leaseAttached_.load(std::memory_order_acquire)) leaseFd_ = pendingLeaseFd_;
    if (leaseFd_ < 0 || leaseFailed_) return;
    // One line under PIPE_BUF: written whole or not at all. A full pipe (nft has not read the
    // previous renewals) skips this one, as the worker's writableNeedDrain check did.
    const ssize_t written = write(leaseFd_, renewal_.data(), renewal_.size());
    if (written == static_cast<ssize_t>(renewal_.size())) {
      leaseRenewing_ = true;
      return;
    }
    if (written < 0 && (errno == EAGAIN || errno == EINTR)) return;
    leaseFailed_ = true;
    BeaconEvent failed;
    failed.type = BeaconEventType::kLeaseFailed;
    failed.realtime.err = written < 0 ? errno : EIO;
    Push(failed);
  }

  void Push(const BeaconEvent& event) {
    events_.ring.Push(event, event.type == BeaconEventType::kRejected ? kReservedEventSlots : 0);
    events_.wake.Signal();
  }

  // ---- the main thread ----

  static void OnInbox(void* owner) {
    auto* self = static_cast<HeartbeatBeacon*>(owner);
    self->events_.wake.Drain();
    if (self->env_ == nullptr) return;
    Napi::Env env = self->env_;
    Napi::HandleScope scope(env);
    DeliverEvents(
        env, self->events_.ring, self->rejected_, [&](const BeaconEvent& event) { return self->EventToJs(env, event); },
        self->callback_, self->Value(), *self->asyncContext_);
  }

  Napi::Object EventToJs(Napi::Env env, const BeaconEvent& event) {
    if (event.type == BeaconEventType::kRealtime) return RealtimeToJs(env, event.realtime, priority_);
    Napi::Object o = Napi::Object::New(env);
    switch (event.type) {
      case BeaconEventType::kSubscriber:
        o.Set("type", "subscriber");
        o.Set("address", AddressText(event.from));
        o.Set("port", Napi::Number::New(env, AddressPort(event.from)));
        o.Set("count", Napi::Number::New(env, event.count));
        break;
      case BeaconEventType::kSubscribers:
        o.Set("type", "subscribers");
        o.Set("count", Napi::Number::New(env, event.count));
        break;
      case BeaconEventType::kMainStalled:
        o.Set("type", "main-stalled");
        o.Set("stalledMs", Napi::Number::New(env, std::round(event.value)));
        break;
      case BeaconEventType::kMainRecovered:
        o.Set("type", "main-recovered");
        break;
      case BeaconEventType::kRejected:
        o.Set("type", "rejected");
        o.Set("address", AddressText(event.from));
        o.Set("port", Napi::Number::New(env, AddressPort(event.from)));
        o.Set("reason", DecodeErrorName(event.reason));
        o.Set("length", Napi::Number::New(env, event.value));
        o.Set("kind", Napi::Number::New(env, event.kindCode));
        o.Set("total", Napi::Number::New(env, static_cast<double>(event.total)));
        break;
      case BeaconEventType::kLeaseFailed: {
        o.Set("type", "lease-failed");
        const char* name = strerrorname_np(event.realtime.err);
        o.Set("errnoName", name != nullptr ? name : "UNKNOWN");
        o.Set("message", std::strerror(event.realtime.err));
        break;
      }
      case BeaconEventType::kRealtime:
        break;
    }
    return o;
  }

  // attachLease({ fd, renewal, revocation }): from now on every beat writes `renewal` to fd (the
  // write end of `nft -i`'s stdin, non-blocking), and the thread's end writes `revocation`. Once.
  Napi::Value AttachLease(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) ThrowType(env, "attachLease({ fd, renewal, revocation })");
    if (!running_ || leaseAttached_.load()) ThrowType(env, "attachLease: the beacon is closed or already has a lease");
    const Napi::Object l = info[0].As<Napi::Object>();
    renewal_ = StringProp(env, l, "renewal");
    revocation_ = StringProp(env, l, "revocation");
    if (renewal_.size() > 4096 || revocation_.size() > 4096) ThrowType(env, "attachLease: lines must fit in PIPE_BUF");
    // Our own copy of the pipe's write end: the lease's owner closes its own.
    pendingLeaseFd_ = fcntl(static_cast<int>(U32Prop(env, l, "fd", 0x7fffffff)), F_DUPFD_CLOEXEC, 0);
    if (pendingLeaseFd_ < 0) ThrowSyscall(env, "dup(kernel lease pipe)", errno);
    leaseAttached_.store(true, std::memory_order_release);
    return env.Undefined();
  }

  Napi::Value Touch(const Napi::CallbackInfo& info) {
    liveness_.fetch_add(1, std::memory_order_relaxed);
    return info.Env().Undefined();
  }

  Napi::Value SetEpoch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) ThrowType(env, "setEpoch(epoch: number)");
    const double epoch = info[0].As<Napi::Number>().DoubleValue();
    if (!(epoch >= 0 && epoch <= 4294967295.0)) ThrowType(env, "epoch must be a u32");
    epoch_.store(static_cast<uint32_t>(epoch), std::memory_order_relaxed);
    return env.Undefined();
  }

  // { sinceTickMs, maxGapMs } (the longest gap is reset), or null before the first tick.
  Napi::Value Pauses(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int64_t last = lastTickUs_.load(std::memory_order_relaxed);
    if (!running_ || last == 0) return env.Null();
    const double since = MonotonicMs() - static_cast<double>(last) / 1000;
    const double maxGap = static_cast<double>(maxGapUs_.exchange(0, std::memory_order_relaxed)) / 1000;
    Napi::Object out = Napi::Object::New(env);
    out.Set("sinceTickMs", Napi::Number::New(env, std::round(since * 10) / 10));
    out.Set("maxGapMs", Napi::Number::New(env, std::round(maxGap * 10) / 10));
    return out;
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    out.Set("subscribers", Napi::Number::New(env, subscriberCount_.load(std::memory_order_relaxed)));
    out.Set("rejected", Napi::Number::New(env, static_cast<double>(rejected_.load(std::memory_order_relaxed))));
    out.Set("beatsSent", Napi::Number::New(env, static_cast<double>(beatsSent_.load(std::memory_order_relaxed))));
    out.Set("longestGapMs", Napi::Number::New(env, std::round(static_cast<double>(longestGapUs_.load(std::memory_order_relaxed)) / 100) / 10));
    return out;
  }

  // The longest gap between two ticks since the previous call (reset), ms: for a periodic report.
  Napi::Value TakeWindowGap(const Napi::CallbackInfo& info) {
    const double gap = static_cast<double>(windowGapUs_.exchange(0, std::memory_order_relaxed)) / 1000;
    return Napi::Number::New(info.Env(), std::round(gap * 10) / 10);
  }

  Napi::Value Port(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), port_); }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown(true);
    return info.Env().Undefined();
  }

  // Stops the thread (it revokes the lease on its way out) and releases everything; idempotent.
  void Shutdown(bool fromJs) {
    if (running_) {
      stop_.store(true, std::memory_order_release);
      control_.Signal();
      pthread_join(thread_, nullptr);
      running_ = false;
      if (env_ != nullptr) napi_remove_env_cleanup_hook(env_, &HeartbeatBeacon::OnEnvCleanup, this);
      Cleanup();
      if (fromJs) {
        callback_.Reset();
        Unref();
      }
    }
  }

  // Releases what the constructor set up (also on its failure paths).
  void Cleanup() {
    inbox_.Close();
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    if (leaseFd_ >= 0) close(leaseFd_);
    else if (pendingLeaseFd_ >= 0) close(pendingLeaseFd_);
    leaseFd_ = pendingLeaseFd_ = -1;
    events_.wake.Close();
    control_.Close();
  }

  static void OnEnvCleanup(void* arg) {
    auto* self = static_cast<HeartbeatBeacon*>(arg);
    self->env_ = nullptr;  // the hook is being run: do not remove it again
    self->Shutdown(false);
  }

  // Set before the thread starts, read-only afterwards.
  HmacSha256Key key_;
  double intervalMs_ = 10;
  double mainStallMs_ = 3000;
  int priority_ = 99;
  int fd_ = -1;
  uint16_t port_ = 0;
  // The kernel lease, written by attachLease() before leaseAttached_ is set, read-only afterwards.
  std::string renewal_;
  std::string revocation_;
  int pendingLeaseFd_ = -1;
  std::atomic<bool> leaseAttached_{false};
  // Shared: the main thread writes, the heartbeat thread reads, or the other way round.
  std::atomic<uint32_t> epoch_{0};
  std::atomic<uint64_t> liveness_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> lastTickUs_{0};
  // Longest gap between ticks: since fencing last asked (pauses()), since the last report, since start.
  std::atomic<int64_t> maxGapUs_{0};
  std::atomic<int64_t> windowGapUs_{0};
  std::atomic<int64_t> longestGapUs_{0};
  std::atomic<uint64_t> rejected_{0};
  std::atomic<uint64_t> beatsSent_{0};
  std::atomic<uint32_t> subscriberCount_{0};
  struct {
    SpscRing<BeaconEvent, kEventRing> ring;
    Wakeup wake;
  } events_;
  Wakeup control_;
  // The heartbeat thread's own.
  Subscriber subscribers_[kMaxSubscribers];
  uint32_t seq_ = 0;
  double lastTickMs_ = 0;
  double lastProgressMs_ = 0;
  uint64_t lastLiveness_ = 0;
  bool stalled_ = false;
  int leaseFd_ = -1;
  bool leaseRenewing_ = false;
  bool leaseFailed_ = false;
  // The main thread's.
  pthread_t thread_{};
  bool running_ = false;
  napi_env env_ = nullptr;
  MainThreadInbox inbox_;
  Napi::FunctionReference callback_;
  std::unique_ptr<Napi::AsyncContext> asyncContext_;
};

}  // namespace

void InitHeartbeatBeacon(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeHeartbeatBeacon", HeartbeatBeacon::Define(env));
}

}  // namespace tkt
