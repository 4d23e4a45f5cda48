"""The node agent: identity, hardware profile, sandbox executors and the run loop.

It imports only ``protocol``, ``crypto`` and ``workloads`` from NexaPod (a test checks).
"""

__all__: list[str] = []
