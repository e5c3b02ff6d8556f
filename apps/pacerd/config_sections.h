// pacerd's configuration, one reader per section (docs/DESIGN.md §8): each reads its keys from
// `s` into `c` and records every problem in `s.problems()`. config_store.cc: [store], [grpc] and
// [auth]; config_sections.cc: the rest, and parse_config over the whole.
#pragma once

#include "config.h"
#include "config_reader.h"

namespace pacer::pacerd::sections {

void read_store(reader::Section& s, Config& c);      // [store]
void read_store_tls(reader::Section& s, Config& c);  // [store.tls]
void read_grpc(reader::Section& s, Config& c);       // [grpc]
void read_auth(reader::Section& s, Config& c);       // [auth]

}  // namespace pacer::pacerd::sections
