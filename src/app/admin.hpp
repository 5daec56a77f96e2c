// `parleyd admin ...`: operator commands that read the store directly.
#pragma once

namespace parley::app {

// argv[0] is "admin". Returns the process exit code.
int RunAdmin(int argc, const char* const* argv);

}  // namespace parley::app
