// The awaitable of a middleware request whose decision the store makes later (Redis), on the C
// API (docs/DESIGN.md §1, "Python").
//
// The middleware's Redis path used to be two Python coroutines around the app's: one that asked
// the Gate and awaited the decision's future, and one that answered it (the app, or the
// refusal). Every message the app's coroutine yields passed through both frames, and their
// calls and awaits cost about as much as the decision's own C++ (docs/PERFORMANCE.md, issue 23).
// StoreAwait does what they did:
//
// 1. On its first send (not before: a coroutine runs nothing until it is awaited), it asks the
//    Gate with the running loop's Bridge and a future of that loop.
// 2. While the store decides, it yields that future to the task, as `await future` would.
// 3. With the answer, it calls the app with the wrapped send (or the middleware's `_respond`
//    for a refusal, `_failed` for an error before the app) and passes the task's sends and
//    throws to that awaitable until it returns.
//
// It has send, throw and close, so asyncio takes it for a coroutine (`asyncio.run`,
// `create_task`).
#pragma once

#include <pybind11/pybind11.h>

namespace pacer::python {

// Adds StoreAwait, and loop_future() (the running loop's Bridge and a new future of it, as
// StoreAwait asks for them: for the limiter's other Redis paths), to the module `m` (after
// Verdict and Gate).
void add_store_await(pybind11::module_& m);

// StoreAwait(middleware, app, gate, scope, receive, send, route): new reference, or null with a
// Python error set.
PyObject* store_await(PyObject* middleware, PyObject* app, PyObject* gate, PyObject* scope,
                      PyObject* receive, PyObject* send, PyObject* route);

}  // namespace pacer::python
