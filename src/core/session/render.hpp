// Mailbox events as the wire shows them (PROTOCOL.md section 3), always from
// the point of view of the mailbox owner and the device that receives them.
#pragma once

#include <boost/json.hpp>
#include <string>

#include "store/records.hpp"

namespace parley::core {

namespace json = boost::json;

// {"user":"<id>"} or {"group":"<id>"}.
json::object ConvJson(const store::Conversation& conv);

// The message object of an event or a history page, as `viewer` sees it
// (its conv names the other side; e2ee and sender_key bodies keep only
// viewer_device's ciphertext: the sending device gets an empty list).
json::object MessageJson(const store::Message& m, store::UserId viewer,
                         store::DeviceId viewer_device);

// The whole {"op":"event","seq":...,"event":{...}} frame. Empty when the
// event cannot be shown (a message purged by retention).
std::string EventFrame(const store::MailboxEvent& e, store::UserId viewer,
                       store::DeviceId viewer_device);

// The same in two steps, so that one rendered event serves many mailboxes
// (a group message is the same event for every member but its seq).
std::string EventBody(const store::MailboxEvent& e, store::UserId viewer,
                      store::DeviceId viewer_device);
std::string WrapEvent(store::Seq seq, std::string_view body);

// Conversation parsed from a request's `conv` or `to`.
std::optional<store::Conversation> ParseConv(const json::value& v);

}  // namespace parley::core
