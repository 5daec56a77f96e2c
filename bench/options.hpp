// Command-line options shared by every part of parley-bench.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace parley::bench {

// One parleyd of the target (loopback only: see main.cpp).
struct Node {
  std::string url = "http://127.0.0.1:8080";
  std::string host = "127.0.0.1";  // numeric, after resolving "localhost"
  std::uint16_t port = 8080;
  bool ipv6 = false;
};

struct Options {
  std::string scenario;  // connect, chat, sync, fanout, storm, scale

  // Target: every --url, in order (account i connects to nodes[i % size]).
  // url/host/port/ipv6 are the first node's: sign-up goes there.
  std::vector<Node> nodes;
  std::string url = "http://127.0.0.1:8080";
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  bool ipv6 = false;

  // Provisioning.
  std::string otp_file;       // the server's --sms-provider file:PATH
  std::string accounts_file;  // cache of signed-up accounts (JSON lines); empty: none
  std::string phone_prefix;   // empty: "+1999" and a random 4-digit run id
  int signup_concurrency = 32;

  // Sizes and rates.
  int users = 0;  // 0: the scenario's default
  double rate = 0;
  bool rate_max = false;
  int window = 0;  // in-flight sends per user at `max` (0: the scenario's default)
  double duration_s = 20;
  double warmup_s = 2;
  double drain_s = 5;
  int messages = 10000;        // sync
  double hold_s = 10;          // connect
  int members = 256;           // fanout
  bool random_sender = false;  // fanout: random members send, not only the creator
  int body_bytes = 0;          // extra padding in each message body
  bool own_copy = false;       // --own-copy: do not ask hello to skip the copies of own sends

  // scale (several nodes): a command run once every session is open and
  // held (the caller measures memory there), and a parleyd to SIGKILL
  // after the traffic, whose clients then reconnect to the other nodes.
  std::string at_ready;
  int kill_pid = 0;
  double kill_wait_s = 30;  // the longest wait for the killed node's clients

  // Execution.
  int threads = 1;  // io_context threads per worker process
  int procs = 0;    // worker processes (0: as many as the open-files limit needs)
  int source_addrs = 8;
  int connect_concurrency = 256;
  double setup_timeout_s = 180;
  std::uint64_t seed = 0;  // 0: random

  // Output.
  bool json = false;
  int progress = -1;  // -1: when stderr is a terminal

  std::vector<std::string> argv;  // as given, for the report
};

}  // namespace parley::bench
