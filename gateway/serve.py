"""``gateway serve``: SMTP listener, IMAP pollers, embedded worker and sweep."""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import sys

import dramatiq

from gateway.inbound.imap import start_pollers, stop_pollers
from gateway.inbound.ratelimit import smtp_sender_limited
from gateway.inbound.smtp import GatewayHandler, start_smtp_server
from gateway.inbound.spool import GroupCommitWriter
from gateway.jobs import QUEUE_NAME, configure, enqueue_inbound, sweep
from gateway.lifecycle.timers import run_tick
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

# The spool writer thread needs the GIL back as soon as its fsync returns, or
# every SMTP session waiting for that commit waits too. Python's default
# switch interval (5 ms) is longer than the commit itself.
GIL_SWITCH_INTERVAL_SECONDS = 0.0005


def _no_worker(_inbound_id: int) -> None:
    return None


async def serve(runtime: Runtime) -> None:
    """Run until SIGTERM or SIGINT, then stop accepting, finish the batch and exit.

    Raises ConfigError when the listener cannot bind its address.
    """
    settings = runtime.settings
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)
    broker = configure(runtime)
    in_process = settings.embedded and settings.worker.threads > 0
    # With the embedded broker and no worker threads this process only stores
    # mail (ingress); a later serve with a worker processes it.
    handing_off = in_process or not settings.embedded
    writer = GroupCommitWriter(
        runtime.engine, settings.store.data_dir, settings.smtp.group_commit_max
    )
    handler = GatewayHandler(
        settings,
        writer,
        enqueue_inbound if handing_off else _no_worker,
        sender_limited=functools.partial(
            smtp_sender_limited, runtime.engine, settings.routing
        ),
    )

    # Bind first: a port in use must stop the process before any thread starts.
    server = None
    if settings.smtp.port:
        server = await start_smtp_server(settings, handler)
    writer.start()
    worker = None
    if in_process:
        worker = dramatiq.Worker(
            broker, worker_threads=settings.worker.threads, queues={QUEUE_NAME}
        )
        worker.start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info(
        "gateway started store=%s broker=%s worker_threads=%d",
        runtime.engine.url.render_as_string(hide_password=True),
        settings.broker.url or "in-process",
        settings.worker.threads if in_process else 0,
    )
    sweeper = timers = None
    if handing_off:
        await asyncio.to_thread(sweep, runtime, everything=True)
        sweeper = asyncio.create_task(_sweep_forever(runtime))
        timers = asyncio.create_task(_tick_forever(runtime))
    # Each mailbox runs in a task of its own that logs and retries its own
    # failures, so a mailbox that is down never stops the SMTP listener.
    pollers = start_pollers(runtime, enqueue_inbound if handing_off else _no_worker)
    await stop.wait()

    log.info("gateway stopping")
    await stop_pollers(pollers)
    if server is not None:
        server.close()
        await server.wait_closed()
    for task in (sweeper, timers):
        if task is not None:
            task.cancel()
    await asyncio.to_thread(writer.stop)
    if worker is not None:
        await asyncio.to_thread(worker.stop)
    broker.close()
    log.info("gateway stopped")


async def _sweep_forever(runtime: Runtime) -> None:
    interval = runtime.settings.worker.sweep_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(sweep, runtime)
        except Exception:
            log.exception("sweep failed; trying again in %.0f s", interval)


async def _tick_forever(runtime: Runtime) -> None:
    """Run the lifecycle timers every ``[lifecycle] tick_seconds``, from the start.

    Every serve process runs them; a pass is safe beside another one (see
    gateway.lifecycle.timers), so a scale-out needs no single scheduler.
    """
    interval = runtime.settings.lifecycle.tick_seconds
    while True:
        try:
            await asyncio.to_thread(run_tick, runtime, runtime.clock())
        except Exception:
            log.exception("lifecycle timers failed; trying again in %.0f s", interval)
        await asyncio.sleep(interval)
