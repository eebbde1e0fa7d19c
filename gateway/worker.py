"""Entry module for separate worker processes: ``dramatiq gateway.worker``.

The config file comes from ``GATEWAY_CONFIG`` (default ``config.toml`` in
the working folder); ``[broker] url`` must name the Redis server that the
``gateway serve`` processes queue to.
"""

from gateway.jobs import configure
from gateway.logs import setup_logging
from gateway.runtime import load_runtime

setup_logging()
runtime = load_runtime()
broker = configure(runtime)
