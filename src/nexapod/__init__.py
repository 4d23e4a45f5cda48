"""NexaPod: a compute economy for science.

A coordinator hands out work units of scientific jobs to sandboxed node agents,
verifies the results and records who computed what. See README.md and docs/.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
