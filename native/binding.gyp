{
  "targets": [
    {
      "target_name": "tcp_takeover",
      "sources": [
        "addon/addon.cc",
        "addon/syscall_error.cc",
        "addon/tcp_repair.cc",
        "addon/packet_capture.cc",
        "addon/thread_sched.cc",
        "addon/hmac_sha256.cc",
        "addon/heartbeat_wire.cc",
        "addon/failure_detector.cc",
        "addon/heartbeat_thread.cc",
        "addon/heartbeat_js.cc",
        "addon/heartbeat_beacon.cc",
        "addon/heartbeat_monitor.cc"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": ["NAPI_VERSION=8"],
      "cflags_cc": ["-std=gnu++17", "-Wall", "-Wextra", "-Wno-missing-field-initializers"]
    }
  ]
}
