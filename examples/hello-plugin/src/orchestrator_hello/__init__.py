"""orchestrator-hello: an example third-party plugin (files and directories).

The plugin itself is ``orchestrator_hello.plugin``, registered through the entry point
``hello`` in the group ``orchestrator.plugins``.
"""

__version__ = "0.1.0"
