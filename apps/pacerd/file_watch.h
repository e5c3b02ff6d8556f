// When a changed configuration file may be read: only once it has stopped changing.
//
// An editor or a `cat > file` rewriting the file in place writes it in parts; the file watch
// used to read whatever was there at its next poll. A valid prefix (the first policies of the
// file) was then loaded, and the rest of the policies were unknown until the next poll (issue
// 20: 2,934 requests refused in 1.5 s). A change is now taken only after the file's stamp
// (mtime, inode, size) stayed the same for `settle`: a write that continues within that time
// starts the wait again. Atomic replacement (write a temporary file, rename it over the old
// one, as Kubernetes ConfigMaps and most deploy tools do) is still the safe way; a SIGHUP
// reloads at once. See docs/DESIGN.md §8, "Reload".
//
// No I/O: the caller polls the stamp and passes the time (unit-tested with a fake clock).
#pragma once

#include <chrono>
#include <optional>

#include "config.h"

namespace pacer::pacerd {

class SettledChange {
 public:
  using Clock = std::chrono::steady_clock;

  // `loaded`: the stamp of the file in force.
  SettledChange(FileStamp loaded, Clock::duration settle) : loaded_(loaded), settle_(settle) {}

  // The file's stamp seen at `now`. True once a stamp other than the loaded one has stayed the
  // same for `settle`; it then counts as loaded.
  bool observe(const FileStamp& stamp, Clock::time_point now) {
    if (stamp == loaded_) {
      pending_.reset();  // changed and changed back: nothing to do
      return false;
    }
    if (!pending_ || !(pending_->stamp == stamp)) {
      pending_ = Pending{stamp, now};
      return false;
    }
    if (now - pending_->since < settle_) return false;
    loaded_ = stamp;
    pending_.reset();
    return true;
  }

  // A reload that did not wait (SIGHUP) read the file with this stamp.
  void loaded(const FileStamp& stamp) {
    loaded_ = stamp;
    pending_.reset();
  }

  // True while a change waits to settle.
  bool waiting() const { return pending_.has_value(); }

 private:
  struct Pending {
    FileStamp stamp;
    Clock::time_point since;
  };
  FileStamp loaded_;
  Clock::duration settle_;
  std::optional<Pending> pending_;
};

}  // namespace pacer::pacerd
