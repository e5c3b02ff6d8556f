// apps/common/guarded_main.h — the outermost frame of the apps' main(): whatever escapes the
// app's own handling is printed and ends the process with a failure status, instead of
// std::terminate and a core dump.
//
//   int main(int argc, char** argv) { return pacer::apps::guarded_main("pacerd", run, argc, argv);
//   }
#pragma once

#include <cstdio>
#include <exception>

namespace pacer::apps {

inline int guarded_main(const char* name, int (*run)(int, char**), int argc, char** argv) noexcept {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
  } catch (...) {
    std::fprintf(stderr, "%s: unknown exception\n", name);
  }
  return 2;
}

}  // namespace pacer::apps
