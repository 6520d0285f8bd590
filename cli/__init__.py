"""The commands, above every library package: one module per command (its parser, the function
that does the work and ``main``), and what they share (``runner``: parser, quiet TensorFlow start,
exit codes; ``flags``: the common flags and their conversion into configs).

Users run them by the names the entry points give them (``python -m tuning.search`` runs
:mod:`cli.search`) or as console commands (``gtzan-search``). No library module imports this
package.
"""
