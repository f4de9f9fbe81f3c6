"""The ``noether-optim`` application: its command line and the Burgers' demo, built on the library.

The library itself is :mod:`noether.core.optimizer` (with the factories, schemas and schedules beside it); this
package only uses it, and nothing in :mod:`noether` imports this package.
"""
