// The libsignal backend of the crypto seam (signal_crypto.hpp), two or
// three devices talking in one process with their state in real stores:
// X3DH from an uploaded bundle, the ratchet both ways, replays, prekeys used
// once, state that survives a restart, identity changes, Sender Keys, and
// safety numbers.
#include "parley/signal_crypto.hpp"

#include "parley/store.hpp"
#include "sdk_helpers.hpp"

namespace parley::sdk::testing {
namespace {

// One device: a store and the backend opened on it.
struct Device {
  Device(const TempDir& dir, std::string user, std::string device) : address{user, device} {
    auto s = Store::Open(dir.Sub(user + "-" + device + ".db"));
    EXPECT_TRUE(s);
    store = std::move(*s);
    Reopen();
  }
  void Reopen() {
    crypto = MakeSignalCrypto();
    auto s = crypto->Open(address, *store);
    EXPECT_TRUE(s) << s.error().ToString();
  }
  // What keys.bundle would hand out for this device after its upload.
  PreKeyBundle Bundle(bool with_one_time = true) {
    auto up = crypto->KeysToUpload(std::nullopt);
    EXPECT_TRUE(up) << up.error().ToString();
    PreKeyBundle b;
    b.device = address;
    b.registration_id = up->registration_id;
    b.identity_key = *up->identity_key;
    b.signed_prekey = *up->signed_prekey;
    if (with_one_time && !up->one_time_prekeys.empty()) b.one_time_prekey = up->one_time_prekeys[0];
    return b;
  }
  std::string Decrypt(const DeviceAddress& from, const Ciphertext& c) {
    auto r = crypto->Decrypt(from, c);
    EXPECT_TRUE(r) << r.error().ToString();
    return r ? *r : std::string();
  }

  DeviceAddress address;
  std::unique_ptr<Store> store;
  std::unique_ptr<Crypto> crypto;
};

Ciphertext One(Crypto& c, const DeviceAddress& to, std::string_view text) {
  std::vector<DeviceAddress> to_list{to};
  auto r = c.Encrypt(to_list, text);
  EXPECT_TRUE(r) << r.error().ToString();
  return r && !r->empty() ? r->front() : Ciphertext{};
}

class SignalCryptoTest : public ::testing::Test {
 protected:
  TempDir dir_;
};

TEST_F(SignalCryptoTest, KeysToUploadHaveTheContractsShape) {
  Device a(dir_, "100", "1");
  auto first = a.crypto->KeysToUpload(std::nullopt);
  ASSERT_TRUE(first) << first.error().ToString();
  ASSERT_TRUE(first->identity_key);
  EXPECT_EQ(first->identity_key->size(), 33u);  // a Curve25519 key with its type byte
  ASSERT_TRUE(first->registration_id);
  ASSERT_TRUE(first->signed_prekey);
  EXPECT_EQ(first->signed_prekey->signature.size(), 64u);
  EXPECT_EQ(first->one_time_prekeys.size(), 100u);
  // Enough left on the server: nothing new. Running low: topped up, new ids.
  auto enough = a.crypto->KeysToUpload(50);
  ASSERT_TRUE(enough);
  EXPECT_TRUE(enough->one_time_prekeys.empty());
  EXPECT_EQ(enough->signed_prekey->id, first->signed_prekey->id);
  auto low = a.crypto->KeysToUpload(5);
  ASSERT_TRUE(low);
  ASSERT_EQ(low->one_time_prekeys.size(), 95u);
  EXPECT_EQ(low->one_time_prekeys[0].id, first->one_time_prekeys.back().id + 1);
  // The identity is made once per device.
  a.Reopen();
  EXPECT_EQ(*a.crypto->IdentityKey(), *first->identity_key);
}

TEST_F(SignalCryptoTest, SessionFromABundleThenTheRatchetBothWays) {
  Device a(dir_, "100", "1"), b(dir_, "200", "1");
  EXPECT_FALSE(a.crypto->HasSession(b.address));
  ASSERT_TRUE(a.crypto->StartSession(b.Bundle()));
  EXPECT_TRUE(a.crypto->HasSession(b.address));

  auto first = One(*a.crypto, b.address, "hello b");
  EXPECT_EQ(first.type, Ciphertext::Type::kPreKey);
  EXPECT_NE(first.data.find("hello"), 0u);
  EXPECT_EQ(first.data.find("hello b"), std::string::npos);  // not in clear
  EXPECT_EQ(b.Decrypt(a.address, first), "hello b");
  EXPECT_TRUE(b.crypto->HasSession(a.address));

  auto reply = One(*b.crypto, a.address, "hi a");
  EXPECT_EQ(reply.type, Ciphertext::Type::kMessage);
  EXPECT_EQ(a.Decrypt(b.address, reply), "hi a");
  for (int i = 0; i < 3; ++i) {
    auto m = One(*a.crypto, b.address, "n" + std::to_string(i));
    EXPECT_EQ(m.type, Ciphertext::Type::kMessage);
    EXPECT_EQ(b.Decrypt(a.address, m), "n" + std::to_string(i));
  }
  // A replayed ciphertext is refused.
  auto again = b.crypto->Decrypt(a.address, first);
  ASSERT_FALSE(again);
  // Out of order is fine (skipped message keys).
  auto m1 = One(*a.crypto, b.address, "one");
  auto m2 = One(*a.crypto, b.address, "two");
  EXPECT_EQ(b.Decrypt(a.address, m2), "two");
  EXPECT_EQ(b.Decrypt(a.address, m1), "one");
  // Tampering is caught.
  auto m3 = One(*a.crypto, b.address, "three");
  m3.data[m3.data.size() - 3] ^= 0x01;
  EXPECT_FALSE(b.crypto->Decrypt(a.address, m3));
}

TEST_F(SignalCryptoTest, OneCallEncryptsForEveryDeviceOfAConversation) {
  Device a(dir_, "100", "1"), b1(dir_, "200", "1"), b2(dir_, "200", "2");
  ASSERT_TRUE(a.crypto->StartSession(b1.Bundle()));
  ASSERT_TRUE(a.crypto->StartSession(b2.Bundle()));
  std::vector<DeviceAddress> devices{b1.address, b2.address};
  auto cts = a.crypto->Encrypt(devices, "to both");
  ASSERT_TRUE(cts);
  ASSERT_EQ(cts->size(), 2u);
  EXPECT_EQ((*cts)[0].device, b1.address);
  EXPECT_EQ(b1.Decrypt(a.address, (*cts)[0]), "to both");
  EXPECT_EQ(b2.Decrypt(a.address, (*cts)[1]), "to both");
  // Each device's ciphertext is its own.
  EXPECT_FALSE(b2.crypto->Decrypt(a.address, (*cts)[0]));
  // No session, no ciphertext.
  Device c(dir_, "300", "1");
  std::vector<DeviceAddress> unknown{c.address};
  auto none = a.crypto->Encrypt(unknown, "x");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, "no_session");
}

TEST_F(SignalCryptoTest, AOneTimePrekeyWorksOnceAndSessionsWorkWithoutOne) {
  Device a(dir_, "100", "1"), b(dir_, "200", "1"), c(dir_, "300", "1");
  const PreKeyBundle bundle = b.Bundle();
  ASSERT_TRUE(a.crypto->StartSession(bundle));
  ASSERT_EQ(b.Decrypt(a.address, One(*a.crypto, b.address, "first")), "first");
  EXPECT_FALSE(*b.store->Get("signal", "prekey:" + std::to_string(bundle.one_time_prekey->id)));
  // Someone handed the same (spent) bundle: the first message fails.
  ASSERT_TRUE(c.crypto->StartSession(bundle));
  EXPECT_FALSE(b.crypto->Decrypt(c.address, One(*c.crypto, b.address, "late")));
  // The server ran out of one-time prekeys: the signed prekey alone works.
  Device d(dir_, "400", "1");
  ASSERT_TRUE(d.crypto->StartSession(b.Bundle(/*with_one_time=*/false)));
  EXPECT_EQ(b.Decrypt(d.address, One(*d.crypto, b.address, "no otk")), "no otk");
}

TEST_F(SignalCryptoTest, StateSurvivesARestart) {
  Device a(dir_, "100", "1"), b(dir_, "200", "1");
  ASSERT_TRUE(a.crypto->StartSession(b.Bundle()));
  ASSERT_EQ(b.Decrypt(a.address, One(*a.crypto, b.address, "before")), "before");
  a.Reopen();
  b.Reopen();
  EXPECT_EQ(b.Decrypt(a.address, One(*a.crypto, b.address, "after")), "after");
  EXPECT_EQ(a.Decrypt(b.address, One(*b.crypto, a.address, "and back")), "and back");
}

TEST_F(SignalCryptoTest, ANewIdentityIsUntrustedUntilTheDeviceIsForgotten) {
  Device a(dir_, "100", "1"), b(dir_, "200", "1");
  ASSERT_TRUE(a.crypto->StartSession(b.Bundle()));
  ASSERT_EQ(b.Decrypt(a.address, One(*a.crypto, b.address, "hi")), "hi");
  // B reinstalls: same address, new identity key.
  TempDir other;
  Device b_new(other, "200", "1");
  auto refused = a.crypto->StartSession(b_new.Bundle());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, "untrusted_identity");
  // keys_changed: the SDK forgets the device, and the new key is accepted.
  ASSERT_TRUE(a.crypto->ForgetDevice(b.address));
  EXPECT_FALSE(a.crypto->HasSession(b.address));
  ASSERT_TRUE(a.crypto->StartSession(b_new.Bundle()));
  EXPECT_EQ(b_new.Decrypt(a.address, One(*a.crypto, b.address, "hello again")), "hello again");
}

TEST_F(SignalCryptoTest, SenderKeysForAGroup) {
  Device a(dir_, "100", "1"), b(dir_, "200", "1"), c(dir_, "300", "1");
  auto dist = a.crypto->OwnSenderKey("g1");
  ASSERT_TRUE(dist) << dist.error().ToString();
  ASSERT_TRUE(b.crypto->ProcessSenderKey("g1", a.address, *dist));
  ASSERT_TRUE(c.crypto->ProcessSenderKey("g1", a.address, *dist));
  auto ct = a.crypto->GroupEncrypt("g1", "hello group");
  ASSERT_TRUE(ct) << ct.error().ToString();
  EXPECT_EQ(ct->find("hello group"), std::string::npos);
  EXPECT_EQ(*b.crypto->GroupDecrypt("g1", a.address, *ct), "hello group");
  EXPECT_EQ(*c.crypto->GroupDecrypt("g1", a.address, *ct), "hello group");
  // The same sender key until rotated (a later distribution message names
  // a later iteration of it): what B got first still reads what follows.
  ASSERT_TRUE(a.crypto->OwnSenderKey("g1"));
  auto second = a.crypto->GroupEncrypt("g1", "still the same key");
  ASSERT_TRUE(second);
  EXPECT_EQ(*b.crypto->GroupDecrypt("g1", a.address, *second), "still the same key");
  // Someone without the key reads nothing.
  Device d(dir_, "400", "1");
  EXPECT_FALSE(d.crypto->GroupDecrypt("g1", a.address, *ct));
  // C left: A rotates; only those given the new key read what follows.
  ASSERT_TRUE(a.crypto->RotateSenderKey("g1"));
  auto fresh = a.crypto->OwnSenderKey("g1");
  ASSERT_TRUE(fresh);
  EXPECT_NE(*fresh, *dist);
  ASSERT_TRUE(b.crypto->ProcessSenderKey("g1", a.address, *fresh));
  auto after = a.crypto->GroupEncrypt("g1", "without c");
  ASSERT_TRUE(after);
  EXPECT_EQ(*b.crypto->GroupDecrypt("g1", a.address, *after), "without c");
  EXPECT_FALSE(c.crypto->GroupDecrypt("g1", a.address, *after));
  // Another group is another key.
  EXPECT_FALSE(b.crypto->GroupDecrypt("g2", a.address, *after));
}

TEST_F(SignalCryptoTest, BothSidesComputeTheSameSafetyNumber) {
  Device a1(dir_, "100", "1"), a2(dir_, "100", "2"), b(dir_, "200", "1");
  const std::vector<std::string> a_other{*a2.crypto->IdentityKey()};
  const std::vector<std::string> a_all{*a1.crypto->IdentityKey(), *a2.crypto->IdentityKey()};
  const std::vector<std::string> b_all{*b.crypto->IdentityKey()};
  auto from_a = a1.crypto->ComputeFingerprint("100", a_other, "200", b_all);
  auto from_b = b.crypto->ComputeFingerprint("200", {}, "100", a_all);
  ASSERT_TRUE(from_a) << from_a.error().ToString();
  ASSERT_TRUE(from_b) << from_b.error().ToString();
  EXPECT_EQ(from_a->displayable.size(), 60u);
  EXPECT_EQ(from_a->displayable, from_b->displayable);
  EXPECT_FALSE(from_a->scannable.empty());
  // A device the other side does not know about changes the number.
  auto partial = b.crypto->ComputeFingerprint("200", {}, "100",
                                              std::vector<std::string>{*a1.crypto->IdentityKey()});
  ASSERT_TRUE(partial);
  EXPECT_NE(partial->displayable, from_a->displayable);
}

TEST_F(SignalCryptoTest, ThroughTheClientAProfileKeepsTheSignalBackend) {
  ClientOptions o;
  o.data_dir = dir_.Sub("profile");
  o.server_url = "http://127.0.0.1:1";
  o.crypto = MakeSignalCrypto();
  auto c = Client::Open(std::move(o));
  ASSERT_TRUE(c) << c.error().ToString();
}

}  // namespace
}  // namespace parley::sdk::testing
