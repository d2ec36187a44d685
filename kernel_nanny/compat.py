"""jupyter_client's kernel managers and clients, backed by nannies: port code by changing an import.

::

    from kernel_nanny.compat import KernelManager      # was: from jupyter_client import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel()              # behind a nanny: 'kernel-nanny ps' lists it
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready()
    kc.execute_interactive("print(6 * 7)")
    kc.stop_channels()
    km.shutdown_kernel()

The names and signatures follow jupyter_client 8 (``KernelManager``,
``AsyncKernelManager``, ``MultiKernelManager``, ``AsyncMultiKernelManager``,
their clients, ``start_new_kernel``, ``start_new_async_kernel``,
``run_kernel``); the work is done by kernel-nanny's own launcher, nanny and
clients, and jupyter_client is not imported. What does not carry over
(traitlets configuration, ports, provisioners, restarters) is listed in
:doc:`/howto/port-from-jupyter-client`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import os
import queue
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from ._exceptions import KernelNannyError, KernelTimeout
from ._lifetime import Lifetime
from ._loop import BlockingTwin, blocking, shared_loop
from ._tasks import wait_for
from .client import KernelClient as _NannyKernelClient
from .client import ManagerClient
from .client.kernel import _execute_content
from .config import RestartPolicy
from .defaults import DEFAULT_STARTUP_TIMEOUT
from .discovery import KernelFinder
from .execution import OutputPrinter
from .launch import LaunchParams
from .launch.request import LaunchRequest
from .paths import public_connection_file
from .protocol import KernelManager as _ManagerInterface
from .protocol import Message
from .start import start_kernel

__all__ = [
    "AsyncKernelClient",
    "AsyncKernelManager",
    "AsyncMultiKernelManager",
    "BlockingKernelClient",
    "DuplicateKernelError",
    "KernelManager",
    "MultiKernelManager",
    "run_kernel",
    "start_new_async_kernel",
    "start_new_kernel",
]

#: jupyter_client's default kernel: the Python kernel of the kernelspec ``python3``.
NATIVE_KERNEL_NAME = "python3"
#: ``start_kernel`` keywords that jupyter_client hands to ``Popen`` and that have no meaning here:
#: the nanny captures the kernel's output (``kernel-nanny logs``).
_IGNORED_START_OPTIONS = frozenset({"stdout", "stderr"})
_START_OPTIONS = frozenset({"extra_arguments", "env", "cwd", "launch_params", "name"}) | _IGNORED_START_OPTIONS

T = TypeVar("T")


class DuplicateKernelError(KernelNannyError):
    """``MultiKernelManager.start_kernel(kernel_id=...)`` with an id that is already in use."""


def kernel_type_for(kernel_name: str) -> str:
    """The kernel type id a jupyter_client kernel name means.

    A kernelspec name (``python3``; ``python`` is an alias, as in
    jupyter_client) is ``spec/<name>``; a name with a slash is taken as a type
    id already, so any provider's kernels work (``pyimport/kernel``, ``docker/scipy``).
    """
    if "/" in kernel_name:
        return kernel_name
    return f"spec/{NATIVE_KERNEL_NAME if kernel_name == 'python' else kernel_name}"


async def _nanny_side(operation: Awaitable[T]) -> T:
    """Await ``operation`` on the shared loop thread, where the managers' nanny connections live.

    A manager's :class:`~kernel_nanny.ManagerClient` (sockets, reader tasks,
    futures) belongs to one event loop, but jupyter_client code calls one
    manager from several (``asyncio.run`` twice, or jupyter_client's own
    synchronous wrappers): so every manager keeps it on that one thread.
    """
    return await shared_loop().run_async(operation)


def _new_future() -> asyncio.Future[None] | concurrent.futures.Future[None]:
    """jupyter_client's ``ready`` kind: an asyncio future on a running loop, else a thread-safe one."""
    try:
        return asyncio.get_running_loop().create_future()
    except RuntimeError:
        return concurrent.futures.Future()


# -- clients ---------------------------------------------------------------------


class AsyncKernelClient(Lifetime):
    """jupyter_client's ``AsyncKernelClient`` API over kernel-nanny's :class:`~kernel_nanny.KernelClient`.

    ``execute()`` and ``kernel_info()`` send at once and return the msg_id
    (``reply=True`` awaits the reply instead); replies to them are read with
    :meth:`get_shell_msg`, broadcasts with :meth:`get_iopub_msg`. Messages
    are jupyter_client's dicts (``msg["content"]``, ``msg["msg_type"]``).
    Everything else kernel-nanny's client offers is on :attr:`kernel_client`.
    Besides jupyter_client's channels it has kernel-nanny's lifetime:
    ``close()`` stops the channels for good, ``async with`` closes it.
    """

    def __init__(self, connection_info: Mapping[str, Any], *, connection_file: str | None = None) -> None:
        self.connection_info = dict(connection_info)
        self.connection_file = connection_file
        self._client: _NannyKernelClient | None = None
        self._shell: asyncio.Queue[Message] = asyncio.Queue()
        self._iopub: asyncio.Queue[Message] = asyncio.Queue()
        #: The kernel_info requests sent through :meth:`kernel_info` (their iopub is the caller's to read).
        self._own_kernel_info: set[str] = set()

    def __repr__(self) -> str:
        return f"<compat.AsyncKernelClient state={self.state.value} channels={self._client!r}>"

    @property
    def kernel_client(self) -> _NannyKernelClient:
        """kernel-nanny's own client underneath (started by :meth:`start_channels`)."""
        self._check_open()
        if self._client is None:
            raise RuntimeError("the channels are not started: call start_channels() first")
        return self._client

    # -- channels -------------------------------------------------------------

    def start_channels(
        self, shell: bool = True, iopub: bool = True, stdin: bool = True, hb: bool = True, control: bool = True
    ) -> None:
        """Connect to the kernel. The flags are accepted for compatibility: channels connect when
        first used, and iopub at once."""
        self._check_open()
        if self._client is not None and not self._client.closed:
            return
        shared_loop().call(self._connect)

    def _connect(self) -> None:
        self._client = _NannyKernelClient(self.connection_info)
        self._client.add_iopub_handler(self._on_iopub)
        self._client.add_reply_handler(self._shell.put_nowait)

    def _on_iopub(self, msg: Message) -> None:
        # What wait_for_ready() causes (status messages of its kernel_info requests) is not the
        # caller's to read: jupyter_client flushes it too.
        parent = msg.parent_header
        if (
            parent.get("msg_type") == "kernel_info_request"
            and parent.get("session") == self.kernel_client.session.session_id
            and parent.get("msg_id") not in self._own_kernel_info
        ):
            return
        self._iopub.put_nowait(msg)

    def stop_channels(self) -> None:
        """Disconnect (the kernel keeps running); :meth:`start_channels` may connect again, unlike after close()."""
        if self._client is not None:
            shared_loop().call(self._client.close)

    @property
    def channels_running(self) -> bool:
        return self._client is not None and not self._client.closed

    def _begin_closing(self) -> None:
        self.stop_channels()

    async def _finish_closing(self) -> None:
        if self._client is not None:
            await _nanny_side(self._client.wait_closed())

    # -- requests -------------------------------------------------------------

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        """Wait until the kernel answers and iopub is connected; RuntimeError after ``timeout`` s, as in
        jupyter_client."""
        try:
            await _nanny_side(self.kernel_client.wait_for_ready(timeout=timeout))
        except KernelTimeout as exc:
            raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds") from exc
        await _nanny_side(self._discard_iopub())

    async def _discard_iopub(self) -> None:
        while not self._iopub.empty():  # e.g. ipykernel's iopub_welcome
            self._iopub.get_nowait()

    def execute(
        self,
        code: str,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
        allow_stdin: bool | None = None,
        stop_on_error: bool = True,
        reply: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Send an ``execute_request``; returns its msg_id (``reply=True``: an awaitable of the reply)."""
        content = _execute_content(code, silent, store_history, user_expressions, bool(allow_stdin), stop_on_error)
        return self._request("execute_request", content, reply, timeout)

    def kernel_info(self, reply: bool = False, timeout: float | None = None) -> Any:
        """Send a ``kernel_info_request``; returns its msg_id (``reply=True``: an awaitable of the reply)."""
        return self._request("kernel_info_request", {}, reply, timeout)

    def _request(self, msg_type: str, content: dict[str, Any], reply: bool, timeout: float | None) -> Any:
        if reply:
            return _nanny_side(self._reply_dict(self.kernel_client.request(msg_type, content, timeout=timeout)))
        return shared_loop().call(self._send, msg_type, content)

    def _send(self, msg_type: str, content: dict[str, Any]) -> str:
        msg_id = self.kernel_client.send_nowait(msg_type, content)
        if msg_type == "kernel_info_request":  # only these are told apart in _on_iopub: keep no other id
            self._own_kernel_info.add(msg_id)
        return msg_id

    @staticmethod
    async def _reply_dict(request: Awaitable[Message]) -> dict[str, Any]:
        return (await request).to_dict()

    async def get_shell_msg(self, timeout: float | None = None) -> dict[str, Any]:
        """The next reply to a request sent by this client; :exc:`queue.Empty` after ``timeout`` s."""
        return await self._next(self._shell, timeout)

    async def get_iopub_msg(self, timeout: float | None = None) -> dict[str, Any]:
        """The next iopub message; :exc:`queue.Empty` after ``timeout`` s."""
        return await self._next(self._iopub, timeout)

    async def _next(self, messages: asyncio.Queue[Message], timeout: float | None) -> dict[str, Any]:
        self.kernel_client  # noqa: B018 (raises if the channels are not started)
        try:
            msg = await _nanny_side(wait_for(messages.get(), timeout))
        except asyncio.TimeoutError:
            raise queue.Empty from None
        return msg.to_dict()

    async def execute_interactive(
        self,
        code: str,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
        allow_stdin: bool | None = None,
        stop_on_error: bool = True,
        timeout: float | None = None,
        output_hook: Callable[[dict[str, Any]], Any] | None = None,
        stdin_hook: Callable[[dict[str, Any]], Any] | None = None,
    ) -> dict[str, Any]:
        """Run ``code`` until the kernel is idle; returns the ``execute_reply`` dict.

        ``output_hook(msg)`` gets each output message (default: print it, as
        jupyter_client does). Unlike jupyter_client, ``stdin_hook(msg)``
        *returns* the answer to an ``input()`` and may be async; without one
        the kernel is told that stdin is not available (``allow_stdin`` is
        accepted for compatibility). :exc:`TimeoutError` after ``timeout`` s.
        The hooks run on the caller's event loop, as in jupyter_client.
        """
        caller = asyncio.get_running_loop()
        hook: Callable[[Message], None]
        if output_hook is None:
            hook = OutputPrinter()
        else:

            def hook(msg: Message) -> None:
                caller.call_soon_threadsafe(output_hook, msg.to_dict())

        answer = None
        if stdin_hook is not None:

            async def ask(msg: Message) -> str:
                value = stdin_hook(msg.to_dict())
                return str(await value if inspect.isawaitable(value) else value)

            async def answer(msg: Message) -> str:
                return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(ask(msg), caller))

        result = await _nanny_side(
            self.kernel_client.execute_interactive(
                code,
                silent=silent,
                store_history=store_history,
                user_expressions=user_expressions,
                stop_on_error=stop_on_error,
                output_hook=hook,
                stdin_hook=answer,
                timeout=timeout,
            )
        )
        return result.reply.to_dict()

    async def is_alive(self) -> bool:
        """Whether the kernel answers its heartbeat."""
        return self.channels_running and await _nanny_side(self.kernel_client.heartbeat())


# -- managers --------------------------------------------------------------------


class AsyncKernelManager(Lifetime):
    """jupyter_client's ``AsyncKernelManager`` API; the kernel runs behind a nanny.

    ``kernel_name`` is a kernelspec name, or any kernel type id
    (``pyimport/kernel``). ``transport``/``ip`` choose ``ipc`` (the default:
    unix sockets) or loopback ``tcp``. The kernel outlives this object but
    not this process, as with jupyter_client: when the process ends without
    shutting it down (an exit, SIGTERM, SIGKILL), its nanny shuts it down.
    ``persistent=True`` lets it outlive the process too (shut it down, or
    ``kernel-nanny stop`` it). ``close()`` (and the end of ``async with``)
    lets go of it, ``abort()`` shuts it down at once.
    """

    def __init__(
        self,
        kernel_name: str = NATIVE_KERNEL_NAME,
        *,
        transport: str | None = None,
        ip: str | None = None,
        restart_policy: RestartPolicy | None = None,
        finder: KernelFinder | None = None,
        persistent: bool = False,
        **unsupported: Any,
    ) -> None:
        if unsupported:
            raise TypeError(
                f"{type(self).__name__} takes no {', '.join(sorted(unsupported))} (jupyter_client traitlets "
                "that do not apply behind a nanny); see the porting guide of kernel-nanny's documentation"
            )
        self.kernel_name = NATIVE_KERNEL_NAME if kernel_name == "python" else kernel_name
        self._launch_params = {key: value for key, value in (("transport", transport), ("ip", ip)) if value}
        self._restart_policy = restart_policy
        self._finder = finder
        #: Whether the kernel outlives this process (else the process owns it: see the class docstring).
        self.persistent = persistent
        self._manager: _ManagerInterface | None = None
        #: The clients :attr:`manager` handed to callers on their own loops (``_manager`` is the shared loop's).
        self._loop_managers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ManagerClient] = (
            weakref.WeakKeyDictionary()
        )
        self._ready: asyncio.Future[None] | concurrent.futures.Future[None] | None = None
        self.connection_info: dict[str, Any] = {}
        self.kernel_id: str | None = None
        self.connection_file: str | None = None
        self.shutting_down = False
        self._aborting = False

    def __repr__(self) -> str:
        kernel_id = (self.kernel_id or "-")[:12]
        return f"<compat.{type(self).__name__} kernel={self.kernel_type} id={kernel_id} state={self.state.value}>"

    @property
    def kernel_type(self) -> str:
        """The kernel type id started for :attr:`kernel_name` (``spec/python3``)."""
        return kernel_type_for(self.kernel_name)

    @property
    def manager(self) -> _ManagerInterface | None:
        """kernel-nanny's manager of the kernel (a :class:`~kernel_nanny.ManagerClient`), None before a start.

        Called on an event loop, a client of that loop's own (made at the first call, closed when
        the kernel is shut down or this manager closed): a client's sockets belong to one loop.
        """
        if self._manager is None:
            return None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return self._manager
        if loop is shared_loop().loop:
            return self._manager
        manager = self._loop_managers.get(loop)
        if manager is None:
            manager = self._loop_managers[loop] = ManagerClient(self.connection_info)
        return manager

    async def _close_loop_managers(self) -> None:
        """Close the clients :attr:`manager` made for callers' loops (this loop's is waited for)."""
        here = asyncio.get_running_loop()
        managers, self._loop_managers = self._loop_managers, weakref.WeakKeyDictionary()
        for loop, manager in managers.items():
            manager.close()
            if loop is here:
                await manager.wait_closed()

    @property
    def has_kernel(self) -> bool:
        """Whether a kernel was started and not shut down."""
        return self._manager is not None

    @property
    def owns_kernel(self) -> bool:
        return True

    @property
    def ready(self) -> asyncio.Future[None] | concurrent.futures.Future[None]:
        """A future done when the last start, restart or shutdown finished (its exception if it failed)."""
        if self._ready is None:
            self._ready = _new_future()
        return self._ready

    async def _pending(self, operation: Awaitable[None]) -> None:
        """Run a lifecycle operation with a fresh ``ready`` future, as jupyter_client does."""
        ready = self._ready = _new_future()
        try:
            await operation
        except BaseException as exc:
            ready.set_exception(exc)
            raise
        ready.set_result(None)

    def get_connection_info(self, session: bool = False) -> dict[str, Any]:
        """The kernel's connection info (``session`` is accepted for compatibility)."""
        return dict(self.connection_info)

    async def start_kernel(self, **kw: Any) -> None:
        """Start the kernel behind a nanny; returns once it is ready.

        Keywords: ``extra_arguments`` (added to the kernel's command line),
        ``env`` (added to its environment), ``cwd``; ``name`` (a
        ``kernel-nanny ps`` name) and ``launch_params`` are kernel-nanny's.
        ``stdout``/``stderr`` are ignored: the nanny keeps the kernel's output.
        """
        self._check_open()
        unknown = set(kw) - _START_OPTIONS
        if unknown:
            raise TypeError(
                f"start_kernel() takes no {', '.join(sorted(unknown))}; known: {', '.join(sorted(_START_OPTIONS))}"
            )
        if self._manager is not None:
            raise RuntimeError(f"{self!r} already has a kernel: shut it down first")
        await self._pending(self._start(**kw))

    async def _start(
        self,
        *,
        extra_arguments: list[str] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        launch_params: Mapping[str, Any] | None = None,
        name: str | None = None,
        **ignored: Any,
    ) -> None:
        params = {**self._launch_params, **(launch_params or {})}
        if env:
            params["env"] = {**(params.get("env") or {}), **env}
        request = LaunchRequest(
            kernel_type=self.kernel_type,
            switches=extra_arguments or (),
            cwd=cwd or os.getcwd(),
            params=LaunchParams.from_mapping(params),
            name=name,
            restart_policy=self._restart_policy or RestartPolicy(),
            supervised=True,
            owner=None if self.persistent else os.getpid(),
        )
        info, manager = await _nanny_side(start_kernel(request, finder=self._finder))
        assert manager is not None
        self._manager, self.connection_info = manager, info
        self.kernel_id = str(info.get("kernel_id") or "") or None
        local_file = public_connection_file(self.kernel_id) if self.kernel_id else None
        self.connection_file = str(local_file) if local_file is not None and local_file.exists() else None
        self.shutting_down = False

    def _require_kernel(self, action: str) -> _ManagerInterface:
        self._check_open()
        if self._manager is None:
            raise RuntimeError(f"Cannot {action} kernel. No kernel is running!")
        return self._manager

    async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        """Stop the kernel and its nanny (``now``: SIGKILL at once). ``restart`` is accepted for
        compatibility: a restart in place is :meth:`restart_kernel`."""
        self._check_open()
        manager = self._manager
        if manager is None:
            return
        self.shutting_down = True

        async def shutdown() -> None:
            try:
                await manager.shutdown(now=now)
            finally:
                await manager.cleanup()
                self._manager = None

        await self._close_loop_managers()
        await self._pending(_nanny_side(shutdown()))

    async def restart_kernel(self, now: bool = False, newports: bool = False, **kw: Any) -> None:
        """Restart the kernel in place (same connection info and ports; ``newports`` is ignored).

        Connected clients call ``wait_for_ready()`` before executing again.
        """
        if kw:
            raise ValueError(
                f"restart_kernel() cannot change {', '.join(sorted(kw))} of a kernel behind a nanny: "
                "shut it down and start it again"
            )
        self._check_open()
        if self._manager is None:
            raise RuntimeError("Cannot restart the kernel. No previous call to 'start_kernel'.")
        await self._pending(_nanny_side(self._manager.restart(now=now)))

    async def interrupt_kernel(self) -> None:
        """Interrupt the running code (by signal or message, per the kernelspec's interrupt_mode)."""
        await _nanny_side(self._require_kernel("interrupt").interrupt())

    async def signal_kernel(self, signum: int) -> None:
        """Send a signal to the kernel's process group."""
        await _nanny_side(self._require_kernel("signal").signal(int(signum)))

    async def is_alive(self) -> bool:
        """Whether the kernel process runs (the nanny's answer; False if the nanny is gone)."""
        self._check_open()
        if self._manager is None:
            return False
        try:
            return await _nanny_side(self._manager.is_alive())
        except KernelNannyError:
            return False

    def client(self, **kwargs: Any) -> AsyncKernelClient:
        """A client for this kernel (call ``start_channels()`` on it)."""
        self._check_open()
        if kwargs:
            raise TypeError(f"client() takes no {', '.join(sorted(kwargs))} here")
        return AsyncKernelClient(self.connection_info, connection_file=self.connection_file)

    # -- lifetime: close() lets go of the kernel's manager connection (the kernel keeps running);
    # -- abort() shuts the kernel down at once.

    def abort(self) -> None:
        """Close, shutting this manager's kernel down at once (SIGKILL); :meth:`wait_closed` finishes it."""
        self._aborting = True
        self.close()

    async def _finish_closing(self) -> None:
        await self._close_loop_managers()
        if self._manager is not None:
            await _nanny_side(self._let_go(self._manager))

    async def _let_go(self, manager: _ManagerInterface) -> None:
        try:
            if self._aborting:
                with suppress(KernelNannyError):
                    await manager.shutdown(now=True)
        finally:
            await manager.cleanup()


class AsyncMultiKernelManager(Lifetime):
    """jupyter_client's ``AsyncMultiKernelManager`` API: several :class:`AsyncKernelManager` by kernel id.

    A kernel's id is its nanny's (``kernel-nanny ps``), unless ``start_kernel``
    is given ``kernel_id=``, which then names it in this manager only.
    ``close()`` (and the end of ``async with``) lets go of the kernels,
    ``abort()`` shuts them all down at once. The kernels end with this
    process unless ``persistent=True`` (see :class:`AsyncKernelManager`).
    """

    def __init__(
        self,
        *,
        default_kernel_name: str = NATIVE_KERNEL_NAME,
        restart_policy: RestartPolicy | None = None,
        finder: KernelFinder | None = None,
        persistent: bool = False,
    ) -> None:
        self.default_kernel_name = default_kernel_name
        self._restart_policy = restart_policy
        self._finder = finder
        self.persistent = persistent
        self._kernels: dict[str, AsyncKernelManager] = {}

    def __repr__(self) -> str:
        return f"<compat.{type(self).__name__} kernels={len(self._kernels)} state={self.state.value}>"

    def list_kernel_ids(self) -> list[str]:
        return list(self._kernels)

    def __len__(self) -> int:
        return len(self._kernels)

    def __contains__(self, kernel_id: object) -> bool:
        return kernel_id in self._kernels

    def get_kernel(self, kernel_id: str) -> AsyncKernelManager:
        """The kernel's manager; :exc:`KeyError` for an unknown id, as in jupyter_client."""
        self._check_open()
        if kernel_id not in self._kernels:
            raise KeyError(f"Kernel with id not found: {kernel_id}")
        return self._kernels[kernel_id]

    def remove_kernel(self, kernel_id: str) -> AsyncKernelManager | None:
        """Forget a kernel without shutting it down; returns its manager (None if unknown)."""
        return self._kernels.pop(kernel_id, None)

    def get_connection_info(self, kernel_id: str) -> dict[str, Any]:
        return self.get_kernel(kernel_id).get_connection_info()

    async def start_kernel(self, *, kernel_name: str | None = None, **kwargs: Any) -> str:
        """Start a kernel behind a nanny and return its id (see :meth:`AsyncKernelManager.start_kernel`)."""
        self._check_open()
        wanted = kwargs.pop("kernel_id", None)
        if wanted is not None and wanted in self._kernels:
            raise DuplicateKernelError(f"Kernel already exists: {wanted}")
        km = AsyncKernelManager(
            kernel_name or self.default_kernel_name,
            restart_policy=self._restart_policy,
            finder=self._finder,
            persistent=self.persistent,
        )
        await km.start_kernel(**kwargs)
        kernel_id = wanted or km.kernel_id
        assert kernel_id is not None
        self._kernels[kernel_id] = km
        return kernel_id

    async def shutdown_kernel(self, kernel_id: str, now: bool = False, restart: bool = False) -> None:
        km = self.get_kernel(kernel_id)
        try:
            await km.shutdown_kernel(now=now, restart=restart)
        finally:
            self.remove_kernel(kernel_id)

    async def shutdown_all(self, now: bool = False) -> None:
        await asyncio.gather(*(self.shutdown_kernel(kid, now=now) for kid in self.list_kernel_ids()))

    async def restart_kernel(self, kernel_id: str, now: bool = False) -> None:
        await self.get_kernel(kernel_id).restart_kernel(now=now)

    async def interrupt_kernel(self, kernel_id: str) -> None:
        await self.get_kernel(kernel_id).interrupt_kernel()

    async def signal_kernel(self, kernel_id: str, signum: int) -> None:
        await self.get_kernel(kernel_id).signal_kernel(signum)

    async def is_alive(self, kernel_id: str) -> bool:
        return await self.get_kernel(kernel_id).is_alive()

    # -- lifetime: close() lets go of the managers' connections (the kernels keep running);
    # -- abort() shuts every kernel down at once.

    def abort(self) -> None:
        """Close, shutting every kernel down at once (each manager's ``abort()``); :meth:`wait_closed` finishes it."""
        for km in self._kernels.values():
            km.abort()
        self.close()

    def _begin_closing(self) -> None:
        for km in self._kernels.values():
            km.close()

    async def _finish_closing(self) -> None:
        await asyncio.gather(*(km.wait_closed() for km in self._kernels.values()))


# -- blocking twins ----------------------------------------------------------------


class _Twin(BlockingTwin):
    """A blocking compat class: the loop thread runs only while needed, attributes are the async object's.

    jupyter_client code never closes its managers, so a manager's thread is
    stopped when its kernel is shut down and started again on the next call.
    A manager handed out by a ``MultiKernelManager`` uses its owner's thread.
    """

    _thread_name = "kernel-nanny-compat"
    _loop_on_demand = True

    def __repr__(self) -> str:
        return repr(self._async).replace("compat.Async", "compat.", 1)

    def __getattr__(self, name: str) -> Any:
        # Plain attributes (kernel_name, kernel_id, connection_info...) are the async object's.
        if name.startswith("_"):
            raise AttributeError(name)
        value = getattr(self._async, name)
        if callable(value):
            raise AttributeError(f"{type(self).__name__} has no method {name!r}")
        return value


class BlockingKernelClient(_Twin):
    """jupyter_client's ``BlockingKernelClient`` API (see :class:`AsyncKernelClient`), one call at a time.

    Hooks run in a background thread. A client whose channels were stopped
    cannot be started again: ask the manager for a new one.
    """

    def __init__(self, connection_info: Mapping[str, Any], *, connection_file: str | None = None) -> None:
        super().__init__(None)
        # Built on the loop thread: its asyncio queues belong to that loop.
        build = functools.partial(AsyncKernelClient, connection_info, connection_file=connection_file)
        self._async = self._loop.call(build)

    start_channels = blocking(AsyncKernelClient.start_channels)
    wait_for_ready = blocking(AsyncKernelClient.wait_for_ready)
    execute = blocking(AsyncKernelClient.execute)
    kernel_info = blocking(AsyncKernelClient.kernel_info)
    get_shell_msg = blocking(AsyncKernelClient.get_shell_msg)
    get_iopub_msg = blocking(AsyncKernelClient.get_iopub_msg)
    execute_interactive = blocking(AsyncKernelClient.execute_interactive)
    is_alive = blocking(AsyncKernelClient.is_alive)

    def stop_channels(self) -> None:
        """Disconnect and stop the background thread (the kernel keeps running)."""
        self.close()


class KernelManager(_Twin):
    """jupyter_client's ``KernelManager`` API, blocking (see :class:`AsyncKernelManager`).

    Its background thread runs while it has a kernel.
    """

    def __init__(self, kernel_name: str = NATIVE_KERNEL_NAME, **kwargs: Any) -> None:
        super().__init__(AsyncKernelManager(kernel_name, **kwargs))

    @property
    def ready(self) -> concurrent.futures.Future[None]:
        """A thread-safe future done when the last start, restart or shutdown finished."""

        def mirror() -> concurrent.futures.Future[None]:
            source = self._async.ready
            result: concurrent.futures.Future[None] = concurrent.futures.Future()

            def copy(done: Any) -> None:
                if done.cancelled():
                    result.cancel()
                elif done.exception() is not None:
                    result.set_exception(done.exception())
                else:
                    result.set_result(None)

            if source.done():
                copy(source)
            else:
                source.add_done_callback(copy)
            return result

        future: concurrent.futures.Future[None] = self._loop.call(mirror)
        return future

    start_kernel = blocking(AsyncKernelManager.start_kernel)
    restart_kernel = blocking(AsyncKernelManager.restart_kernel)
    interrupt_kernel = blocking(AsyncKernelManager.interrupt_kernel)
    signal_kernel = blocking(AsyncKernelManager.signal_kernel)
    is_alive = blocking(AsyncKernelManager.is_alive)
    get_connection_info = blocking(AsyncKernelManager.get_connection_info)

    def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        """Stop the kernel and its nanny; then this manager's background thread stops too."""
        self._loop.run(self._async.shutdown_kernel(now=now, restart=restart))
        self._release_loop()

    def client(self, **kwargs: Any) -> BlockingKernelClient:
        """A blocking client for this kernel (call ``start_channels()`` on it)."""
        if kwargs:
            raise TypeError(f"client() takes no {', '.join(sorted(kwargs))} here")
        return BlockingKernelClient(self._async.connection_info, connection_file=self._async.connection_file)

    blocking_client = client


class MultiKernelManager(_Twin):
    """jupyter_client's ``MultiKernelManager`` API, blocking (see :class:`AsyncMultiKernelManager`).

    :meth:`get_kernel` returns blocking :class:`KernelManager` objects that
    share this manager's background thread, which runs while it has kernels.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(AsyncMultiKernelManager(**kwargs))
        self._managers: dict[str, KernelManager] = {}

    def get_kernel(self, kernel_id: str) -> KernelManager:
        async_km = self._async.get_kernel(kernel_id)
        km = self._managers.get(kernel_id)
        if km is None or km._async is not async_km:
            km = self._managers[kernel_id] = KernelManager._around(async_km, owner=self)
        return km

    def remove_kernel(self, kernel_id: str) -> KernelManager | None:
        km = self.get_kernel(kernel_id) if kernel_id in self._async else None
        self._async.remove_kernel(kernel_id)
        self._managers.pop(kernel_id, None)
        return km

    def list_kernel_ids(self) -> list[str]:
        return self._async.list_kernel_ids()  # type: ignore[no-any-return]

    def __len__(self) -> int:
        return len(self._async)

    def __contains__(self, kernel_id: object) -> bool:
        return kernel_id in self._async

    start_kernel = blocking(AsyncMultiKernelManager.start_kernel)
    restart_kernel = blocking(AsyncMultiKernelManager.restart_kernel)
    interrupt_kernel = blocking(AsyncMultiKernelManager.interrupt_kernel)
    signal_kernel = blocking(AsyncMultiKernelManager.signal_kernel)
    is_alive = blocking(AsyncMultiKernelManager.is_alive)
    get_connection_info = blocking(AsyncMultiKernelManager.get_connection_info)

    def shutdown_kernel(self, kernel_id: str, now: bool = False, restart: bool = False) -> None:
        self._loop.run(self._async.shutdown_kernel(kernel_id, now=now, restart=restart))
        self._managers.pop(kernel_id, None)
        self._release_if_empty()

    def shutdown_all(self, now: bool = False) -> None:
        if len(self._async):
            self._loop.run(self._async.shutdown_all(now=now))
        self._managers.clear()
        self._release_if_empty()

    def _release_if_empty(self) -> None:
        if not len(self._async):
            self._release_loop()


# -- helpers ---------------------------------------------------------------------


def start_new_kernel(
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT, kernel_name: str = "python", **kwargs: Any
) -> tuple[KernelManager, BlockingKernelClient]:
    """Start a kernel behind a nanny and return its manager and a ready, connected client."""
    km = KernelManager(kernel_name=kernel_name)
    km.start_kernel(**kwargs)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=startup_timeout)
    except RuntimeError:
        kc.stop_channels()
        km.shutdown_kernel()
        raise
    return km, kc


async def start_new_async_kernel(
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT, kernel_name: str = "python", **kwargs: Any
) -> tuple[AsyncKernelManager, AsyncKernelClient]:
    """The async :func:`start_new_kernel`."""
    km = AsyncKernelManager(kernel_name=kernel_name)
    await km.start_kernel(**kwargs)
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=startup_timeout)
    except RuntimeError:
        kc.stop_channels()
        await km.shutdown_kernel()
        raise
    return km, kc


@contextmanager
def run_kernel(**kwargs: Any) -> Iterator[BlockingKernelClient]:
    """A kernel for the ``with`` block: yields a ready client; the kernel is shut down afterwards."""
    km, kc = start_new_kernel(**kwargs)
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
