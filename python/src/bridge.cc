// The asyncio bridge of the Python extension (see bridge.h).
#include "bridge.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <exception>
#include <system_error>
#include <utility>

namespace pacer::python {
namespace {

// Calls whose bridge went away; released under the GIL by release_orphans().
std::mutex orphans_mutex;
std::vector<Call*> orphans;
std::atomic<bool> have_orphans{false};

// Answers a future whose decision could not be delivered (out of memory while rendering it),
// so its task does not wait forever.
void fail_future(const py::object& future, const char* what) noexcept {
  // On the C API alone: nothing here throws.
  PyObject* done = PyObject_CallMethod(future.ptr(), "done", nullptr);
  const int is_done = done != nullptr ? PyObject_IsTrue(done) : -1;
  Py_XDECREF(done);
  if (is_done == 0) {
    PyObject* message = PyUnicode_FromFormat("pacer: cannot deliver a decision: %s", what);
    PyObject* error =
        message != nullptr ? PyObject_CallOneArg(PyExc_RuntimeError, message) : nullptr;
    PyObject* set =
        error != nullptr ? PyObject_CallMethod(future.ptr(), "set_exception", "O", error) : nullptr;
    Py_XDECREF(message);
    Py_XDECREF(error);
    if (set != nullptr) {
      Py_DECREF(set);
      return;
    }
  }
  // Reported as unraisable, as an error in a callback nobody awaits is.
  if (PyErr_Occurred() != nullptr) PyErr_WriteUnraisable(future.ptr());
}

// The future's methods that deliver() calls, by names made once (a call by name otherwise makes
// the string and a bound method every time). GIL held.
bool future_done(PyObject* future) {
  static PyObject* const done_name = PyUnicode_InternFromString("done");
  PyObject* done = PyObject_CallMethodNoArgs(future, done_name);
  if (done == nullptr) throw py::error_already_set();
  const int yes = PyObject_IsTrue(done);
  Py_DECREF(done);
  if (yes < 0) throw py::error_already_set();
  return yes != 0;
}

}  // namespace

void Call::finish() {
  if (render) verdict.headers = asgi_headers(render->policy, verdict.decision, render->choice);
}

py::object Call::result() {
  if (!admission) return py::cast(std::move(verdict));
  return python::admission(std::move(verdict),
                           send ? py::reinterpret_borrow<py::object>(send) : py::none());
}

void Call::release_python() noexcept {
  Py_XDECREF(future);
  Py_XDECREF(send);
  future = send = nullptr;
}

void release_orphans() {
  if (!have_orphans.load(std::memory_order_acquire)) return;
  std::vector<Call*> calls;
  {
    std::lock_guard lock(orphans_mutex);
    calls.swap(orphans);
    have_orphans.store(false, std::memory_order_release);
  }
  for (Call* call : calls) {
    call->release_python();
    delete call;
  }
}

BridgeCore::BridgeCore() : fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
}

BridgeCore::~BridgeCore() {
  if (!ready.empty()) {
    std::lock_guard lock(orphans_mutex);
    orphans.insert(orphans.end(), ready.begin(), ready.end());
    have_orphans.store(true, std::memory_order_release);
  }
  ::close(fd);
}

void BridgeCore::push(Call* call) {
  bool wake;
  {
    std::lock_guard lock(mutex);
    wake = ready.empty() && !held;
    ready.push_back(call);
  }
  if (wake) {
    const std::uint64_t one = 1;
    // EAGAIN means the counter is already non-zero: the loop will wake anyway.
    [[maybe_unused]] const auto n = ::write(fd, &one, sizeof one);
  }
}

void BridgeCore::hold() {
  const std::lock_guard lock(mutex);
  held = true;
}

void complete_call(Call* call, const Decision& decision, std::string error) noexcept {
  call->verdict.decision = decision;
  call->verdict.error = std::move(error);
  auto expected = Call::State::kInCheck;
  if (call->state.compare_exchange_strong(expected, Call::State::kAnswered,
                                          std::memory_order_acq_rel))
    return;
  std::shared_ptr<BridgeCore> bridge = std::move(call->bridge);
  bridge->push(call);
}

Bridge* bridge_or_null(const py::handle& bridge) {
  if (bridge.is_none()) return nullptr;
  if (!py::isinstance<Bridge>(bridge)) {
    throw py::type_error("bridge must be a pacer._pacer.Bridge or None, got " +
                         std::string(Py_TYPE(bridge.ptr())->tp_name));
  }
  return &bridge.cast<Bridge&>();
}

Bridge::Bridge(const py::object& loop)
    : core_(std::make_shared<BridgeCore>()),
      loop_(py::module_::import("weakref").attr("ref")(loop)) {}

std::size_t Bridge::drain() {
  std::uint64_t counter;
  [[maybe_unused]] const auto n = ::read(core_->fd, &counter, sizeof counter);
  return deliver(*core_);
}

std::size_t deliver(BridgeCore& core) {
  std::vector<Call*> calls;
  {
    const std::lock_guard lock(core.mutex);
    calls.swap(core.ready);
    core.held = false;
  }
  for (Call* call : calls) {
    std::unique_ptr<Call> owned(call);
    py::object future = py::reinterpret_steal<py::object>(call->future);
    call->future = nullptr;
    // Owns the send's reference; call->send stays a borrowed pointer for result().
    const py::object send = py::reinterpret_steal<py::object>(call->send);
    // Every queued call is delivered or released, whatever happens to one of them.
    try {
      // A cancelled task's future is done already: its answer goes nowhere.
      if (!future_done(future.ptr())) {
        call->finish();
        static PyObject* const set_result_name = PyUnicode_InternFromString("set_result");
        const py::object result = call->result();
        PyObject* none = PyObject_CallMethodOneArg(future.ptr(), set_result_name, result.ptr());
        if (none == nullptr) throw py::error_already_set();
        Py_DECREF(none);
      }
    } catch (py::error_already_set& e) {
      // set_result on a future whose loop is closed, or out of memory: that one future.
      e.discard_as_unraisable("pacer: delivering a decision to its future");
    } catch (const std::exception& e) {
      fail_future(future, e.what());
    }
  }
  release_orphans();
  return calls.size();
}

}  // namespace pacer::python
