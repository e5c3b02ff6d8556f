// The per-request callables of the Python extension, written against the C API instead of bound
// with pybind11 (docs/DESIGN.md §1, "Python"). pybind11's dispatcher spends about 1.5k
// instructions on every call (a function_call record, type lookups by typeid, an argument
// vector; counted with callgrind: docs/PERFORMANCE.md, issue 23); a request through the
// middleware makes three of these calls, which are vectorcalls here.
//
// - HeaderSend(send, headers): the middleware's ASGI send for an admitted request. It adds the
//   header block to `http.response.start` (replacing the app's fields of those names, compared
//   ignoring ASCII case) and returns the wrapped send's awaitable, so no Python frame runs per
//   message. It takes part in Python's garbage collection: `send` may reach it back.
// - Gate(engine, rule, headers): Engine.admit bound to one engine, rule and HeaderFlag, which the
//   middleware makes once per change of the limiter's settings. gate(scope, route, send) answers
//   an in-process decision as engine.admit(rule, scope, route, headers, None, None, send) does;
//   gate(scope, route, send, bridge, future) a Redis one. It holds the engine and the rule (plain
//   pybind11 objects, which never refer back to it), so it is not garbage collected.
//
// - A native callable (native_callable()): a C++ function without arguments as a Python
//   callable, for the event loop's readers and timers (engine.cc), which run once per poll.
#pragma once

#include <pybind11/pybind11.h>

#include <functional>

namespace pacer::python {

namespace py = pybind11;

// Adds HeaderSend, Gate and NativeCallable to the module `m`.
void add_fast_path(py::module_& m);

// A HeaderSend of `send` adding `headers`, a list as asgi_headers() renders it (tuples of bytes,
// names in lower case): taken as it is, not checked.
py::object header_send(py::object send, py::list headers);

// The heap type of `spec`, added to `m` as `name` and kept for the life of the process.
PyTypeObject* add_type(py::module_& m, const char* name, PyType_Spec& spec);

// The tp_dealloc of a garbage-collected heap type whose tp_clear is `clear`.
void gc_dealloc(PyObject* self, inquiry clear);

// An interned str of `text`, kept for the life of the process (for names made once).
PyObject* interned(const char* text);

// The exception being raised, taken (the error indicator is cleared) and normalized: the
// exception object, its traceback attached. Null when none is raised.
py::object fetch_exception();

// Whether `object` is a Gate.
bool is_gate(PyObject* object);

// A Python callable taking no argument that runs `run` (under the GIL; a C++ exception becomes
// the Python one, as pybind11 translates it) and answers None.
py::object native_callable(std::function<void()> run);

}  // namespace pacer::python
