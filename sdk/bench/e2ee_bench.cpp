// parley_e2ee_bench: what end-to-end encryption costs (docs/e2ee.md).
//
//   1. The cryptography alone, in process, with the libsignal backend:
//      encrypt + decrypt of one message 1:1 (Double Ratchet), and to a
//      256-member group both ways: pairwise fan-out (255 ratchet
//      encryptions) against Sender Keys (one encryption); state in memory
//      and, for 1:1, in the SQLite store the client really uses.
//   2. End-to-end latency through a real parleyd on this machine (started
//      as the tests start it): send -> MessageEvent on the peer, sequential,
//      plaintext backend against libsignal.
//
// Usage: parley_e2ee_bench [iterations=2000] [latency_messages=300]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "parley/client.hpp"
#include "parley/signal_crypto.hpp"
#include "support/client.hpp"

using namespace parley::sdk;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

class MemKv final : public KeyValueStore {
 public:
  Result<std::optional<std::string>> Get(std::string_view ns, std::string_view key) override {
    auto it = m_.find(K(ns, key));
    if (it == m_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  Status Put(std::string_view ns, std::string_view key, std::string_view value) override {
    m_[K(ns, key)] = std::string(value);
    return {};
  }
  Status Delete(std::string_view ns, std::string_view key) override {
    m_.erase(K(ns, key));
    return {};
  }
  Result<std::vector<std::string>> Keys(std::string_view ns, std::string_view prefix) override {
    std::vector<std::string> out;
    const std::string p = K(ns, prefix);
    for (auto it = m_.lower_bound(p); it != m_.end() && it->first.starts_with(p); ++it) {
      out.push_back(it->first.substr(ns.size() + 1));
    }
    return out;
  }

 private:
  static std::string K(std::string_view ns, std::string_view key) {
    return std::string(ns) + '\x1f' + std::string(key);
  }
  std::map<std::string, std::string> m_;
};

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "failed: %s\n", what);
    std::exit(1);
  }
}

struct Party {
  DeviceAddress self;
  std::unique_ptr<KeyValueStore> kv;
  std::unique_ptr<Store> store;
  std::unique_ptr<Crypto> crypto;
  KeyUpload keys;
};

Party Make(const std::string& user, const std::string& sqlite_path = {}) {
  Party p;
  p.self = {user, "1"};
  p.crypto = MakeSignalCrypto();
  if (sqlite_path.empty()) {
    p.kv = std::make_unique<MemKv>();
    Check(p.crypto->Open(p.self, *p.kv).has_value(), "open");
  } else {
    auto s = Store::Open(sqlite_path);
    Check(s.has_value(), "store");
    p.store = std::move(*s);
    Check(p.crypto->Open(p.self, *p.store).has_value(), "open");
  }
  auto up = p.crypto->KeysToUpload(std::nullopt);
  Check(up.has_value(), "keys");
  p.keys = std::move(*up);
  return p;
}

// Alice starts a session with `to` from its keys, as keys.bundle would give them.
void Connect(Party& from, Party& to, std::size_t otk = 0) {
  PreKeyBundle b;
  b.device = to.self;
  b.registration_id = to.keys.registration_id;
  b.identity_key = *to.keys.identity_key;
  b.signed_prekey = *to.keys.signed_prekey;
  b.one_time_prekey = to.keys.one_time_prekeys.at(otk);
  Check(from.crypto->StartSession(b).has_value(), "session");
}

double Us(Clock::duration d, int n) {
  return std::chrono::duration<double, std::micro>(d).count() / n;
}

const std::string kText =
    R"({"kind":"text","body":{"text":"A message of a typical length, about a hundred bytes long, give or take."}})";

void OneToOne(int n, const std::string& sqlite_dir) {
  Party a = Make("alice", sqlite_dir.empty() ? "" : sqlite_dir + "/a.db");
  Party b = Make("bob", sqlite_dir.empty() ? "" : sqlite_dir + "/b.db");
  Connect(a, b);
  // Warm up both directions (the prekey message, the first ratchet steps).
  for (int i = 0; i < 3; ++i) {
    auto c = a.crypto->Encrypt(std::span(&b.self, 1), kText);
    Check(c && b.crypto->Decrypt(a.self, (*c)[0]).has_value(), "warm a->b");
    auto r = b.crypto->Encrypt(std::span(&a.self, 1), kText);
    Check(r && a.crypto->Decrypt(b.self, (*r)[0]).has_value(), "warm b->a");
  }
  Clock::duration enc{}, dec{};
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    auto c = a.crypto->Encrypt(std::span(&b.self, 1), kText);
    auto t1 = Clock::now();
    Check(c.has_value(), "encrypt");
    auto p = b.crypto->Decrypt(a.self, (*c)[0]);
    auto t2 = Clock::now();
    Check(p && *p == kText, "decrypt");
    enc += t1 - t0;
    dec += t2 - t1;
  }
  std::printf("1:1 (%s state): encrypt %.1f us, decrypt %.1f us, total %.1f us per message\n",
              sqlite_dir.empty() ? "in-memory" : "SQLite", Us(enc, n), Us(dec, n),
              Us(enc + dec, n));
}

void Group(int n) {
  constexpr int kMembers = 256;  // the sender and 255 others, one device each
  Party a = Make("sender");
  std::vector<Party> others;
  std::vector<DeviceAddress> addrs;
  for (int i = 0; i < kMembers - 1; ++i) {
    others.push_back(Make("m" + std::to_string(i)));
    Connect(a, others.back());
    addrs.push_back(others.back().self);
  }
  // Pairwise fan-out: one ratchet encryption per member device.
  {
    auto first = a.crypto->Encrypt(addrs, kText);  // the prekey messages
    Check(first.has_value(), "fan-out warm");
    for (int i = 0; i < kMembers - 1; ++i) {
      Check(others[i].crypto->Decrypt(a.self, (*first)[i]).has_value(), "fan-out warm decrypt");
    }
    const int rounds = std::max(1, n / 20);
    Clock::duration enc{}, dec{};
    std::size_t bytes = 0;
    for (int r = 0; r < rounds; ++r) {
      auto t0 = Clock::now();
      auto c = a.crypto->Encrypt(addrs, kText);
      auto t1 = Clock::now();
      Check(c.has_value(), "fan-out encrypt");
      auto p = others[r % others.size()].crypto->Decrypt(a.self, (*c)[r % others.size()]);
      auto t2 = Clock::now();
      Check(p.has_value(), "fan-out decrypt");
      // The other members decrypt too, to keep their chains in step.
      for (std::size_t i = 0; i < others.size(); ++i) {
        if (i != r % others.size()) (void)others[i].crypto->Decrypt(a.self, (*c)[i]);
      }
      bytes = 0;
      for (const auto& x : *c) bytes += x.data.size();
      enc += t1 - t0;
      dec += t2 - t1;
    }
    std::printf(
        "256-member group, pairwise fan-out: encrypt %.0f us (255 ciphertexts, %zu bytes), "
        "decrypt %.1f us on a member\n",
        Us(enc, rounds), bytes, Us(dec, rounds));
  }
  // Sender Keys: the distribution once, then one encryption per message.
  {
    const std::string g = "g1";
    auto dist = a.crypto->OwnSenderKey(g);
    Check(dist.has_value(), "sender key");
    for (auto& o : others)
      Check(o.crypto->ProcessSenderKey(g, a.self, *dist).has_value(), "process");
    Clock::duration enc{}, dec{};
    std::size_t bytes = 0;
    for (int i = 0; i < n; ++i) {
      auto t0 = Clock::now();
      auto c = a.crypto->GroupEncrypt(g, kText);
      auto t1 = Clock::now();
      Check(c.has_value(), "group encrypt");
      // A member reads every message (one who skipped some would first
      // step its chain over them).
      auto p = others[0].crypto->GroupDecrypt(g, a.self, *c);
      auto t2 = Clock::now();
      Check(p.has_value(), "group decrypt");
      bytes = c->size();
      enc += t1 - t0;
      dec += t2 - t1;
    }
    std::printf(
        "256-member group, Sender Keys: encrypt %.1f us (one %zu-byte ciphertext), decrypt %.1f "
        "us on a member\n",
        Us(enc, n), bytes, Us(dec, n));
  }
}

// ---- End-to-end latency through parleyd ----------------------------------------------

std::unique_ptr<Client> Login(parley::test::Parleyd& server, const std::string& dir,
                              const std::string& phone, bool encrypt) {
  ClientOptions o;
  o.data_dir = dir;
  o.server_url = "http://" + server.endpoint().host + ":" + std::to_string(server.endpoint().port);
  o.crypto = encrypt ? MakeSignalCrypto() : std::make_unique<PlaintextCrypto>();
  auto c = Client::Open(std::move(o));
  Check(c.has_value(), "client");
  const auto seen = server.CodeCount(phone);
  Check((*c)->RequestCode(phone).get().has_value(), "code");
  auto code = server.WaitCode(phone, seen);
  Check(code.has_value(), "code read");
  Check((*c)->Verify(phone, *code).get().has_value(), "verify");
  (*c)->Start();
  Check((*c)->WaitForState(ConnectionEvent::State::kSynced, 10s), "sync");
  if (encrypt) Check((*c)->PublishKeys().get().has_value(), "keys");
  return std::move(*c);
}

struct Pair {
  std::unique_ptr<Client> a, b;
  std::vector<double> ms;
};

Pair MakePair(parley::test::Parleyd& server, const std::string& dir, bool encrypt, int& phone) {
  Pair p;
  p.a = Login(server, dir + (encrypt ? "/ea" : "/pa"), "+1777" + std::to_string(phone++), encrypt);
  p.b = Login(server, dir + (encrypt ? "/eb" : "/pb"), "+1777" + std::to_string(phone++), encrypt);
  return p;
}

// One message a -> b: from the send call to the MessageEvent on b.
double OneTrip(Pair& p, const std::string& text) {
  const Conv to = Conv::User(p.b->account()->user_id);
  auto t0 = Clock::now();
  auto f = p.a->SendText(to, text);
  for (;;) {
    auto e = p.b->WaitEvent(5s);
    Check(e.has_value(), "no message in 5 s");
    if (auto* m = std::get_if<MessageEvent>(&*e); m && m->message.text == text) break;
  }
  auto t1 = Clock::now();
  Check(f.get().has_value(), "send");
  return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

void Report(const char* name, std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  std::printf("end to end 1:1 (%s): median %.2f ms, p90 %.2f ms, p99 %.2f ms over %zu messages\n",
              name, ms[ms.size() / 2], ms[ms.size() * 9 / 10], ms[ms.size() * 99 / 100], ms.size());
}

// Plaintext and libsignal pairs on the same server, messages alternating
// between them, so that both see the same machine load.
void Latency(parley::test::Parleyd& server, const std::string& dir, int n) {
  int phone = 1000000;
  Pair plain = MakePair(server, dir, false, phone);
  Pair enc = MakePair(server, dir, true, phone);
  for (int i = -10; i < n; ++i) {  // 10 warm-up rounds
    const std::string text = "latency " + std::to_string(i);
    const double p = OneTrip(plain, text);
    const double e = OneTrip(enc, text);
    if (i >= 0) {
      plain.ms.push_back(p);
      enc.ms.push_back(e);
    }
  }
  Report("plaintext", plain.ms);
  Report("libsignal", enc.ms);
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 2000;
  const int latency_n = argc > 2 ? std::atoi(argv[2]) : 300;
  std::string templ =
      (std::filesystem::temp_directory_path() / "parley-e2ee-bench-XXXXXX").string();
  Check(::mkdtemp(templ.data()) != nullptr, "temp dir");
  OneToOne(n, "");
  OneToOne(n, templ);
  Group(n);
  if (latency_n > 0) {
    parley::test::Parleyd server(parley::test::Parleyd::Options{
        .args = {"--otp-per-address-per-hour", "0", "--otp-per-phone", "0", "--device-send-rate",
                 "0", "--device-write-rate", "0", "--device-fanout-rate", "0"}});
    Check(server.Start(), "parleyd");
    Latency(server, templ, latency_n);
  }
  std::error_code ec;
  std::filesystem::remove_all(templ, ec);
  return 0;
}
