"""Benchmark of ``taller serve``: throughput and latency of a no-tool round trip, memory per connection.

The server runs in a child process (so its memory can be read from /proc and client work is not
counted in it) with the scripted fake chat model: every request is routed to "no tool" and answered
with one short sentence, so the figures measure the server, the protocol and the LangGraph
agent's per-request overhead, not an LLM. Loopback only.

For 1, 10 and 100 concurrent clients (each on its own connection and thread), every client sends
``--requests`` messages one after another; we report messages per second over the whole level and
p50/p99 of send → ``final``. A ``ping`` → ``pong`` round trip gives the transport's own cost. Then
``--idle`` extra idle connections are opened and the server's RSS growth per connection is reported (measured before the load levels).

    python bench/server.py                 # defaults: 1/10/100 clients, bounded totals
    python bench/server.py --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _server_process(home: str, pipe) -> None:
    os.environ["TALLER_HOME"] = home
    os.environ["TALLER_BACKEND"] = "fake"
    os.environ["TALLER_SEMANTIC_ROUTER"] = "0"
    os.environ["TALLER_OFFLINE"] = "1"
    from taller.llm import FakeChatModel
    from taller.agent.session import Agent
    from taller.server import Limits, TallerServer

    class NoToolModel(FakeChatModel):
        def invoke_json(self, messages, schema, **kwargs):
            return {"tool": "none", "args": {}}

    async def main() -> None:
        # A high rate limit: the benchmark itself would otherwise be throttled.
        server = TallerServer(agent=Agent(chat_model=NoToolModel(default="Sure, here is a short answer.")),
                              port=0, limits=Limits(rate_per_s=10_000, rate_burst=10_000))
        await server.start()
        pipe.send((server.port, server.token))
        await asyncio.Event().wait()

    asyncio.run(main())


def agent_alone(count: int) -> dict:
    """The same no-tool request through ``Agent.run`` in-process, no server: the floor per request."""
    home = tempfile.mkdtemp(prefix="taller-bench-agent-")
    os.environ.update({"TALLER_HOME": home, "TALLER_BACKEND": "fake", "TALLER_SEMANTIC_ROUTER": "0",
                       "TALLER_OFFLINE": "1"})
    from taller.llm import FakeChatModel
    from taller.agent.session import Agent
    from taller.config import get_settings

    get_settings(reload=True)

    class NoToolModel(FakeChatModel):
        def invoke_json(self, messages, schema, **kwargs):
            return {"tool": "none", "args": {}}

    agent = Agent(chat_model=NoToolModel(default="Sure, here is a short answer."))
    for _ in range(5):  # warm-up
        list(agent.run("hello there", thread_id="warm"))
    latencies = []
    for number in range(count):
        started = time.perf_counter()
        events = list(agent.run("hello there", thread_id=f"alone-{number % 10}"))
        latencies.append(time.perf_counter() - started)
        assert events[-1]["type"] == "final", events[-1]
    agent.close()
    return {"requests": count, "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 1)}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def run_level(url: str, token: str, clients: int, requests: int) -> dict:
    from websockets.asyncio.client import connect

    latencies: list[float] = []

    async def client(index: int) -> None:
        async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, compression=None,
                           max_size=2**24) as websocket:
            await websocket.recv()  # hello
            for number in range(requests):
                request_id = f"{index}-{number}"
                started = time.perf_counter()
                await websocket.send(json.dumps({"type": "message", "text": "hello there", "request_id": request_id,
                                                 "thread_id": f"bench-{index}"}))
                while True:
                    event = json.loads(await websocket.recv())
                    if event.get("request_id") == request_id and event["type"] in ("final", "error"):
                        if event["type"] == "error":
                            raise RuntimeError(event["message"])
                        break
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    return {"clients": clients, "requests": clients * requests, "seconds": round(elapsed, 2),
            "messages_per_s": round(clients * requests / elapsed, 1),
            "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 1)}


async def ping_level(url: str, token: str, count: int) -> dict:
    from websockets.asyncio.client import connect

    latencies = []
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, compression=None) as websocket:
        await websocket.recv()
        for _ in range(count):
            started = time.perf_counter()
            await websocket.send('{"type": "ping"}')
            await websocket.recv()
            latencies.append(time.perf_counter() - started)
    return {"pings": count, "p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2)}


async def memory_per_connection(url: str, token: str, pid: int, count: int) -> dict:
    from websockets.asyncio.client import connect

    await asyncio.sleep(0.5)
    before = rss_kib(pid)
    sockets = []
    for start in range(0, count, 50):
        batch = await asyncio.gather(*(connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                                               compression=None) for _ in range(start, min(count, start + 50))))
        for websocket in batch:
            await websocket.recv()
        sockets.extend(batch)
    await asyncio.sleep(0.5)
    after = rss_kib(pid)
    for websocket in sockets:
        await websocket.close()
    return {"connections": count, "rss_before_mib": round(before / 1024, 1), "rss_after_mib": round(after / 1024, 1),
            "kib_per_connection": round((after - before) / count, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,10,100", help="concurrent clients per level")
    parser.add_argument("--requests", type=int, default=0,
                        help="sequential requests per client (default: 200 total for 1 client, 400 for 10, 500 for 100)")
    parser.add_argument("--idle", type=int, default=500, help="idle connections for the memory figure")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    results: dict = {"machine": f"{os.cpu_count()} CPU cores", "levels": []}
    results["agent_alone"] = alone = agent_alone(100)
    print(f"Agent.run alone (no server): p50 {alone['p50_ms']} ms, p99 {alone['p99_ms']} ms", flush=True)

    home = tempfile.mkdtemp(prefix="taller-bench-server-")
    parent_end, child_end = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=_server_process, args=(home, child_end), daemon=True)
    process.start()
    if not parent_end.poll(60):
        raise SystemExit("the server did not start within 60 s")
    port, token = parent_end.recv()
    url = f"ws://127.0.0.1:{port}/"
    totals = {1: 200, 10: 400, 100: 500}
    try:
        async def everything() -> None:
            await run_level(url, token, 4, 10)  # warm-up: imports, first graph compile paths, SQLite
            results["ping"] = await ping_level(url, token, 300)
            print(f"ping round trip: p50 {results['ping']['p50_ms']} ms, p99 {results['ping']['p99_ms']} ms", flush=True)
            # Memory first, on a server that has not yet grown arenas for the load levels (freed
            # memory would be reused by the new connections and hide their cost).
            results["memory"] = await memory_per_connection(url, token, process.pid, args.idle)
            memory = results["memory"]
            print(f"memory: {memory['connections']} idle connections took the server from {memory['rss_before_mib']} "
                  f"to {memory['rss_after_mib']} MiB = {memory['kib_per_connection']} KiB per connection", flush=True)
            for clients in (int(x) for x in args.levels.split(",")):
                per_client = args.requests or max(1, totals.get(clients, 400) // clients)
                level = await run_level(url, token, clients, per_client)
                results["levels"].append(level)
                print(f"{clients:>4} clients: {level['requests']} requests in {level['seconds']} s = "
                      f"{level['messages_per_s']} msg/s, p50 {level['p50_ms']} ms, p99 {level['p99_ms']} ms", flush=True)

        asyncio.run(everything())
    finally:
        process.terminate()
        process.join(5)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
