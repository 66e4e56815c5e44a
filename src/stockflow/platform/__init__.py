"""The service platform: what every stockflow service stands on.

- :class:`~stockflow.platform.settings.ServiceSettings`: the settings every service shares;
- :class:`~stockflow.platform.spec.ServiceSpec`: a service as the runners see it;
- :func:`~stockflow.platform.runner.run`: the one runner of ``up`` and ``serve``.

The platform knows no service: the registry of services lives in ``stockflow.runtime``.
See ``docs/adding-a-service.md``.
"""
