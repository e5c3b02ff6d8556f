"""The middleware's compiled route matching (pacer._routes.RouteMatcher, issue 23) picks the
template Starlette's own router would: the first route that matches fully, else the first that
matches partially (its path, not its method), mounts included. The oracle below asks each route
`matches()` in order, as Starlette's Router does; the matcher combines runs of plain routes into
one regular expression, so every case here is also a case of that combination."""

import random
import re
import uuid

import pytest
from fastapi import FastAPI
from starlette.routing import Host, Match, Mount, Route, Router

from pacer._routes import UNMATCHED, RouteMatcher, match_template


async def endpoint(request):
    del request


class AsgiApp:
    async def __call__(self, scope, receive, send):
        del scope, receive, send


class CustomRoute(Route):
    """Not a plain route: its own matches() (never for paths starting /custom-no)."""

    def matches(self, scope):
        if scope.get("path", "").startswith("/custom-no"):
            return Match.NONE, {}
        return super().matches(scope)


def oracle(routes, scope, prefix=""):
    """Starlette's router order: the template of the first FULL match, else of the first
    PARTIAL one; mounts recurse with their child scope."""
    partial = None
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            if isinstance(route, (Mount, Host)):
                inner = route.routes
                mount_prefix = prefix + (route.path if isinstance(route, Mount) else "")
                if not inner:
                    return mount_prefix + "/{path:path}"
                return oracle(inner, {**scope, **child}, mount_prefix)
            return prefix + route.path
        if match is Match.PARTIAL and partial is None:
            partial = prefix + route.path
    return partial if partial is not None else UNMATCHED


def app_routes():
    app = FastAPI()
    for path, methods in [("/items", ["GET"]), ("/items", ["POST"]), ("/items/{item_id}", ["GET"]),
                          ("/items/{item_id}", ["PUT", "DELETE"]), ("/n/{n:int}", ["GET"]),
                          ("/f/{x:float}", ["GET"]), ("/u/{u:uuid}", ["GET"]),
                          ("/files/{rest:path}", ["GET"]), ("/a.b/(x)", ["GET"]),
                          ("/{tenant}/settings", ["PATCH"]), ("/plus+star*", ["GET"])]:
        app.add_api_route(path, endpoint, methods=methods)
    inner = Router(routes=[Route("/", endpoint), Route("/deep/{d}", endpoint, methods=["POST"])])
    app.router.routes.append(Mount("/mnt/{tenant}", app=inner))
    app.router.routes.append(CustomRoute("/custom-{c}", endpoint, methods=["GET"]))
    app.router.routes.append(Host("api.example.com", app=Router(routes=[Route("/h", endpoint)])))
    app.add_api_route("/after/{a}", endpoint, methods=["GET"])
    any_method = Route("/any-method", AsgiApp())  # an ASGI app: no methods, every method
    assert any_method.methods is None
    app.router.routes.append(any_method)
    # Last, a route taking any one segment by POST: a partial match before it loses to it.
    app.add_api_route("/{catch_all}", endpoint, methods=["POST"])
    return app.router.routes


PATHS = ["/", "/items", "/items/", "/items/7", "/items/07", "/items/a/b", "/n/12", "/n/x",
         "/f/1.5", "/f/1.", "/u/" + str(uuid.UUID(int=7)), "/u/zz", "/files/a/b/c", "/files/",
         "/a.b/(x)", "/aXb/(x)", "/acme/settings", "/plus+star*", "/plussstar", "/mnt/t1/",
         "/mnt/t1/deep/3", "/mnt/t1/nope", "/custom-1", "/custom-no", "/after/1", "/any-method",
         "/docs", "/openapi.json", "/items/7\n", "/h", "/nowhere", "/items/%2F", "/ünï/settings"]
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"]


def scope_of(method, path, host=b"api.example.com"):
    return {"type": "http", "method": method, "path": path, "root_path": "",
            "headers": [(b"host", host)], "query_string": b""}


@pytest.mark.parametrize("method", METHODS)
def test_every_path_and_method_gets_the_routers_template(method):
    routes = app_routes()
    matcher = RouteMatcher()
    for path in PATHS:
        for host in (b"api.example.com", b"other"):
            scope = scope_of(method, path, host)
            assert matcher.match(routes, scope) == oracle(routes, dict(scope)), (method, path)


def test_random_paths_agree_with_the_router():
    rng = random.Random(23)
    routes = app_routes()
    matcher = RouteMatcher()
    parts = ["items", "n", "f", "u", "files", "mnt", "deep", "after", "custom-x", "settings", "1",
             "1.5", "", "a b", "x\n", "%", "{id}", "any-method", str(uuid.UUID(int=1))]
    for _ in range(3000):
        path = "/" + "/".join(rng.choice(parts) for _ in range(rng.randint(0, 4)))
        scope = scope_of(rng.choice(METHODS), path)
        assert matcher.match(routes, scope) == oracle(routes, dict(scope)), scope


# Paths without parameters: shadowed by an earlier route with parameters (/items/new, /late), a
# method only a later route with parameters takes (GET /x), repeated (/dup), any method (/open).
TABLE_ROUTES = [Route("/items/{i}", endpoint, methods=["GET"]),
                Route("/items/new", endpoint, methods=["GET", "POST"]),
                Route("/x", endpoint, methods=["POST"]), Route("/dup", endpoint, methods=["GET"]),
                Route("/dup", endpoint, methods=["PUT"]), Route("/open", AsgiApp()),
                Route("/{p}", endpoint, methods=["GET"]), Route("/late", endpoint)]


def test_routes_without_parameters_keep_the_order():
    """A path without parameters is looked up in a dict, unless a route with parameters
    before it matches it too; a method it does not take leaves the order to the regexes."""
    routes = TABLE_ROUTES
    matcher = RouteMatcher()
    expected = {("GET", "/items/new"): "/items/{i}", ("POST", "/items/new"): "/items/new",
                ("GET", "/x"): "/{p}", ("POST", "/x"): "/x", ("DELETE", "/x"): "/x",
                ("PUT", "/dup"): "/dup", ("GET", "/dup"): "/dup", ("BREW", "/open"): "/open",
                ("POST", "/open\n"): "/open", ("GET", "/late"): "/{p}", ("POST", "/late"): "/{p}"}
    for (method, path), template in expected.items():
        scope = scope_of(method, path)
        assert oracle(routes, dict(scope)) == template, (method, path)  # the expectation's
        assert matcher.match(routes, scope) == template, (method, path)
    (run,) = matcher._segments(routes)
    # /items/new is shadowed by /items/{i}, /late by /{p}.
    assert sorted(run.static) == ["/dup", "/open", "/x"]


def test_the_inline_table_answers_as_the_router_where_it_answers():
    """first_static (read inline by the middleware): every hit is the router's template, and
    the paths without parameters at the front of the list are hits."""
    hits = 0
    for routes in (app_routes(), TABLE_ROUTES):
        table = RouteMatcher().first_static(routes)
        for path in PATHS + ["/x", "/dup", "/open", "/items/new", "/late", "/docs/oauth2-redirect"]:
            for method in METHODS:
                by_method, any_method = table.get(path, ({}, None))
                template = by_method.get(method, any_method)
                if template is not None:
                    hits += 1
                    assert template == oracle(routes, dict(scope_of(method, path))), (method, path)
    assert RouteMatcher().first_static(TABLE_ROUTES)["/x"] == ({"POST": "/x"}, None)
    assert RouteMatcher().first_static(TABLE_ROUTES)["/open"] == ({}, "/open")
    assert hits >= 20  # /items, /docs, /openapi.json, /x, /dup, /open by their methods
    # A list that does not begin with plain routes: the first segment decides, no table.
    mounted = [Mount("/m", app=Router(routes=[])), Route("/x", endpoint)]
    assert RouteMatcher().first_static(mounted) == {}


def test_a_changed_route_list_is_compiled_again():
    routes = app_routes()
    matcher = RouteMatcher()
    scope = scope_of("GET", "/late")
    assert matcher.match(routes, scope) == UNMATCHED
    routes.insert(0, Route("/late", endpoint))
    assert matcher.match(routes, scope) == "/late"
    routes[0] = Route("/{anything}", endpoint)  # replaced in place: the list is compared
    assert matcher.match(routes, scope) == "/{anything}"
    del routes[0]
    assert matcher.match(routes, scope) == UNMATCHED


def test_a_route_tuple_is_matched_like_a_list():
    routes = tuple(app_routes())
    matcher = RouteMatcher()
    for path in PATHS:
        scope = scope_of("POST", path, b"x")
        assert matcher.match(routes, scope) == oracle(routes, dict(scope)), path


def test_routes_that_do_not_combine_are_matched_one_by_one():
    case_blind = Route("/CaSe", endpoint)
    case_blind.path_regex = re.compile("^/case$", re.IGNORECASE)  # flags: not combined
    inline = Route("/inline", endpoint)
    inline.path_regex = re.compile("(?i)^/inline$")  # does not start with ^: not combined
    routes = [case_blind, inline, Route("/plain", endpoint)]
    matcher = RouteMatcher()
    for path in ["/CASE", "/case", "/INLINE", "/plain", "/other"]:
        scope = scope_of("GET", path)
        assert matcher.match(routes, scope) == oracle(routes, dict(scope)), path


def test_match_template_is_the_shared_matcher():
    routes = app_routes()
    assert match_template(routes, scope_of("PUT", "/items/9", b"x")) == "/items/{item_id}"
    # A method no route of the path takes: the first partial match (the router's 405)...
    assert match_template(routes, scope_of("POST", "/items/9", b"x")) == "/items/{item_id}"
    # ... unless a later route matches fully: the Host route takes every path of its host.
    assert match_template(routes, scope_of("POST", "/items/9")) == UNMATCHED
    assert match_template(routes, scope_of("POST", "/mnt/a/deep/1")) == "/mnt/{tenant}/deep/{d}"
