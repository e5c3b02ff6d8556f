// apps/common/command_line.h — one command-line contract for Pacer's programs: `--version`
// prints "<program> <version>" and exits 0, `--help` exits 0, and any mistake (an unknown flag,
// a bad value, a missing argument) prints CLI11's message naming it and exits 2, the status
// docs/OPERATIONS.md documents (CLI11 alone would exit 105-114, one status per error kind).
//
//   if (auto status = pacer::apps::parse_command_line(cli, "pacerd", argc, argv)) return *status;
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "pacer/version.h"

namespace pacer::apps {

inline constexpr int kUsageError = 2;

// Parses argv into `cli`. Returns the exit status when the program should stop now (help,
// version, a mistake), nothing when it should go on.
inline std::optional<int> parse_command_line(CLI::App& cli, const char* program, int argc,
                                             char** argv) {
  cli.set_version_flag("--version", std::string(program) + " " + std::string(kVersion),
                       "print the version and exit");
  try {
    cli.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::Success& e) {  // --help, --version
    return cli.exit(e);
  } catch (const CLI::ParseError& e) {
    cli.exit(e);  // the message, on stderr
    return kUsageError;
  }
}

}  // namespace pacer::apps
