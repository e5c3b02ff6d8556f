// The per-request callables of the Python extension (see fast_path.h).
#include "fast_path.h"

#include <structmember.h>  // PyMemberDef's T_PYSSIZET and READONLY

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "bridge.h"
#include "engine.h"
#include "pacer/http/request_view.h"
#include "policy.h"
#include "rule.h"

namespace pacer::python {
namespace {

// In a catch block: sets the Python error for the exception being handled as pybind11's
// dispatcher does (the module's translators, then pybind11's own) and returns nullptr.
PyObject* raise_current() noexcept {
  try {
    if (py::detail::apply_exception_translators(
            py::detail::get_local_internals().registered_exception_translators) ||
        py::detail::apply_exception_translators(
            py::detail::get_internals().registered_exception_translators)) {
      return nullptr;
    }
  } catch (...) {  // nothing may leave a C API function
  }
  if (!PyErr_Occurred()) PyErr_SetString(PyExc_SystemError, "pacer: an untranslated C++ exception");
  return nullptr;
}

py::object borrow(PyObject* object) { return py::reinterpret_borrow<py::object>(object); }

std::string_view bytes_view(PyObject* bytes) {
  return {PyBytes_AS_STRING(bytes), static_cast<std::size_t>(PyBytes_GET_SIZE(bytes))};
}

// The type objects, made once by add_fast_path (one interpreter per process).
PyTypeObject* header_send_type = nullptr;
PyTypeObject* gate_type = nullptr;
PyTypeObject* native_call_type = nullptr;

// A vectorcall's arguments beyond the positional ones, counted.
Py_ssize_t keyword_count(PyObject* kwnames) {
  return kwnames != nullptr ? PyTuple_GET_SIZE(kwnames) : 0;
}

// ---- HeaderSend ----------------------------------------------------------------------------

struct HeaderSendObject {
  PyObject_HEAD vectorcallfunc vectorcall;
  PyObject* send;     // the wrapped ASGI send
  PyObject* headers;  // ours: a list of (lower-case bytes, value) tuples, never changed
};

// Whether an app's header field named `name` is one of `headers` (replaced by it).
bool ours(PyObject* headers, PyObject* name) {
  const Py_ssize_t count = PyList_GET_SIZE(headers);
  if (!PyBytes_Check(name)) {
    // Not bytes (an app breaking the ASGI spec): Python's comparison, which a str never passes;
    // its lower() must still exist, as it did for the Python wrapper.
    const py::object low = borrow(name).attr("lower")();
    for (Py_ssize_t i = 0; i < count; ++i) {
      if (low.equal(borrow(PyTuple_GET_ITEM(PyList_GET_ITEM(headers, i), 0)))) return true;
    }
    return false;
  }
  const std::string_view sent = bytes_view(name);
  for (Py_ssize_t i = 0; i < count; ++i) {
    if (http::iequals(sent, bytes_view(PyTuple_GET_ITEM(PyList_GET_ITEM(headers, i), 0))))
      return true;
  }
  return false;
}

// The app's header fields of `message` without ours, then ours: Python's
// [h for h in message.get("headers", ()) if h[0].lower() not in names] + headers.
py::list merged_headers(PyObject* headers, const py::object& existing) {
  const Py_ssize_t count = PyList_GET_SIZE(headers);
  if (PyList_CheckExact(existing.ptr())) {
    // What servers and frameworks send: a list of tuples of bytes, read by index and merged
    // into a list made at its full size. ours() runs no Python code on a bytes name, and a
    // field that is not a tuple takes the general path below.
    PyObject* const fields = existing.ptr();
    const Py_ssize_t given = PyList_GET_SIZE(fields);
    bool plain = true;
    for (Py_ssize_t i = 0; i < given && plain; ++i) {
      PyObject* field = PyList_GET_ITEM(fields, i);
      plain = PyTuple_CheckExact(field) && PyTuple_GET_SIZE(field) >= 1 &&
              PyBytes_CheckExact(PyTuple_GET_ITEM(field, 0));
    }
    if (plain) {
      auto merged = py::reinterpret_steal<py::list>(PyList_New(given + count));
      if (!merged) throw py::error_already_set();
      Py_ssize_t at = 0;
      for (Py_ssize_t i = 0; i < given; ++i) {
        PyObject* field = PyList_GET_ITEM(fields, i);
        if (!ours(headers, PyTuple_GET_ITEM(field, 0)))
          PyList_SET_ITEM(merged.ptr(), at++, Py_NewRef(field));
      }
      for (Py_ssize_t i = 0; i < count; ++i)
        PyList_SET_ITEM(merged.ptr(), at++, Py_NewRef(PyList_GET_ITEM(headers, i)));
      // The app's fields that ours replaced leave empty slots at the end.
      if (at < given + count && PyList_SetSlice(merged.ptr(), at, given + count, nullptr) != 0)
        throw py::error_already_set();
      return merged;
    }
  }
  py::list merged;
  for (const py::handle field : existing) {
    const py::object name = PyTuple_Check(field.ptr())
                                ? borrow(PyTuple_GET_ITEM(field.ptr(), 0))
                                : py::object(py::reinterpret_borrow<py::sequence>(field)[0]);
    if (!ours(headers, name.ptr())) merged.append(field);
  }
  for (Py_ssize_t i = 0; i < count; ++i) merged.append(PyList_GET_ITEM(headers, i));
  return merged;
}

// Whether a message's type is "http.response.start". Most messages are something else, told by
// their length; a str of one-byte characters is compared in place.
bool is_response_start(PyObject* type) {
  static constexpr std::string_view kStart = "http.response.start";
  if (!PyUnicode_Check(type) || PyUnicode_READY(type) != 0) return false;
  if (PyUnicode_GET_LENGTH(type) != static_cast<Py_ssize_t>(kStart.size())) return false;
  if (PyUnicode_KIND(type) == PyUnicode_1BYTE_KIND) {
    return std::string_view(static_cast<const char*>(PyUnicode_DATA(type)), kStart.size()) ==
           kStart;
  }
  return false;  // a character beyond one byte: not ASCII
}

// `send(message)`, the header block added to an http.response.start message. A new reference.
PyObject* send_with_headers(const HeaderSendObject& self, PyObject* message) {
  // Interned keys, made once: C-API lookups, no Python frame.
  static PyObject* const type_key = PyUnicode_InternFromString("type");
  static PyObject* const headers_key = PyUnicode_InternFromString("headers");
  const bool is_dict = PyDict_Check(message) != 0;
  PyObject* type = nullptr;  // borrowed
  py::object generic_type;
  if (is_dict) {
    type = PyDict_GetItemWithError(message, type_key);
    if (type == nullptr) {
      // As message["type"]: a message without one is a KeyError.
      if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, type_key);
      throw py::error_already_set();
    }
  } else {
    generic_type = borrow(message)[py::handle(type_key)];
    type = generic_type.ptr();
  }
  if (is_response_start(type)) {
    py::object existing;
    if (is_dict) {
      PyObject* found = PyDict_GetItemWithError(message, headers_key);  // borrowed
      if (found == nullptr && PyErr_Occurred()) throw py::error_already_set();
      existing = found != nullptr ? borrow(found) : py::tuple();
    } else {
      existing = borrow(message).attr("get")(py::handle(headers_key), py::tuple());
    }
    const py::list merged = merged_headers(self.headers, existing);
    if (PyObject_SetItem(message, headers_key, merged.ptr()) != 0) throw py::error_already_set();
  }
  PyObject* awaitable = PyObject_CallOneArg(self.send, message);
  if (awaitable == nullptr) throw py::error_already_set();
  return awaitable;
}

PyObject* header_send_vectorcall(PyObject* self, PyObject* const* args, std::size_t nargsf,
                                 PyObject* kwnames) noexcept {
  const Py_ssize_t given = PyVectorcall_NARGS(nargsf);
  const Py_ssize_t keywords = keyword_count(kwnames);
  if (given + keywords != 1 ||
      (keywords == 1 &&
       PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "message") != 0)) {
    PyErr_Format(PyExc_TypeError, "HeaderSend takes one argument, the ASGI message; got %zd",
                 given + keywords);
    return nullptr;
  }
  const auto& wrapped = *reinterpret_cast<HeaderSendObject*>(self);
  if (wrapped.send == nullptr) {  // cleared by the garbage collector, then called from the cycle
    PyErr_SetString(PyExc_RuntimeError, "HeaderSend: called after it was cleared");
    return nullptr;
  }
  try {
    return send_with_headers(wrapped, args[0]);
  } catch (...) {
    return raise_current();
  }
}

py::object make_header_send(py::object send, py::list headers) {
  auto* self = PyObject_GC_New(HeaderSendObject, header_send_type);
  if (self == nullptr) throw py::error_already_set();
  self->vectorcall = header_send_vectorcall;
  self->send = send.release().ptr();
  self->headers = headers.release().ptr();
  PyObject_GC_Track(self);
  return py::reinterpret_steal<py::object>(reinterpret_cast<PyObject*>(self));
}

// HeaderSend(send, headers): a list of our own of (lower-case bytes, value) tuples, compared on
// every http.response.start and out of reach of the caller's later changes to `headers`.
PyObject* header_send_new(PyTypeObject*, PyObject* args, PyObject* kwargs) noexcept {
  static const char* names[] = {"send", "headers", nullptr};
  PyObject* send = nullptr;
  PyObject* headers = nullptr;
  if (PyArg_ParseTupleAndKeywords(args, kwargs, "OO:HeaderSend", const_cast<char**>(names), &send,
                                  &headers) == 0) {
    return nullptr;
  }
  try {
    py::list copied;
    for (const py::handle pair : borrow(headers)) {
      const auto fields = py::reinterpret_borrow<py::sequence>(pair);
      const py::object name = fields[0];
      if (!PyBytes_Check(name.ptr())) {
        throw py::type_error("HeaderSend: header names must be bytes, got " +
                             std::string(Py_TYPE(name.ptr())->tp_name));
      }
      copied.append(py::make_tuple(py::bytes(ascii_lower(bytes_view(name.ptr()))), fields[1]));
    }
    return make_header_send(borrow(send), std::move(copied)).release().ptr();
  } catch (...) {
    return raise_current();
  }
}

int header_send_traverse(PyObject* self, visitproc visit, void* arg) {
  auto* o = reinterpret_cast<HeaderSendObject*>(self);
  Py_VISIT(o->send);
  Py_VISIT(o->headers);
  Py_VISIT(Py_TYPE(self));  // a heap type
  return 0;
}

int header_send_clear(PyObject* self) {
  auto* o = reinterpret_cast<HeaderSendObject*>(self);
  Py_CLEAR(o->send);
  Py_CLEAR(o->headers);
  return 0;
}

void header_send_dealloc(PyObject* self) { gc_dealloc(self, header_send_clear); }

PyMemberDef header_send_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(HeaderSendObject, vectorcall), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyType_Slot header_send_slots[] = {
    {Py_tp_doc,
     const_cast<char*>("HeaderSend(send, headers): an ASGI send adding `headers` to "
                       "http.response.start (the app's fields of those names replaced).")},
    {Py_tp_new, reinterpret_cast<void*>(header_send_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(header_send_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(header_send_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(header_send_clear)},
    {Py_tp_call, reinterpret_cast<void*>(PyVectorcall_Call)},
    {Py_tp_members, header_send_members},
    {0, nullptr}};

PyType_Spec header_send_spec = {
    "pacer._pacer.HeaderSend", sizeof(HeaderSendObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    header_send_slots};

// ---- Gate ----------------------------------------------------------------------------------

struct GateObject {
  PyObject_HEAD vectorcallfunc vectorcall;
  PyObject* engine_object;  // the pybind11 Engine, kept alive while the gate is
  PyObject* rule_object;    // the pybind11 Rule, likewise
  Engine* engine;
  const CompiledRule* rule;
  HeaderFlag headers;
};

PyObject* gate_vectorcall(PyObject* self, PyObject* const* args, std::size_t nargsf,
                          PyObject* kwnames) noexcept {
  const Py_ssize_t given = PyVectorcall_NARGS(nargsf);
  if (keyword_count(kwnames) != 0 || (given != 3 && given != 5)) {
    PyErr_Format(PyExc_TypeError,
                 "Gate takes (scope, route, send) or (scope, route, send, bridge, future) by "
                 "position; got %zd argument(s)",
                 given + keyword_count(kwnames));
    return nullptr;
  }
  Py_ssize_t size = 0;
  const char* route = PyUnicode_Check(args[1]) ? PyUnicode_AsUTF8AndSize(args[1], &size) : nullptr;
  if (route == nullptr) {
    if (!PyErr_Occurred()) {
      PyErr_Format(PyExc_TypeError, "Gate: route must be a str, got %.200s",
                   Py_TYPE(args[1])->tp_name);
    }
    return nullptr;
  }
  const auto& gate = *reinterpret_cast<GateObject*>(self);
  try {
    Bridge* bridge = given == 5 ? bridge_or_null(args[3]) : nullptr;
    return gate.engine
        ->admit(*gate.rule, borrow(args[0]),
                std::string_view(route, static_cast<std::size_t>(size)), gate.headers, bridge,
                given == 5 ? borrow(args[4]) : py::none(), borrow(args[2]))
        .release()
        .ptr();
  } catch (...) {
    return raise_current();
  }
}

template <class T>
T& bound(PyObject* object, const char* what, const char* type) {
  if (!py::isinstance<T>(object)) {
    throw py::type_error(std::string("Gate: ") + what + " must be a " + type + ", got " +
                         Py_TYPE(object)->tp_name);
  }
  return py::handle(object).cast<T&>();
}

// Gate(engine, rule, headers)
PyObject* gate_new(PyTypeObject*, PyObject* args, PyObject* kwargs) noexcept {
  static const char* names[] = {"engine", "rule", "headers", nullptr};
  PyObject* engine = nullptr;
  PyObject* rule = nullptr;
  PyObject* headers = nullptr;
  if (PyArg_ParseTupleAndKeywords(args, kwargs, "OOO:Gate", const_cast<char**>(names), &engine,
                                  &rule, &headers) == 0) {
    return nullptr;
  }
  try {
    Engine& e = bound<Engine>(engine, "engine", "pacer._pacer.Engine");
    const CompiledRule& r = bound<CompiledRule>(rule, "rule", "pacer._pacer.Rule");
    const HeaderFlag flags = bound<HeaderFlag>(headers, "headers", "pacer._pacer.HeaderFlag");
    auto* self = PyObject_New(GateObject, gate_type);
    if (self == nullptr) return nullptr;
    self->vectorcall = gate_vectorcall;
    self->engine_object = Py_NewRef(engine);
    self->rule_object = Py_NewRef(rule);
    self->engine = &e;
    self->rule = &r;
    self->headers = flags;
    return reinterpret_cast<PyObject*>(self);
  } catch (...) {
    return raise_current();
  }
}

void gate_dealloc(PyObject* self) {
  auto* o = reinterpret_cast<GateObject*>(self);
  PyTypeObject* type = Py_TYPE(self);
  Py_CLEAR(o->engine_object);
  Py_CLEAR(o->rule_object);
  type->tp_free(self);
  Py_DECREF(type);
}

PyMemberDef gate_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(GateObject, vectorcall), READONLY, nullptr},
    {"engine", T_OBJECT, offsetof(GateObject, engine_object), READONLY, nullptr},
    {"rule", T_OBJECT, offsetof(GateObject, rule_object), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyType_Slot gate_slots[] = {
    {Py_tp_doc, const_cast<char*>("Gate(engine, rule, headers): engine.admit bound to a rule "
                                  "and HeaderFlag; gate(scope, route, send[, bridge, future]).")},
    {Py_tp_new, reinterpret_cast<void*>(gate_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(gate_dealloc)},
    {Py_tp_call, reinterpret_cast<void*>(PyVectorcall_Call)},
    {Py_tp_members, gate_members},
    {0, nullptr}};

PyType_Spec gate_spec = {"pacer._pacer.Gate", sizeof(GateObject), 0,
                         Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_VECTORCALL,
                         gate_slots};

// ---- NativeCallable ------------------------------------------------------------------------

struct NativeCallObject {
  PyObject_HEAD vectorcallfunc vectorcall;
  std::function<void()>* run;  // owned
};

PyObject* native_call_vectorcall(PyObject* self, PyObject* const*, std::size_t nargsf,
                                 PyObject* kwnames) noexcept {
  const Py_ssize_t given = PyVectorcall_NARGS(nargsf) + keyword_count(kwnames);
  if (given != 0) {
    PyErr_Format(PyExc_TypeError, "a native callable takes no argument; got %zd", given);
    return nullptr;
  }
  try {
    (*reinterpret_cast<NativeCallObject*>(self)->run)();
    Py_RETURN_NONE;
  } catch (...) {
    return raise_current();
  }
}

void native_call_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  delete reinterpret_cast<NativeCallObject*>(self)->run;  // what it holds is released here
  type->tp_free(self);
  Py_DECREF(type);
}

PyMemberDef native_call_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(NativeCallObject, vectorcall), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyType_Slot native_call_slots[] = {
    {Py_tp_doc, const_cast<char*>("A C++ function of the engine (its event loop callbacks).")},
    {Py_tp_dealloc, reinterpret_cast<void*>(native_call_dealloc)},
    {Py_tp_call, reinterpret_cast<void*>(PyVectorcall_Call)},
    {Py_tp_members, native_call_members},
    {0, nullptr}};

// No tp_new: made by native_callable() only.
PyType_Spec native_call_spec = {"pacer._pacer.NativeCallable", sizeof(NativeCallObject), 0,
                                Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE |
                                    Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_DISALLOW_INSTANTIATION,
                                native_call_slots};

}  // namespace

PyTypeObject* add_type(py::module_& m, const char* name, PyType_Spec& spec) {
  PyObject* type = PyType_FromSpec(&spec);
  if (type == nullptr) throw py::error_already_set();
  m.add_object(name, py::reinterpret_borrow<py::object>(type));
  return reinterpret_cast<PyTypeObject*>(type);  // the reference made here is never released
}

void gc_dealloc(PyObject* self, inquiry clear) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  clear(self);
  type->tp_free(self);
  Py_DECREF(type);
}

void add_fast_path(py::module_& m) {
  header_send_type = add_type(m, "HeaderSend", header_send_spec);
  gate_type = add_type(m, "Gate", gate_spec);
  native_call_type = add_type(m, "NativeCallable", native_call_spec);
}

bool is_gate(PyObject* object) { return Py_TYPE(object) == gate_type; }

PyObject* interned(const char* text) {
  PyObject* name = PyUnicode_InternFromString(text);
  if (name == nullptr) throw py::error_already_set();
  return name;
}

py::object fetch_exception() {
  PyObject* type = nullptr;
  PyObject* value = nullptr;
  PyObject* traceback = nullptr;
  PyErr_Fetch(&type, &value, &traceback);
  PyErr_NormalizeException(&type, &value, &traceback);
  if (value != nullptr && traceback != nullptr) PyException_SetTraceback(value, traceback);
  Py_XDECREF(type);
  Py_XDECREF(traceback);
  return py::reinterpret_steal<py::object>(value);
}

py::object header_send(py::object send, py::list headers) {
  return make_header_send(std::move(send), std::move(headers));
}

py::object native_callable(std::function<void()> run) {
  auto owned = std::make_unique<std::function<void()>>(std::move(run));
  auto* self = PyObject_New(NativeCallObject, native_call_type);
  if (self == nullptr) throw py::error_already_set();
  self->vectorcall = native_call_vectorcall;
  self->run = owned.release();
  return py::reinterpret_steal<py::object>(reinterpret_cast<PyObject*>(self));
}

}  // namespace pacer::python
