// The awaitable of a middleware request decided by the store later (see store_await.h).
#include "store_await.h"

#include <cstddef>

#include "asgi_entry.h"
#include "fast_path.h"

namespace pacer::python {
namespace {

namespace py = pybind11;

PyTypeObject* await_type = nullptr;
PyTypeObject* verdict_type = nullptr;

// Interned names, made once by add_store_await.
struct Names {
  PyObject* create_future;
  PyObject* blocking;  // _asyncio_future_blocking
  PyObject* done;
  PyObject* result;
  PyObject* throw_;
  PyObject* close;
  PyObject* respond;
};
Names names{};

// Imported on the first decision (the package imports this module before those).
PyObject* get_running_loop = nullptr;  // asyncio.get_running_loop
PyObject* bridge_for = nullptr;        // pacer._bridge.bridge_for

// The last loop asked for (a weak reference) and its Bridge: nearly every decision asks from
// the same loop, and bridge_for is a Python function.
PyObject* last_loop = nullptr;
PyObject* last_bridge = nullptr;

enum class Step {
  kStart,       // not sent to yet: nothing asked
  kWaiting,     // the store decides: `future` yielded to the task
  kDelegating,  // the app's (or _respond's, or _failed's) awaitable runs: `inner`
  kDone,
};

struct AwaitObject {
  PyObject_HEAD Step step;
  bool running;  // in send, throw or close: code they run may call them again (a selector)
  PyObject* middleware;
  PyObject* app;
  PyObject* gate;
  PyObject* scope;
  PyObject* receive;
  PyObject* send;
  PyObject* route;
  PyObject* future;  // while kWaiting
  PyObject* inner;   // the iterator of the awaitable delegated to, while kDelegating
};

AwaitObject& of(PyObject* self) { return *reinterpret_cast<AwaitObject*>(self); }

// Marks the awaitable running for one send, throw or close; refuses one that already is, as a
// generator does ("already executing"): its objects are in use by the outer call.
class Running {
 public:
  explicit Running(AwaitObject& o) : o_(o), entered_(!o.running) {
    if (entered_) {
      o_.running = true;
    } else {
      PyErr_SetString(PyExc_ValueError, "coroutine already executing");
    }
  }
  Running(const Running&) = delete;
  Running& operator=(const Running&) = delete;
  ~Running() {
    if (entered_) o_.running = false;
  }
  explicit operator bool() const { return entered_; }

 private:
  AwaitObject& o_;
  bool entered_;
};

int await_traverse(PyObject* self, visitproc visit, void* arg) {
  auto& o = of(self);
  Py_VISIT(o.middleware);
  Py_VISIT(o.app);
  Py_VISIT(o.gate);
  Py_VISIT(o.scope);
  Py_VISIT(o.receive);
  Py_VISIT(o.send);
  Py_VISIT(o.route);
  Py_VISIT(o.future);
  Py_VISIT(o.inner);
  Py_VISIT(Py_TYPE(self));
  return 0;
}

// What the request no longer needs once the app's awaitable runs (or it is over).
void release_request(AwaitObject& o) {
  Py_CLEAR(o.middleware);
  Py_CLEAR(o.app);
  Py_CLEAR(o.gate);
  Py_CLEAR(o.scope);
  Py_CLEAR(o.receive);
  Py_CLEAR(o.send);
  Py_CLEAR(o.route);
  Py_CLEAR(o.future);
}

int await_clear(PyObject* self) {
  auto& o = of(self);
  release_request(o);
  Py_CLEAR(o.inner);
  o.step = Step::kDone;
  return 0;
}

void await_dealloc(PyObject* self) { gc_dealloc(self, await_clear); }

PyObject* lazy_import(PyObject*& cached, const char* module, const char* name) {
  if (cached == nullptr) {
    PyObject* imported = PyImport_ImportModule(module);
    if (imported == nullptr) return nullptr;
    cached = PyObject_GetAttrString(imported, name);  // kept for the life of the process
    Py_DECREF(imported);
  }
  return cached;
}

// The running loop's Bridge (borrowed, valid until the next call), or null with an error set.
PyObject* bridge_of(PyObject* loop) {
  if (last_loop != nullptr && PyWeakref_GET_OBJECT(last_loop) == loop) return last_bridge;
  if (lazy_import(bridge_for, "pacer._bridge", "bridge_for") == nullptr) return nullptr;
  PyObject* bridge = PyObject_CallOneArg(bridge_for, loop);
  if (bridge == nullptr) return nullptr;
  PyObject* ref = PyWeakref_NewRef(loop, nullptr);
  if (ref == nullptr) {
    Py_DECREF(bridge);
    return nullptr;
  }
  Py_XSETREF(last_loop, ref);
  Py_XSETREF(last_bridge, bridge);
  return bridge;
}

// The running loop's Bridge and a new future of that loop; false with an error set (no loop
// runs, or making them raised).
bool loop_future(py::object& bridge, py::object& future) {
  if (lazy_import(get_running_loop, "asyncio", "get_running_loop") == nullptr) return false;
  const py::object loop = py::reinterpret_steal<py::object>(PyObject_CallNoArgs(get_running_loop));
  if (!loop) return false;
  PyObject* found = bridge_of(loop.ptr());
  if (found == nullptr) return false;
  bridge = py::reinterpret_borrow<py::object>(found);
  future =
      py::reinterpret_steal<py::object>(PyObject_CallMethodNoArgs(loop.ptr(), names.create_future));
  return static_cast<bool>(future);
}

// loop_future(): (bridge, future) for a decision the store makes later, from Python.
PyObject* loop_future_function(PyObject*, PyObject*) noexcept {
  py::object bridge;
  py::object future;
  if (!loop_future(bridge, future)) return nullptr;
  return PyTuple_Pack(2, bridge.ptr(), future.ptr());
}

PyMethodDef loop_future_def = {
    "loop_future", loop_future_function, METH_NOARGS,
    "loop_future() -> (bridge, future): the running loop's Bridge and a new future of that "
    "loop, for a decision the store makes later. RuntimeError when no loop runs."};

// The StopIteration being raised taken as a return: its value (new reference) and PYGEN_RETURN;
// any other error stays set: PYGEN_ERROR.
PySendResult returned(PyObject** result) {
  if (!PyErr_ExceptionMatches(PyExc_StopIteration)) return PYGEN_ERROR;
  const py::object stop = fetch_exception();
  *result = stop ? PyObject_GetAttrString(stop.ptr(), "value") : Py_NewRef(Py_None);
  return *result != nullptr ? PYGEN_RETURN : PYGEN_ERROR;
}

// A send's outcome as a method answers it: the value yielded, or StopIteration(value).
PyObject* as_method_result(PySendResult status, PyObject* result) {
  if (status != PYGEN_RETURN) return result;  // yielded, or null with the error set
  if (result == Py_None) {
    PyErr_SetNone(PyExc_StopIteration);
  } else {
    PyObject* stop = PyObject_CallOneArg(PyExc_StopIteration, result);
    if (stop != nullptr) {
      PyErr_SetObject(PyExc_StopIteration, stop);
      Py_DECREF(stop);
    }
  }
  Py_DECREF(result);
  return nullptr;
}

// The iterator `await awaitable` runs (new reference), or null with an error set.
PyObject* awaitable_iter(PyObject* awaitable) {
  if (PyCoro_CheckExact(awaitable)) return Py_NewRef(awaitable);
  PyAsyncMethods* async = Py_TYPE(awaitable)->tp_as_async;
  if (async != nullptr && async->am_await != nullptr) {
    PyObject* iter = async->am_await(awaitable);
    if (iter == nullptr) return nullptr;
    if (PyIter_Check(iter) && !PyCoro_CheckExact(iter)) return iter;
    PyErr_Format(PyExc_TypeError, "__await__() returned %s, not an iterator",
                 PyCoro_CheckExact(iter) ? "a coroutine" : Py_TYPE(iter)->tp_name);
    Py_DECREF(iter);
    return nullptr;
  }
  PyErr_Format(PyExc_TypeError, "object %.100s can't be used in 'await' expression",
               Py_TYPE(awaitable)->tp_name);
  return nullptr;
}

// Runs `awaitable` (a new reference, or null when making it raised) from here on.
PySendResult delegate(AwaitObject& o, PyObject* awaitable, PyObject** result) {
  release_request(o);
  if (awaitable == nullptr) {
    o.step = Step::kDone;
    return PYGEN_ERROR;
  }
  o.inner = awaitable_iter(awaitable);
  Py_DECREF(awaitable);
  if (o.inner == nullptr) {
    o.step = Step::kDone;
    return PYGEN_ERROR;
  }
  o.step = Step::kDelegating;
  const PySendResult status = PyIter_Send(o.inner, Py_None, result);
  if (status != PYGEN_NEXT) {
    Py_CLEAR(o.inner);
    o.step = Step::kDone;
  }
  return status;
}

// With an error set (raised before the app runs): the middleware's _failed, as its Python path
// answers an Exception; any other BaseException goes on.
PySendResult fail(AwaitObject& o, PyObject** result) {
  return delegate(o, middleware_failed(o.middleware, o.scope, o.receive, o.send), result);
}

// The Gate's answer: the wrapped send (the app runs with it) or a Verdict (_respond answers).
PySendResult answer_with(AwaitObject& o, PyObject* answer, PyObject** result) {
  PyObject* awaitable = nullptr;
  if (Py_TYPE(answer) == verdict_type) {
    PyObject* args[] = {o.middleware, answer, o.scope, o.receive, o.send};
    awaitable = PyObject_VectorcallMethod(names.respond, args, 5, nullptr);
  } else {
    PyObject* args[] = {nullptr, o.scope, o.receive, answer};
    awaitable = PyObject_Vectorcall(o.app, args + 1, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, nullptr);
  }
  Py_DECREF(answer);
  return delegate(o, awaitable, result);
}

// Yields the future to the task, marked as `await future` marks it.
PySendResult yield_future(AwaitObject& o, PyObject** result) {
  if (PyObject_SetAttr(o.future, names.blocking, Py_True) < 0) return fail(o, result);
  *result = Py_NewRef(o.future);
  return PYGEN_NEXT;
}

// The first send: the Gate asked, with the running loop's Bridge and a future of that loop.
PySendResult start(AwaitObject& o, PyObject** result) {
  py::object bridge;
  py::object future;
  if (!loop_future(bridge, future)) return fail(o, result);
  o.future = future.release().ptr();
  PyObject* args[] = {nullptr, o.scope, o.route, o.send, bridge.ptr(), o.future};
  PyObject* answer =
      PyObject_Vectorcall(o.gate, args + 1, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, nullptr);
  if (answer == nullptr) return fail(o, result);
  if (answer != Py_None) return answer_with(o, answer, result);  // answered at once
  Py_DECREF(answer);
  o.step = Step::kWaiting;
  return yield_future(o, result);
}

// Resumed while the store decides: the answer, or the future again if it is not done yet.
PySendResult resume(AwaitObject& o, PyObject** result) {
  PyObject* done = PyObject_CallMethodNoArgs(o.future, names.done);
  if (done == nullptr) return fail(o, result);
  const int is_done = PyObject_IsTrue(done);
  Py_DECREF(done);
  if (is_done < 0) return fail(o, result);
  if (is_done == 0) return yield_future(o, result);
  PyObject* answer = PyObject_CallMethodNoArgs(o.future, names.result);
  if (answer == nullptr) return fail(o, result);  // cancelled: CancelledError goes on
  return answer_with(o, answer, result);
}

PySendResult await_send(PyObject* self, PyObject* value, PyObject** result) noexcept {
  auto& o = of(self);
  const Running running(o);
  if (!running) return PYGEN_ERROR;
  switch (o.step) {
    case Step::kStart:
      if (value != Py_None) {
        PyErr_SetString(PyExc_TypeError, "can't send non-None value to a just-started coroutine");
        return PYGEN_ERROR;
      }
      return start(o, result);
    case Step::kWaiting:
      return resume(o, result);
    case Step::kDelegating: {
      const PySendResult status = PyIter_Send(o.inner, value, result);
      if (status != PYGEN_NEXT) {
        Py_CLEAR(o.inner);
        o.step = Step::kDone;
      }
      return status;
    }
    case Step::kDone:
      break;
  }
  PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
  return PYGEN_ERROR;
}

PyObject* await_send_method(PyObject* self, PyObject* value) noexcept {
  PyObject* result = nullptr;
  const PySendResult status = await_send(self, value, &result);  // before `result` is read
  return as_method_result(status, result);
}

PyObject* await_iternext(PyObject* self) noexcept { return await_send_method(self, Py_None); }

// Raises throw()'s arguments (type[, value[, traceback]]) as a generator's throw does: true;
// false with a TypeError set when they are not an exception to raise.
bool raise_thrown(PyObject* const* args, Py_ssize_t nargs) {
  PyObject* type = args[0];
  PyObject* value = nargs > 1 ? args[1] : Py_None;
  PyObject* traceback = nargs > 2 ? args[2] : Py_None;
  if (traceback != Py_None && !PyTraceBack_Check(traceback)) {
    PyErr_SetString(PyExc_TypeError, "throw() third argument must be a traceback object");
    return false;
  }
  if (PyExceptionClass_Check(type)) {
    PyErr_SetObject(type, value);
  } else if (PyExceptionInstance_Check(type)) {
    if (value != Py_None) {
      PyErr_SetString(PyExc_TypeError, "instance exception may not have a separate value");
      return false;
    }
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(type)), type);
  } else {
    PyErr_Format(PyExc_TypeError,
                 "exceptions must be classes or instances deriving from BaseException, not %s",
                 Py_TYPE(type)->tp_name);
    return false;
  }
  if (traceback != Py_None) {  // raised again with the traceback given
    py::object raised = fetch_exception();
    PyException_SetTraceback(raised.ptr(), traceback);
    PyObject* const raised_type = reinterpret_cast<PyObject*>(Py_TYPE(raised.ptr()));
    PyErr_Restore(Py_NewRef(raised_type), raised.release().ptr(), Py_NewRef(traceback));
  }
  return true;
}

// `object.name` into `found` (null when it has none): false with an error set when the lookup
// raised anything but AttributeError.
bool optional_attr(PyObject* object, PyObject* name, PyObject** found) {
  *found = PyObject_GetAttr(object, name);
  if (*found != nullptr) return true;
  if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return false;
  PyErr_Clear();
  return true;
}

// inner.close(), if it has one; false with an error set when that raised.
bool close_inner(AwaitObject& o) {
  const py::object inner = py::reinterpret_steal<py::object>(o.inner);
  o.inner = nullptr;
  o.step = Step::kDone;
  PyObject* method = nullptr;
  if (!optional_attr(inner.ptr(), names.close, &method)) return false;
  if (method == nullptr) return true;
  PyObject* closed = PyObject_CallNoArgs(method);
  Py_DECREF(method);
  Py_XDECREF(closed);
  return closed != nullptr;
}

// throw(type[, value[, traceback]])
PyObject* await_throw(PyObject* self, PyObject* const* args, Py_ssize_t nargs) noexcept {
  if (nargs < 1 || nargs > 3) {
    PyErr_Format(PyExc_TypeError, "throw expected 1 to 3 arguments, got %zd", nargs);
    return nullptr;
  }
  auto& o = of(self);
  const Running running(o);
  if (!running) return nullptr;
  PyObject* result = nullptr;
  switch (o.step) {
    case Step::kDelegating: {
      if (PyErr_GivenExceptionMatches(args[0], PyExc_GeneratorExit) != 0) {  // class or instance
        if (!close_inner(o)) return nullptr;
        break;  // raised here, as a generator does
      }
      PyObject* method = nullptr;
      if (!optional_attr(o.inner, names.throw_, &method)) return nullptr;
      if (method == nullptr) {  // an iterator that takes no throws: raised here
        Py_CLEAR(o.inner);
        o.step = Step::kDone;
        break;
      }
      result = PyObject_Vectorcall(method, args, static_cast<std::size_t>(nargs), nullptr);
      Py_DECREF(method);
      if (result != nullptr) return result;  // yielded
      const PySendResult status = returned(&result);
      Py_CLEAR(o.inner);
      o.step = Step::kDone;
      return as_method_result(status, result);
    }
    case Step::kWaiting: {
      // Thrown at `await future`: an Exception goes to _failed, as on the Python path (the
      // task's CancelledError goes on).
      if (!raise_thrown(args, nargs)) return nullptr;
      const PySendResult status = fail(o, &result);
      return as_method_result(status, result);
    }
    case Step::kStart:
    case Step::kDone:
      if (!raise_thrown(args, nargs)) return nullptr;
      release_request(o);
      o.step = Step::kDone;
      return nullptr;
  }
  raise_thrown(args, nargs);  // from kDelegating: the inner awaitable is closed or has no throw
  return nullptr;
}

PyObject* await_close(PyObject* self, PyObject*) noexcept {
  auto& o = of(self);
  const Running running(o);
  if (!running) return nullptr;
  release_request(o);
  if (o.step == Step::kDelegating && !close_inner(o)) return nullptr;
  o.step = Step::kDone;
  Py_RETURN_NONE;
}

PyObject* await_await(PyObject* self) noexcept { return Py_NewRef(self); }

// StoreAwait(middleware, app, gate, scope, receive, send, route): for the middleware's Python
// path; the C entry makes it with store_await().
PyObject* await_new(PyTypeObject*, PyObject* args, PyObject* kwargs) noexcept {
  constexpr Py_ssize_t kArguments = 7;
  if (PyTuple_GET_SIZE(args) != kArguments || (kwargs != nullptr && PyDict_GET_SIZE(kwargs) != 0)) {
    PyErr_Format(PyExc_TypeError,
                 "StoreAwait takes 7 positional arguments (middleware, app, gate, scope, receive, "
                 "send, route); got %zd",
                 PyTuple_GET_SIZE(args) + (kwargs != nullptr ? PyDict_GET_SIZE(kwargs) : 0));
    return nullptr;
  }
  PyObject* const* item = &PyTuple_GET_ITEM(args, 0);
  if (!is_gate(item[2])) {
    PyErr_Format(PyExc_TypeError, "StoreAwait: gate must be a pacer._pacer.Gate, got %.200s",
                 Py_TYPE(item[2])->tp_name);
    return nullptr;
  }
  return store_await(item[0], item[1], item[2], item[3], item[4], item[5], item[6]);
}

PyMethodDef await_methods[] = {
    {"send", await_send_method, METH_O, "send(value): as a coroutine's."},
    {"throw", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(await_throw)),
     METH_FASTCALL, "throw(type[, value[, traceback]]): as a coroutine's."},
    {"close", await_close, METH_NOARGS, "close(): as a coroutine's."},
    {nullptr, nullptr, 0, nullptr}};

PyType_Slot await_slots[] = {
    {Py_tp_doc, const_cast<char*>("StoreAwait(middleware, app, gate, scope, receive, send, "
                                  "route): a middleware request the store decides later.")},
    {Py_tp_new, reinterpret_cast<void*>(await_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(await_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(await_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(await_clear)},
    {Py_tp_iter, reinterpret_cast<void*>(PyObject_SelfIter)},
    {Py_tp_iternext, reinterpret_cast<void*>(await_iternext)},
    {Py_am_await, reinterpret_cast<void*>(await_await)},
    {Py_am_send, reinterpret_cast<void*>(await_send)},
    {Py_tp_methods, await_methods},
    {0, nullptr}};

PyType_Spec await_spec = {"pacer._pacer.StoreAwait", sizeof(AwaitObject), 0,
                          Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_GC,
                          await_slots};

}  // namespace

PyObject* store_await(PyObject* middleware, PyObject* app, PyObject* gate, PyObject* scope,
                      PyObject* receive, PyObject* send, PyObject* route) {
  // Zeroed (kStart, no future, no inner) and tracked by the garbage collector.
  auto* self = reinterpret_cast<AwaitObject*>(await_type->tp_alloc(await_type, 0));
  if (self == nullptr) return nullptr;
  self->middleware = Py_NewRef(middleware);
  self->app = Py_NewRef(app);
  self->gate = Py_NewRef(gate);
  self->scope = Py_NewRef(scope);
  self->receive = Py_NewRef(receive);
  self->send = Py_NewRef(send);
  self->route = Py_NewRef(route);
  return reinterpret_cast<PyObject*>(self);
}

void add_store_await(py::module_& m) {
  names = {interned("create_future"), interned("_asyncio_future_blocking"),
           interned("done"),          interned("result"),
           interned("throw"),         interned("close"),
           interned("_respond")};
  py::object verdict = m.attr("Verdict");
  verdict_type = reinterpret_cast<PyTypeObject*>(verdict.release().ptr());  // never released
  await_type = add_type(m, "StoreAwait", await_spec);
  PyObject* function = PyCFunction_NewEx(&loop_future_def, nullptr, m.attr("__name__").ptr());
  if (function == nullptr) throw py::error_already_set();
  m.add_object("loop_future", py::reinterpret_steal<py::object>(function));
}

}  // namespace pacer::python
