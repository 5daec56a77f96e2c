#include "common/address.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace parley {
namespace {

TEST(AddressTest, KeysCountIpv4AsItselfAndIpv6ByItsSlash64) {
  EXPECT_EQ(AddressKey("192.0.2.7"), "192.0.2.7");
  EXPECT_EQ(AddressKey("::ffff:192.0.2.7"), "192.0.2.7");
  EXPECT_EQ(AddressKey("2001:db8::1"), "2001:db8:0:0::/64");
  EXPECT_EQ(AddressKey("2001:db8:0:0:ffff:1:2:3"), "2001:db8:0:0::/64");
  EXPECT_EQ(AddressKey("[2001:db8:0:1::1]"), "2001:db8:0:1::/64");
  EXPECT_EQ(AddressKey("not an address"), "not an address");
}

TEST(AddressTest, SetsMatchAddressesAndPrefixes) {
  auto set = AddressSet::Parse(" 10.0.0.0/8, 192.0.2.1 ,fd00::/8,,::1");
  EXPECT_TRUE(set.Contains("10.200.3.4"));
  EXPECT_TRUE(set.Contains("::ffff:10.1.1.1"));
  EXPECT_FALSE(set.Contains("11.0.0.1"));
  EXPECT_TRUE(set.Contains("192.0.2.1"));
  EXPECT_FALSE(set.Contains("192.0.2.2"));
  EXPECT_TRUE(set.Contains("fdab::1"));
  EXPECT_FALSE(set.Contains("fe80::1"));
  EXPECT_TRUE(set.Contains("::1"));
  EXPECT_FALSE(set.Contains("garbage"));
  EXPECT_TRUE(AddressSet::Parse("").empty());
  EXPECT_THROW(AddressSet::Parse("10.0.0.0/33"), std::invalid_argument);
  EXPECT_THROW(AddressSet::Parse("example.com"), std::invalid_argument);
  EXPECT_THROW(AddressSet::Parse("10.0.0.0/x"), std::invalid_argument);
  EXPECT_TRUE(AddressSet::Parse("0.0.0.0/0").Contains("8.8.8.8"));
}

TEST(AddressTest, ForwardedForIsBelievedOnlyFromTrustedProxies) {
  const auto proxies = AddressSet::Parse("127.0.0.1, 10.0.0.0/8");
  // An untrusted peer: the header is the client's own words.
  EXPECT_EQ(ClientAddress("192.0.2.5", "203.0.113.9", proxies), "192.0.2.5");
  // A trusted peer: the nearest address that is not a proxy.
  EXPECT_EQ(ClientAddress("127.0.0.1", "203.0.113.9", proxies), "203.0.113.9");
  EXPECT_EQ(ClientAddress("127.0.0.1", "6.6.6.6, 203.0.113.9, 10.0.0.2", proxies), "203.0.113.9");
  EXPECT_EQ(ClientAddress("127.0.0.1", "2001:DB8::1", proxies), "2001:db8::1");
  // Garbage stops the walk at the last good address.
  EXPECT_EQ(ClientAddress("127.0.0.1", "203.0.113.9, junk", proxies), "127.0.0.1");
  EXPECT_EQ(ClientAddress("127.0.0.1", "junk, 203.0.113.9", proxies), "203.0.113.9");
  // Only proxies: the farthest one.
  EXPECT_EQ(ClientAddress("127.0.0.1", "10.0.0.3, 10.0.0.2", proxies), "10.0.0.3");
  EXPECT_EQ(ClientAddress("127.0.0.1", "", proxies), "127.0.0.1");
}

}  // namespace
}  // namespace parley
