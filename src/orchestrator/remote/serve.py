"""``orchestrator worker``: a Celery worker (threads) serving operation requests with the
plugins installed here, which it names when it starts."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import click

from orchestrator.remote.app import broker_url, display_broker, make_app
from orchestrator.remote.worker import Worker, set_worker
from orchestrator.state import is_url


def serve(broker: str | None, concurrency: int, queues: str, state: str | None, name: str | None) -> None:
    from orchestrator.plugins import get_plugin_manager

    url = broker_url(broker)
    pm = get_plugin_manager()
    for error in pm.load_errors:
        click.echo(f"{'error' if error.fatal else 'warning'}: {error}", err=True)
    if state is not None and not is_url(state):
        state = str(Path(state).resolve())
    worker = Worker(pm, state=state, name=name)
    set_worker(worker)
    types = Counter(pm.type_owner.values())
    plugins = ", ".join(f"{owner} ({n} type{'s' if n != 1 else ''})" for owner, n in sorted(types.items()))
    click.echo(f"orchestrator worker {worker.name}: broker {display_broker(url)}, queues {queues}, "
               f"concurrency {concurrency}", err=True)
    click.echo(f"  plugins: {plugins or 'none installed'}", err=True)
    sys.stderr.flush()
    import warnings

    from celery.platforms import SecurityWarning

    # Celery warns about root even with JSON only; pickle, the real danger, is never accepted.
    warnings.filterwarnings("ignore", category=SecurityWarning)
    app = make_app(url)
    node = (name or worker.name).replace(":", "-").replace("@", "-")
    app.worker_main(["worker", "--pool=threads", f"--concurrency={concurrency}", f"--queues={queues}",
                     "--without-gossip", "--without-mingle", "--loglevel=WARNING", f"--hostname={node}@%h"])
