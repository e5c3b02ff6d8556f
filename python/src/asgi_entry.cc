// The ASGI entry of LimiterMiddleware (see asgi_entry.h).
#include "asgi_entry.h"

#include <structmember.h>  // PyMemberDef's T_PYSSIZET and READONLY

#include <cstddef>
#include <initializer_list>
#include <iterator>

#include "fast_path.h"

namespace pacer::python {
namespace {

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
  PyObject* store_decides;
  PyObject* respond;
  PyObject* failed;
};
Names names{};

// An owned reference, released at the end of its scope (the entry makes no C++ exceptions:
// pybind11's wrappers would throw on the errors this code hands back to Python).
class Ref {
 public:
  Ref() = default;
  explicit Ref(PyObject* owned) : p_(owned) {}
  static Ref borrow(PyObject* object) { return Ref(Py_XNewRef(object)); }
  Ref(const Ref&) = delete;
  Ref& operator=(const Ref&) = delete;
  Ref(Ref&& other) noexcept : p_(other.p_) { other.p_ = nullptr; }
  Ref& operator=(Ref&& other) noexcept {
    if (this != &other) {
      PyObject* old = p_;
      p_ = other.p_;
      other.p_ = nullptr;
      Py_XDECREF(old);
    }
    return *this;
  }
  ~Ref() { Py_XDECREF(p_); }
  PyObject* get() const { return p_; }
  PyObject* release() {
    PyObject* p = p_;
    p_ = nullptr;
    return p;
  }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  PyObject* p_ = nullptr;
};

// ---- MiddlewareState -----------------------------------------------------------------------

struct StateObject {
  PyObject_HEAD
      // Set by plan(): all null until then, and after forget().
      PyObject* app;
  PyObject* limiter;
  PyObject* exclude_methods;  // anything `in` works on
  PyObject* exact;            // likewise: the excluded paths
  PyObject* prefixes;         // a tuple of str: the excluded path prefixes
  PyObject* version;          // limiter._version when the plan was made
  PyObject* engine;           // limiter.storage._engine it was made for
  PyObject* gate;             // a Gate
  bool templated;             // keyed by the route's template
  bool completes_inline;      // the engine decides in process (no future to wait for)
  // Set by routes(): null until then, and after forget().
  PyObject* routes;  // the app's route list
  PyObject* copy;    // a copy of it, taken with `table`
  PyObject* table;   // RouteMatcher.first_static(copy): path -> ({method: template}, template)
};

constexpr PyObject* StateObject::*kStateFields[] = {
    &StateObject::app,    &StateObject::limiter,  &StateObject::exclude_methods,
    &StateObject::exact,  &StateObject::prefixes, &StateObject::version,
    &StateObject::engine, &StateObject::gate,     &StateObject::routes,
    &StateObject::copy,   &StateObject::table};

// The fields plan() sets.
constexpr PyObject* StateObject::*kPlanFields[] = {
    &StateObject::app,    &StateObject::limiter,  &StateObject::exclude_methods,
    &StateObject::exact,  &StateObject::prefixes, &StateObject::version,
    &StateObject::engine, &StateObject::gate};

int state_traverse(PyObject* self, visitproc visit, void* arg) {
  auto* o = reinterpret_cast<StateObject*>(self);
  for (PyObject* StateObject::*field : kStateFields) Py_VISIT(o->*field);
  Py_VISIT(Py_TYPE(self));  // a heap type
  return 0;
}

int state_clear(PyObject* self) {
  auto* o = reinterpret_cast<StateObject*>(self);
  for (PyObject* StateObject::*field : kStateFields) Py_CLEAR(o->*field);
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

void set_field(StateObject& state, PyObject* StateObject::*field, PyObject* value) {
  Py_XSETREF(state.*field, Py_NewRef(value));
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
  if (nargs != 10) {
    PyErr_Format(PyExc_TypeError, "MiddlewareState.plan takes 10 arguments; got %zd", nargs);
    return nullptr;
  }
  PyObject* prefixes = args[4];
  if (!expect(PyTuple_Check(prefixes), "prefixes must be a tuple of str", prefixes)) return nullptr;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(prefixes); ++i) {
    PyObject* prefix = PyTuple_GET_ITEM(prefixes, i);
    if (!expect(PyUnicode_Check(prefix), "prefixes must be a tuple of str", prefix)) return nullptr;
  }
  if (!expect(is_gate(args[7]), "gate must be a pacer._pacer.Gate", args[7])) return nullptr;
  const int templated = PyObject_IsTrue(args[8]);
  const int completes_inline = PyObject_IsTrue(args[9]);
  if (templated < 0 || completes_inline < 0) return nullptr;
  auto& state = *reinterpret_cast<StateObject*>(self);
  // The flags first: a field's old value may run code when released.
  state.templated = templated != 0;
  state.completes_inline = completes_inline != 0;
  for (std::size_t i = 0; i < std::size(kPlanFields); ++i)
    set_field(state, kPlanFields[i], args[i]);
  Py_RETURN_NONE;
}

// routes(routes, copy, table): the table must be a dict of path -> (dict, str or None).
PyObject* state_routes(PyObject* self, PyObject* const* args, Py_ssize_t nargs) noexcept {
  if (nargs != 3) {
    PyErr_Format(PyExc_TypeError, "MiddlewareState.routes takes 3 arguments; got %zd", nargs);
    return nullptr;
  }
  PyObject* table = args[2];
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
  auto& state = *reinterpret_cast<StateObject*>(self);
  set_field(state, &StateObject::routes, args[0]);
  set_field(state, &StateObject::copy, args[1]);
  set_field(state, &StateObject::table, table);
  Py_RETURN_NONE;
}

PyObject* state_forget(PyObject* self, PyObject*) noexcept {
  auto* o = reinterpret_cast<StateObject*>(self);
  for (PyObject* StateObject::*field : kPlanFields) Py_CLEAR(o->*field);
  Py_RETURN_NONE;
}

PyObject* state_planned(PyObject* self, void*) noexcept {
  return PyBool_FromLong(reinterpret_cast<StateObject*>(self)->gate != nullptr);
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

// owner.<name>(*args): the middleware's own method (a subclass's, if it has one).
PyObject* call_method(PyObject* name, std::initializer_list<PyObject*> args) {
  return PyObject_VectorcallMethod(name, const_cast<PyObject* const*>(args.begin()), args.size(),
                                   nullptr);
}

// With an error set: the middleware's `_failed(error, scope, receive, send)`, as its Python
// path answers an Exception raised before the app runs; anything else (a BaseException) goes on.
PyObject* failed(PyObject* owner, PyObject* scope, PyObject* receive, PyObject* send) {
  if (!PyErr_ExceptionMatches(PyExc_Exception)) return nullptr;
  PyObject* type = nullptr;
  PyObject* value = nullptr;
  PyObject* traceback = nullptr;
  PyErr_Fetch(&type, &value, &traceback);
  PyErr_NormalizeException(&type, &value, &traceback);
  const Ref error(value);
  const Ref held_type(type);
  const Ref held_traceback(traceback);
  if (traceback != nullptr) PyException_SetTraceback(value, traceback);
  return call_method(names.failed, {owner, error.get(), scope, receive, send});
}

// The string item `key` of the dict `scope`, or null (with no error) when it is missing or not
// an exact str: such a scope goes to the fallback, which answers it as it always did.
Ref scope_str(PyObject* scope, PyObject* key) {
  PyObject* value = PyDict_GetItemWithError(scope, key);  // borrowed
  return Ref::borrow(value != nullptr && PyUnicode_CheckExact(value) ? value : nullptr);
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

// The route template of `path` and `method` from the state's table, or null (with no error)
// when the table does not answer; -1 in `error` when the route list's comparison raised.
Ref table_template(const Ref& routes, const Ref& copy, const Ref& table, PyObject* path,
                   PyObject* method, bool& error) {
  if (!table) return {};
  const int same = PyObject_RichCompareBool(copy.get(), routes.get(), Py_EQ);
  if (same <= 0) {
    error = same < 0;
    return {};
  }
  PyObject* hit = PyDict_GetItemWithError(table.get(), path);  // a (dict, str or None) tuple
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
  return Ref::borrow(found == Py_None ? nullptr : found);
}

// What the state holds, in references of the call's own: the checks below may run Python code
// (an __eq__, a property) that replaces the state's fields.
struct Held {
  explicit Held(const StateObject& s)
      : app(Ref::borrow(s.app)),
        limiter(Ref::borrow(s.limiter)),
        exclude_methods(Ref::borrow(s.exclude_methods)),
        exact(Ref::borrow(s.exact)),
        prefixes(Ref::borrow(s.prefixes)),
        version(Ref::borrow(s.version)),
        engine(Ref::borrow(s.engine)),
        gate(Ref::borrow(s.gate)),
        routes(Ref::borrow(s.routes)),
        copy(Ref::borrow(s.copy)),
        table(Ref::borrow(s.table)),
        templated(s.templated),
        completes_inline(s.completes_inline) {}
  Ref app, limiter, exclude_methods, exact, prefixes, version, engine, gate, routes, copy, table;
  bool templated;
  bool completes_inline;
};

// 1 when the plan's version and engine are the limiter's now, 0 when not, -1 on error.
int plan_holds(const Held& held) {
  const Ref version(PyObject_GetAttr(held.limiter.get(), names.version));
  if (!version) return -1;
  if (version.get() != held.version.get()) {
    const int same = PyObject_RichCompareBool(version.get(), held.version.get(), Py_EQ);
    if (same <= 0) return same;
  }
  const Ref storage(PyObject_GetAttr(held.limiter.get(), names.storage));
  if (!storage) return -1;
  const Ref engine(PyObject_GetAttr(storage.get(), names.engine));
  if (!engine) return -1;
  return engine.get() == held.engine.get() ? 1 : 0;
}

// The request, when the state answers it: null with no error set when it does not (the
// fallback's), null with an error set when something raised.
PyObject* fast(PyObject* owner, PyObject* scope, PyObject* receive, PyObject* send, bool& taken) {
  taken = false;
  if (!PyDict_CheckExact(scope)) return nullptr;
  const Ref found(PyObject_GetAttr(owner, names.state));
  if (!found) {
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
      taken = true;
      return nullptr;
    }
    PyErr_Clear();
    return nullptr;
  }
  if (Py_TYPE(found.get()) != state_type) return nullptr;
  const auto& state = *reinterpret_cast<const StateObject*>(found.get());
  if (state.gate == nullptr) return nullptr;
  const Held held(state);
  taken = true;  // from here an error is the request's

  PyObject* type = PyDict_GetItemWithError(scope, names.type);  // borrowed, compared at once
  if (type == nullptr) {
    if (PyErr_Occurred() != nullptr) return nullptr;
    taken = false;
    return nullptr;
  }
  if (type != names.http &&
      !(PyUnicode_CheckExact(type) && PyUnicode_Compare(type, names.http) == 0)) {
    taken = false;
    return nullptr;
  }
  PyObject* root = PyDict_GetItemWithError(scope, names.root_path);  // borrowed, likewise
  if (root == nullptr && PyErr_Occurred() != nullptr) return nullptr;
  if (root != nullptr && !(PyUnicode_CheckExact(root) && PyUnicode_GET_LENGTH(root) == 0)) {
    taken = false;  // mounted: the fallback joins the root to the path
    return nullptr;
  }
  const Ref path = scope_str(scope, names.path);
  const Ref method = scope_str(scope, names.method);
  if (!path || !method) {
    if (PyErr_Occurred() != nullptr) return nullptr;
    taken = false;
    return nullptr;
  }

  int excluded = PySequence_Contains(held.exclude_methods.get(), method.get());
  if (excluded == 0) excluded = PySequence_Contains(held.exact.get(), path.get());
  if (excluded == 0) excluded = prefixed(path.get(), held.prefixes.get());
  if (excluded < 0) return nullptr;
  if (excluded > 0) {
    PyObject* call[] = {nullptr, scope, receive, send};
    return PyObject_Vectorcall(held.app.get(), call + 1, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                               nullptr);
  }
  const int holds = plan_holds(held);
  if (holds <= 0) {
    taken = holds < 0;
    return nullptr;
  }

  // From here the middleware's Python path has a try: what raises is the middleware's _failed.
  Ref route;
  if (held.templated) {
    bool error = false;
    route = table_template(held.routes, held.copy, held.table, path.get(), method.get(), error);
    if (error) return failed(owner, scope, receive, send);
    if (!route) {
      route = Ref(call_method(names.key_path, {owner, scope, path.get()}));
      if (!route) return failed(owner, scope, receive, send);
    }
  } else {
    route = Ref::borrow(path.get());
  }
  if (!held.completes_inline) {
    return call_method(names.store_decides,
                       {owner, held.gate.get(), scope, receive, send, route.get()});
  }
  PyObject* gate_args[] = {nullptr, scope, route.get(), send};
  const Ref answer(PyObject_Vectorcall(held.gate.get(), gate_args + 1,
                                       3 | PY_VECTORCALL_ARGUMENTS_OFFSET, nullptr));
  if (!answer) return failed(owner, scope, receive, send);
  if (Py_TYPE(answer.get()) == verdict_type) {
    return call_method(names.respond, {owner, answer.get(), scope, receive, send});
  }
  // The application's exceptions propagate, as on the Python path.
  PyObject* app_args[] = {nullptr, scope, receive, answer.get()};
  return PyObject_Vectorcall(held.app.get(), app_args + 1, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                             nullptr);
}

PyObject* call_vectorcall(PyObject* self, PyObject* const* args, std::size_t nargsf,
                          PyObject* kwnames) noexcept {
  const auto& call = *reinterpret_cast<CallObject*>(self);
  if (call.fallback == nullptr) {  // cleared by the garbage collector, then called from the cycle
    PyErr_SetString(PyExc_RuntimeError, "MiddlewareCall: called after it was cleared");
    return nullptr;
  }
  if (PyVectorcall_NARGS(nargsf) == 4 && kwnames == nullptr) {
    bool taken = false;
    PyObject* answer = fast(args[0], args[1], args[2], args[3], taken);
    if (taken || answer != nullptr) return answer;
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

PyObject* interned(const char* text) {
  PyObject* name = PyUnicode_InternFromString(text);
  if (name == nullptr) throw pybind11::error_already_set();
  return name;  // kept for the life of the process
}

}  // namespace

void add_asgi_entry(pybind11::module_& m) {
  names = {interned("type"),      interned("root_path"),      interned("path"),
           interned("method"),    interned("http"),           interned("_state"),
           interned("_version"),  interned("storage"),        interned("_engine"),
           interned("_key_path"), interned("_store_decides"), interned("_respond"),
           interned("_failed")};
  pybind11::object verdict = m.attr("Verdict");
  verdict_type = reinterpret_cast<PyTypeObject*>(verdict.release().ptr());  // never released
  add_type(m, "MiddlewareCall", call_spec);
  state_type = add_type(m, "MiddlewareState", state_spec);
}

}  // namespace pacer::python
