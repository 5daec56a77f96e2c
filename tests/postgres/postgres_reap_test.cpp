// tests/support/postgres: a throwaway server whose test binary was killed
// (so it never stopped its server) is stopped and removed by the next one.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>

#include "support/postgres.hpp"

namespace parley::test {
namespace {

// True once `pid` is no process or a zombie (state Z in /proc/PID/stat).
bool Exited(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!in || !std::getline(in, stat)) return true;
  const auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
}

TEST(TempPostgresReap, AServerWhoseTestWasKilledIsStoppedByTheNext) {
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // A test binary that starts its server and is then SIGKILLed.
    close(pipefd[0]);
    std::string dir;
    try {
      auto* server = new TempPostgres();  // never destroyed: the process dies
      const std::string url = server->Url("postgres");
      dir = url.substr(url.find("host=") + 5);
      dir = dir.substr(0, dir.find('&'));
    } catch (...) {
      _exit(2);
    }
    dir += "\n";
    if (write(pipefd[1], dir.data(), dir.size()) < 0) _exit(3);
    pause();
    _exit(0);
  }
  close(pipefd[1]);
  std::string dir;
  char c = 0;
  while (read(pipefd[0], &c, 1) == 1 && c != '\n') dir += c;
  close(pipefd[0]);
  ASSERT_FALSE(dir.empty()) << "the child did not start its server";
  std::ifstream pidfile(dir + "/data/postmaster.pid");
  long postmaster = 0;
  ASSERT_TRUE(pidfile >> postmaster) << dir;
  ASSERT_EQ(kill(static_cast<pid_t>(postmaster), 0), 0) << "the server is not running";

  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  // The orphan is still there until a new server starts.
  EXPECT_TRUE(std::filesystem::exists(dir));
  EXPECT_EQ(kill(static_cast<pid_t>(postmaster), 0), 0);

  TempPostgres next;
  EXPECT_FALSE(std::filesystem::exists(dir)) << dir << " was not removed";
  // `pg_ctl stop -w` returns once the pid file is gone, a moment before the
  // postmaster exits; and the orphan was re-parented to PID 1, which in a
  // container may never reap it, so an exited postmaster can stay a zombie.
  // Both count as stopped: no socket, no memory, no children.
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = Exited(static_cast<pid_t>(postmaster));
    if (!gone) usleep(100'000);
  }
  EXPECT_TRUE(gone) << "postmaster " << postmaster << " still runs";
}

}  // namespace
}  // namespace parley::test
