// The ASGI entry of LimiterMiddleware (see asgi_entry.h).
#include "asgi_entry.h"

#include <structmember.h>  // PyMemberDef's T_PYSSIZET and READONLY

#include <cstddef>
#include <initializer_list>
#include <iterator>

#include "fast_path.h"
#include "store_await.h"

namespace pacer::python {
namespace {

namespace py = pybind11;

PyTypeObject* state_type = nullptr;
PyTypeObject* verdict_type = nullptr;

// Interned names, made once by add_asgi_entry.
struct Names {
  PyObject* type;
  PyObject* root_path;
  PyObject* path;
  PyObject* method;
  PyObject* http;
  PyObject* state;
  PyObject* version;
  PyObject* storage;
  PyObject* engine;
  PyObject* key_path;
  PyObject* respond;
  PyObject* failed;
};
Names names{};

// Owned references as pybind11 objects (only their ownership is used here: the C API calls
// below report errors by returning null, which the entry hands back to Python).
py::object steal(PyObject* owned) { return py::reinterpret_steal<py::object>(owned); }
py::object borrow(PyObject* object) { return py::reinterpret_borrow<py::object>(object); }

// ---- MiddlewareState -----------------------------------------------------------------------

// The items of plan()'s tuple.
enum Plan : Py_ssize_t {
  kApp,
  kLimiter,
  kExcludeMethods,  // anything `in` works on
  kExact,           // likewise: the excluded paths
  kPrefixes,        // a tuple of str: the excluded path prefixes
  kVersion,         // limiter._version when the plan was made
  kEngine,          // limiter.storage._engine it was made for
  kGate,            // a Gate
  kTemplated,       // True when keyed by the route's template
  kInline,          // True when the engine decides in process (no future to wait for)
  kPlanSize
};

// The items of routes()'s tuple.
enum Routes : Py_ssize_t {
  kRoutes,  // the app's route list
  kCopy,    // a copy of it, taken with the table
  kTable,   // RouteMatcher.first_static(copy): path -> ({method: template}, template)
  kRoutesSize
};

// Each part is one immutable tuple, replaced whole: a request holds the tuples it read, so code
// it runs (an __eq__, a property) may replace or drop them under it.
struct StateObject {
  PyObject_HEAD PyObject* plan;  // null until plan(), and after forget()
  PyObject* routes;              // null until routes()
};

int state_traverse(PyObject* self, visitproc visit, void* arg) {
  auto* o = reinterpret_cast<StateObject*>(self);
  Py_VISIT(o->plan);
  Py_VISIT(o->routes);
  Py_VISIT(Py_TYPE(self));  // a heap type
  return 0;
}

int state_clear(PyObject* self) {
  auto* o = reinterpret_cast<StateObject*>(self);
  Py_CLEAR(o->plan);
  Py_CLEAR(o->routes);
  return 0;
}

void state_dealloc(PyObject* self) { gc_dealloc(self, state_clear); }

PyObject* state_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) noexcept {
  if (PyTuple_GET_SIZE(args) != 0 || (kwargs != nullptr && PyDict_GET_SIZE(kwargs) != 0)) {
    PyErr_SetString(PyExc_TypeError, "MiddlewareState() takes no arguments");
    return nullptr;
  }
  return type->tp_alloc(type, 0);  // zeroed: no plan, no routes
}

bool expect(bool ok, const char* what, PyObject* got) {
  if (!ok) {
    PyErr_Format(PyExc_TypeError, "MiddlewareState: %s, got %.200s", what, Py_TYPE(got)->tp_name);
  }
  return ok;
}

// plan(app, limiter, exclude_methods, exact, prefixes, version, engine, gate, templated,
// completes_inline)
PyObject* state_plan(PyObject* self, PyObject* const* args, Py_ssize_t nargs) noexcept {
  if (nargs != kPlanSize) {
    PyErr_Format(PyExc_TypeError, "MiddlewareState.plan takes %zd arguments; got %zd",
                 static_cast<Py_ssize_t>(kPlanSize), nargs);
    return nullptr;
  }
  PyObject* prefixes = args[kPrefixes];
  if (!expect(PyTuple_Check(prefixes), "prefixes must be a tuple of str", prefixes)) return nullptr;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(prefixes); ++i) {
    PyObject* prefix = PyTuple_GET_ITEM(prefixes, i);
    if (!expect(PyUnicode_Check(prefix), "prefixes must be a tuple of str", prefix)) return nullptr;
  }
  if (!expect(is_gate(args[kGate]), "gate must be a pacer._pacer.Gate", args[kGate]))
    return nullptr;
  const int templated = PyObject_IsTrue(args[kTemplated]);
  const int completes_inline = PyObject_IsTrue(args[kInline]);
  if (templated < 0 || completes_inline < 0) return nullptr;
  PyObject* plan = PyTuple_New(kPlanSize);
  if (plan == nullptr) return nullptr;
  for (Py_ssize_t i = 0; i < kTemplated; ++i) PyTuple_SET_ITEM(plan, i, Py_NewRef(args[i]));
  PyTuple_SET_ITEM(plan, kTemplated, PyBool_FromLong(templated));
  PyTuple_SET_ITEM(plan, kInline, PyBool_FromLong(completes_inline));
  Py_XSETREF(reinterpret_cast<StateObject*>(self)->plan, plan);
  Py_RETURN_NONE;
}

// routes(routes, copy, table): the table must be a dict of path -> (dict, str or None).
PyObject* state_routes(PyObject* self, PyObject* const* args, Py_ssize_t nargs) noexcept {
  if (nargs != kRoutesSize) {
    PyErr_Format(PyExc_TypeError, "MiddlewareState.routes takes %zd arguments; got %zd",
                 static_cast<Py_ssize_t>(kRoutesSize), nargs);
    return nullptr;
  }
  PyObject* table = args[kTable];
  if (!expect(PyDict_CheckExact(table), "table must be a dict", table)) return nullptr;
  Py_ssize_t at = 0;
  PyObject* path = nullptr;
  PyObject* hit = nullptr;
  while (PyDict_Next(table, &at, &path, &hit)) {
    const bool ok =
        PyUnicode_CheckExact(path) && PyTuple_CheckExact(hit) && PyTuple_GET_SIZE(hit) == 2 &&
        PyDict_CheckExact(PyTuple_GET_ITEM(hit, 0)) &&
        (PyTuple_GET_ITEM(hit, 1) == Py_None || PyUnicode_Check(PyTuple_GET_ITEM(hit, 1)));
    if (!expect(ok, "table must map a str to a (dict, str or None) tuple", hit)) return nullptr;
  }
  PyObject* routes = PyTuple_Pack(kRoutesSize, args[kRoutes], args[kCopy], table);
  if (routes == nullptr) return nullptr;
  Py_XSETREF(reinterpret_cast<StateObject*>(self)->routes, routes);
  Py_RETURN_NONE;
}

PyObject* state_forget(PyObject* self, PyObject*) noexcept {
  Py_CLEAR(reinterpret_cast<StateObject*>(self)->plan);
  Py_RETURN_NONE;
}

PyObject* state_planned(PyObject* self, void*) noexcept {
  return PyBool_FromLong(reinterpret_cast<StateObject*>(self)->plan != nullptr);
}

PyMethodDef state_methods[] = {
    {"plan", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(state_plan)), METH_FASTCALL,
     "plan(app, limiter, exclude_methods, exact, prefixes, version, engine, gate, templated, "
     "completes_inline): what the fast path answers with, while version and engine hold."},
    {"routes", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(state_routes)),
     METH_FASTCALL, "routes(routes, copy, table): the route table, read while routes == copy."},
    {"forget", state_forget, METH_NOARGS,
     "Drops the plan (not the route table): requests take the fallback until plan()."},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef state_getset[] = {
    {"planned", state_planned, nullptr, "Whether a plan is kept.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyType_Slot state_slots[] = {
    {Py_tp_doc, const_cast<char*>("MiddlewareState(): what MiddlewareCall knows of one "
                                  "LimiterMiddleware.")},
    {Py_tp_new, reinterpret_cast<void*>(state_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(state_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(state_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(state_clear)},
    {Py_tp_methods, state_methods},
    {Py_tp_getset, state_getset},
    {0, nullptr}};

PyType_Spec state_spec = {"pacer._pacer.MiddlewareState", sizeof(StateObject), 0,
                          Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_GC,
                          state_slots};

// ---- MiddlewareCall ------------------------------------------------------------------------

struct CallObject {
  PyObject_HEAD vectorcallfunc vectorcall;
  PyObject* fallback;  // fallback(self, scope, receive, send)
  PyObject* dict;      // attributes: the coroutine-function mark
};

// What fast() answers when the request is the fallback's: an address no object has, compared
// and never dereferenced.
char fallback_tag;
PyObject* const kFallback = reinterpret_cast<PyObject*>(&fallback_tag);

// owner.<name>(*args): the middleware's own method (a subclass's, if it has one).
PyObject* call_method(PyObject* name, std::initializer_list<PyObject*> args) {
  return PyObject_VectorcallMethod(name, const_cast<PyObject* const*>(args.begin()), args.size(),
                                   nullptr);
}

// callable(a, b, c), with the slot before the arguments free for the callee's use.
PyObject* call3(PyObject* callable, PyObject* a, PyObject* b, PyObject* c) {
  PyObject* args[] = {nullptr, a, b, c};
  return PyObject_Vectorcall(callable, args + 1, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, nullptr);
}

// The string item `key` of the dict `scope`, or null (with no error) when it is missing or not
// an exact str: such a scope goes to the fallback, which answers it as it always did.
py::object scope_str(PyObject* scope, PyObject* key) {
  PyObject* value = PyDict_GetItemWithError(scope, key);  // borrowed
  return borrow(value != nullptr && PyUnicode_CheckExact(value) ? value : nullptr);
}

// Whether `path` is excluded by one of `prefixes` (a tuple of str): 1, 0, or -1 on error.
int prefixed(PyObject* path, PyObject* prefixes) {
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(prefixes); ++i) {
    const Py_ssize_t match =
        PyUnicode_Tailmatch(path, PyTuple_GET_ITEM(prefixes, i), 0, PY_SSIZE_T_MAX, -1);
    if (match != 0) return static_cast<int>(match);
  }
  return 0;
}

// The route template of `path` and `method` from routes()'s tuple (null: none yet), or null
// (with no error) when the table does not answer; `error` is set when a lookup raised.
py::object table_template(PyObject* routes, PyObject* path, PyObject* method, bool& error) {
  if (routes == nullptr) return {};
  const int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(routes, kCopy),
                                            PyTuple_GET_ITEM(routes, kRoutes), Py_EQ);
  if (same <= 0) {
    error = same < 0;
    return {};
  }
  // A (dict, str or None) tuple.
  PyObject* hit = PyDict_GetItemWithError(PyTuple_GET_ITEM(routes, kTable), path);
  if (hit == nullptr) {
    error = PyErr_Occurred() != nullptr;
    return {};
  }
  PyObject* found = PyDict_GetItemWithError(PyTuple_GET_ITEM(hit, 0), method);
  if (found == nullptr) {
    if (PyErr_Occurred() != nullptr) {
      error = true;
      return {};
    }
    found = PyTuple_GET_ITEM(hit, 1);
  }
  return borrow(found == Py_None ? nullptr : found);
}

// 1 when `plan`'s version and engine are the limiter's now, 0 when not, -1 on error.
int plan_holds(PyObject* plan) {
  PyObject* const limiter = PyTuple_GET_ITEM(plan, kLimiter);
  const py::object version = steal(PyObject_GetAttr(limiter, names.version));
  if (!version) return -1;
  PyObject* const planned = PyTuple_GET_ITEM(plan, kVersion);
  if (version.ptr() != planned) {
    const int same = PyObject_RichCompareBool(version.ptr(), planned, Py_EQ);
    if (same <= 0) return same;
  }
  const py::object storage = steal(PyObject_GetAttr(limiter, names.storage));
  if (!storage) return -1;
  const py::object engine = steal(PyObject_GetAttr(storage.ptr(), names.engine));
  if (!engine) return -1;
  return engine.ptr() == PyTuple_GET_ITEM(plan, kEngine) ? 1 : 0;
}

// The request's answer; kFallback when the fallback is to answer it; null with an error set
// when something raised.
PyObject* fast(PyObject* owner, PyObject* scope, PyObject* receive, PyObject* send) {
  if (!PyDict_CheckExact(scope)) return kFallback;
  PyObject* type = PyDict_GetItemWithError(scope, names.type);  // borrowed, compared at once
  if (type == nullptr) return PyErr_Occurred() != nullptr ? nullptr : kFallback;
  if (type != names.http &&
      !(PyUnicode_CheckExact(type) && PyUnicode_Compare(type, names.http) == 0)) {
    return kFallback;
  }
  PyObject* root = PyDict_GetItemWithError(scope, names.root_path);  // borrowed, likewise
  if (root == nullptr && PyErr_Occurred() != nullptr) return nullptr;
  if (root != nullptr && !(PyUnicode_CheckExact(root) && PyUnicode_GET_LENGTH(root) == 0))
    return kFallback;  // mounted: the fallback joins the root to the path
  const py::object path = scope_str(scope, names.path);
  const py::object method = scope_str(scope, names.method);
  if (!path || !method) return PyErr_Occurred() != nullptr ? nullptr : kFallback;

  const py::object found = steal(PyObject_GetAttr(owner, names.state));
  if (!found) {
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return nullptr;
    PyErr_Clear();  // no state (a subclass that skipped our __init__): the fallback's
    return kFallback;
  }
  if (Py_TYPE(found.ptr()) != state_type) return kFallback;
  const auto& state = *reinterpret_cast<const StateObject*>(found.ptr());
  // The request's own references: the code it runs may replace the state's tuples.
  const py::object plan = borrow(state.plan);
  const py::object routes = borrow(state.routes);
  if (!plan) return kFallback;
  const auto item = [&plan](Plan field) { return PyTuple_GET_ITEM(plan.ptr(), field); };

  int excluded = PySequence_Contains(item(kExcludeMethods), method.ptr());
  if (excluded == 0) excluded = PySequence_Contains(item(kExact), path.ptr());
  if (excluded == 0) excluded = prefixed(path.ptr(), item(kPrefixes));
  if (excluded < 0) return nullptr;
  if (excluded > 0) return call3(item(kApp), scope, receive, send);
  const int holds = plan_holds(plan.ptr());
  if (holds <= 0) return holds < 0 ? nullptr : kFallback;

  // From here the middleware's Python path has a try: what raises is the middleware's _failed.
  py::object route;
  if (item(kTemplated) == Py_True) {
    bool error = false;
    route = table_template(routes.ptr(), path.ptr(), method.ptr(), error);
    if (error) return middleware_failed(owner, scope, receive, send);
    if (!route) {
      route = steal(call_method(names.key_path, {owner, scope, path.ptr()}));
      if (!route) return middleware_failed(owner, scope, receive, send);
    }
  } else {
    route = path;
  }
  if (item(kInline) != Py_True) {  // Redis: the awaitable that waits for the decision
    return store_await(owner, item(kApp), item(kGate), scope, receive, send, route.ptr());
  }
  const py::object answer = steal(call3(item(kGate), scope, route.ptr(), send));
  if (!answer) return middleware_failed(owner, scope, receive, send);
  if (Py_TYPE(answer.ptr()) == verdict_type) {
    return call_method(names.respond, {owner, answer.ptr(), scope, receive, send});
  }
  // The application's exceptions propagate, as on the Python path.
  return call3(item(kApp), scope, receive, answer.ptr());
}

PyObject* call_vectorcall(PyObject* self, PyObject* const* args, std::size_t nargsf,
                          PyObject* kwnames) noexcept {
  const auto& call = *reinterpret_cast<CallObject*>(self);
  if (call.fallback == nullptr) {  // cleared by the garbage collector, then called from the cycle
    PyErr_SetString(PyExc_RuntimeError, "MiddlewareCall: called after it was cleared");
    return nullptr;
  }
  if (PyVectorcall_NARGS(nargsf) == 4 && kwnames == nullptr) {
    PyObject* answer = fast(args[0], args[1], args[2], args[3]);
    if (answer != kFallback) return answer;
  }
  return PyObject_Vectorcall(call.fallback, args, nargsf, kwnames);
}

// MiddlewareCall(fallback)
PyObject* call_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) noexcept {
  static const char* keywords[] = {"fallback", nullptr};
  PyObject* fallback = nullptr;
  if (PyArg_ParseTupleAndKeywords(args, kwargs, "O:MiddlewareCall", const_cast<char**>(keywords),
                                  &fallback) == 0) {
    return nullptr;
  }
  if (PyCallable_Check(fallback) == 0) {
    PyErr_Format(PyExc_TypeError, "MiddlewareCall: fallback must be callable, got %.200s",
                 Py_TYPE(fallback)->tp_name);
    return nullptr;
  }
  auto* self = reinterpret_cast<CallObject*>(type->tp_alloc(type, 0));
  if (self == nullptr) return nullptr;
  self->vectorcall = call_vectorcall;
  self->fallback = Py_NewRef(fallback);
  return reinterpret_cast<PyObject*>(self);
}

// An instance gets the call bound to it, as a function would be.
PyObject* call_get(PyObject* self, PyObject* instance, PyObject*) noexcept {
  if (instance == nullptr || instance == Py_None) return Py_NewRef(self);
  return PyMethod_New(self, instance);
}

int call_traverse(PyObject* self, visitproc visit, void* arg) {
  auto* o = reinterpret_cast<CallObject*>(self);
  Py_VISIT(o->fallback);
  Py_VISIT(o->dict);
  Py_VISIT(Py_TYPE(self));
  return 0;
}

int call_clear(PyObject* self) {
  auto* o = reinterpret_cast<CallObject*>(self);
  Py_CLEAR(o->fallback);
  Py_CLEAR(o->dict);
  return 0;
}

void call_dealloc(PyObject* self) { gc_dealloc(self, call_clear); }

PyMemberDef call_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(CallObject, vectorcall), READONLY, nullptr},
    {"__dictoffset__", T_PYSSIZET, offsetof(CallObject, dict), READONLY, nullptr},
    {"fallback", T_OBJECT, offsetof(CallObject, fallback), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyType_Slot call_slots[] = {
    {Py_tp_doc, const_cast<char*>("MiddlewareCall(fallback): LimiterMiddleware.__call__; the "
                                  "common request in C, any other by fallback(self, scope, "
                                  "receive, send).")},
    {Py_tp_new, reinterpret_cast<void*>(call_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(call_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(call_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(call_clear)},
    {Py_tp_call, reinterpret_cast<void*>(PyVectorcall_Call)},
    {Py_tp_descr_get, reinterpret_cast<void*>(call_get)},
    {Py_tp_members, call_members},
    {0, nullptr}};

PyType_Spec call_spec = {"pacer._pacer.MiddlewareCall", sizeof(CallObject), 0,
                         Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_GC |
                             Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
                         call_slots};

}  // namespace

PyObject* middleware_failed(PyObject* middleware, PyObject* scope, PyObject* receive,
                            PyObject* send) {
  if (!PyErr_ExceptionMatches(PyExc_Exception)) return nullptr;
  const py::object error = fetch_exception();
  return call_method(names.failed, {middleware, error.ptr(), scope, receive, send});
}

void add_asgi_entry(py::module_& m) {
  names = {interned("type"),    interned("root_path"), interned("path"),     interned("method"),
           interned("http"),    interned("_state"),    interned("_version"), interned("storage"),
           interned("_engine"), interned("_key_path"), interned("_respond"), interned("_failed")};
  py::object verdict = m.attr("Verdict");
  verdict_type = reinterpret_cast<PyTypeObject*>(verdict.release().ptr());  // never released
  add_type(m, "MiddlewareCall", call_spec);
  state_type = add_type(m, "MiddlewareState", state_spec);
}

}  // namespace pacer::python
