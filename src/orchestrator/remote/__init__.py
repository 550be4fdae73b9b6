"""Hook calls on other machines: ``--executor celery`` and ``orchestrator worker``.

``messages`` is what travels, ``app`` the Celery application both sides share,
``executor`` the CLI's side (send, wait, adopt), ``worker`` the worker's side (claim,
run, record), ``files`` the blueprint's files shipped through the state.
"""
