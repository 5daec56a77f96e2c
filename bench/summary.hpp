#pragma once

namespace parley::bench {

// `parley-bench summary FILE...`: prints one line per --json report file.
// Returns 1 if any file holds no report.
int Summary(int argc, char** argv);

}  // namespace parley::bench
