"""The REST half of the API: ``/api``, kernelspecs and their resources, kernels.

Every request needs the gateway token, in an ``Authorization: token TOKEN``
(or ``Bearer``) header or a ``token`` query parameter (a browser's
WebSocket cannot set headers): none is a 401, a wrong one a 403, and
nothing is done either way. Errors are JSON ``{"message", "reason"}`` as
jupyter_server writes them, with the status the error table below gives.
"""

from __future__ import annotations

import hmac
import logging
import mimetypes
import os
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
import tornado.httputil
import tornado.web

from .. import __version__
from .._exceptions import (
    AmbiguousKernel,
    InvalidRequest,
    KernelNannyError,
    KernelTimeout,
    KernelTypeNotAllowed,
    LaunchError,
    MaxKernels,
    NoSuchKernel,
    NoSuchKernelType,
)
from .._ratelimit import RateLimitedLog
from .models import kernel_model, kernelspec_model, kernelspec_name, resource_files, type_id_of
from .server import Gateway

__all__ = ["ROUTES", "GatewayHandler"]

log = logging.getLogger("kernel_nanny.gateway")
#: Wrong tokens are logged, but a client guessing cannot flood the log.
_refusals = RateLimitedLog(log)

#: HTTP status of each error (the first class that matches, in order); anything else is a 500.
_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (NoSuchKernel, 404),
    (AmbiguousKernel, 404),
    (NoSuchKernelType, 404),
    (KernelTypeNotAllowed, 403),
    (MaxKernels, 503),
    (InvalidRequest, 400),
    (KernelTimeout, 504),
    (LaunchError, 500),
)
#: The Jupyter server API version whose kernel routes this serves (``GET /api``).
API_VERSION = "2.0.0"
#: Environment a client may pass to a kernel it starts: the ``KERNEL_`` variables, as Kernel Gateway.
_ENV_PREFIX = "KERNEL_"


class GatewayHandler(tornado.web.RequestHandler):
    """Token check, JSON in and out, the error table."""

    gateway: Gateway

    def initialize(self) -> None:
        self.gateway = self.settings["gateway"]

    def prepare(self) -> None:
        given = _given_token(self.request)
        if given is None:
            self.set_header("WWW-Authenticate", 'token realm="kernel-nanny gateway"')
            raise tornado.web.HTTPError(401, reason="the gateway token is required")
        if not hmac.compare_digest(given.encode(), self.gateway.token.encode()):
            _refusals.warning(
                "refused %s %s from %s: wrong token", self.request.method, self.request.path, self.request.remote_ip
            )
            raise tornado.web.HTTPError(403, reason="wrong gateway token")

    def check_xsrf_cookie(self) -> None:
        return  # token-authenticated API, no cookies

    def body(self) -> dict[str, Any]:
        if not self.request.body:
            return {}
        try:
            data = orjson.loads(self.request.body)
        except orjson.JSONDecodeError as exc:
            raise tornado.web.HTTPError(400, reason=f"the request body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise tornado.web.HTTPError(400, reason="the request body must be a JSON object")
        return data

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(data))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, KernelNannyError):
            self.set_status(_status(exc))
            message, reason = str(exc), type(exc).__name__
        elif isinstance(exc, tornado.web.HTTPError):
            message = reason = exc.reason or HTTPStatus(status_code).phrase
        else:
            message, reason = "internal error: the daemon's log (kernel-nanny logs --daemon) has the details", "error"
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps({"message": message, "reason": reason}))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, KernelNannyError):  # a refusal the client is told about, not a bug here
            log.info("%s %s: %s", self.request.method, self.request.path, value)
        else:
            super().log_exception(typ, value, tb)

    async def kernel_entry(self, public_id: str) -> dict[str, Any]:
        """The daemon's entry for the kernel with this (UUID-form) id; exactly, never a prefix or name."""
        kernel_id = public_id.replace("-", "")
        entry: dict[str, Any] = (await self.gateway.service.call("get_kernel", {"kernel": kernel_id}))["kernel"]
        if entry["kernel_id"] != kernel_id:
            raise NoSuchKernel(f"no kernel {public_id}")
        return entry

    def model(self, entry: dict[str, Any]) -> dict[str, Any]:
        return kernel_model(entry, self.gateway.connections(entry["kernel_id"]))

    async def kernel_types(self) -> dict[str, dict[str, Any]]:
        """The daemon's kernel types by kernelspec name (first type wins a clash, which is logged)."""
        found: dict[str, dict[str, Any]] = {}
        for attrs in (await self.gateway.service.call("list_kernel_types", {}))["kernel_types"]:
            name = kernelspec_name(attrs["id"])
            if name in found:
                log.warning(
                    "kernel types %s and %s are both kernelspec %r: only the first is offered",
                    found[name]["id"],
                    attrs["id"],
                    name,
                )
                continue
            found[name] = attrs
        return found


def _status(exc: Exception) -> int:
    return next((status for kind, status in _STATUS if isinstance(exc, kind)), 500)


def _default(names: Mapping[str, Any]) -> str | None:
    """The kernelspec a client gets without naming one: ipykernel as jupyter_server's own default, else the first."""
    return next((name for name in ("python3", "pyimport--kernel") if name in names), next(iter(names), None))


def _given_token(request: tornado.httputil.HTTPServerRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    values = request.query_arguments.get("token")
    return (values[0].decode(errors="replace") or None) if values else None


class ApiHandler(GatewayHandler):
    async def get(self) -> None:
        self.reply({"version": API_VERSION, "kernel_nanny": __version__})


class KernelSpecsHandler(GatewayHandler):
    async def get(self) -> None:
        types = await self.kernel_types()
        specs = {name: kernelspec_model(attrs) for name, attrs in types.items()}
        self.reply({"default": _default(specs), "kernelspecs": specs})


class KernelSpecHandler(GatewayHandler):
    async def get(self, name: str) -> None:
        attrs = (await self.kernel_types()).get(name)
        if attrs is None:
            raise NoSuchKernelType(f"no kernelspec {name!r} (GET /api/kernelspecs lists them)")
        self.reply(kernelspec_model(attrs))


class KernelSpecResourceHandler(GatewayHandler):
    async def get(self, name: str, file: str) -> None:
        attrs = (await self.kernel_types()).get(name)
        path = resource_files(attrs.get("resource_dir") if attrs else None).get(file)
        if path is None:
            raise tornado.web.HTTPError(404, reason=f"kernelspec {name!r} has no resource {file!r}")
        self.set_header("Content-Type", mimetypes.guess_type(file)[0] or "application/octet-stream")
        self.finish(path.read_bytes())


class KernelsHandler(GatewayHandler):
    async def get(self) -> None:
        kernels = (await self.gateway.service.call("list_kernels", {"info": True}))["kernels"]
        self.gateway.detached.forget(keep={entry["kernel_id"] for entry in kernels})
        self.reply([self.model(entry) for entry in kernels])

    async def post(self) -> None:
        body = self.body()
        types = await self.kernel_types()
        name = body.get("name") or _default(types)
        if not isinstance(name, str):
            raise InvalidRequest(f"'name' must be a kernelspec name, got {name!r}")
        env = body.get("env") or {}
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise InvalidRequest("'env' must map names to strings")
        content: dict[str, Any] = {
            "type_id": type_id_of(name, {n: a["id"] for n, a in types.items()}),
            "launch_params": {"env": {k: v for k, v in env.items() if k.startswith(_ENV_PREFIX)}},
        }
        # jupyter_server sends the notebook's directory, on its own machine: used when it exists on this one.
        cwd = env.get("KERNEL_WORKING_DIR")
        if cwd and os.path.isabs(cwd) and os.path.isdir(cwd):
            content["cwd"] = cwd
        elif cwd:
            log.info("starting %s in the daemon's directory: KERNEL_WORKING_DIR %s is not one here", name, cwd)
        try:
            entry = (await self.gateway.service.call("launch", content))["kernel"]
        except NoSuchKernelType:
            raise NoSuchKernelType(f"no kernelspec {name!r} (GET /api/kernelspecs lists them)") from None
        model = self.model(await self.kernel_entry(entry["kernel_id"]))  # with its nanny's view of its state
        self.set_header("Location", f"/api/kernels/{model['id']}")
        self.reply(model, status=201)


class KernelHandler(GatewayHandler):
    async def get(self, kernel_id: str) -> None:
        self.reply(self.model(await self.kernel_entry(kernel_id)))

    async def delete(self, kernel_id: str) -> None:
        entry = await self.kernel_entry(kernel_id)
        await self.gateway.service.call("shutdown_kernel", {"kernel": entry["kernel_id"]})
        self.gateway.detached.forget({entry["kernel_id"]})
        self.set_status(204)
        self.finish()


class KernelActionHandler(GatewayHandler):
    async def post(self, kernel_id: str, action: str) -> None:
        entry = await self.kernel_entry(kernel_id)
        async with self.gateway.service.nanny(entry["kernel_id"]) as nanny:
            if action == "interrupt":
                await nanny.interrupt()
                self.set_status(204)
                self.finish()
                return
            await nanny.restart()
        self.reply(self.model(await self.kernel_entry(kernel_id)))


ROUTES: list[tuple[str, type[GatewayHandler]]] = [
    (r"/api/?", ApiHandler),
    (r"/api/kernelspecs/?", KernelSpecsHandler),
    (r"/api/kernelspecs/(?P<name>[^/]+)/?", KernelSpecHandler),
    (r"/kernelspecs/(?P<name>[^/]+)/(?P<file>[^/]+)", KernelSpecResourceHandler),
    (r"/api/kernels/?", KernelsHandler),
    (r"/api/kernels/(?P<kernel_id>[^/]+)/?", KernelHandler),
    (r"/api/kernels/(?P<kernel_id>[^/]+)/(?P<action>interrupt|restart)/?", KernelActionHandler),
]
