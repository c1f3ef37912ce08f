// The judge of the standby's heartbeat thread: whether the primary is dead, and why. Pure: no
// I/O, no clock of its own, no allocation; every input carries its time (epoch ms) and returns
// what follows from it. The monitor thread (heartbeat_monitor.cc) does the I/O; the addon also
// exposes it to JavaScript (NativeFailureDetector, wrapped by mcu/src/detection/failure-detector.ts)
// so that its rules are unit-tested on a fake clock (test/unit/failure-detector.test.ts).
//
//   waiting   --beat-->                                        alive
//   alive     --silence > missed-beats window-->               suspected (missed-beats)
//   waiting, alive, suspected --stream ended, no goodbye-->    suspected (channel-closed)
//   suspected --beat-->                                        alive (a near miss if beats were missed)
//   alive, suspected --silence > window + confirm window-->    dead (heartbeat-timeout)
//   alive, suspected --port unreachable-->                     dead (port-unreachable)
//   suspected --host silent past the probe timeout-->          dead (host-unreachable)
//   waiting, alive, suspected --stream ended with a goodbye--> stopped (never dead)
//   dead, stopped: final.
//
// Port unreachable before any beat counts only once the stream ended (the owner said so):
// before, it is a primary still starting.
#pragma once

#include <cstdint>

namespace tkt {

struct DetectorSettings {
  // Expected beat period, ms.
  double intervalMs = 10;
  // Suspected after this many periods without a beat.
  uint32_t missedBeats = 3;
  // Wait after the missed beats before the verdict, ms.
  double confirmMs = 90;
  // Once beats are missed, a host silent this long after a SYN is dead; not above 0: no host probe.
  double hostProbeTimeoutMs = 20;
};

enum class DetectorState : uint8_t { kWaiting, kAlive, kSuspected, kDead, kStopped };
enum class DeathReason : uint8_t { kHeartbeatTimeout, kPortUnreachable, kHostUnreachable };
enum class SuspicionCause : uint8_t { kMissedBeats, kChannelClosed };

struct Verdict {
  DeathReason reason = DeathReason::kHeartbeatTimeout;
  bool hasLastBeat = false;
  double lastBeatAt = 0;
  double detectedAt = 0;
};

enum class DetectorOutputType : uint8_t {
  kFirstBeat,   // at
  kSuspected,   // cause, at, silenceMs (hasSilence false: no beat yet)
  kLateBeat,    // silenceMs, at: a beat after more than the missed-beats window (a near miss)
  kSelfPause,   // silenceMs (the pause), at: the judging thread was not scheduled
  kProbePort,   // ask the primary's heartbeat port (a subscription)
  kProbeHost,   // silentSince, timeoutMs: a SYN to the primary's host
  kHostProbe,   // usable, hasMs, ms: the start-up host probe's result
  kDead,        // verdict
};

struct DetectorOutput {
  DetectorOutputType type = DetectorOutputType::kProbePort;
  SuspicionCause cause = SuspicionCause::kMissedBeats;
  bool hasSilence = false;
  bool usable = false;
  bool hasMs = false;
  double at = 0;
  double silenceMs = 0;
  double silentSince = 0;
  double timeoutMs = 0;
  double ms = 0;
  Verdict verdict;
};

// What one input leads to: at most three outputs (suspected, probe-port, probe-host).
struct DetectorOutputs {
  static constexpr int kCapacity = 4;
  DetectorOutput items[kCapacity];
  int count = 0;
  DetectorOutput& Add(DetectorOutputType type) {
    DetectorOutput& out = items[count < kCapacity ? count++ : kCapacity - 1];
    out = DetectorOutput{};
    out.type = type;
    return out;
  }
};

// A live host's kernel answers a SYN in well under a millisecond: the start-up probe waits this long.
constexpr double kHostProbeCalibrationTimeoutMs = 1000;

class FailureDetector {
 public:
  // `startedAt`: when the owner starts ticking (the first tick's gap is measured from it).
  FailureDetector(const DetectorSettings& settings, double startedAt);

  double intervalMs() const { return settings_.intervalMs; }
  uint32_t missedBeats() const { return settings_.missedBeats; }
  double confirmMs() const { return settings_.confirmMs; }
  double hostProbeTimeoutMs() const { return settings_.hostProbeTimeoutMs; }
  // Silence that makes a suspicion: intervalMs x missedBeats.
  double timeoutMs() const { return timeoutMs_; }
  // How often the owner calls Tick().
  double judgeEveryMs() const { return judgeEveryMs_; }
  // A gap between two ticks longer than this is a pause of the judging thread itself.
  double selfPauseMs() const { return selfPauseMs_; }
  bool hostProbeEnabled() const { return settings_.hostProbeTimeoutMs > 0; }
  DetectorState state() const { return state_; }
  bool hasLastBeat() const { return hasLastBeat_; }
  double lastBeatAt() const { return lastBeatAt_; }
  bool hasVerdict() const { return state_ == DetectorState::kDead; }
  const Verdict& verdict() const { return verdict_; }

  // A verified beat of an acceptable epoch.
  void Beat(double now, DetectorOutputs* out);
  // Called every judgeEveryMs.
  void Tick(double now, DetectorOutputs* out);
  // The primary's host answered a port probe with ICMP port unreachable.
  void PortUnreachable(double now, DetectorOutputs* out);
  // The answer to a kProbeHost for the silence since `silentSince`.
  void HostProbed(double silentSince, bool answered, double now, DetectorOutputs* out);
  // The start-up host probe: answered in `ms` (hasMs false: not within kHostProbeCalibrationTimeoutMs).
  void HostProbeCalibrated(bool hasMs, double ms, DetectorOutputs* out);
  // The replication stream ended: `deliberate` when the primary said goodbye.
  void ChannelClosed(bool deliberate, double now, DetectorOutputs* out);

 private:
  bool Final() const { return state_ == DetectorState::kDead || state_ == DetectorState::kStopped; }
  void Die(DeathReason reason, double now, DetectorOutputs* out);

  DetectorSettings settings_;
  double timeoutMs_;
  double judgeEveryMs_;
  double selfPauseMs_;
  DetectorState state_ = DetectorState::kWaiting;
  bool hasLastBeat_ = false;
  double lastBeatAt_ = 0;
  double lastTickAt_;
  Verdict verdict_;
  // Set once the stream ended without a goodbye: port unreachable is a verdict even before any beat.
  bool streamLost_ = false;
  // Set when the start-up probe showed the host answers fast: only then does its silence count.
  bool hostProbeUsable_ = false;
  // The silence (by its last beat) already given its early port probe, and its host probe.
  bool hasEarlyProbeFor_ = false;
  double earlyProbeFor_ = 0;
  bool hasHostProbeFor_ = false;
  double hostProbeFor_ = 0;
};

}  // namespace tkt
