"""Route templates: what the `route` and `method` scopes key a bucket by.

FastAPI Pacer keyed `route_scope="route"` by the concrete path, so `/items/7`, `/items/07` and
`/items/007` were three buckets of one route, and a client passed any limit by spelling the path
another way (issue 20). Pacer keys by the template the application routes the request to
(`/items/{i}`). A routed request (the dependency, the decorator) carries its route; the
middleware runs before routing, so it matches the ASGI scope against the app's routes the way
Starlette's router does: the first full match, else the first partial one (a known path with
another method: the router's 405), else no route. Requests that match no route (404s, the
router's trailing-slash redirects) all share one key, `UNMATCHED`: a bucket per unknown path
would be the same bypass.

No cache of answers: a cache keyed by the concrete path is what a client spelling paths another
way would fill (and flush). What the middleware keeps instead is the route list compiled
(`RouteMatcher`): each run of plain routes (Starlette's `Route` and FastAPI's `APIRoute`) becomes
one regular expression of their own patterns, tried once against "METHOD path" for the first
full match and, only on a miss, once against the path for the first partial one, so a request
costs one or two regex calls instead of a Python step per route (docs/PERFORMANCE.md, issue 23).
Mounts, hosts and other route classes keep their place in the order and are matched as before.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

try:
    from starlette.routing import Host, Match, Mount, Route
except ImportError:  # a plain ASGI app without Starlette: no routes to match
    Host = Mount = Match = Route = None  # type: ignore[assignment,misc]

try:
    # Starlette >= 0.33 keeps the root path in scope["path"]; its routes match what this returns.
    from starlette._utils import get_route_path as _route_path
except ImportError:
    def _route_path(scope: dict) -> str:
        return scope["path"]

# Route classes whose `matches` is Starlette's Route.matches (FastAPI's APIRoute only adds
# itself to the child scope): their path regexes and methods are all that decides, so runs of
# them are combined (RouteMatcher), and no child scope is built for them.
_PLAIN_MATCHES = set()
if Route is not None:
    _PLAIN_MATCHES.add(Route.matches)
    try:
        from fastapi.routing import APIRoute

        _PLAIN_MATCHES.add(APIRoute.matches)
    except ImportError:
        pass

UNMATCHED = "<unmatched>"

# A Mount or Host whose children are deeper than this is keyed as one route (its own template
# followed by "/{path:path}"): routing trees are shallow, and the walk must end.
_MAX_DEPTH = 8
# How many `.app` links are followed from an ASGI app to the router under its middleware.
_MAX_CHAIN = 32


def routes_of(app: Any) -> Optional[List[Any]]:
    """The route list of `app`, or of the first app under it along `.app` links (the chain that
    Starlette's and most ASGI middleware keep); None when there is none."""
    for _ in range(_MAX_CHAIN):
        if app is None:
            return None
        routes = getattr(app, "routes", None)
        if isinstance(routes, list):
            return routes
        app = getattr(app, "app", None)
    return None


# A named group of a route's pattern (Starlette writes one per path parameter): made
# non-capturing when patterns are combined, whose own groups name the route. A literal "(?P<"
# of a path cannot appear unescaped: re.escape escapes its "(" and "?".
_NAMED_GROUP = re.compile(r"\(\?P<[A-Za-z_][A-Za-z0-9_]*>")


def _combinable(route: Any) -> bool:
    regex = getattr(route, "path_regex", None)
    pattern = getattr(regex, "pattern", None)
    return (isinstance(pattern, str) and pattern.startswith("^") and pattern.endswith("$")
            and regex.flags == _PLAIN_FLAGS and isinstance(route.path, str)
            and all(isinstance(m, str) and " " not in m for m in route.methods or ()))


_PLAIN_FLAGS = re.compile("").flags


class _Run:
    """Consecutive plain routes as two regular expressions: `full` over "METHOD path" matches
    the first route whose path and method match (Starlette's Match.FULL), `partial` over the
    path the first whose path matches (Match.PARTIAL when the method does not). Each route's
    alternative is the named group `_<index>`, and `templates` maps a match's `lastindex` (the
    enclosing group closes last) to that route's template.

    `static` answers most requests without a regex: a route without parameters (`/ping`)
    matches its own path and nothing else, so its path is a dict key, mapped to the
    (methods, template) of every such route of that path in order. A path is left out when a
    route with parameters before one of them matches it too (`/items/{i}` before
    `/items/new`): then the order decides, and the regexes do. A dict entry whose methods do not
    match is a partial match at most, and also left to the regexes (a later route with
    parameters may match in full)."""

    __slots__ = ("full", "partial", "templates", "static", "by_method")

    def __init__(self, routes: List[Any]) -> None:
        full, partial = [], []
        for i, route in enumerate(routes):
            body = _NAMED_GROUP.sub("(?:", route.path_regex.pattern[1:])
            methods = ("|".join(re.escape(m) for m in sorted(route.methods))
                       if route.methods else "[^ ]*")
            full.append(f"(?P<_{i}>(?:{methods}) {body})")
            partial.append(f"(?P<_{i}>{body})")
        self.full = re.compile("|".join(full))
        self.partial = re.compile("|".join(partial))
        self.templates = {}
        for i, route in enumerate(routes):  # one numbering: both have the same groups
            self.templates[self.full.groupindex[f"_{i}"]] = route.path
        self.static: Dict[str, List[Tuple[Optional[frozenset], str]]] = {}
        shadowed = set()
        with_parameters: List[Any] = []
        for route in routes:
            if not _literal(route):
                with_parameters.append(route)
                continue
            path = route.path
            if path in shadowed:
                continue
            if any(earlier.path_regex.match(path) for earlier in with_parameters):
                shadowed.add(path)
                self.static.pop(path, None)
                continue
            methods = frozenset(route.methods) if route.methods else None
            self.static.setdefault(path, []).append((methods, path))
        # `static` as the middleware reads it inline (RouteMatcher.first_static): path ->
        # ({method: the template of the first route of that path allowing it}, the template of
        # the first route of that path allowing any method, or None).
        self.by_method: Dict[str, Tuple[Dict[str, str], Optional[str]]] = {}
        for path, entries in self.static.items():
            table: Dict[str, str] = {}
            any_method = None
            for methods, template in entries:
                if methods is None:
                    any_method = template
                    break
                for method in methods:
                    table.setdefault(method, template)
            self.by_method[path] = (table, any_method)


def _literal(route: Any) -> bool:
    """Whether `route` (a plain one) matches exactly one path, its own: no parameters, and its
    pattern is the escaped path (a newline is left out: `$` also matches before one)."""
    path = route.path
    return ("\n" not in path and not getattr(route, "param_convertors", None)
            and route.path_regex.pattern == f"^{re.escape(path)}$")


class RouteMatcher:
    """match_template for one route list, compiled once (see the module's doc). It keeps the
    list's routes as they were when compiled and compiles again when the list changes (a route
    added, removed or replaced); a route object changed in place (its methods, its regex) is
    not seen. Mounted apps' route lists get matchers of their own, kept here too."""

    def __init__(self) -> None:
        self._compiled: Dict[int, Tuple[List[Any], List[Any], List[Any]]] = {}

    def match(self, routes: List[Any], scope: dict, prefix: str = "", depth: int = 0) -> str:
        """match_template: the first full match in `routes`' order (`prefix`: the templates of
        the mounts crossed, `depth` of them), else the first partial one, else UNMATCHED."""
        if Match is None:
            return UNMATCHED
        partial = None
        subject = None
        path = None
        entry = self._compiled.get(id(routes))  # _segments' common case, without its call
        if entry is not None and entry[0] is routes and entry[1] == routes:
            segments = entry[2]
        else:
            segments = self._segments(routes)
        for segment in segments:
            if type(segment) is _Run:
                if path is None:
                    path = _route_path(scope)
                entry = segment.static.get(path)
                if entry is not None:
                    method = scope.get("method")
                    for methods, template in entry:
                        if methods is None or method in methods:
                            return prefix + template
                if subject is None:
                    subject = f"{scope.get('method')} {path}"
                found = segment.full.match(subject)
                if found is not None:
                    return prefix + segment.templates[found.lastindex]
                if partial is None:
                    found = segment.partial.match(path)
                    if found is not None:
                        partial = segment.templates[found.lastindex]
                continue
            match, child = segment.matches(scope)
            if match is Match.FULL:
                if isinstance(segment, (Mount, Host)):
                    if isinstance(segment, Mount):
                        prefix += segment.path
                    inner = segment.routes or routes_of(getattr(segment, "app", None))
                    if not inner or depth >= _MAX_DEPTH:
                        # An app without routes (static files, a plain ASGI app): one bucket.
                        return prefix + "/{path:path}"
                    return self.match(inner, {**scope, **child}, prefix, depth + 1)
                return prefix + _path_of(segment)
            if match is Match.PARTIAL and partial is None:
                partial = _path_of(segment)
        return prefix + partial if partial is not None else UNMATCHED

    def first_static(self, routes: List[Any]) -> Dict[str, Tuple[Dict[str, str], Optional[str]]]:
        """The answers `match` gives without a regex before any other segment is tried: the
        first run's `by_method` when `routes` begins with a run of plain routes, else {}. A hit
        (`table.get(method, any_method)` not None) is what `match(routes, scope)` returns for
        that path and method with no root path."""
        segments = self._segments(routes)
        return segments[0].by_method if segments and type(segments[0]) is _Run else {}

    def _segments(self, routes: List[Any]) -> List[Any]:
        entry = self._compiled.get(id(routes))
        if (entry is not None and entry[0] is routes
                and entry[1] == (routes if type(routes) is list else list(routes))):
            return entry[2]
        segments: List[Any] = []
        run: List[Any] = []
        for route in [*routes, None]:  # None ends the last run
            if route is not None and type(route).matches in _PLAIN_MATCHES and _combinable(route):
                run.append(route)
                continue
            if run:
                try:
                    segments.append(_Run(run))
                except re.error:  # patterns that do not combine: matched one by one
                    segments.extend(run)
                run = []
            if route is not None:
                segments.append(route)
        if len(self._compiled) >= _MAX_COMPILED:
            self._compiled.clear()
        self._compiled[id(routes)] = (routes, list(routes), segments)
        return segments


# How many route lists one RouteMatcher keeps compiled (apps' and their mounts').
_MAX_COMPILED = 64
_MATCHER = RouteMatcher()
# match_template(routes, scope): the template of the route that `scope` (an http scope, not yet
# routed) reaches through `routes`, mount templates included (`/v1/{tenant}` + `/items/{i}`), or
# UNMATCHED. The shared matcher's method itself: no call in between.
match_template = _MATCHER.match


def _path_of(route: Any) -> str:
    path = getattr(route, "path", None)
    # A custom route class without a path template: one bucket for all it serves.
    return path if isinstance(path, str) else "/{path:path}"


def scope_template(scope: dict) -> Optional[str]:
    """request_template's common case, which needs no URL: FastAPI put its route in the scope
    and no Mount was crossed. None otherwise."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str) and "app_root_path" not in scope:
        return scope.get("root_path", "") + path
    return None


def request_template(scope: dict, url_path: str) -> Optional[str]:
    """The template for a request seen after routing started (a dependency, a decorated
    endpoint, a `check_policy` call), or None when its routes cannot be found.

    `url_path` is the request's full path (`request.url.path`), which Starlette computes the
    same way in every version; the scope's own `path` and `root_path` are changed by mounts,
    differently across Starlette versions."""
    template = scope_template(scope)
    if template is not None:
        return template
    path = getattr(scope.get("route"), "path", None)
    root_path = scope.get("root_path", "")
    router = scope.get("router")  # the outermost router, set by the first one reached
    if router is not None:
        # Under a mount the route's own path lacks the mount's template: match again from the
        # outermost router, with a fresh scope in the form every Starlette version reads.
        base = scope.get("app_root_path", root_path)
        routes = routes_of(router)
        if routes is not None and url_path.startswith(base):
            fresh = {"type": "http", "method": scope.get("method", "GET"),
                     "path": url_path[len(base):] or "/", "root_path": "",
                     "headers": scope.get("headers", []), "path_params": {}}
            template = match_template(routes, fresh)
            if template != UNMATCHED:
                return base + template
    elif not isinstance(path, str):
        # Not routed yet (the caller's own middleware): match against the app's routes.
        routes = routes_of(scope.get("app"))
        if routes is not None:
            template = match_template(routes, scope)
            return template if template == UNMATCHED else root_path + template
    return root_path + path if isinstance(path, str) else None
