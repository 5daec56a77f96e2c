// The crypto seam's receive path through a real parleyd: an e2ee envelope
// goes through the server, which hands each device only its own
// ciphertext, and the receiving SDK decrypts it with its backend.
//
// The backend here is a test double that "decrypts" by reversing bytes: it
// checks the SDK's plumbing (envelope, addressing, the inner plaintext,
// storage), not cryptography. The sender builds the envelope by hand; the
// SDK's own e2ee send path comes with the server's key directory. The
// server checks that an e2ee send covers exactly the devices that uploaded
// identity keys, so the receiving devices upload keys first.
#include <algorithm>
#include <boost/json.hpp>

#include "parley/crypto.hpp"
#include "sdk_helpers.hpp"
#include "wire.hpp"

namespace parley::sdk::testing {
namespace {

namespace json = boost::json;

class ReversingCrypto final : public Crypto {
 public:
  std::string Name() const override { return "test-reversing"; }
  bool Encrypts() const override { return true; }
  Status Open(const DeviceAddress& self, KeyValueStore&) override {
    self_ = self;
    return {};
  }
  Result<KeyUpload> KeysToUpload(std::optional<int>) override { return KeyUpload{}; }
  bool HasSession(const DeviceAddress&) override { return true; }
  Status StartSession(const PreKeyBundle&) override { return {}; }
  Result<std::vector<Ciphertext>> Encrypt(std::span<const DeviceAddress> devices,
                                          std::string_view plaintext) override {
    std::vector<Ciphertext> out;
    for (const auto& d : devices)
      out.push_back({d, Ciphertext::Type::kMessage, Reverse(plaintext)});
    return out;
  }
  Result<std::string> Decrypt(const DeviceAddress&, const Ciphertext& c) override {
    if (c.device != self_) return Fail("crypto", "not for this device");
    return Reverse(c.data);
  }
  Status ForgetDevice(const DeviceAddress&) override { return {}; }
  Result<std::string> OwnSenderKey(const std::string&) override { return Fail("unsupported"); }
  Status ProcessSenderKey(const std::string&, const DeviceAddress&, std::string_view) override {
    return Fail("unsupported");
  }
  Result<std::string> GroupEncrypt(const std::string&, std::string_view) override {
    return Fail("unsupported");
  }
  Result<std::string> GroupDecrypt(const std::string&, const DeviceAddress&,
                                   std::string_view) override {
    return Fail("unsupported");
  }
  Status RotateSenderKey(const std::string&) override { return {}; }
  Result<std::string> IdentityKey() override { return Fail("unsupported"); }
  Result<Fingerprint> ComputeFingerprint(const std::string&, std::span<const std::string>,
                                         const std::string&,
                                         std::span<const std::string>) override {
    return Fail("unsupported");
  }
  static std::string Reverse(std::string_view s) { return {s.rbegin(), s.rend()}; }

 private:
  DeviceAddress self_;
};

class E2eeSeamTest : public ServerSuite {
 protected:
  static void SetUpTestSuite() { StartServer(); }
  static void TearDownTestSuite() { StopServer(); }
};

TEST_F(E2eeSeamTest, EachDeviceDecryptsItsOwnCiphertext) {
  const std::string pa = NextPhone(), pb = NextPhone();
  auto a = Login(pa, "ea");
  auto with_backend = [](ClientOptions& o) { o.crypto = std::make_unique<ReversingCrypto>(); };
  auto b1 = Login(pb, "eb1", with_backend);
  auto b2 = Login(pb, "eb2", with_backend);
  ASSERT_TRUE(a && b1 && b2);
  for (auto* c : {a.get(), b1.get(), b2.get()}) ASSERT_TRUE(StartSynced(*c));
  const auto bu = b1->account()->user_id;
  // The server checks that an e2ee send covers exactly the devices that
  // uploaded identity keys: b's two devices upload theirs.
  for (auto* c : {b1.get(), b2.get()}) {
    const json::object upload{{"op", "keys.upload"},
                              {"identity_key", detail::Base64Encode(std::string(33, '\x05'))},
                              {"signed_prekey",
                               {{"id", 1},
                                {"key", detail::Base64Encode(std::string(33, '\x05'))},
                                {"signature", detail::Base64Encode(std::string(64, 's'))}}}};
    auto up = c->Request(json::serialize(upload)).get();
    ASSERT_TRUE(up) << up.error().ToString();
  }

  auto inner = [](const std::string& text) {
    return ReversingCrypto::Reverse(
        detail::InnerJson("text", json::serialize(json::object{{"text", text}}), ""));
  };
  std::vector<Ciphertext> cts = {
      {{bu, b1->account()->device_id}, Ciphertext::Type::kPreKey, inner("for b1")},
      {{bu, b2->account()->device_id}, Ciphertext::Type::kMessage, inner("for b2")}};
  OutgoingMessage m;
  m.kind = "e2ee";
  m.body_json = json::serialize(detail::EnvelopeJson(a->account()->device_id, cts));
  auto sent = a->Send(Conv::User(bu), m).get();
  ASSERT_TRUE(sent) << sent.error().ToString();

  auto got1 = WaitFor<MessageEvent>(*b1);
  ASSERT_TRUE(got1);
  EXPECT_TRUE(got1->message.encrypted);
  EXPECT_EQ(got1->message.kind, "text");
  EXPECT_EQ(got1->message.text, "for b1");
  auto got2 = WaitFor<MessageEvent>(*b2);
  ASSERT_TRUE(got2);
  EXPECT_EQ(got2->message.text, "for b2");
  // The store keeps the plaintext, so history does not need to decrypt again.
  auto local = b1->LocalMessages(Conv::User(a->account()->user_id)).get();
  ASSERT_TRUE(local && local->size() == 1u);
  EXPECT_EQ(local->front().text, "for b1");
  auto page = b1->History(Conv::User(a->account()->user_id)).get();
  ASSERT_TRUE(page && page->messages.size() == 1u);
  EXPECT_EQ(page->messages[0].text, "for b1");
  // A sender with no way to decrypt keeps the envelope as it came.
  auto theirs = a->LocalMessages(Conv::User(bu)).get();
  ASSERT_TRUE(theirs && theirs->size() == 1u);
  EXPECT_EQ(theirs->front().kind, "e2ee");

  // An encrypting backend without the send path refuses rather than
  // sending in the clear.
  auto refused = b1->SendText(Conv::User(a->account()->user_id), "secret").get();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, "unsupported");
}

TEST_F(E2eeSeamTest, AProfileKeepsItsBackend) {
  const std::string pb = NextPhone();
  {
    auto b =
        Login(pb, "kb", [](ClientOptions& o) { o.crypto = std::make_unique<ReversingCrypto>(); });
    ASSERT_TRUE(b);
  }
  auto plain = Client::Open(OptionsFor(*server_, Dir("kb", pb)));
  ASSERT_FALSE(plain);
  EXPECT_EQ(plain.error().code, "crypto");
}

}  // namespace
}  // namespace parley::sdk::testing
