// The request as the Python extension sees it (see request_view.h).
#include "request_view.h"

#include <algorithm>

namespace pacer::python {
namespace {

// The bytes of a bytes object (ASGI's form) or the UTF-8 of a str; `object` must outlive the
// view.
std::string_view text_of(const py::object& object) {
  if (PyBytes_Check(object.ptr())) {
    return {PyBytes_AS_STRING(object.ptr()),
            static_cast<std::size_t>(PyBytes_GET_SIZE(object.ptr()))};
  }
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(object.ptr(), &size);
  if (data == nullptr) throw py::error_already_set();
  return {data, static_cast<std::size_t>(size)};
}

// Text of a str value as the request carried it: Starlette decodes header bytes as Latin-1, so
// encoding back gives them; a str that Latin-1 cannot hold (a test's dict) is taken as UTF-8.
std::string header_text(const py::handle& value) {
  if (PyBytes_Check(value.ptr()))
    return std::string(text_of(py::reinterpret_borrow<py::object>(value)));
  py::object latin1 = py::reinterpret_steal<py::object>(
      PyUnicode_AsEncodedString(value.ptr(), "latin-1", "strict"));
  if (!latin1) {
    PyErr_Clear();
    return std::string(text_of(py::reinterpret_borrow<py::object>(value)));
  }
  return std::string(text_of(latin1));
}

bool is_text(const py::handle& value) {
  return PyUnicode_Check(value.ptr()) || PyBytes_Check(value.ptr());
}

// FastAPI Pacer's _attr: `name` of `object` (an item of a dict: an ASGI scope's "state" is the
// dict behind request.state), or None where the attribute is missing (AttributeError, a
// Starlette assertion, KeyError). Other errors propagate.
py::object member(const py::handle& object, const char* name) {
  if (object.is_none()) return py::none();
  if (PyDict_Check(object.ptr())) {
    PyObject* item = PyDict_GetItemString(object.ptr(), name);  // borrowed
    return item != nullptr ? py::reinterpret_borrow<py::object>(item) : py::none();
  }
  PyObject* value = PyObject_GetAttrString(object.ptr(), name);
  if (value != nullptr) return py::reinterpret_steal<py::object>(value);
  if (PyErr_ExceptionMatches(PyExc_AttributeError) ||
      PyErr_ExceptionMatches(PyExc_AssertionError) || PyErr_ExceptionMatches(PyExc_KeyError)) {
    PyErr_Clear();
    return py::none();
  }
  throw py::error_already_set();
}

bool truthy(const py::handle& value) {
  const int yes = PyObject_IsTrue(value.ptr());
  if (yes < 0) throw py::error_already_set();
  return yes == 1;
}

std::string str_of(const py::handle& value) { return py::str(value).cast<std::string>(); }

}  // namespace

std::optional<std::string_view> PyRequestView::attribute(std::string_view name) const {
  if (name != "user" && name != "org") return std::nullopt;
  const py::object st = state();
  if (name == "user") {
    if (py::object id = member(st, "user_id"); truthy(id)) return keep(str_of(id));
    for (const py::object& who : {member(st, "user"), user()}) {
      if (who.is_none()) continue;
      if (py::object id = member(who, "id"); !id.is_none()) return keep(str_of(id));
    }
    return std::nullopt;
  }
  for (const char* field : {"org_id", "organization_id"})
    if (py::object id = member(st, field); truthy(id)) return keep(str_of(id));
  if (py::object id = member(member(st, "org"), "id"); !id.is_none()) return keep(str_of(id));
  return std::nullopt;
}

namespace {

// The ASGI scope keys the view reads, interned once (kept for the process's life, as Python's
// own are).
struct ScopeKeys {
  PyObject* method = PyUnicode_InternFromString("method");
  PyObject* query_string = PyUnicode_InternFromString("query_string");
  PyObject* client = PyUnicode_InternFromString("client");
  PyObject* headers = PyUnicode_InternFromString("headers");
};

// scope[key] (borrowed), or null (with a Python error set if the lookup failed).
PyObject* scope_item(const py::dict& scope, PyObject* ScopeKeys::*key) {
  static const ScopeKeys keys;
  return PyDict_GetItemWithError(scope.ptr(), keys.*key);
}

// The item `i` of a list or tuple (borrowed), else null: the fast path of an ASGI header pair.
PyObject* fast_item(PyObject* sequence, Py_ssize_t i) {
  if (PyTuple_Check(sequence) && PyTuple_GET_SIZE(sequence) > i)
    return PyTuple_GET_ITEM(sequence, i);
  if (PyList_Check(sequence) && PyList_GET_SIZE(sequence) > i) return PyList_GET_ITEM(sequence, i);
  return nullptr;
}

}  // namespace

ScopeView::ScopeView(const py::dict& scope, std::string_view route)
    : PyRequestView(route), scope_(scope) {
  if (PyObject* method = scope_item(scope, &ScopeKeys::method); method && is_text(method))
    method_ = text_of(py::reinterpret_borrow<py::object>(method));
  if (PyObject* query = scope_item(scope, &ScopeKeys::query_string); query && is_text(query))
    query_ = text_of(py::reinterpret_borrow<py::object>(query));
  if (PyObject* client = scope_item(scope, &ScopeKeys::client);
      client != nullptr && client != Py_None) {
    const py::object host = py::reinterpret_borrow<py::sequence>(client)[0];
    if (PyUnicode_Check(host.ptr())) peer_ = text_of(host);  // the tuple keeps it alive
  }
  if (PyErr_Occurred()) throw py::error_already_set();
}

const std::vector<std::pair<std::string_view, std::string_view>>& ScopeView::headers() const {
  if (headers_) return *headers_;
  auto& out = headers_.emplace();
  PyObject* raw = scope_item(scope_, &ScopeKeys::headers);
  if (raw == nullptr) {
    if (PyErr_Occurred()) throw py::error_already_set();
    return out;
  }
  // A (bytes, bytes) pair, read in place: the views point into the pair's bytes.
  const auto add_bytes = [&](PyObject* item) {
    PyObject* name = fast_item(item, 0);
    PyObject* value = fast_item(item, 1);
    if (name == nullptr || value == nullptr || !PyBytes_Check(name) || !PyBytes_Check(value))
      return false;
    out.emplace_back(
        std::string_view(PyBytes_AS_STRING(name), static_cast<std::size_t>(PyBytes_GET_SIZE(name))),
        std::string_view(PyBytes_AS_STRING(value),
                         static_cast<std::size_t>(PyBytes_GET_SIZE(value))));
    return true;
  };
  if (PyList_Check(raw)) {
    // What ASGI servers give: a list of bytes pairs, read by index. Nothing here runs Python
    // code, so the list cannot change while it is read, and the scope keeps its pairs alive.
    const Py_ssize_t size = PyList_GET_SIZE(raw);
    out.reserve(static_cast<std::size_t>(size));
    Py_ssize_t i = 0;
    while (i < size && add_bytes(PyList_GET_ITEM(raw, i))) ++i;
    if (i == size) return out;
    out.clear();
  }
  // Anything else (str pairs, other sequences, an iterator) is copied: reading a pair may run
  // Python code, which could change or drop items the views would point into.
  for (const py::handle item : py::reinterpret_borrow<py::iterable>(raw)) {
    const auto pair = py::reinterpret_borrow<py::sequence>(item);
    const py::object n = pair[0];
    const py::object v = pair[1];
    out.emplace_back(keep(std::string(text_of(n))), keep(std::string(text_of(v))));
  }
  return out;
}

std::optional<std::string_view> ScopeView::header(std::string_view name) const {
  for (const auto& [n, v] : headers())
    if (http::iequals(n, name)) return v;
  return std::nullopt;
}

std::string ScopeView::header_list(std::string_view name) const {
  std::string out;
  for (const auto& [n, v] : headers())
    if (http::iequals(n, name)) out.append(out.empty() ? "" : ", ").append(v);
  return out;
}

std::size_t ScopeView::header_count(std::string_view name) const {
  std::size_t lines = 0;
  for (const auto& [n, v] : headers())
    if (http::iequals(n, name)) ++lines;
  return lines;
}

py::object ScopeView::request() const {
  return py::module_::import("starlette.requests").attr("Request")(scope_);
}

py::object ScopeView::state() const { return member(scope_, "state"); }
py::object ScopeView::user() const { return member(scope_, "user"); }

ObjectView::ObjectView(py::object request, std::string_view route)
    : PyRequestView(route), request_(std::move(request)) {
  headers_ = member(request_, "headers");
  if (py::object method = member(request_, "method"); PyUnicode_Check(method.ptr()))
    method_ = keep(str_of(method));
  if (py::object host = member(member(request_, "client"), "host"); PyUnicode_Check(host.ptr()))
    peer_ = keep(str_of(host));
}

std::optional<std::string_view> ObjectView::header(std::string_view name) const {
  if (headers_.is_none()) return std::nullopt;
  const py::object value = headers_.attr("get")(py::str(name.data(), name.size()));
  if (!is_text(value)) return std::nullopt;
  return keep(header_text(value));
}

namespace {

// starlette.datastructures.Headers, or null without Starlette. Kept for the process's life (no
// Python object is released after the interpreter has gone).
PyObject* starlette_headers() {
  static PyObject* const type = [] {
    try {
      return py::object(py::module_::import("starlette.datastructures").attr("Headers"))
          .release()
          .ptr();
    } catch (const py::error_already_set&) {
      return static_cast<PyObject*>(nullptr);
    }
  }();
  return type;
}

}  // namespace

std::string ObjectView::header_list(std::string_view name) const {
  // Starlette's Headers keep repeated fields; a plain mapping has one value per name.
  PyObject* const headers_type = starlette_headers();
  if (headers_type != nullptr && PyObject_IsInstance(headers_.ptr(), headers_type) == 1) {
    std::string out;
    for (const py::handle value : headers_.attr("getlist")(py::str(name.data(), name.size()))) {
      if (!is_text(value)) continue;
      out.append(out.empty() ? "" : ", ").append(header_text(value));
    }
    return out;
  }
  const auto one = header(name);
  return one ? std::string(*one) : std::string();
}

std::optional<std::string> ObjectView::query_parameter(std::string_view name) const {
  const py::object params = member(request_, "query_params");
  if (params.is_none()) return std::nullopt;
  const py::object value = params.attr("get")(py::str(name.data(), name.size()));
  if (!PyUnicode_Check(value.ptr())) return std::nullopt;
  return str_of(value);
}

py::object ObjectView::state() const { return member(request_, "state"); }
py::object ObjectView::user() const { return member(request_, "user"); }

std::optional<std::string_view> PairsView::header(std::string_view name) const {
  for (const auto& [n, v] : headers_)
    if (http::iequals(n, name)) return std::string_view(v);
  return std::nullopt;
}

std::string PairsView::header_list(std::string_view name) const {
  std::string out;
  for (const auto& [n, v] : headers_)
    if (http::iequals(n, name)) out.append(out.empty() ? "" : ", ").append(v);
  return out;
}

std::size_t PairsView::header_count(std::string_view name) const {
  return static_cast<std::size_t>(
      std::count_if(headers_.begin(), headers_.end(),
                    [&](const auto& h) { return http::iequals(h.first, name); }));
}

ClientIp::ClientIp(const std::string& trusted, std::vector<std::string> headers, int ipv6_prefix) {
  options_.trusted_proxies = http::TrustedProxies::parse(trusted);
  options_.headers = std::move(headers);
  options_.ipv6_prefix = ipv6_prefix;
  options_.validate();
}

std::string ClientIp::resolve(const std::optional<std::string>& peer, const HeaderPairs& headers,
                              const std::string& missing) const {
  if (!peer) return missing;
  const auto ip = http::client_ip(PairsView(*peer, headers), options_);
  return ip ? ip->to_string() : *peer;
}

}  // namespace pacer::python
