// Runs a shell command to completion for the PostgreSQL node tests.
#pragma once

#include <stdio.h>
#include <sys/wait.h>

#include <string>

namespace parley::test {

// Runs `command` (through sh, stderr joined by the command itself if it
// wants); answers its exit status (-1 when it did not exit) and puts what
// it printed in *output.
inline int RunShell(const std::string& command, std::string* output) {
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  output->clear();
  while (std::fgets(buf, sizeof buf, p) != nullptr) *output += buf;
  const int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace parley::test
