// The ASGI entry of LimiterMiddleware, on the C API (docs/DESIGN.md §1, "Python").
//
// A request through the middleware used to run two Python functions before the Gate: about 60
// bytecodes of checks (the scope's type and path, the exclusions, the plan's version and
// engine, the route table) and the call of an instance with a Python `__call__`, about 6.7k
// instructions (callgrind: docs/PERFORMANCE.md, issue 23) against the Gate's 5.5k. Here they
// are C:
//
// - MiddlewareCall(fallback): the class's `__call__`. A method descriptor (an instance gets it
//   bound, and Python's call of an instance hands it the instance first), so calling the
//   middleware runs no Python frame. It answers what the Python `fallback(self, scope, receive,
//   send)` would for the common request: http, no root_path, not excluded, a plan whose version
//   and engine still hold, a Gate; anything else goes to `fallback`. It takes attributes, for
//   the coroutine-function mark uvicorn looks for.
// - MiddlewareState(): what the fast path knows of one middleware, kept in its `_state`; the
//   Python side fills it (plan(), routes()) and empties it (forget()) when an input changes.
//
// The fast path calls the middleware's own methods for what stays Python: `_key_path` (a path
// the table does not answer), `_respond` (a refusal) and `_failed` (an error before the app
// runs). A Redis decision it answers with a StoreAwait (store_await.h).
#pragma once

#include <pybind11/pybind11.h>

namespace pacer::python {

// Adds MiddlewareCall and MiddlewareState to the module `m` (after Verdict and Gate).
void add_asgi_entry(pybind11::module_& m);

// With a Python error set (raised before the app runs): the awaitable of the middleware's
// `_failed(error, scope, receive, send)` when it is an Exception, as the middleware's Python path
// answers one; null with the error still set for any other BaseException (a cancellation).
PyObject* middleware_failed(PyObject* middleware, PyObject* scope, PyObject* receive,
                            PyObject* send);

}  // namespace pacer::python
