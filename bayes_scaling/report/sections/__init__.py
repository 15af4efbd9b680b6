"""The risk report's sections, one module each: ``numbers(ctx)`` and ``blocks(risk)``.

Each module defines ``SECTION``, a :class:`bayes_scaling.report.context.Section`; the order
of the document is :data:`bayes_scaling.report.registry.SECTIONS`.
"""
