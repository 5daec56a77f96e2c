// `parley chat`: an interactive conversation in the terminal (docs/cli.md).
//
// On a terminal the input line is edited in raw mode, so that keystrokes
// can announce typing and incoming lines can be printed above the line being
// typed without mangling it (this works in tmux and over ssh). Without a
// terminal (a pipe), stdin lines are sent as they come and the chat ends at
// end of input once every message has reached the server.
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <iostream>
#include <map>
#include <random>
#include <set>

#include "app.hpp"

namespace parley::cli {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kTypingRepeat = 3s;  // the receiver expires "composing" after 6 s
constexpr auto kTypingIdle = 5s;

// Raw input mode for the lifetime of the object (when stdin is a terminal).
class RawTerminal {
 public:
  explicit RawTerminal(bool want) {
    if (!want || isatty(STDIN_FILENO) == 0 || tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO | ISIG | IEXTEN);
    raw.c_iflag &= ~static_cast<tcflag_t>(IXON | ICRNL);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    active_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;
  bool active() const { return active_; }

 private:
  termios saved_{};
  bool active_ = false;
};

std::size_t DisplayWidth(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

int TerminalColumns() {
  winsize ws{};
  return ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
}

class ChatUi {
 public:
  ChatUi(const Globals& g, sdk::Client& client, sdk::Conv conv, bool raw,
         std::map<std::string, std::string> names)
      : g_(g),
        out_(g.json),
        client_(client),
        conv_(std::move(conv)),
        raw_(raw),
        self_(client.account()->user_id),
        rng_(std::random_device{}()),
        names_(std::move(names)) {}

  int Run();

 private:
  // Output.
  void Print(const std::string& line);
  void PrintMessage(const sdk::Message& m);
  void RedrawPrompt();
  std::string Prompt() const;

  // Events.
  void OnEvent(const sdk::Event& e);
  void OnStatus(const sdk::MessageStatusEvent& s);

  // Input.
  void OnInput(const char* data, std::size_t n);
  void OnLine(std::string line);
  void Typing(bool composing);
  bool AllSent() const;

  const Globals& g_;
  Out out_;
  sdk::Client& client_;
  sdk::Conv conv_;
  bool raw_;
  std::string self_;
  std::mt19937_64 rng_;
  std::string input_;
  std::string partial_line_;  // non-raw mode: bytes after the last newline
  int escape_ = 0;            // inside an escape sequence (arrow keys...)
  bool quit_ = false;
  std::set<std::string> typing_;                  // users typing in this conversation
  std::map<std::string, sdk::Message> own_;       // by client_msg_id
  std::map<std::string, std::string> own_by_id_;  // msg_id -> client_msg_id
  std::string last_printed_cmid_;                 // own message on the line just above the prompt
  bool composing_ = false;
  Clock::time_point composing_sent_{};
  Clock::time_point last_key_{};
  std::optional<bool> peer_online_;
  std::map<std::string, std::string> names_;  // user id -> display name
  std::vector<sdk::Future<void>> reads_;      // read receipts sent, awaited before leaving
  std::string group_name_;

  std::string Name(const std::string& user) const {
    auto it = names_.find(user);
    return it != names_.end() && !it->second.empty() ? it->second : user;
  }
  void LoadNames();
};

void ChatUi::LoadNames() {
  std::vector<std::string> users;
  if (conv_.is_group()) {
    if (auto info = Await(client_.GetGroup(conv_.id), g_); info) {
      group_name_ = info->name;
      for (const auto& m : info->members) users.push_back(m.user);
    }
  } else {
    users.push_back(conv_.id);
  }
  if (users.empty()) return;
  if (auto profiles = Await(client_.GetProfiles(users), g_); profiles) {
    for (const auto& p : *profiles) {
      if (!p.name.empty()) names_[p.user] = p.name;  // else the phone number, when known
    }
  }
}

std::string ChatUi::Prompt() const {
  std::string p;
  if (!typing_.empty()) {
    p += "[";
    for (const auto& u : typing_) p += (p.size() > 1 ? ", " : "") + Name(u);
    p += " typing\u2026] ";
  }
  return p + "> ";
}

void ChatUi::RedrawPrompt() {
  if (!raw_) return;
  std::cout << "\r\033[K" << Prompt() << input_ << std::flush;
}

void ChatUi::Print(const std::string& line) {
  if (raw_) std::cout << "\r\033[K";
  std::cout << line << '\n';
  last_printed_cmid_.clear();
  RedrawPrompt();
  std::cout << std::flush;
}

void ChatUi::PrintMessage(const sdk::Message& m) {
  if (out_.json()) return out_.Emit(MessageJson(m), "");
  Print(MessageLine(m, self_, &names_));
  if (m.outgoing && m.from.device == client_.account()->device_id) {
    last_printed_cmid_ = m.client_msg_id;
  }
}

void ChatUi::OnStatus(const sdk::MessageStatusEvent& s) {
  auto it = own_.find(s.client_msg_id);
  if (it == own_.end() && !s.msg_id.empty()) {
    if (auto by = own_by_id_.find(s.msg_id); by != own_by_id_.end()) it = own_.find(by->second);
  }
  if (out_.json()) {
    out_.Emit(EventJson(s), "");
    if (it != own_.end() && s.status > it->second.status) it->second.status = s.status;
    return;
  }
  if (it == own_.end()) return;  // a message from before this chat
  sdk::Message& m = it->second;
  if (!s.msg_id.empty()) {
    m.msg_id = s.msg_id;
    own_by_id_[s.msg_id] = m.client_msg_id;
  }
  // Statuses only move forward (a late "sent" after "delivered" changes nothing).
  if (s.status != sdk::MessageStatus::kFailed && s.status <= m.status) return;
  m.status = s.status;
  const std::string line = MessageLine(m, self_, &names_);
  const bool fits = DisplayWidth(line) < static_cast<std::size_t>(TerminalColumns());
  if (raw_ && last_printed_cmid_ == m.client_msg_id && fits) {
    // The message is the line just above the prompt: update its ticks in place.
    std::cout << "\r\033[K\033[1A\r\033[K" << line << '\n';
    RedrawPrompt();
    return;
  }
  const std::string preview = m.text.size() > 30 ? m.text.substr(0, 30) + "\u2026" : m.text;
  Print("          " + Ticks(m.status) + "  \"" + preview + "\"" +
        (s.error ? "  " + s.error->ToString() : ""));
}

void ChatUi::OnEvent(const sdk::Event& e) {
  if (const auto* m = std::get_if<sdk::MessageEvent>(&e)) {
    if (m->message.conv != conv_) {
      if (!out_.json()) {
        Print("  (new message from " + Name(m->message.from.user) + " in another chat)");
      }
      return;
    }
    typing_.erase(m->message.from.user);
    PrintMessage(m->message);
    // The chat is open: what arrives in it is read.
    if (!m->message.outgoing) reads_.push_back(client_.MarkRead(conv_, m->message.msg_id));
    return;
  }
  if (const auto* s = std::get_if<sdk::MessageStatusEvent>(&e)) {
    if (s->conv == conv_) OnStatus(*s);
    return;
  }
  if (const auto* t = std::get_if<sdk::TypingEvent>(&e)) {
    if (t->conv != conv_) return;
    if (out_.json()) return out_.Emit(EventJson(e), "");
    if (t->composing) {
      typing_.insert(t->from.user);
    } else {
      typing_.erase(t->from.user);
    }
    if (raw_) {
      RedrawPrompt();
    } else if (t->composing) {
      Print("  (" + Name(t->from.user) + " is typing)");
    }
    return;
  }
  if (const auto* p = std::get_if<sdk::PresenceEvent>(&e)) {
    if (conv_.is_group() || p->status.user != conv_.id) return;
    if (out_.json()) return out_.Emit(EventJson(e), "");
    if (peer_online_ == p->status.online) return;
    peer_online_ = p->status.online;
    Print(p->status.online
              ? "  (" + Name(conv_.id) + " is online)"
              : "  (" + Name(conv_.id) + " went offline" +
                    (p->status.last_seen_ms ? ", last seen " + FormatTime(*p->status.last_seen_ms)
                                            : std::string()) +
                    ")");
    return;
  }
  if (const auto* c = std::get_if<sdk::ConnectionEvent>(&e)) {
    if (out_.json()) return out_.Emit(EventJson(e), "");
    using S = sdk::ConnectionEvent::State;
    if (c->state == S::kOffline) {
      Print("  (offline: " + (c->reason.empty() ? "connection lost" : c->reason) +
            (c->retry_in_ms > 0
                 ? "; retrying in " + std::to_string(c->retry_in_ms / 1000 + 1) + " s"
                 : std::string()) +
            ")");
    } else if (c->state == S::kOnline) {
      Print("  (online)");
    } else if (c->state == S::kStopped && c->error) {
      Print("  (disconnected: " + c->error->ToString() + ")");
      if (c->error->code == "replaced") {
        Print("  (another parley on this profile took over; /reconnect to take it back)");
      } else {
        quit_ = true;
      }
    }
    return;
  }
  if (const auto* ge = std::get_if<sdk::GroupEvent>(&e)) {
    if (!conv_.is_group() || ge->group_id != conv_.id) return;
    if (out_.json()) return out_.Emit(EventJson(e), "");
    std::string users;
    for (const auto& u : ge->users) users += (users.empty() ? "" : ", ") + Name(u);
    Print("  (" + Name(ge->by) + " " + ge->change + (users.empty() ? "" : ": " + users) + ")");
  }
}

void ChatUi::Typing(bool composing) {
  const auto now = Clock::now();
  if (composing) {
    if (composing_ && now - composing_sent_ < kTypingRepeat) return;
    composing_ = true;
    composing_sent_ = now;
    client_.SendTyping(conv_, true);
  } else if (composing_) {
    composing_ = false;
    client_.SendTyping(conv_, false);
  }
}

void ChatUi::OnLine(std::string line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  if (line.empty()) return;
  if (line == "/quit" || line == "/exit") {
    quit_ = true;
    return;
  }
  if (line == "/reconnect") {
    client_.Reconnect();
    return;
  }
  if (line == "/help") {
    Print("  /quit  leave (also Ctrl-D, Ctrl-C)   /reconnect  connect again now");
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string cmid = "cli-";
  for (auto v = rng_(), i = decltype(v){0}; i < 16; ++i, v >>= 4) cmid.push_back(kHex[v & 0xf]);
  sdk::Message m;
  m.client_msg_id = cmid;
  m.conv = conv_;
  m.from = {self_, client_.account()->device_id};
  m.outgoing = true;
  m.kind = "text";
  m.text = line;
  m.body_json = json::serialize(json::object{{"text", line}});
  m.ts_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  m.status = sdk::MessageStatus::kPending;
  own_[cmid] = m;
  // The Future is not needed: the status events tell the story (and a
  // message not confirmed in time stays queued in the profile).
  (void)client_.SendText(conv_, line, cmid);
  PrintMessage(m);
}

void ChatUi::OnInput(const char* data, std::size_t n) {
  if (!raw_) {
    partial_line_.append(data, n);
    for (auto nl = partial_line_.find('\n'); nl != std::string::npos;
         nl = partial_line_.find('\n')) {
      OnLine(partial_line_.substr(0, nl));
      partial_line_.erase(0, nl + 1);
    }
    return;
  }
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(data[i]);
    if (escape_ == 1) {
      escape_ = (c == '[' || c == 'O') ? 2 : 0;
      continue;
    }
    if (escape_ == 2) {
      if (c >= 0x40 && c <= 0x7e) escape_ = 0;
      continue;
    }
    last_key_ = Clock::now();
    if (c == 0x1b) {
      escape_ = 1;
    } else if (c == 0x03 || (c == 0x04 && input_.empty())) {  // Ctrl-C, Ctrl-D
      quit_ = true;
      return;
    } else if (c == '\r' || c == '\n') {
      std::string line = std::move(input_);
      input_.clear();
      Typing(false);
      std::cout << "\r\033[K" << std::flush;
      OnLine(std::move(line));
      RedrawPrompt();
    } else if (c == 0x7f || c == 0x08) {  // backspace: one UTF-8 character
      while (!input_.empty() && (static_cast<unsigned char>(input_.back()) & 0xC0) == 0x80) {
        input_.pop_back();
      }
      if (!input_.empty()) input_.pop_back();
      RedrawPrompt();
    } else if (c == 0x15) {  // Ctrl-U
      input_.clear();
      Typing(false);
      RedrawPrompt();
    } else if (c >= 0x20 || c == '\t') {
      input_.push_back(static_cast<char>(c));
      Typing(true);
      std::cout << static_cast<char>(c) << std::flush;
    }
  }
}

bool ChatUi::AllSent() const {
  for (const auto& [cmid, m] : own_) {
    if (m.status == sdk::MessageStatus::kPending) return false;
  }
  return true;
}

int ChatUi::Run() {
  client_.Start();
  if (!conv_.is_group()) (void)client_.SubscribePresence({conv_.id});
  // What the conversation looked like: from the server when it answers
  // quickly, else from the local store.
  std::vector<sdk::Message> recent;
  if (client_.WaitForState(sdk::ConnectionEvent::State::kOnline, 5s)) {
    LoadNames();
    if (auto page = Await(client_.History(conv_, {}, 20), g_); page) recent = page->messages;
  } else if (auto local = Await(client_.LocalMessages(conv_, 20), g_); local) {
    recent = *local;
  }
  if (!out_.json()) {
    const std::string title =
        conv_.is_group()
            ? "group " + (group_name_.empty() ? conv_.id : group_name_ + " (" + conv_.id + ")")
            : Name(conv_.id);
    Print("Chat with " + title + (raw_ ? "  (Ctrl-D or /quit to leave)" : ""));
  }
  for (auto it = recent.rbegin(); it != recent.rend(); ++it) PrintMessage(*it);
  // Everything shown is read: up to the newest message from someone else
  // (also when this user's own reply came after it).
  for (const auto& m : recent) {
    if (m.outgoing || m.from.user == self_) continue;
    reads_.push_back(client_.MarkRead(conv_, m.msg_id));
    break;
  }
  RedrawPrompt();

  bool stdin_open = true;
  Clock::time_point eof_at{};
  char buf[4096];
  while (!quit_ && !Interrupted()) {
    pollfd fds[2] = {{client_.EventFd(), POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    const int nfds = stdin_open ? 2 : 1;
    if (::poll(fds, nfds, 200) < 0 && errno != EINTR) break;
    while (auto e = client_.PollEvent()) OnEvent(*e);
    if (stdin_open && (fds[1].revents & (POLLIN | POLLHUP)) != 0) {
      const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
      if (n > 0) {
        OnInput(buf, static_cast<std::size_t>(n));
      } else if (n == 0) {
        stdin_open = false;
        eof_at = Clock::now();
        if (!partial_line_.empty()) OnLine(std::exchange(partial_line_, {}));
        if (raw_) quit_ = true;
      }
    }
    if (composing_ && Clock::now() - last_key_ > kTypingIdle) Typing(false);
    // End of piped input: leave once everything sent has reached the server.
    if (!stdin_open && (AllSent() || Clock::now() - eof_at > std::chrono::seconds(g_.timeout_s))) {
      break;
    }
  }
  Typing(false);
  // The read receipts for what was shown go out before the process ends.
  const auto reads_deadline = Clock::now() + std::chrono::seconds(g_.timeout_s);
  for (auto& r : reads_) (void)r.wait_until(reads_deadline);
  if (raw_) std::cout << "\r\033[K" << std::flush;
  if (!AllSent()) {
    out_.Line("(some messages are not confirmed yet; they stay queued and go out next time)");
  }
  return kExitOk;
}

}  // namespace

int Chat(const Globals& g, sdk::Conv conv) {
  Out out(g.json);
  auto opened = OpenClient(g, out, true);
  if (!opened.client) return opened.exit_code;
  std::map<std::string, std::string> names;  // the peer's number, when named by it
  if (!conv.is_group() && conv.id.starts_with("+")) {
    opened.client->Start();
    auto resolved = ResolveConv(*opened.client, g, conv, &names);
    if (!resolved) return out.Fail(resolved.error());
    conv = *resolved;
  }
  RawTerminal terminal(!g.json);
  ChatUi ui(g, *opened.client, conv, terminal.active(), std::move(names));
  return ui.Run();
}

}  // namespace parley::cli
