"""The machinery that builds objects from configs: ``kind`` resolution, the generic factory, schedules.

These modules sit below :class:`~noether.core.optimizer.OptimizerWrapper`, which uses them to build its schedules
(and, through ``optimizer.param_group_modifiers.factory``, its modifiers), and below :mod:`noether.core.factory`,
the public face that re-exports them next to :class:`~noether.core.factory.OptimizerFactory`, which builds the
wrapper. Keeping them out of the ``factory`` package keeps the imports one way: ``factory`` ->
``optimizer_wrapper`` -> ``builders``. Import them from :mod:`noether.core.factory`; this package's ``__init__``
imports nothing.
"""
