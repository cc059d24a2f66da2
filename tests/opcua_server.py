"""A real asyncua OPC UA server for the tests, run as its own process (so a test can kill and
restart it): ``python -m tests.opcua_server PORT LOG [options]``.

Object ``Plant`` (ns=2) holds ``Temperature`` (Double), ``Counter`` (Int32), ``Running`` (Boolean)
and ``State`` (String); every ``--period`` the server writes sample k to all four with an explicit
source timestamp: 20 + k/4, k, k even, "s<k>" (every 10th State sample with status
UncertainLastUsableValue), for ``--samples`` samples, then holds still. Every write is logged to LOG
as a JSON line, so a test compares what arrived with what was really written. ``--bulk N`` adds
``Bulk.v0..`` Doubles written every ``--bulk-period`` (for the benchmark). ``--sign CERT KEY``
offers only Basic256Sha256 Sign. ``--wait-subscriber`` starts writing once a client has monitored
items (after a restart: the samples a re-subscribed client must not lose). Prints READY when up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

from asyncua import Server, ua

STATE_UNCERTAIN = ua.StatusCodes.UncertainLastUsableValue


def _subscribed(server: Server) -> bool:
    subs = server.iserver.subscription_service.subscriptions.values()
    return any(s.monitored_item_srv._monitored_items for s in subs)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("log", type=Path)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--period", type=float, default=0.1)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--bulk", type=int, default=0)
    ap.add_argument("--bulk-period", type=float, default=0.02)
    ap.add_argument("--bulk-seconds", type=float, default=5.0)
    ap.add_argument("--sign", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--wait-subscriber", action="store_true")
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before the first sample")
    a = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)

    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{a.port}/etl/")
    if a.sign:
        await server.load_certificate(a.sign[0])
        await server.load_private_key(a.sign[1])
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_Sign])
    else:
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace("urn:etl:test")
    plant = await server.nodes.objects.add_object(ua.NodeId("Plant", idx), ua.QualifiedName("Plant", idx))

    async def var(name: str, value: object, kind: ua.VariantType) -> object:
        return await plant.add_variable(ua.NodeId(f"Plant.{name}", idx), ua.QualifiedName(name, idx), value, kind)

    temp = await var("Temperature", -1.0, ua.VariantType.Double)
    counter = await var("Counter", -1, ua.VariantType.Int32)
    running = await var("Running", False, ua.VariantType.Boolean)
    state = await var("State", "init", ua.VariantType.String)
    bulk = [await var(f"Bulk.v{i}", 0.0, ua.VariantType.Double) for i in range(a.bulk)]

    async with server:
        print("READY", flush=True)
        if a.wait_subscriber:
            while not _subscribed(server):
                await asyncio.sleep(0.02)
        await asyncio.sleep(a.delay)
        with open(a.log, "a", encoding="utf-8") as log:
            if bulk:
                n, end = 0, time.monotonic() + a.bulk_seconds
                while time.monotonic() < end:
                    n += 1
                    for v in bulk:
                        await v.write_value(float(n))
                    await asyncio.sleep(a.bulk_period)
                log.write(json.dumps({"bulk_rounds": n, "vars": len(bulk)}) + "\n")
            for k in range(a.start, a.start + a.samples):
                now = datetime.now(timezone.utc)
                status = STATE_UNCERTAIN if k % 10 == 9 else ua.StatusCodes.Good
                for node, value, kind, code in (
                        (temp, 20 + k / 4, ua.VariantType.Double, ua.StatusCodes.Good),
                        (counter, k, ua.VariantType.Int32, ua.StatusCodes.Good),
                        (running, k % 2 == 0, ua.VariantType.Boolean, ua.StatusCodes.Good),
                        (state, f"s{k}", ua.VariantType.String, status)):
                    await node.write_value(ua.DataValue(ua.Variant(value, kind), StatusCode=ua.StatusCode(code),
                                                        SourceTimestamp=now, ServerTimestamp=now))
                us = int(now.timestamp()) * 1_000_000 + now.microsecond
                log.write(json.dumps({"k": k, "us": us, "state_status": int(status)}) + "\n")
                log.flush()
                await asyncio.sleep(a.period)
            log.write(json.dumps({"done": True}) + "\n")
        while True:
            await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main())
