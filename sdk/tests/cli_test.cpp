// The parley binary end to end, as a script would use it: --json output,
// profiles under $XDG_DATA_HOME, codes from the server's SMS file.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <fstream>
#include <sstream>

#include "sdk_helpers.hpp"

extern char** environ;

namespace parley::sdk::testing {
namespace {

namespace json = boost::json;

struct CliRun {
  int exit_code = -1;
  std::string out;
  std::string err;
  // stdout, one JSON object per line.
  std::vector<json::object> Lines() const {
    std::vector<json::object> lines;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      boost::system::error_code ec;
      auto v = json::parse(line, ec);
      EXPECT_FALSE(ec) << "not JSON: " << line;
      if (!ec && v.is_object()) lines.push_back(v.as_object());
    }
    return lines;
  }
  json::object Last() const {
    auto l = Lines();
    return l.empty() ? json::object{} : l.back();
  }
};

std::string S(const json::object& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_string() ? std::string(it->value().get_string()) : "";
}

class CliTest : public ServerSuite {
 protected:
  static void SetUpTestSuite() { StartServer(); }
  static void TearDownTestSuite() { StopServer(); }

  // Runs `parley --json ARGS...` with XDG_DATA_HOME in the test's directory.
  CliRun Parley(std::vector<std::string> args, const std::string& input = "",
                std::chrono::seconds timeout = 30s) {
    args.insert(args.begin(), {PARLEY_CLI_PATH, "--json"});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_strings = {"XDG_DATA_HOME=" + dirs_.path(), "HOME=" + dirs_.path(),
                                            "PATH=/usr/bin:/bin"};
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);

    int in_pipe[2], out_pipe[2], err_pipe[2];
    EXPECT_EQ(::pipe2(in_pipe, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(out_pipe, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(err_pipe, O_CLOEXEC), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    ::close(in_pipe[0]);
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    CliRun run;
    if (rc != 0) {
      ADD_FAILURE() << "cannot run " << argv[0];
      return run;
    }
    if (!input.empty()) (void)!::write(in_pipe[1], input.data(), input.size());
    ::close(in_pipe[1]);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    int open_fds = 2;
    char buf[4096];
    while (open_fds > 0 && std::chrono::steady_clock::now() < deadline) {
      if (::poll(fds, 2, 100) <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP)) == 0) continue;
        const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
        if (n <= 0) {
          ::close(fds[i].fd);
          fds[i].fd = -1;
          --open_fds;
        } else {
          (i == 0 ? run.out : run.err).append(buf, static_cast<std::size_t>(n));
        }
      }
    }
    for (auto& f : fds) {
      if (f.fd >= 0) ::close(f.fd);
    }
    int status = 0;
    if (open_fds > 0) {
      ::kill(pid, SIGKILL);
      ADD_FAILURE() << "parley timed out: " << run.out << run.err;
    }
    ::waitpid(pid, &status, 0);
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return run;
  }

  // Logs profile `name` in with `phone` the way a script does: ask for a
  // code, read it, verify. Returns the user id.
  std::string CliLogin(const std::string& name, const std::string& phone) {
    const std::string url = UrlOf(*server_);
    const std::size_t seen = server_->CodeCount(phone);
    auto asked =
        Parley({"--profile", name, "--server", url, "login", "--phone", phone, "--request-code"});
    EXPECT_EQ(asked.exit_code, 0) << asked.out << asked.err;
    EXPECT_EQ(asked.Last().at("code_requested"), true);
    auto code = server_->WaitCode(phone, seen);
    EXPECT_TRUE(code);
    if (!code) return {};
    auto in =
        Parley({"--profile", name, "--server", url, "login", "--phone", phone, "--code", *code});
    EXPECT_EQ(in.exit_code, 0) << in.out << in.err;
    return S(in.Last(), "user_id");
  }
};

TEST_F(CliTest, LoginSendHistoryAndGroupsWithJsonOutput) {
  const std::string pa = NextPhone(), pb = NextPhone();
  const std::string alice = CliLogin("alice", pa);
  const std::string bob = CliLogin("bob", pb);
  ASSERT_FALSE(alice.empty());
  ASSERT_FALSE(bob.empty());

  auto who = Parley({"--profile", "alice", "whoami"});
  ASSERT_EQ(who.exit_code, 0) << who.err;
  EXPECT_EQ(S(who.Last(), "user_id"), alice);
  EXPECT_EQ(S(who.Last(), "phone"), pa);
  EXPECT_EQ(S(who.Last(), "data_dir"), dirs_.path() + "/parley/alice");

  auto sent = Parley({"--profile", "alice", "send", "--to", bob, "hello", "bob"});
  ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err;
  const std::string msg_id = S(sent.Last(), "msg_id");
  EXPECT_FALSE(msg_id.empty());

  auto history = Parley({"--profile", "bob", "history", "--with", alice});
  ASSERT_EQ(history.exit_code, 0) << history.out << history.err;
  auto lines = history.Lines();
  ASSERT_EQ(lines.size(), 1u) << history.out;
  EXPECT_EQ(S(lines[0], "msg_id"), msg_id);
  EXPECT_EQ(S(lines[0], "text"), "hello bob");
  EXPECT_EQ(lines[0].at("from").at("user"), json::value(alice));
  EXPECT_EQ(lines[0].at("outgoing"), false);

  // Piped into chat: each line is sent; the chat ends once they are stored.
  auto chat = Parley({"--profile", "bob", "chat", "--to", alice}, "hi alice\nhow are you\n");
  ASSERT_EQ(chat.exit_code, 0) << chat.out << chat.err;
  // Alice's profile was not connected meanwhile: listen gets both.
  auto listen = Parley({"--profile", "alice", "listen", "--for", "2"});
  ASSERT_EQ(listen.exit_code, 0) << listen.err;
  std::vector<std::string> heard;
  for (const auto& e : listen.Lines()) {
    if (S(e, "event") == "message") heard.push_back(S(e, "text"));
  }
  EXPECT_EQ(heard, (std::vector<std::string>{"hi alice", "how are you"})) << listen.out;
  // ... and keeps them: the local history has the whole chat.
  auto local = Parley({"--profile", "alice", "history", "--with", bob, "--local"});
  ASSERT_EQ(local.exit_code, 0);
  EXPECT_EQ(local.Lines().size(), 3u);
  auto mine = Parley({"--profile", "alice", "history", "--with", bob, "--limit", "10"});
  ASSERT_EQ(mine.exit_code, 0);
  auto texts = mine.Lines();
  ASSERT_EQ(texts.size(), 3u) << mine.out;
  EXPECT_EQ(S(texts[0], "text"), "hello bob");  // oldest first
  EXPECT_EQ(S(texts[1], "text"), "hi alice");
  EXPECT_EQ(S(texts[2], "text"), "how are you");
  EXPECT_EQ(texts[0].at("outgoing"), true);
  EXPECT_EQ(S(texts[0], "status"), "read");  // bob's chat read it

  auto group = Parley({"--profile", "alice", "group", "create", "pals", bob});
  ASSERT_EQ(group.exit_code, 0) << group.out << group.err;
  const std::string gid = S(group.Last(), "group_id");
  ASSERT_FALSE(gid.empty()) << group.out;
  auto info = Parley({"--profile", "bob", "group", "info", gid});
  ASSERT_EQ(info.exit_code, 0) << info.out;
  EXPECT_EQ(S(info.Last(), "name"), "pals");
  EXPECT_EQ(info.Last().at("members").as_array().size(), 2u);
  auto to_group = Parley({"--profile", "bob", "send", "--group", gid, "hi pals"});
  ASSERT_EQ(to_group.exit_code, 0) << to_group.out;
  auto group_history = Parley({"--profile", "alice", "history", "--group", gid});
  ASSERT_EQ(group_history.exit_code, 0);
  ASSERT_EQ(group_history.Lines().size(), 1u);
  EXPECT_EQ(S(group_history.Last(), "text"), "hi pals");
  auto leave = Parley({"--profile", "bob", "group", "leave", gid});
  EXPECT_EQ(leave.exit_code, 0) << leave.out;

  auto devices = Parley({"--profile", "alice", "devices", "list"});
  ASSERT_EQ(devices.exit_code, 0);
  ASSERT_EQ(devices.Lines().size(), 1u);
  EXPECT_EQ(devices.Last().at("current"), true);
}

TEST_F(CliTest, EncryptedByDefaultWithSafetyNumbers) {
  const std::string alice = CliLogin("ealice", NextPhone());
  const std::string bob = CliLogin("ebob", NextPhone());
  ASSERT_FALSE(alice.empty());
  ASSERT_FALSE(bob.empty());
  const std::string secret = "cli-secret-3e9b1f";
  auto sent = Parley({"--profile", "ealice", "send", "--to", bob, secret});
  ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err;
  auto listen = Parley({"--profile", "ebob", "listen", "--count", "1", "--for", "10"});
  ASSERT_EQ(listen.exit_code, 0) << listen.err;
  bool heard = false;
  for (const auto& e : listen.Lines()) {
    if (S(e, "event") != "message") continue;
    heard = S(e, "text") == secret;
    EXPECT_EQ(e.at("encrypted"), true);
    EXPECT_FALSE(e.contains("decrypt_error"));
  }
  EXPECT_TRUE(heard) << listen.out;

  auto mine = Parley({"--profile", "ealice", "safety-number", bob});
  auto theirs = Parley({"--profile", "ebob", "safety-number", alice});
  ASSERT_EQ(mine.exit_code, 0) << mine.out << mine.err;
  ASSERT_EQ(theirs.exit_code, 0) << theirs.out << theirs.err;
  const std::string number = S(mine.Last(), "safety_number");
  EXPECT_EQ(number.size(), 60u);
  EXPECT_EQ(number, S(theirs.Last(), "safety_number"));

  // Files: send-file encrypts, get-file checks and decrypts.
  const std::string in_path = dirs_.Sub("photo.bin"), out_path = dirs_.Sub("received.bin");
  std::string content(50000, '\0');
  for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 31 % 256);
  std::ofstream(in_path, std::ios::binary) << content;
  auto file_sent = Parley({"--profile", "ealice", "send-file", "--to", bob, in_path});
  ASSERT_EQ(file_sent.exit_code, 0) << file_sent.out << file_sent.err;
  EXPECT_EQ(S(file_sent.Last(), "name"), "photo.bin");
  const std::string file_msg = S(file_sent.Last(), "msg_id");
  auto got = Parley({"--profile", "ebob", "get-file", file_msg, "--output", out_path});
  ASSERT_EQ(got.exit_code, 0) << got.out << got.err;
  std::ifstream back(out_path, std::ios::binary);
  std::string received((std::istreambuf_iterator<char>(back)), std::istreambuf_iterator<char>());
  EXPECT_EQ(received, content);
  auto missing = Parley({"--profile", "ebob", "get-file", "12345"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(S(missing.Last().at("error").as_object(), "code"), "not_found");

  // The server has the envelope, not the text.
  int code = -1;
  const std::string dump = test::RunAdmin(
      {"--data-dir", server_->data_dir(), "dump-user", "--user", bob, "--events"}, &code);
  ASSERT_EQ(code, 0) << dump;
  EXPECT_NE(dump.find("\"e2ee\""), std::string::npos);
  EXPECT_EQ(dump.find(secret), std::string::npos);
}

TEST_F(CliTest, ErrorsAreJsonWithAnExitCode) {
  auto nobody = Parley({"--profile", "ghost", "whoami"});
  EXPECT_EQ(nobody.exit_code, 3);
  EXPECT_EQ(S(nobody.Last().at("error").as_object(), "code"), "not_logged_in");

  const std::string carol = CliLogin("carol", NextPhone());
  ASSERT_FALSE(carol.empty());
  auto unknown = Parley({"--profile", "carol", "send", "--to", "4242", "hello?"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(S(unknown.Last().at("error").as_object(), "code"), "not_found");
  auto bad_code = Parley({"--profile", "dave", "--server", UrlOf(*server_), "login", "--phone",
                          NextPhone(), "--code", "12"});
  EXPECT_EQ(bad_code.exit_code, 1);
  EXPECT_EQ(S(bad_code.Last().at("error").as_object(), "code"), "invalid_code");
  auto twice = Parley({"--profile", "carol", "--server", UrlOf(*server_), "login", "--phone",
                       NextPhone(), "--code", "123456"});
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_EQ(S(twice.Last().at("error").as_object(), "code"), "invalid");
  auto usage = Parley({"send"});
  EXPECT_NE(usage.exit_code, 0);
}

TEST_F(CliTest, LogoutRemovesTheDeviceAndTheProfile) {
  const std::string phone = NextPhone();
  ASSERT_FALSE(CliLogin("erin", phone).empty());
  ASSERT_FALSE(CliLogin("erin2", phone).empty());
  auto out = Parley({"--profile", "erin2", "logout"});
  ASSERT_EQ(out.exit_code, 0) << out.out << out.err;
  EXPECT_FALSE(std::filesystem::exists(dirs_.path() + "/parley/erin2"));
  auto devices = Parley({"--profile", "erin", "devices", "list"});
  ASSERT_EQ(devices.exit_code, 0);
  EXPECT_EQ(devices.Lines().size(), 1u);
}

// The CLI meets people by phone number (contacts.discover), shows names
// or numbers instead of user ids, and marks read what it shows.
TEST_F(CliTest, PhoneNumbersNamesAndReadReceipts) {
  const std::string pe = NextPhone(), pf = NextPhone();
  const std::string erin = CliLogin("erin", pe);
  ASSERT_FALSE(erin.empty());
  auto named = Parley({"--profile", "erin", "profile", "set", "--name", "Erin"});
  ASSERT_EQ(named.exit_code, 0) << named.out << named.err;
  auto frank = Login(pf, "frank", [](ClientOptions& o) { o.crypto = nullptr; });  // libsignal
  ASSERT_TRUE(frank);
  ASSERT_TRUE(StartSynced(*frank));
  ASSERT_TRUE(frank->PublishKeys().get());
  auto read_receipt = [&](const std::string& msg_id) {
    return WaitFor<ReceiptEvent>(*frank, [&](const ReceiptEvent& r) {
      return r.status == MessageStatus::kRead && r.by == erin &&
             std::find(r.msg_ids.begin(), r.msg_ids.end(), msg_id) != r.msg_ids.end();
    });
  };

  // By number; a number without an account is not_found.
  auto sent = Parley({"--profile", "erin", "send", "--to", pf, "hi frank, by number"});
  ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err;
  auto got = WaitFor<MessageEvent>(
      *frank, [](const MessageEvent& e) { return e.message.text == "hi frank, by number"; });
  ASSERT_TRUE(got);
  EXPECT_EQ(got->message.from.user, erin);
  auto nobody = Parley({"--profile", "erin", "send", "--to", "+19995550000", "hello?"});
  EXPECT_EQ(nobody.exit_code, 1);
  EXPECT_EQ(S(nobody.Last().at("error").as_object(), "code"), "not_found");

  // Frank writes; Erin answers before she "sees" it; her chat then shows
  // both and marks Frank's message read although her reply is newer.
  auto one = frank->SendText(Conv::User(erin), "one").get();
  ASSERT_TRUE(one) << one.error().ToString();
  auto reply = Parley({"--profile", "erin", "send", "--to", pf, "a reply"});
  ASSERT_EQ(reply.exit_code, 0) << reply.out << reply.err;
  auto chat = Parley({"--profile", "erin", "chat", "--to", pf});
  ASSERT_EQ(chat.exit_code, 0) << chat.out << chat.err;
  EXPECT_TRUE(read_receipt(one->msg_id)) << "chat did not mark what it showed read";

  // History names Frank by his number (he has no profile name), then by
  // his name once he has one.
  auto history = Parley({"--profile", "erin", "history", "--with", pf});
  ASSERT_EQ(history.exit_code, 0) << history.out << history.err;
  bool saw_frank = false;
  for (const auto& line : history.Lines()) {
    if (S(line, "text") != "one") continue;
    saw_frank = true;
    EXPECT_EQ(S(line, "from_name"), pf);
  }
  EXPECT_TRUE(saw_frank) << history.out;
  ASSERT_TRUE(frank->SetProfile({.name = "Frank"}).get());
  history = Parley({"--profile", "erin", "history", "--with", frank->account()->user_id});
  ASSERT_EQ(history.exit_code, 0) << history.out << history.err;
  for (const auto& line : history.Lines()) {
    if (S(line, "text") == "one") {
      EXPECT_EQ(S(line, "from_name"), "Frank");
    }
    if (S(line, "text") == "a reply") {
      EXPECT_FALSE(line.contains("from_name"));  // her own
    }
  }

  // parley read: up to the newest message from someone else.
  auto two = frank->SendText(Conv::User(erin), "two").get();
  ASSERT_TRUE(two);
  auto read = Parley({"--profile", "erin", "read", "--to", pf});
  ASSERT_EQ(read.exit_code, 0) << read.out << read.err;
  EXPECT_EQ(S(read.Last(), "up_to_msg_id"), two->msg_id);
  EXPECT_TRUE(read_receipt(two->msg_id));
}

}  // namespace
}  // namespace parley::sdk::testing
