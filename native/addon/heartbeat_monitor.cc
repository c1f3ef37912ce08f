// The standby's heartbeat thread (NativeHeartbeatMonitor; typed by mcu/src/detection/heartbeat-monitor.ts).
//
// A native pthread at SCHED_FIFO that subscribes to the primary's beats over UDP and feeds them,
// its own ticks and the answers to its probes to the FailureDetector (failure_detector.h), which
// judges on this thread's clock whatever the main thread is doing. Probes:
// - port probe: a subscription on the connected UDP socket. A live beacon answers with a beat;
//   the host of a dead one with ICMP port unreachable (ECONNREFUSED here) within a millisecond;
// - host probe: a TCP SYN to a closed port of the primary's host. Its kernel answers at once with
//   a RST whatever its processes are doing: silence there is a host or link down.
// The verdict and the rest reach JavaScript through a lock-free ring (heartbeat_thread.h).
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
#include "failure_detector.h"
#include "heartbeat_thread.h"
#include "heartbeat_wire.h"

namespace tkt {

Napi::Object DetectorOutputToJs(Napi::Env env, const DetectorOutput& out);

namespace {

constexpr int kMaxReadsPerWake = 64;
constexpr size_t kEventRing = 1024;
// Host probes in flight at most (one per silence, and the start-up one).
constexpr int kMaxHostProbes = 4;
// Subscriptions: every 100 ms until the first beat, then every second.
constexpr double kSubscribeEveryMs = 100;
constexpr uint32_t kSubscribeRenewTicks = 10;

enum class MonitorEventType : uint8_t { kRealtime, kDetector, kFirstBeat, kRejected };
// Why the monitor refused a datagram: the wire's reasons, then its own.
enum class MonitorRejection : uint8_t { kLength, kMagic, kMac, kKind, kNotABeat, kStaleEpoch };

struct MonitorEvent {
  MonitorEventType type = MonitorEventType::kRealtime;
  MonitorRejection rejection = MonitorRejection::kLength;
  uint8_t kindCode = 0;
  uint32_t epoch = 0;
  uint64_t total = 0;
  double length = 0;
  RealtimeResult realtime;
  DetectorOutput output;
};

enum class MonitorCommandType : uint8_t { kChannelClosed, kSubscribeNow };
struct MonitorCommand {
  MonitorCommandType type = MonitorCommandType::kSubscribeNow;
  bool deliberate = false;
};

struct HostProbe {
  bool active = false;
  bool calibration = false;
  int fd = -1;
  double silentSince = 0;
  double startedMs = 0;
  double deadlineMs = 0;
};

timespec TimeoutFromMs(double ms) {
  if (ms < 0) ms = 0;
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ms / 1000);
  ts.tv_nsec = static_cast<long>((ms - static_cast<double>(ts.tv_sec) * 1000) * 1e6);
  return ts;
}

const char* RejectionName(MonitorRejection r) {
  switch (r) {
    case MonitorRejection::kLength:
      return "length";
    case MonitorRejection::kMagic:
      return "magic";
    case MonitorRejection::kMac:
      return "mac";
    case MonitorRejection::kKind:
      return "kind";
    case MonitorRejection::kNotABeat:
      return "not-a-beat";
    case MonitorRejection::kStaleEpoch:
      return "stale-epoch";
  }
  return "unknown";
}

void RaiseTo(std::atomic<int64_t>& max, int64_t value) {
  int64_t current = max.load(std::memory_order_relaxed);
  while (value > current && !max.compare_exchange_weak(current, value, std::memory_order_relaxed)) {
  }
}

DetectorSettings SettingsArg(Napi::Env env, const Napi::Object& obj) {
  DetectorSettings s;
  s.intervalMs = NumberProp(env, obj, "intervalMs");
  s.missedBeats = U32Prop(env, obj, "missedBeats");
  s.confirmMs = NumberProp(env, obj, "confirmMs");
  // NaN is allowed here (not above 0: no host probe).
  Napi::Value probe = obj.Get("hostProbeTimeoutMs");
  if (!probe.IsNumber()) ThrowType(env, "hostProbeTimeoutMs must be a number");
  s.hostProbeTimeoutMs = probe.As<Napi::Number>().DoubleValue();
  if (!(s.intervalMs > 0) || s.missedBeats < 1 || !(s.confirmMs >= 0)) {
    ThrowType(env, "detector settings: intervalMs > 0, missedBeats >= 1, confirmMs >= 0");
  }
  return s;
}

class HeartbeatMonitor : public Napi::ObjectWrap<HeartbeatMonitor> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeHeartbeatMonitor",
                       {
                           InstanceMethod("channelClosed", &HeartbeatMonitor::ChannelClosed),
                           InstanceMethod("subscribeNow", &HeartbeatMonitor::SubscribeNow),
                           InstanceMethod("stats", &HeartbeatMonitor::Stats),
                           InstanceMethod("takeWindowGap", &HeartbeatMonitor::TakeWindowGap),
                           InstanceMethod("close", &HeartbeatMonitor::Close),
                       });
  }

  // new NativeHeartbeatMonitor({ host, port, secret, minEpoch, rtPriority, hostProbePort,
  //   detector: { intervalMs, missedBeats, confirmMs, hostProbeTimeoutMs } }, onEvents)
  explicit HeartbeatMonitor(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<HeartbeatMonitor>(info),
        key_(reinterpret_cast<const uint8_t*>(""), 0),
        judge_(DetectorSettings{}, 0) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
      ThrowType(env, "NativeHeartbeatMonitor(options: object, onEvents: function)");
    }
    const Napi::Object opts = info[0].As<Napi::Object>();
    const std::string host = StringProp(env, opts, "host");
    const uint32_t port = U32Prop(env, opts, "port", 65535);
    const std::string secret = SecretArg(env, opts.Get("secret"));
    key_ = HmacSha256Key(reinterpret_cast<const uint8_t*>(secret.data()), secret.size());
    minEpoch_ = U32Prop(env, opts, "minEpoch");
    priority_ = static_cast<int>(U32Prop(env, opts, "rtPriority", 99));
    if (priority_ < 1) ThrowType(env, "rtPriority must be within 1..99");
    const uint32_t probePort = U32Prop(env, opts, "hostProbePort", 65535);
    const Napi::Value detector = opts.Get("detector");
    if (!detector.IsObject()) ThrowType(env, "detector must be an object");
    settings_ = SettingsArg(env, detector.As<Napi::Object>());

    std::string detail;
    if (ResolveAddress(host, static_cast<uint16_t>(port), false, &primary_, &detail) != 0) ThrowType(env, detail);
    if (ResolveAddress(host, static_cast<uint16_t>(probePort), false, &probeAddress_, &detail) != 0) ThrowType(env, detail);
    fd_ = socket(primary_.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) ThrowSyscall(env, "socket(heartbeat UDP)", errno);
    // Connected: only the primary's datagrams reach us, and its host's ICMP errors come back as ECONNREFUSED.
    if (connect(fd_, reinterpret_cast<sockaddr*>(&primary_.storage), primary_.length) != 0) {
      const int err = errno;
      Cleanup();
      ThrowSyscall(env, "connect(heartbeat UDP " + host + ":" + std::to_string(port) + ")", err);
    }
    int err = events_.wake.Open();
    if (err == 0) err = control_.Open();
    if (err != 0) {
      Cleanup();
      ThrowSyscall(env, "eventfd", err);
    }
    env_ = env;
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    asyncContext_ = std::make_unique<Napi::AsyncContext>(env, "tcp_takeover.HeartbeatMonitor");
    const int uvErr = inbox_.Start(env, events_.wake.fd(), &HeartbeatMonitor::OnInbox, this);
    if (uvErr != 0) {
      Cleanup();
      ThrowSyscall(env, "uv_poll_start", -uvErr);
    }
    err = StartHeartbeatThread(&thread_, &HeartbeatMonitor::ThreadMain, this);
    if (err != 0) {
      Cleanup();
      ThrowSyscall(env, "pthread_create(heartbeat monitor)", err);
    }
    running_ = true;
    napi_add_env_cleanup_hook(env, &HeartbeatMonitor::OnEnvCleanup, this);
    Ref();
  }

  ~HeartbeatMonitor() override { Shutdown(false); }

 private:
  // ---- the heartbeat thread: syscalls, atomics and its own memory only ----

  static void* ThreadMain(void* arg) {
    static_cast<HeartbeatMonitor*>(arg)->Run();
    return nullptr;
  }

  void Run() {
    PrefaultHeartbeatStack();
    pthread_setname_np(pthread_self(), "hb-monitor");
    MonitorEvent rt;
    rt.type = MonitorEventType::kRealtime;
    rt.realtime = MakeCallingThreadRealtime(priority_);
    Push(rt);
    // Judging starts now.
    judge_ = FailureDetector(settings_, DateNowMs());
    Subscribe();
    if (judge_.hostProbeEnabled()) StartHostProbe(true, 0, kHostProbeCalibrationTimeoutMs);
    double now = MonotonicMs();
    double nextJudge = now + judge_.judgeEveryMs();
    double nextSubscribe = now + kSubscribeEveryMs;
    pollfd fds[2 + kMaxHostProbes];
    while (!stop_.load(std::memory_order_acquire)) {
      double deadline = nextJudge < nextSubscribe ? nextJudge : nextSubscribe;
      nfds_t n = 0;
      fds[n++] = {fd_, POLLIN, 0};
      fds[n++] = {control_.fd(), POLLIN, 0};
      int probeAt[kMaxHostProbes];
      for (int i = 0; i < kMaxHostProbes; i++) {
        probeAt[i] = -1;
        if (!probes_[i].active) continue;
        probeAt[i] = static_cast<int>(n);
        fds[n++] = {probes_[i].fd, POLLOUT, 0};
        if (probes_[i].deadlineMs < deadline) deadline = probes_[i].deadlineMs;
      }
      const timespec timeout = TimeoutFromMs(deadline - MonotonicMs());
      const int ready = ppoll(fds, n, &timeout, nullptr);
      if (ready > 0 && fds[1].revents != 0) {
        control_.Drain();
        RunCommands();
      }
      if (stop_.load(std::memory_order_acquire)) break;
      // Datagrams first: beats that came during a pause are read before that pause is judged.
      if (ready > 0 && fds[0].revents != 0) ReadDatagrams();
      now = MonotonicMs();
      for (int i = 0; i < kMaxHostProbes; i++) {
        if (!probes_[i].active) continue;
        const short revents = probeAt[i] >= 0 && ready > 0 ? fds[probeAt[i]].revents : 0;
        if (revents != 0) {
          int soError = 0;
          socklen_t len = sizeof(soError);
          getsockopt(probes_[i].fd, SOL_SOCKET, SO_ERROR, &soError, &len);
          FinishHostProbe(&probes_[i], soError == 0 || soError == ECONNREFUSED || soError == ECONNRESET);
        } else if (now >= probes_[i].deadlineMs) {
          FinishHostProbe(&probes_[i], false);
        }
      }
      now = MonotonicMs();
      if (now >= nextJudge) {
        DetectorOutputs outs;
        judge_.Tick(DateNowMs(), &outs);
        Act(outs);
        nextJudge += judge_.judgeEveryMs();
        if (nextJudge <= now) nextJudge = now + judge_.judgeEveryMs();
      }
      if (now >= nextSubscribe) {
        // Often until the first beat, then renewed every second.
        if (!judge_.hasLastBeat() || seq_ % kSubscribeRenewTicks == 0) Subscribe();
        else seq_++;
        nextSubscribe += kSubscribeEveryMs;
        if (nextSubscribe <= now) nextSubscribe = now + kSubscribeEveryMs;
      }
    }
    for (HostProbe& p : probes_) {
      if (p.active) close(p.fd);
      p.active = false;
    }
  }

  void RunCommands() {
    MonitorCommand command;
    while (commands_.Pop(&command)) {
      if (command.type == MonitorCommandType::kSubscribeNow) {
        Subscribe();
      } else {
        DetectorOutputs outs;
        judge_.ChannelClosed(command.deliberate, DateNowMs(), &outs);
        Act(outs);
      }
    }
  }

  void ReadDatagrams() {
    uint8_t buffer[64];
    for (int i = 0; i < kMaxReadsPerWake; i++) {
      const ssize_t length = recv(fd_, buffer, sizeof(buffer), MSG_DONTWAIT | MSG_TRUNC);
      if (length < 0) {
        if (errno == EINTR) continue;
        // On a connected UDP socket an ICMP port unreachable comes back as ECONNREFUSED: the
        // primary's host is up but nothing listens on its heartbeat port any more.
        if (errno == ECONNREFUSED) {
          DetectorOutputs outs;
          judge_.PortUnreachable(DateNowMs(), &outs);
          Act(outs);
          continue;
        }
        return;
      }
      HeartbeatDatagram datagram;
      const HeartbeatDecodeError error = DecodeHeartbeat(buffer, static_cast<size_t>(length), key_, &datagram);
      if (error != HeartbeatDecodeError::kNone) {
        Reject(static_cast<MonitorRejection>(static_cast<uint8_t>(error) - 1), datagram, length);
        continue;
      }
      if (datagram.kind != kHeartbeatBeat) {
        Reject(MonitorRejection::kNotABeat, datagram, length);
        continue;
      }
      if (datagram.epoch < minEpoch_) {
        Reject(MonitorRejection::kStaleEpoch, datagram, length);
        continue;
      }
      const double now = DateNowMs();
      const double arrived = MonotonicMs();
      if (lastBeatMono_ > 0) {
        // The silence the judge saw between two beats, on the monotonic clock.
        const int64_t gapUs = static_cast<int64_t>((arrived - lastBeatMono_) * 1000);
        RaiseTo(windowGapUs_, gapUs);
        RaiseTo(longestGapUs_, gapUs);
      }
      lastBeatMono_ = arrived;
      beats_.fetch_add(1, std::memory_order_relaxed);
      DetectorOutputs outs;
      judge_.Beat(now, &outs);
      // The judge's last beat: frozen once it gave a verdict.
      if (judge_.hasLastBeat()) lastBeatAt_.store(static_cast<int64_t>(judge_.lastBeatAt()), std::memory_order_relaxed);
      Act(outs, datagram.epoch);
    }
  }

  void Reject(MonitorRejection why, const HeartbeatDatagram& datagram, ssize_t length) {
    MonitorEvent event;
    event.type = MonitorEventType::kRejected;
    event.rejection = why;
    event.kindCode = datagram.kind;
    event.epoch = datagram.epoch;
    event.length = static_cast<double>(length);
    event.total = rejected_.fetch_add(1, std::memory_order_relaxed) + 1;
    Push(event);
  }

  // Carries out what the judge asks and reports the rest (`epoch`: of the beat fed, for first-beat).
  void Act(const DetectorOutputs& outs, uint32_t epoch = 0) {
    for (int i = 0; i < outs.count; i++) {
      const DetectorOutput& out = outs.items[i];
      if (out.type == DetectorOutputType::kProbePort) {
        Subscribe();
      } else if (out.type == DetectorOutputType::kProbeHost) {
        StartHostProbe(false, out.silentSince, out.timeoutMs);
      } else {
        MonitorEvent event;
        event.type = out.type == DetectorOutputType::kFirstBeat ? MonitorEventType::kFirstBeat : MonitorEventType::kDetector;
        event.output = out;
        event.epoch = epoch;
        Push(event);
      }
    }
  }

  void Subscribe() {
    if (judge_.hasVerdict() || stop_.load(std::memory_order_relaxed)) return;
    HeartbeatDatagram subscription;
    subscription.kind = kHeartbeatSubscribe;
    subscription.epoch = minEpoch_;
    subscription.seq = seq_++;
    subscription.sentAt = DateNowMs();
    uint8_t bytes[kHeartbeatBytes];
    EncodeHeartbeat(subscription, key_, bytes);
    if (send(fd_, bytes, sizeof(bytes), MSG_DONTWAIT) < 0 && errno == ECONNREFUSED) {
      DetectorOutputs outs;
      judge_.PortUnreachable(DateNowMs(), &outs);
      Act(outs);
    }
  }

  void StartHostProbe(bool calibration, double silentSince, double timeoutMs) {
    HostProbe* probe = nullptr;
    for (HostProbe& p : probes_) {
      if (!p.active) {
        probe = &p;
        break;
      }
    }
    // All slots busy: no answer from this probe, so no host-unreachable verdict from it (the
    // confirm window still judges).
    if (probe == nullptr) return;
    probe->calibration = calibration;
    probe->silentSince = silentSince;
    probe->startedMs = MonotonicMs();
    probe->deadlineMs = probe->startedMs + timeoutMs;
    probe->fd = socket(probeAddress_.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (probe->fd < 0) {
      FinishHostProbe(probe, false);
      return;
    }
    probe->active = true;
    if (connect(probe->fd, reinterpret_cast<sockaddr*>(&probeAddress_.storage), probeAddress_.length) == 0) {
      FinishHostProbe(probe, true);
    } else if (errno != EINPROGRESS) {
      FinishHostProbe(probe, errno == ECONNREFUSED || errno == ECONNRESET);
    }
  }

  void FinishHostProbe(HostProbe* probe, bool answered) {
    if (probe->fd >= 0) close(probe->fd);
    probe->fd = -1;
    probe->active = false;
    DetectorOutputs outs;
    if (probe->calibration) {
      const double ms = std::round((MonotonicMs() - probe->startedMs) * 10) / 10;
      judge_.HostProbeCalibrated(answered, ms, &outs);
    } else {
      judge_.HostProbed(probe->silentSince, answered, DateNowMs(), &outs);
    }
    Act(outs);
  }

  void Push(const MonitorEvent& event) {
    events_.ring.Push(event, event.type == MonitorEventType::kRejected ? kReservedEventSlots : 0);
    events_.wake.Signal();
  }

  // ---- the main thread ----

  static void OnInbox(void* owner) {
    auto* self = static_cast<HeartbeatMonitor*>(owner);
    self->events_.wake.Drain();
    if (self->env_ == nullptr) return;
    Napi::Env env = self->env_;
    Napi::HandleScope scope(env);
    DeliverEvents(
        env, self->events_.ring, self->rejected_, [&](const MonitorEvent& event) { return self->EventToJs(env, event); },
        self->callback_, self->Value(), *self->asyncContext_);
  }

  Napi::Object EventToJs(Napi::Env env, const MonitorEvent& event) {
    switch (event.type) {
      case MonitorEventType::kRealtime:
        return RealtimeToJs(env, event.realtime, priority_);
      case MonitorEventType::kFirstBeat: {
        Napi::Object o = DetectorOutputToJs(env, event.output);
        o.Set("epoch", Napi::Number::New(env, event.epoch));
        return o;
      }
      case MonitorEventType::kDetector:
        return DetectorOutputToJs(env, event.output);
      case MonitorEventType::kRejected:
        break;
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("type", "rejected");
    o.Set("reason", RejectionName(event.rejection));
    o.Set("length", Napi::Number::New(env, event.length));
    o.Set("kind", Napi::Number::New(env, event.kindCode));
    o.Set("epoch", Napi::Number::New(env, event.epoch));
    o.Set("minEpoch", Napi::Number::New(env, minEpoch_));
    o.Set("total", Napi::Number::New(env, static_cast<double>(event.total)));
    return o;
  }

  void Command(const MonitorCommand& command) {
    if (!running_) return;
    commands_.Push(command);
    control_.Signal();
  }

  Napi::Value ChannelClosed(const Napi::CallbackInfo& info) {
    MonitorCommand command;
    command.type = MonitorCommandType::kChannelClosed;
    command.deliberate = info.Length() > 0 && info[0].ToBoolean().Value();
    Command(command);
    return info.Env().Undefined();
  }

  Napi::Value SubscribeNow(const Napi::CallbackInfo& info) {
    Command(MonitorCommand{});
    return info.Env().Undefined();
  }

  // { beats, rejected, lastBeatAt: epoch ms | null }
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    out.Set("beats", Napi::Number::New(env, static_cast<double>(beats_.load(std::memory_order_relaxed))));
    out.Set("rejected", Napi::Number::New(env, static_cast<double>(rejected_.load(std::memory_order_relaxed))));
    const int64_t last = lastBeatAt_.load(std::memory_order_relaxed);
    out.Set("lastBeatAt", last < 0 ? env.Null() : Napi::Number::New(env, static_cast<double>(last)));
    out.Set("longestGapMs", Napi::Number::New(env, std::round(static_cast<double>(longestGapUs_.load(std::memory_order_relaxed)) / 100) / 10));
    return out;
  }

  // The longest silence between two beats since the previous call (reset), ms: for a periodic report.
  Napi::Value TakeWindowGap(const Napi::CallbackInfo& info) {
    const double gap = static_cast<double>(windowGapUs_.exchange(0, std::memory_order_relaxed)) / 1000;
    return Napi::Number::New(info.Env(), std::round(gap * 10) / 10);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown(true);
    return info.Env().Undefined();
  }

  void Shutdown(bool fromJs) {
    if (running_) {
      stop_.store(true, std::memory_order_release);
      control_.Signal();
      pthread_join(thread_, nullptr);
      running_ = false;
      if (env_ != nullptr) napi_remove_env_cleanup_hook(env_, &HeartbeatMonitor::OnEnvCleanup, this);
      Cleanup();
      if (fromJs) {
        callback_.Reset();
        Unref();
      }
    }
  }

  void Cleanup() {
    inbox_.Close();
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    events_.wake.Close();
    control_.Close();
  }

  static void OnEnvCleanup(void* arg) {
    auto* self = static_cast<HeartbeatMonitor*>(arg);
    self->env_ = nullptr;
    self->Shutdown(false);
  }

  // Set before the thread starts, read-only afterwards.
  HmacSha256Key key_;
  DetectorSettings settings_;
  SocketAddress primary_;
  SocketAddress probeAddress_;
  uint32_t minEpoch_ = 0;
  int priority_ = 99;
  int fd_ = -1;
  // Shared.
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> beats_{0};
  std::atomic<uint64_t> rejected_{0};
  std::atomic<int64_t> lastBeatAt_{-1};
  // Longest silence between two beats: since the last report, since start (microseconds).
  std::atomic<int64_t> windowGapUs_{0};
  std::atomic<int64_t> longestGapUs_{0};
  struct {
    SpscRing<MonitorEvent, kEventRing> ring;
    Wakeup wake;
  } events_;
  SpscRing<MonitorCommand, 64> commands_;
  Wakeup control_;
  // The heartbeat thread's own.
  FailureDetector judge_;
  HostProbe probes_[kMaxHostProbes];
  uint32_t seq_ = 0;
  double lastBeatMono_ = 0;
  // The main thread's.
  pthread_t thread_{};
  bool running_ = false;
  napi_env env_ = nullptr;
  MainThreadInbox inbox_;
  Napi::FunctionReference callback_;
  std::unique_ptr<Napi::AsyncContext> asyncContext_;
};

}  // namespace

void InitHeartbeatMonitor(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeHeartbeatMonitor", HeartbeatMonitor::Define(env));
}

}  // namespace tkt
