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

No cache: a cache keyed by the concrete path is what a client spelling paths another way would
fill (and flush). The walk is cheaper than the router's own, which runs after it: a regex per
route, ~0.15 us each (the README has the numbers).
"""

from __future__ import annotations

from typing import Any, List, Optional

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
# itself to the child scope): for them the walk runs the path regex and the method check
# itself, without building the child scope Starlette's router needs and the walk does not.
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


def match_template(routes: List[Any], scope: dict) -> str:
    """The template of the route that `scope` (an http scope, not yet routed) reaches through
    `routes`, mount templates included (`/v1/{tenant}` + `/items/{i}`), or UNMATCHED."""
    if Match is None:
        return UNMATCHED
    return _walk(routes, scope, "", 0)


def _walk(routes: List[Any], scope: dict, prefix: str, depth: int) -> str:
    partial = None
    path = None
    method = scope.get("method")
    for route in routes:
        if type(route).matches in _PLAIN_MATCHES:
            if path is None:
                path = _route_path(scope)
            if route.path_regex.match(path) is None:
                continue
            if not route.methods or method in route.methods:
                return prefix + route.path
            if partial is None:
                partial = route
            continue
        match, child = route.matches(scope)
        if match is Match.FULL:
            if isinstance(route, (Mount, Host)):
                if isinstance(route, Mount):
                    prefix += route.path
                inner = route.routes or routes_of(getattr(route, "app", None))
                if not inner or depth >= _MAX_DEPTH:
                    # An app without routes (static files, a plain ASGI app): one bucket for it.
                    return prefix + "/{path:path}"
                return _walk(inner, {**scope, **child}, prefix, depth + 1)
            return prefix + _path_of(route)
        if match is Match.PARTIAL and partial is None:
            partial = route
    if partial is not None:
        return prefix + _path_of(partial)
    return UNMATCHED


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
