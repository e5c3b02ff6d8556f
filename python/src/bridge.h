// The asyncio bridge of the Python extension (pacer._pacer): how a decision made on a store's
// I/O thread reaches the event loop that asked for it.
//
// A Redis decision completes on one of the store's I/O threads, which never touch a Python
// object: the completion is queued on its event loop's Bridge, and the first one queued after a
// drain writes the Bridge's eventfd. The loop watches that descriptor (loop.add_reader, in
// python/pacer/_bridge.py) and drain() resolves every queued future at once, holding the GIL:
// one wake-up for many decisions. A Call owns one reference to its future; that reference is
// released under the GIL by whoever ends up owning the Call (the caller when the store answered
// inline, drain() otherwise); an admission's Call (Engine::admit_scope) also owns one to its
// ASGI send, released the same way. Calls whose bridge is gone (its loop was closed or collected)
// are parked in a process-wide list and released at the next call from Python or at exit.
//
// With the loop's own Redis I/O (loop_driver.h) the completions run on the loop's thread, inside
// the poll that the loop calls: the Bridge is held for that poll (hold()) and delivered right
// after it (deliver()), so no eventfd is written; completions from any other thread still are.
#pragma once

#include <pybind11/pybind11.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "pacer/decision.h"
#include "policy.h"

namespace pacer::python {

struct BridgeCore;

struct Call {
  enum class State : std::uint8_t {
    kInCheck,   // the caller is still inside Limiter::check
    kAnswered,  // answered inline: the caller owns the Call
    kQueued,    // the caller returned first: the completion owns the Call and queues it
  };
  std::atomic<State> state{State::kInCheck};
  Verdict verdict;
  PyObject* future = nullptr;  // one strong reference, released under the GIL
  // An admission's ASGI send (Engine::admit_scope; one strong reference, released under the
  // GIL), or null: the future gets the Verdict itself.
  PyObject* send = nullptr;
  bool admission = false;
  std::shared_ptr<BridgeCore> bridge;
  std::optional<HeaderRendering> render;  // the ASGI headers, when asked for

  // Under the GIL, once the decision is known.
  void finish();
  // Under the GIL, after finish(): what the future gets (the Verdict, or the admission).
  py::object result();
  // Under the GIL: drops the references to Python objects.
  void release_python() noexcept;
};

// Any thread, no GIL: the decision and the store's error (empty unless the fail mode answered)
// of a call. Ownership of the Call moves to the bridge when the caller has returned already.
void complete_call(Call* call, const Decision& decision, std::string error) noexcept;

// Under the GIL: releases the Calls whose bridge went away.
void release_orphans();

// Any thread: the shared part of a Bridge, which queued Calls keep alive.
struct BridgeCore {
  BridgeCore();
  // May run on any thread, without the GIL: what is still queued is parked for Python.
  ~BridgeCore();
  BridgeCore(const BridgeCore&) = delete;
  BridgeCore& operator=(const BridgeCore&) = delete;

  // Any thread, no GIL.
  void push(Call* call);
  // Until the next deliver(), a push does not write the eventfd: the caller delivers after it.
  void hold();

  int fd = -1;
  std::mutex mutex;
  std::vector<Call*> ready;  // guarded by mutex
  bool held = false;         // guarded by mutex
};

// Under the GIL: resolves every queued future of `core` (and ends a hold()). Returns how many.
std::size_t deliver(BridgeCore& core);

// An optional Bridge given from Python: null for None, else the Bridge; py::type_error naming
// anything else. (Taken as a handle: pybind11 accepts None for a pointer to a bound class only in
// its second, converting pass over all the arguments, after probing None's type for another
// module's class, an AttributeError raised and formatted on every call. The in-process store's
// calls pass None.)
class Bridge;
Bridge* bridge_or_null(const py::handle& bridge);

// One per event loop (python/pacer/_bridge.py).
class Bridge {
 public:
  // Keeps a weak reference to `loop`.
  explicit Bridge(const py::object& loop);
  int fd() const { return core_->fd; }
  const std::shared_ptr<BridgeCore>& core() const { return core_; }
  // The event loop, or None once it is gone.
  py::object loop() const { return loop_(); }
  // The weak reference itself.
  const py::object& loop_ref() const { return loop_; }

  // Called by the event loop when fd() is readable: resolves every queued future. Returns how
  // many completions it delivered.
  std::size_t drain();

 private:
  std::shared_ptr<BridgeCore> core_;
  py::object loop_;  // weakref.ref
};

}  // namespace pacer::python
