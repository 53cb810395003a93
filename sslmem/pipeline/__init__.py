"""Where results live and how units run: config, the results store, experiments, ensembles, the
plan, executors.

May import: ``sslmem.score``, ``sslmem.train`` and the base modules.
"""
