"""Protocol cost, no kernel involved.

* ``protocol``: one execute_request through build -> serialise + sign -> verify + deserialise, each
  stage timed per message (perf_counter_ns), ours vs jupyter_client's Session pack/unpack path.
* ``iopub-recv``: receive + deserialise small iopub ``stream`` messages from a queue already filled
  (sync zmq PUSH/PULL over inproc), per message; the raw receive is shown as the floor.
* ``client-iopub``: the same messages published by a fake kernel (a PUB socket on ipc) and consumed by
  the async clients as users do: our ``KernelClient`` iopub handler vs ``AsyncKernelClient.iopub_channel.get_msg()``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

import zmq
from _common import Config, Row, orders
from jupyter_client.session import Session as JCSession

from kernel_nanny.protocol import Session as KNSession

KEY = os.urandom(32).hex().encode()
EXECUTE_CONTENT: dict[str, Any] = {
    "code": "import numpy as np\nx = np.arange(10)\nprint(x.sum())",
    "silent": False,
    "store_history": True,
    "user_expressions": {},
    "allow_stdin": True,
    "stop_on_error": True,
}
CLIENT_IDENTITY = b"c0ffee00-1234-5678-9abc-def012345678"
IOPUB_TOPIC = b"kernel.4a1b2c3d-0000-1111-2222-333344445555.stream"


def _ours_once(tx: KNSession, rx: KNSession) -> tuple[int, int, int, int]:
    pc = time.perf_counter_ns
    t0 = pc()
    msg = tx.msg("execute_request", EXECUTE_CONTENT)
    t1 = pc()
    frames = tx.serialize(msg, identities=[CLIENT_IDENTITY])
    t2 = pc()
    received = rx.deserialize(frames)
    t3 = pc()
    if received.content["code"] != EXECUTE_CONTENT["code"]:
        raise AssertionError("kernel-nanny round trip changed the content")
    return t0, t1, t2, t3


def _theirs_once(tx: JCSession, rx: JCSession) -> tuple[int, int, int, int]:
    pc = time.perf_counter_ns
    t0 = pc()
    msg = tx.msg("execute_request", EXECUTE_CONTENT)
    t1 = pc()
    frames = tx.serialize(msg, ident=CLIENT_IDENTITY)
    t2 = pc()
    _idents, msg_list = rx.feed_identities(frames, copy=True)
    received = rx.deserialize(msg_list, content=True, copy=True)
    t3 = pc()
    if received["content"]["code"] != EXECUTE_CONTENT["code"]:
        raise AssertionError("jupyter_client round trip changed the content")
    return t0, t1, t2, t3


def bench_protocol(cfg: Config) -> list[Row]:
    rounds = cfg.n(40, 8)
    per_round = cfg.n(500, 250)
    ours_tx, ours_rx = KNSession(KEY), KNSession(KEY)
    theirs_tx = JCSession(key=KEY, signature_scheme="hmac-sha256")
    theirs_rx = JCSession(key=KEY, signature_scheme="hmac-sha256")
    stages = ("build", "serialise + sign", "verify + deserialise", "total")
    ours: dict[str, list[float]] = {s: [] for s in stages}
    theirs: dict[str, list[float]] = {s: [] for s in stages}

    def run(once: Any, tx: Any, rx: Any, out: dict[str, list[float]], record: bool) -> None:
        for _ in range(per_round):
            t0, t1, t2, t3 = once(tx, rx)
            if record:
                out["build"].append((t1 - t0) / 1e9)
                out["serialise + sign"].append((t2 - t1) / 1e9)
                out["verify + deserialise"].append((t3 - t2) / 1e9)
                out["total"].append((t3 - t0) / 1e9)

    # Warm-up (imports, caches, first-call costs), not recorded.
    run(_ours_once, ours_tx, ours_rx, ours, False)
    run(_theirs_once, theirs_tx, theirs_rx, theirs, False)
    for _, ours_first in orders(rounds):
        pair = [(_ours_once, ours_tx, ours_rx, ours), (_theirs_once, theirs_tx, theirs_rx, theirs)]
        for once, tx, rx, out in pair if ours_first else reversed(pair):
            run(once, tx, rx, out, True)
    return [Row("protocol", f"execute_request: {stage}", ours[stage], theirs[stage]) for stage in stages]


# -- receive + deserialise, sync sockets --------------------------------------------------------


def _stream_frames(count: int, tag: str) -> list[list[bytes]]:
    """``count`` distinct signed iopub stream messages (distinct, or the replay guards would refuse them)."""
    kernel = KNSession(KEY, session_id=f"fake-kernel-{tag}")
    parent = kernel.msg("execute_request", {"code": "for i in range(10**6): print(i)"})
    frames = []
    for i in range(count):
        msg = kernel.msg("stream", {"name": "stdout", "text": f"{i}\n"}, parent=parent)
        frames.append([bytes(f) for f in kernel.serialize(msg, identities=[IOPUB_TOPIC])])
    return frames


def bench_iopub_recv(cfg: Config) -> list[Row]:
    rounds = cfg.n(12, 4)
    batch = cfg.n(4000, 2000)
    ctx = zmq.Context()
    pairs = {}
    try:
        for name in ("ours", "theirs", "raw"):
            push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
            for s in (push, pull):
                s.sndhwm = s.rcvhwm = 0
                s.linger = 0
            pull.bind(f"inproc://iopub-{name}")
            push.connect(f"inproc://iopub-{name}")
            pairs[name] = (push, pull)
        ours_rx = KNSession(KEY)
        theirs_rx = JCSession(key=KEY, signature_scheme="hmac-sha256")

        def receive_ours(pull: zmq.Socket, n: int) -> None:
            for _ in range(n):
                ours_rx.deserialize(pull.recv_multipart())

        def receive_theirs(pull: zmq.Socket, n: int) -> None:
            # What jupyter_client's ZMQSocketChannel.get_msg does after polling.
            for _ in range(n):
                _idents, msg_list = theirs_rx.feed_identities(pull.recv_multipart(), copy=True)
                theirs_rx.deserialize(msg_list, content=True, copy=True)

        def receive_raw(pull: zmq.Socket, n: int) -> None:
            for _ in range(n):
                pull.recv_multipart()

        receivers = {"ours": receive_ours, "theirs": receive_theirs, "raw": receive_raw}
        per_msg: dict[str, list[float]] = {"ours": [], "theirs": [], "raw": []}
        for rnd, ours_first in orders(rounds + 1):  # round 0 is a warm-up
            names = ["ours", "theirs", "raw"] if ours_first else ["theirs", "ours", "raw"]
            for name in names:
                push, pull = pairs[name]
                for frames in _stream_frames(batch, f"{name}-{rnd}"):
                    push.send_multipart(frames)
                time.sleep(0.02)  # let the io thread move the batch into the receiving queue
                t0 = time.perf_counter()
                receivers[name](pull, batch)
                if rnd:
                    per_msg[name].append((time.perf_counter() - t0) / batch)
    finally:
        ctx.destroy(linger=0)
    row = Row(
        "iopub-recv",
        "recv + deserialise small iopub msg (per msg)",
        per_msg["ours"],
        per_msg["theirs"],
        notes=[
            f"iopub-recv: msg/s (median batch) ours {1 / statistics.median(per_msg['ours']):,.0f}, "
            f"jupyter_client {1 / statistics.median(per_msg['theirs']):,.0f}; raw recv_multipart floor "
            f"{1 / statistics.median(per_msg['raw']):,.0f} msg/s"
        ],
        extra={"batch": batch, "raw_recv_per_msg": per_msg["raw"]},
    )
    floor = Row("iopub-recv", "  floor: raw zmq recv_multipart (per msg)", per_msg["raw"], [])
    return [row, floor]


# -- the async clients' iopub path, fed by a fake kernel ----------------------------------------


async def bench_client_iopub(cfg: Config) -> list[Row]:
    """Our KernelClient vs jupyter_client's AsyncKernelClient consuming a burst of iopub messages."""
    import tempfile

    import zmq.asyncio
    from jupyter_client.asynchronous import AsyncKernelClient

    from kernel_nanny import KernelClient

    rounds = cfg.n(10, 4)
    batch = cfg.n(3000, 1500)
    tmp = tempfile.mkdtemp(prefix="kn-fake-", dir=os.environ.get("JUPYTER_RUNTIME_DIR"))
    sync_ctx = zmq.Context()
    pubs: dict[str, zmq.Socket] = {}
    infos: dict[str, dict[str, Any]] = {}
    for name in ("ours", "theirs"):
        info = {
            "transport": "ipc",
            "ip": f"{tmp}/{name}",
            "key": KEY.decode(),
            "signature_scheme": "hmac-sha256",
            **{f"{c}_port": i for i, c in enumerate(("shell", "iopub", "stdin", "control", "hb"), start=1)},
        }
        pub = sync_ctx.socket(zmq.PUB)
        pub.sndhwm = 0
        pub.linger = 0
        pub.bind(f"ipc://{info['ip']}-2")
        pubs[name], infos[name] = pub, info

    ours = KernelClient(infos["ours"], context=zmq.asyncio.Context.instance())
    received = 0
    target = 0
    done = asyncio.Event()

    def count(_msg: Any) -> None:
        nonlocal received
        received += 1
        if received >= target:
            done.set()

    theirs = AsyncKernelClient()
    # (the key= constructor argument does not reach the session: load the whole connection info)
    theirs.load_connection_info(infos["theirs"])  # type: ignore[arg-type]
    samples: dict[str, list[float]] = {"ours": [], "theirs": []}
    try:
        ours.add_iopub_handler(count)
        theirs.start_channels(shell=False, iopub=True, stdin=False, hb=False, control=False)

        # Wait until both subscriptions are live: publish probes until one arrives.
        probe_kernel = KNSession(KEY, session_id="probe")
        for name in ("ours", "theirs"):
            for _attempt in range(200):
                msg = probe_kernel.msg("status", {"execution_state": "idle"})
                pubs[name].send_multipart(probe_kernel.serialize(msg, identities=[b"status"]))
                if name == "ours":
                    target = received + 1
                    done.clear()
                    try:
                        await asyncio.wait_for(done.wait(), 0.05)
                        break
                    except asyncio.TimeoutError:
                        continue
                else:
                    try:
                        await theirs.iopub_channel.get_msg(timeout=0.05)
                        break
                    except Exception:
                        continue
            else:
                raise RuntimeError(f"fake kernel iopub never reached the {name} client")
        await asyncio.sleep(0.1)
        # Drain probe repeats that arrived late.
        while True:
            try:
                await theirs.iopub_channel.get_msg(timeout=0.05)
            except Exception:
                break

        async def run_ours(frames: list[list[bytes]]) -> float:
            nonlocal target
            done.clear()
            target = received + len(frames)
            for f in frames:
                pubs["ours"].send_multipart(f)
            t0 = time.perf_counter()
            await asyncio.wait_for(done.wait(), 60)
            return time.perf_counter() - t0

        async def run_theirs(frames: list[list[bytes]]) -> float:
            for f in frames:
                pubs["theirs"].send_multipart(f)
            t0 = time.perf_counter()
            for _ in range(len(frames)):
                await theirs.iopub_channel.get_msg(timeout=60)
            return time.perf_counter() - t0

        for rnd, ours_first in orders(rounds + 1):  # round 0 is a warm-up
            jobs = [("ours", run_ours), ("theirs", run_theirs)]
            for name, job in jobs if ours_first else reversed(jobs):
                elapsed = await job(_stream_frames(batch, f"client-{name}-{rnd}"))
                if rnd:
                    samples[name].append(elapsed / batch)
    finally:
        ours.close()
        await ours.wait_closed()
        theirs.stop_channels()
        sync_ctx.destroy(linger=0)
        for name in ("ours", "theirs"):
            for i in range(1, 6):
                try:
                    os.unlink(f"{infos[name]['ip']}-{i}")
                except OSError:
                    pass
        os.rmdir(tmp) if not os.listdir(tmp) else None
    return [
        Row(
            "client-iopub",
            "async client: iopub burst, per msg (fake kernel)",
            samples["ours"],
            samples["theirs"],
            notes=[
                f"client-iopub: msg/s ours {1 / statistics.median(samples['ours']):,.0f}, jupyter_client "
                f"{1 / statistics.median(samples['theirs']):,.0f} (ours = KernelClient reader task + handler; "
                "theirs = iopub_channel.get_msg() in a loop)"
            ],
            extra={"batch": batch},
        )
    ]
